//! One function per operation. Each reads and writes only under `context.tenant()` and hides
//! objects of client companies the caller may not see behind "not found".

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use vigie_auth::{
    ApiKey, ApiKeyScope, Identity, Invitation, InvitationRefused, Membership, Role, UserRecord,
};
use vigie_aws::users::Accepted;
use vigie_domain::clock::Clock;
use vigie_domain::directory::{ClientCompany, Plan, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::ids::{ClientId, DeviceId, EnrollmentTokenId, IdError, SiteId, TenantId};
use vigie_domain::notification::{ChannelFilter, ChannelId, ChannelKind, NotificationChannel};
use vigie_domain::policy::{EffectivePolicy, Policy, Scope};
use vigie_domain::ports::UsageLedger;
use vigie_domain::ports::{ChannelStore, PolicyStore};
use vigie_domain::usage::{Month, UsageRow, to_csv};
use vigie_domain::workflow::{ActionRefused, AlertAction, AlertWork};
use vigie_edge::{HttpRequest, HttpResponse};

use crate::access::Context;
use crate::error::ApiError;
use crate::routes::{Matched, Operation};
use crate::{Api, views};

/// Incidents: a child module, so it shares the helpers below without widening them.
#[path = "incidents.rs"]
mod incidents;

/// Largest page a list answers.
const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 50;

pub(crate) async fn handle<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let p = Params {
        path: &matched.params,
        query: parse_query(&request.query),
    };
    let now = api.clock.now_ms();
    let ports = &api.ports;
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    match matched.route.operation {
        Operation::Me => {
            let pr = context.principal();
            ok(json!({
                "subject": pr.subject(),
                "role": pr.role().as_str(),
                "tenant_id": pr.tenant_id(),
                "client_id": pr.client_id(),
                "clients": pr.clients(),
            }))
        }
        Operation::ListTenants => {
            let tenants = ports.directory().tenants().await?;
            page(tenants, |t| t.id.to_string(), views::tenant, &p)
        }
        Operation::CreateTenant => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewTenant {
                tenant_id: TenantId,
                name: String,
                plan: Option<String>,
                max_devices: Option<u32>,
            }
            let body: NewTenant = json_body(request)?;
            let defaults = Plan::default();
            let plan = Plan {
                name: match body.plan {
                    Some(p) => name(&p)?,
                    None => defaults.name,
                },
                max_devices: body.max_devices.unwrap_or(defaults.max_devices),
            };
            if plan.max_devices == 0 || plan.max_devices > 1_000_000 {
                return Err(ApiError::invalid("bad_plan", "max_devices is 1 to 1000000"));
            }
            let tenant = Tenant::new(body.tenant_id, name(&body.name)?, now, plan);
            if !ports.directory().create_tenant(&tenant).await? {
                return Err(ApiError::Conflict {
                    code: "tenant_exists",
                    message: format!("tenant {} exists", tenant.id),
                });
            }
            // Its alerts topic and subscriptions, before its first alert.
            ports.tenant_topics().sync(&tenant.id).await?;
            ok(views::tenant(&tenant))
        }
        Operation::GetTenant => {
            let id = p.id("tenant_id", TenantId::parse, "tenant")?;
            let tenant = ports.directory().tenant(&id).await?;
            tenant.map_or(Err(ApiError::NotFound { what: "tenant" }), |t| {
                ok(views::tenant(&t))
            })
        }
        Operation::ListClients => {
            let tenant = context.tenant()?;
            let clients: Vec<_> = ports
                .directory()
                .clients(tenant)
                .await?
                .into_iter()
                .filter(|c| context.may_see(&c.id))
                .collect();
            page(clients, |c| c.id.to_string(), views::client, &p)
        }
        Operation::CreateClient => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewClient {
                client_id: ClientId,
                name: String,
            }
            let body: NewClient = json_body(request)?;
            let client = ClientCompany {
                tenant: context.tenant()?.clone(),
                id: body.client_id,
                name: name(&body.name)?,
                created_ms: now,
            };
            if !ports.directory().create_client(&client).await? {
                return Err(ApiError::Conflict {
                    code: "client_exists",
                    message: format!("client company {} exists", client.id),
                });
            }
            ok(views::client(&client))
        }
        Operation::GetClient => {
            let client = visible_client(api, context, &p).await?;
            ok(views::client(&client))
        }
        Operation::CreateSite => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewSite {
                site_id: SiteId,
                name: String,
                time_zone: Option<String>,
            }
            let client = visible_client(api, context, &p).await?;
            let body: NewSite = json_body(request)?;
            let site = Site {
                tenant: client.tenant,
                client: client.id,
                id: body.site_id,
                name: name(&body.name)?,
                time_zone: body.time_zone.unwrap_or_else(|| "UTC".into()),
                created_ms: now,
            };
            if !ports.directory().create_site(&site).await? {
                return Err(ApiError::Conflict {
                    code: "site_exists",
                    message: format!("site {} exists", site.id),
                });
            }
            ok(views::site(&site))
        }
        Operation::GetSite => {
            let client = visible_client(api, context, &p).await?;
            let site_id = p.id("site_id", SiteId::parse, "site")?;
            let site = ports
                .directory()
                .site(&client.tenant, &client.id, &site_id)
                .await?
                .ok_or(ApiError::NotFound { what: "site" })?;
            ok(views::site(&site))
        }
        Operation::ListDevices => {
            let tenant = context.tenant()?;
            let client = p.query_id("client_id", ClientId::parse)?;
            let site = p.query_id("site_id", SiteId::parse)?;
            if site.is_some() && client.is_none() {
                return Err(ApiError::invalid(
                    "bad_filter",
                    "filtering on site_id needs client_id too",
                ));
            }
            let connection = match p.query.get("connection").map(String::as_str) {
                None => None,
                Some(c @ ("connected" | "late" | "down" | "never_seen" | "revoked")) => {
                    Some(c.to_owned())
                }
                Some(_) => {
                    return Err(ApiError::invalid(
                        "bad_filter",
                        "connection is connected, late, down, never_seen or revoked",
                    ));
                }
            };
            let outdated = match p.query.get("outdated").map(String::as_str) {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => {
                    return Err(ApiError::invalid("bad_filter", "outdated is true or false"));
                }
            };
            let devices: Vec<_> = ports
                .devices()
                .list(tenant, client.as_ref(), site.as_ref())
                .await?
                .into_iter()
                .filter(|d| context.may_see(&d.placement.client))
                .filter(|d| {
                    connection
                        .as_deref()
                        .is_none_or(|c| views::connection(d, now) == c)
                })
                .filter(|d| outdated.is_none_or(|o| views::agent_outdated(&d.agent_version) == o))
                .collect();
            page(devices, |d| d.id.to_string(), |d| views::device(d, now), &p)
        }
        Operation::GetDevice => {
            let device = visible_device(api, context, &p).await?;
            let map = ports.dependencies().map(context.tenant()?).await?.map;
            let mut view = views::device(&device, now);
            let deps = views::dependencies(&device.id, &map);
            view["parent_id"] = deps["parent_id"].clone();
            view["children"] = deps["children"].clone();
            ok(view)
        }
        Operation::SetDeviceParent | Operation::ClearDeviceParent => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct DeviceParent {
                parent_id: DeviceId,
            }
            use vigie_domain::dependency::ParentRecord;
            let device = visible_device(api, context, &p).await?;
            let tenant = context.tenant()?;
            let parent = match matched.route.operation {
                Operation::SetDeviceParent => Some(json_body::<DeviceParent>(request)?.parent_id),
                _ => None,
            };
            // The parent is read through the tenant: another tenant's device is "missing".
            let record = match &parent {
                None => ParentRecord::Active,
                Some(id) => match ports.devices().get(tenant, id).await? {
                    None => ParentRecord::Missing,
                    Some(d) if d.status == vigie_domain::device::DeviceStatus::Revoked => {
                        ParentRecord::Revoked
                    }
                    Some(_) => ParentRecord::Active,
                },
            };
            let deps = ports.dependencies();
            // Checked against one version of the map, written only if it is still that one.
            let mut attempts = 0;
            let map = loop {
                let current = deps.map(tenant).await?;
                if let Some(parent) = &parent {
                    current
                        .map
                        .check(&device.id, parent, record)
                        .map_err(|e| ApiError::invalid("bad_parent", e.to_string()))?;
                }
                if current.map.parent(&device.id) == parent.as_ref() {
                    break current.map;
                }
                if deps
                    .set_parent(tenant, &device.id, parent.as_ref(), current.version)
                    .await?
                {
                    break deps.map(tenant).await?.map;
                }
                attempts += 1;
                if attempts >= 3 {
                    return Err(ApiError::Conflict {
                        code: "dependency_map_changed",
                        message: "the dependency map kept changing; try again".into(),
                    });
                }
            };
            audit(context, "device.parent", device.id.as_str());
            ok(views::dependencies(&device.id, &map))
        }
        Operation::RevokeDevice => {
            let device = visible_device(api, context, &p).await?;
            if device.status == vigie_domain::device::DeviceStatus::Revoked {
                return ok(views::device(&device, now));
            }
            if !ports
                .devices()
                .revoke(context.tenant()?, &device.id)
                .await?
            {
                return Err(ApiError::NotFound { what: "device" });
            }
            audit(context, "device.revoke", device.id.as_str());
            let device = visible_device(api, context, &p).await?;
            ok(views::device(&device, now))
        }
        Operation::CreateEnrollmentToken => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewToken {
                client_id: ClientId,
                site_id: SiteId,
                #[serde(default = "default_expiry")]
                expires_in_s: i64,
                #[serde(default = "one")]
                max_uses: u32,
                #[serde(default)]
                label: String,
                #[serde(default)]
                tags: vigie_domain::device::Tags,
            }
            fn default_expiry() -> i64 {
                7 * 86_400
            }
            fn one() -> u32 {
                1
            }
            let body: NewToken = json_body(request)?;
            let tenant = context.tenant()?;
            if ports
                .directory()
                .site(tenant, &body.client_id, &body.site_id)
                .await?
                .is_none()
            {
                return Err(ApiError::NotFound { what: "site" });
            }
            let placement = Placement {
                tenant: tenant.clone(),
                client: body.client_id,
                site: body.site_id,
            };
            let (token, plaintext) = EnrollmentToken::issue(
                placement,
                now,
                now.saturating_add(body.expires_in_s.saturating_mul(1000)),
                body.max_uses,
                &body.label,
            )
            .and_then(|(t, plain)| Ok((t.with_tags(body.tags)?, plain)))
            .map_err(|e| ApiError::invalid("bad_token_request", e.to_string()))?;
            ports.enrollment().create(&token).await?;
            let mut view = views::enrollment_token(&token, now);
            view["token"] = json!(plaintext.expose());
            ok(view)
        }
        Operation::ListEnrollmentTokens => {
            let tokens = ports.enrollment().list(context.tenant()?).await?;
            page(
                tokens,
                |t| t.id.to_string(),
                |t| views::enrollment_token(t, now),
                &p,
            )
        }
        Operation::RevokeEnrollmentToken => {
            let tenant = context.tenant()?;
            let id = p.id("token_id", EnrollmentTokenId::parse, "enrolment token")?;
            if !ports.enrollment().revoke(tenant, &id).await? {
                return Err(ApiError::NotFound {
                    what: "enrolment token",
                });
            }
            let token = ports
                .enrollment()
                .list(tenant)
                .await?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or(ApiError::NotFound {
                    what: "enrolment token",
                })?;
            ok(views::enrollment_token(&token, now))
        }
        Operation::ListChannels => {
            let channels = ports.channels().channels(context.tenant()?).await?;
            page(channels, |c| c.id.to_string(), views::channel, &p)
        }
        Operation::PutChannel => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct ChannelInput {
                name: String,
                kind: KindInput,
                #[serde(default)]
                filter: ChannelFilter,
                /// Seconds alerts of one site wait to go out together (0: each at once).
                #[serde(default = "default_group_wait_s")]
                group_wait_s: u32,
            }
            fn default_group_wait_s() -> u32 {
                vigie_domain::grouping::DEFAULT_GROUP_WAIT_S
            }
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let body: ChannelInput = json_body(request)?;
            let channel = NotificationChannel {
                id,
                tenant_id: context.tenant()?.clone(),
                name: body.name,
                kind: body.kind.into(),
                filter: body.filter,
                group_wait_s: body.group_wait_s,
            };
            channel
                .validate()
                .map_err(|e| ApiError::invalid("bad_channel", e.to_string()))?;
            ports.save_channel(&channel).await?;
            ok(views::channel(&channel))
        }
        Operation::GetChannel => {
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let channel = ports
                .channels()
                .channels(context.tenant()?)
                .await?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or(ApiError::NotFound { what: "channel" })?;
            ok(views::channel(&channel))
        }
        Operation::GetAlert => {
            let record = visible_alert(api, context, &p).await?;
            let (work, _) = work_of(api, context, &record).await?;
            let mut view = views::alert(&record, &work);
            let alert_id = record["alert_id"].as_str().unwrap_or_default();
            let children = ports
                .dependencies()
                .suppressed(context.tenant()?, alert_id)
                .await?;
            view["suppressed_children"] = views::suppressed_children(&children);
            ok(view)
        }
        Operation::ListAlerts => {
            let tenant = context.tenant()?;
            let filter = AlertFilter::from_query(&p)?;
            let records = ports.alert_work().records(tenant).await?;
            let mut out = Vec::new();
            for record in records {
                if !client_of(&record).is_some_and(|c| context.may_see(&c)) {
                    continue;
                }
                let (work, _) = work_of(api, context, &record).await?;
                let view = views::alert(&record, &work);
                if filter.accepts(&view) {
                    out.push(view);
                }
            }
            page(
                out,
                |v| v["alert_id"].as_str().unwrap_or_default().to_owned(),
                Clone::clone,
                &p,
            )
        }
        Operation::AcknowledgeAlert => act(api, context, &p, AlertAction::Acknowledge).await,
        Operation::TakeAlert => {
            let me = context.principal().subject().to_owned();
            act(api, context, &p, AlertAction::Assign(Some(me))).await
        }
        Operation::AssignAlert => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Assignment {
                /// Required; `null` unassigns.
                #[serde(deserialize_with = "Option::deserialize")]
                assignee: Option<String>,
            }
            let body: Assignment = json_body(request)?;
            act(api, context, &p, AlertAction::Assign(body.assignee)).await
        }
        Operation::CommentAlert => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewComment {
                text: String,
            }
            let body: NewComment = json_body(request)?;
            let mut response = act(api, context, &p, AlertAction::Comment(body.text)).await?;
            response.status = 201;
            Ok(response)
        }
        Operation::ResolveAlert => act(api, context, &p, AlertAction::Resolve).await,
        Operation::ListPolicies => {
            let policies = ports.policies().policies(context.tenant()?).await?;
            page(policies, |p| p.scope.key(), views::policy, &p)
        }
        Operation::GetPolicy => {
            let scope = p.scope()?;
            let policy = ports
                .policies()
                .policies(context.tenant()?)
                .await?
                .into_iter()
                .find(|policy| policy.scope == scope)
                .ok_or(ApiError::NotFound { what: "policy" })?;
            ok(views::policy(&policy))
        }
        Operation::PutPolicy => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct PolicyInput {
                rules: Vec<vigie_domain::policy::Rule>,
            }
            let tenant = context.tenant()?;
            let scope = p.scope()?;
            check_scope_exists(api, tenant, &scope).await?;
            let body: PolicyInput = json_body(request)?;
            let policy = Policy {
                scope,
                rules: body.rules,
            };
            policy
                .validate()
                .map_err(|e| ApiError::invalid("bad_policy", e.to_string()))?;
            ports.policies().put(tenant, &policy, now).await?;
            audit(context, "policy.put", &policy.scope.key());
            ok(views::policy(&policy))
        }
        Operation::DeletePolicy => {
            let tenant = context.tenant()?;
            let scope = p.scope()?;
            let policy = ports
                .policies()
                .policies(tenant)
                .await?
                .into_iter()
                .find(|policy| policy.scope == scope)
                .ok_or(ApiError::NotFound { what: "policy" })?;
            ports.policies().delete(tenant, &scope.key()).await?;
            audit(context, "policy.delete", &scope.key());
            ok(views::policy(&policy))
        }
        Operation::TenantUsage => {
            let tenant = context.tenant()?;
            let month = usage_month(&p, now)?;
            let granularity = p.query.get("granularity").map_or("month", String::as_str);
            let client = p.query_id("client_id", ClientId::parse)?;
            let (closed, mut rows) = match granularity {
                "month" => {
                    let m = ports.usage().month_rows(tenant, month).await?;
                    (m.closed, m.rows)
                }
                "day" => {
                    let rows = ports
                        .usage()
                        .day_rows(tenant, month.first_day(), month.last_day())
                        .await?;
                    (false, rows)
                }
                _ => {
                    return Err(ApiError::invalid(
                        "bad_granularity",
                        "granularity is month or day",
                    ));
                }
            };
            if let Some(client) = &client {
                rows.retain(|r| r.client == client.as_str());
            }
            usage_response(&p, month, closed, &rows, Some(tenant))
        }
        Operation::PlatformUsage => {
            let month = usage_month(&p, now)?;
            let usage = ports.usage();
            let mut rows = Vec::new();
            let mut closed = true;
            for tenant in usage.tenants_in(month).await? {
                let m = usage.month_rows(&tenant, month).await?;
                closed &= m.closed;
                rows.extend(
                    m.rows
                        .into_iter()
                        .filter(|r| r.client == vigie_domain::usage::ALL_CLIENTS),
                );
            }
            usage_response(&p, month, closed, &rows, None)
        }
        Operation::CreateApiKey | Operation::CreatePlatformApiKey => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewApiKey {
                name: String,
                role: Option<Role>,
            }
            let body: NewApiKey = json_body(request)?;
            let (scope, role) = if matched.route.operation == Operation::CreateApiKey {
                let role = body.role.unwrap_or(Role::Accounting);
                if !matches!(role, Role::Accounting | Role::MspAdmin) {
                    return Err(ApiError::invalid(
                        "bad_role",
                        "an API key is for accounting or msp_admin",
                    ));
                }
                (
                    ApiKeyScope::Tenant {
                        tenant_id: context.tenant()?.clone(),
                    },
                    role,
                )
            } else {
                if body.role.is_some_and(|r| r != Role::Accounting) {
                    return Err(ApiError::invalid(
                        "bad_role",
                        "a platform API key is for accounting",
                    ));
                }
                (ApiKeyScope::Platform, Role::Accounting)
            };
            let (plaintext, record) = ApiKey::generate(name(&body.name)?, scope, role, now)
                .map_err(|e| ApiError::invalid("bad_api_key", e.to_string()))?;
            ports.api_keys().put(&record).await?;
            audit(context, "api_key.create", record.key_id.as_str());
            let mut view = views::api_key(&record);
            view["key"] = json!(plaintext.as_str());
            ok(view)
        }
        Operation::ListApiKeys => {
            let keys = ports.api_keys().list(context.tenant()?).await?;
            page(keys, |k| k.key_id.as_str().to_owned(), views::api_key, &p)
        }
        Operation::RevokeApiKey => {
            let key_id = p.path_str("key_id")?;
            let record = ports
                .api_keys()
                .revoke(context.tenant()?, key_id, now)
                .await?
                .ok_or(ApiError::NotFound { what: "API key" })?;
            audit(context, "api_key.revoke", key_id);
            ok(views::api_key(&record))
        }
        Operation::ListUsers => {
            let users = ports.users().users(context.tenant()?).await?;
            page(users, |u| u.user_id.clone(), views::user, &p)
        }
        Operation::GetUser => {
            let user = tenant_user(api, context, &p).await?;
            ok(views::user(&user))
        }
        Operation::SetMembership => {
            let mut user = tenant_user(api, context, &p).await?;
            let membership: Membership = json_body(request)?;
            membership
                .check(context.tenant()?)
                .map_err(|e| ApiError::invalid("bad_membership", e.to_string()))?;
            user.membership = membership;
            ports.users().put_user(&user).await?;
            audit(context, "user.membership", &user.user_id);
            ok(views::user(&user))
        }
        Operation::RemoveUser => {
            let mut user = tenant_user(api, context, &p).await?;
            if user.removed_ms.is_none() {
                user.removed_ms = Some(now);
                ports.users().put_user(&user).await?;
                audit(context, "user.remove", &user.user_id);
            }
            ok(views::user(&user))
        }
        Operation::CreateInvitation => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewInvitation {
                email: String,
                role: Role,
                client_id: Option<ClientId>,
                #[serde(default)]
                clients: Vec<ClientId>,
                #[serde(default = "week")]
                expires_in_s: i64,
            }
            fn week() -> i64 {
                7 * 86_400
            }
            let body: NewInvitation = json_body(request)?;
            let membership = Membership {
                role: body.role,
                client_id: body.client_id,
                clients: body.clients,
            };
            let email = body.email.trim().to_owned();
            if !(3..=254).contains(&email.len()) || !email.contains('@') {
                return Err(ApiError::invalid(
                    "bad_email",
                    "an e-mail address is needed",
                ));
            }
            if !(60..=30 * 86_400).contains(&body.expires_in_s) {
                return Err(ApiError::invalid(
                    "bad_expiry",
                    "an invitation expires in 1 minute to 30 days",
                ));
            }
            let tenant = context.tenant()?;
            for client in membership.client_id.iter().chain(&membership.clients) {
                if ports.directory().client(tenant, client).await?.is_none() {
                    return Err(ApiError::NotFound {
                        what: "client company",
                    });
                }
            }
            let (invitation, code) = Invitation::issue(
                tenant.clone(),
                email,
                membership,
                context.principal().subject(),
                now,
                now + body.expires_in_s * 1000,
            )
            .map_err(|e| ApiError::invalid("bad_membership", e.to_string()))?;
            ports.users().put_invitation(&invitation).await?;
            audit(context, "invitation.create", &invitation.invitation_id);
            let mut view = views::invitation(&invitation, now);
            view["code"] = json!(code);
            ok(view)
        }
        Operation::ListInvitations => {
            let invitations = ports.users().invitations(context.tenant()?).await?;
            page(
                invitations,
                |i| i.invitation_id.clone(),
                |i| views::invitation(i, now),
                &p,
            )
        }
        Operation::RevokeInvitation => {
            let id = p.path_str("invitation_id")?;
            let mut invitation = ports
                .users()
                .invitation(id)
                .await?
                .filter(|i| Some(&i.tenant_id) == context.tenant().ok())
                .ok_or(ApiError::NotFound { what: "invitation" })?;
            if invitation.revoked_ms.is_none() && invitation.accepted_by.is_none() {
                invitation.revoked_ms = Some(now);
                ports.users().put_invitation(&invitation).await?;
                audit(context, "invitation.revoke", id);
            }
            ok(views::invitation(&invitation, now))
        }
        Operation::AcceptInvitation => Err(ApiError::Conflict {
            code: "already_member",
            message: "this identity is already a member of a tenant".into(),
        }),
        Operation::SuspendTenant | Operation::ResumeTenant => {
            let id = p.id("tenant_id", TenantId::parse, "tenant")?;
            let suspended = (matched.route.operation == Operation::SuspendTenant).then_some(now);
            if !ports.directory().set_suspended(&id, suspended).await? {
                return Err(ApiError::NotFound { what: "tenant" });
            }
            audit(
                context,
                if suspended.is_some() {
                    "tenant.suspend"
                } else {
                    "tenant.resume"
                },
                id.as_str(),
            );
            api.forget_tenant(&id);
            let tenant = ports
                .directory()
                .tenant(&id)
                .await?
                .ok_or(ApiError::NotFound { what: "tenant" })?;
            ok(views::tenant(&tenant))
        }
        Operation::MoveDevice => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct DeviceMove {
                client_id: ClientId,
                site_id: SiteId,
            }
            let device = visible_device(api, context, &p).await?;
            let body: DeviceMove = json_body(request)?;
            let tenant = context.tenant()?;
            if !context.may_see(&body.client_id)
                || ports
                    .directory()
                    .site(tenant, &body.client_id, &body.site_id)
                    .await?
                    .is_none()
            {
                return Err(ApiError::NotFound { what: "site" });
            }
            if !ports
                .devices()
                .move_to(tenant, &device.id, &body.client_id, &body.site_id)
                .await?
            {
                return Err(ApiError::NotFound { what: "device" });
            }
            audit(context, "device.move", device.id.as_str());
            let device = visible_device(api, context, &p).await?;
            ok(views::device(&device, now))
        }
        Operation::SetDeviceTags => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct DeviceTags {
                tags: vigie_domain::device::Tags,
            }
            let device = visible_device(api, context, &p).await?;
            let body: DeviceTags = json_body(request)?;
            vigie_domain::device::validate_tags(&body.tags)
                .map_err(|e| ApiError::invalid("bad_tags", e.to_string()))?;
            if !ports
                .devices()
                .set_tags(context.tenant()?, &device.id, &body.tags)
                .await?
            {
                return Err(ApiError::NotFound { what: "device" });
            }
            audit(context, "device.tags", device.id.as_str());
            let device = visible_device(api, context, &p).await?;
            ok(views::device(&device, now))
        }
        Operation::TestChannel => {
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let channel = ports
                .channels()
                .channels(context.tenant()?)
                .await?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or(ApiError::NotFound { what: "channel" })?;
            let result = test_notification(api, &channel, now).await;
            audit(context, "channel.test", id.as_str());
            ok(result)
        }
        Operation::ListSites => {
            let client = visible_client(api, context, &p).await?;
            let sites = ports.directory().sites(&client.tenant, &client.id).await?;
            page(sites, |s| s.id.to_string(), views::site, &p)
        }
        Operation::DeleteChannel => {
            let tenant = context.tenant()?;
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let channel = ports
                .channels()
                .channels(tenant)
                .await?
                .into_iter()
                .find(|c| c.id == id)
                .ok_or(ApiError::NotFound { what: "channel" })?;
            if !ports.delete_channel(tenant, id.as_str()).await? {
                return Err(ApiError::NotFound { what: "channel" });
            }
            audit(context, "channel.delete", id.as_str());
            ok(views::channel(&channel))
        }
        Operation::AlertHistory => {
            let tenant = context.tenant()?;
            let filter = AlertFilter::from_query(&p)?;
            let until = filter.until_ms.unwrap_or(now + 1);
            let since = filter.since_ms.unwrap_or(until - 30 * 86_400_000);
            if until <= since || until - since > 93 * 86_400_000 {
                return Err(ApiError::invalid(
                    "bad_window",
                    "since_ms must be before until_ms, at most 93 days apart",
                ));
            }
            let mut out = Vec::new();
            for record in ports.evaluation().episodes(tenant, since, until).await? {
                if !client_of(&record).is_some_and(|c| context.may_see(&c)) {
                    continue;
                }
                let (work, _) = work_of(api, context, &record).await?;
                let view = views::alert(&record, &work);
                if filter.accepts(&view) {
                    out.push(view);
                }
            }
            page(
                out,
                |v| {
                    format!(
                        "{:015}#{}",
                        v["opened_ms"].as_i64().unwrap_or_default(),
                        v["alert_id"].as_str().unwrap_or_default()
                    )
                },
                Clone::clone,
                &p,
            )
        }
        Operation::ListWindows
        | Operation::PutWindow
        | Operation::GetWindow
        | Operation::DeleteWindow
        | Operation::WindowOccurrences => windows(api, context, matched, &p, request, now).await,
        Operation::ListCalendars
        | Operation::PutCalendar
        | Operation::GetCalendar
        | Operation::DeleteCalendar
        | Operation::ImportHolidays
        | Operation::CalendarOpen => {
            crate::oncall::calendars(api, context, matched, &p, request, now).await
        }
        Operation::ListSchedules
        | Operation::PutSchedule
        | Operation::GetSchedule
        | Operation::DeleteSchedule
        | Operation::WhoIsOnCall
        | Operation::ScheduleShifts
        | Operation::AddOverride
        | Operation::DeleteOverride => {
            crate::oncall::schedules(api, context, matched, &p, request, now).await
        }
        Operation::ListTemplates
        | Operation::GetTemplate
        | Operation::ApplyTemplate
        | Operation::RemoveTemplate => templates(api, context, matched, &p, request, now).await,
        Operation::CreateIncident
        | Operation::ListIncidents
        | Operation::GetIncident
        | Operation::AddIncidentAlerts
        | Operation::RemoveIncidentAlert
        | Operation::SetIncidentRoles
        | Operation::SetIncidentSeverity
        | Operation::SetIncidentStatus
        | Operation::AcknowledgeIncident
        | Operation::CommentIncident
        | Operation::PostIncidentStatusMessage
        | Operation::ResolveIncident
        | Operation::ListIncidentMessageTemplates
        | Operation::ResponseTimesReport => {
            // On the heap, so this function's future (every request's) does not grow by it:
            // debug builds move futures through the stack, and worker stacks are 2 MiB.
            Box::pin(incidents::incidents(
                api, context, matched, &p, request, now,
            ))
            .await
        }
        Operation::ListEscalationPolicies
        | Operation::PutEscalationPolicy
        | Operation::GetEscalationPolicy
        | Operation::DeleteEscalationPolicy
        | Operation::ListEscalationTemplates
        | Operation::PolicyFromTemplate
        | Operation::ListUserGroups
        | Operation::PutUserGroup
        | Operation::GetUserGroup
        | Operation::DeleteUserGroup => {
            // Boxed: its DynamoDB futures would otherwise grow every request's future (and the
            // stack a debug build polls it on).
            Box::pin(crate::escalation::handle(
                api, context, matched, &p, request, now,
            ))
            .await
        }
        Operation::EffectivePolicy => {
            let device = visible_device(api, context, &p).await?;
            let policies = ports.policies().policies(context.tenant()?).await?;
            let effective = EffectivePolicy::for_device(
                &policies,
                &device.id,
                &device.placement.client,
                &device.placement.site,
                &device.tags,
            );
            ok(views::effective_policy(&device, &effective))
        }
    }
}

/// The `month` query parameter (default: the current month, UTC).
fn usage_month(p: &Params<'_>, now: i64) -> Result<Month, ApiError> {
    match p.query.get("month") {
        None => Ok(Month::of_ms(now)),
        Some(m) => Month::parse(m).map_err(|e| ApiError::invalid("bad_month", e.to_string())),
    }
}

/// Usage rows as JSON or, with `format=csv`, RFC 4180 CSV.
fn usage_response(
    p: &Params<'_>,
    month: Month,
    closed: bool,
    rows: &[UsageRow],
    tenant: Option<&TenantId>,
) -> Result<HttpResponse, ApiError> {
    match p.query.get("format").map_or("json", String::as_str) {
        "json" => Ok(HttpResponse::json(
            200,
            &json!({ "tenant_id": tenant, "month": month.to_string(), "closed": closed, "rows": rows }),
        )),
        "csv" => {
            Ok(
                HttpResponse::with_body(200, "text/csv; charset=utf-8", to_csv(rows).into_bytes())
                    .header(
                        "content-disposition",
                        &format!(
                            "attachment; filename=\"vigie-usage-{}-{month}.csv\"",
                            tenant.map_or("platform", TenantId::as_str)
                        ),
                    ),
            )
        }
        _ => Err(ApiError::invalid("bad_format", "format is json or csv")),
    }
}

/// `POST /v1/invitations/accept` by a verified identity that is nobody's member yet.
pub(crate) async fn accept_invitation<K: Clock>(
    api: &Api<K>,
    identity: Identity,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Acceptance {
        code: String,
    }
    let body: Acceptance = json_body(request)?;
    let refused = |r: InvitationRefused| ApiError::Conflict {
        code: r.code(),
        message: r.to_string(),
    };
    let (id, secret) = Invitation::parse_code(body.code.trim())
        .map_err(|_| ApiError::NotFound { what: "invitation" })?;
    let now = api.clock.now_ms();
    let invitation = api
        .ports
        .users()
        .invitation(id)
        .await?
        .ok_or(ApiError::NotFound { what: "invitation" })?;
    invitation.check(secret, now).map_err(|r| match r {
        InvitationRefused::Invalid => ApiError::NotFound { what: "invitation" },
        other => refused(other),
    })?;
    let user = invitation.user_for(&identity, now);
    match api.ports.users().accept(&invitation, &user).await? {
        Accepted::Joined => {
            tracing::info!(
                event = "audit",
                action = "invitation.accept",
                object = %invitation.invitation_id,
                actor = %user.user_id,
                tenant_id = %user.tenant_id,
            );
            Ok(HttpResponse::json(201, &views::user(&user)))
        }
        Accepted::InvitationGone => Err(refused(InvitationRefused::Accepted)),
        Accepted::AlreadyMember => Err(ApiError::Conflict {
            code: "already_member",
            message: "this identity is already a member of a tenant".into(),
        }),
    }
}

async fn tenant_user<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
) -> Result<UserRecord, ApiError> {
    api.ports
        .users()
        .tenant_user(context.tenant()?, p.path_str("user_id")?)
        .await?
        .ok_or(ApiError::NotFound { what: "user" })
}

/// Sends a made-up "opened" event through `channel` now and says what happened.
async fn test_notification<K: Clock>(
    api: &Api<K>,
    channel: &NotificationChannel,
    now: i64,
) -> Value {
    use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity};
    use vigie_notifier::deliver::{DeliveryStatus, Notification, deliver, prepare};
    let event = AlertEvent {
        event_id: format!(
            "evt-test-{}",
            vigie_domain::ids::base32(&vigie_domain::ids::random_bytes::<8>())
        ),
        kind: AlertEventKind::Opened,
        alert_id: "al-test".into(),
        tenant_id: channel.tenant_id.clone(),
        client_id: ClientId::parse("vigie-test").unwrap_or_else(|_| unreachable!()),
        site_id: SiteId::parse("test").unwrap_or_else(|_| unreachable!()),
        device_id: DeviceId::generate(),
        device_name: "vigie-test-device".into(),
        rule_id: "test".into(),
        family: AlertFamily::AgentHealth,
        subject: String::new(),
        metric: "test".into(),
        severity: Severity::Info,
        previous_severity: None,
        value: 0.0,
        threshold: 0.0,
        at_ms: now,
        opened_ms: now,
        maintenance: None,
        detail: None,
    };
    match prepare(channel, &event, &api.console_base, now / 1000) {
        Notification::Http(request) => {
            let outcome = tokio::task::spawn_blocking(move || {
                deliver(&request, std::time::Duration::from_secs(5))
            })
            .await;
            match outcome {
                Ok(o) => json!({
                    "delivered": o.status == DeliveryStatus::Delivered,
                    "response_code": o.response_code,
                    "detail": o.detail,
                }),
                Err(e) => {
                    json!({ "delivered": false, "response_code": null, "detail": e.to_string() })
                }
            }
        }
        Notification::Email(email) => {
            use vigie_domain::ports::{Mailer, OutgoingEmail};
            let sent = api
                .ports
                .mailer()
                .send(&OutgoingEmail {
                    from: email.from,
                    to: email.to,
                    subject: email.content.subject,
                    text: email.content.text,
                    html: email.content.html,
                })
                .await;
            match sent {
                Ok(id) => {
                    json!({ "delivered": true, "response_code": null, "detail": format!("sent, message id {id}") })
                }
                Err(e) => {
                    json!({ "delivered": false, "response_code": null, "detail": e.to_string() })
                }
            }
        }
    }
}

/// A channel's `kind` as a request names it: the domain's [`ChannelKind`], with unknown
/// fields refused like everywhere else in a request body.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum KindInput {
    Webhook {
        url: String,
        secret: vigie_domain::notification::WebhookSecret,
    },
    Slack {
        webhook_url: String,
    },
    Teams {
        webhook_url: String,
    },
    Email {
        to: Vec<String>,
        from: String,
    },
}

impl From<KindInput> for ChannelKind {
    fn from(kind: KindInput) -> Self {
        match kind {
            KindInput::Webhook { url, secret } => Self::Webhook { url, secret },
            KindInput::Slack { webhook_url } => Self::Slack { webhook_url },
            KindInput::Teams { webhook_url } => Self::Teams { webhook_url },
            KindInput::Email { to, from } => Self::Email { to, from },
        }
    }
}

/// Notes a change made through the API (who, what, when) for the audit trail.
pub(crate) fn audit(context: &Context, action: &str, object: &str) {
    let pr = context.principal();
    tracing::info!(
        event = "audit",
        action,
        object,
        actor = pr.subject(),
        role = pr.role().as_str(),
        tenant_id = ?pr.tenant_id(),
    );
}

fn client_of(record: &Value) -> Option<ClientId> {
    record["client_id"]
        .as_str()
        .and_then(|c| ClientId::parse(c).ok())
}

async fn visible_alert<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
) -> Result<Value, ApiError> {
    let alert_id = p.path_str("alert_id")?;
    api.ports
        .evaluation()
        .alert(context.tenant()?, alert_id)
        .await?
        .filter(|r| client_of(r).is_some_and(|c| context.may_see(&c)))
        .ok_or(ApiError::NotFound { what: "alert" })
}

async fn work_of<K: Clock>(
    api: &Api<K>,
    context: &Context,
    record: &Value,
) -> Result<(AlertWork, u64), ApiError> {
    let alert_id = record["alert_id"].as_str().unwrap_or_default();
    let opened_ms = record["opened_ms"].as_i64().unwrap_or_default();
    Ok(api
        .ports
        .alert_work()
        .work(context.tenant()?, alert_id, opened_ms)
        .await?)
}

/// Applies `action` to the alert's current episode (optimistic, retried on a race).
async fn act<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
    action: AlertAction,
) -> Result<HttpResponse, ApiError> {
    let tenant = context.tenant()?;
    let name = match &action {
        AlertAction::Acknowledge => "alert.acknowledge",
        AlertAction::Assign(_) => "alert.assign",
        AlertAction::Comment(_) => "alert.comment",
        AlertAction::Resolve => "alert.resolve",
    };
    for _ in 0..5 {
        let record = visible_alert(api, context, p).await?;
        let (mut work, version) = work_of(api, context, &record).await?;
        let measured_resolved = record["status"] == "resolved";
        work.apply(
            action.clone(),
            context.principal().subject(),
            api.clock.now_ms(),
            measured_resolved,
        )
        .map_err(|e| match e {
            ActionRefused::Resolved => ApiError::Conflict {
                code: e.code(),
                message: e.to_string(),
            },
            _ => ApiError::invalid(e.code(), e.to_string()),
        })?;
        let alert_id = record["alert_id"].as_str().unwrap_or_default();
        let opened_ms = record["opened_ms"].as_i64().unwrap_or_default();
        if api
            .ports
            .alert_work()
            .save(tenant, alert_id, opened_ms, &work, version)
            .await?
        {
            audit(context, name, alert_id);
            return Ok(HttpResponse::json(200, &views::alert(&record, &work)));
        }
    }
    Err(ApiError::Conflict {
        code: "busy",
        message: "the alert kept changing; retry".into(),
    })
}

/// A policy may only name client companies, sites and devices of the tenant.
pub(crate) async fn check_scope_exists<K: Clock>(
    api: &Api<K>,
    tenant: &TenantId,
    scope: &Scope,
) -> Result<(), ApiError> {
    let exists = match scope {
        Scope::Tenant | Scope::Tag { .. } => true,
        Scope::Client { client } => api
            .ports
            .directory()
            .client(tenant, client)
            .await?
            .is_some(),
        Scope::Site { client, site } => api
            .ports
            .directory()
            .site(tenant, client, site)
            .await?
            .is_some(),
        Scope::Device { device } => api.ports.devices().get(tenant, device).await?.is_some(),
    };
    if exists {
        Ok(())
    } else {
        Err(ApiError::NotFound {
            what: "policy scope",
        })
    }
}

/// Filters of `GET /v1/alerts`.
struct AlertFilter {
    status: Option<String>,
    severity: Option<String>,
    client: Option<String>,
    site: Option<String>,
    family: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
}

impl AlertFilter {
    fn from_query(p: &Params<'_>) -> Result<Self, ApiError> {
        let one_of = |name: &str, allowed: &[&str]| -> Result<Option<String>, ApiError> {
            match p.query.get(name) {
                None => Ok(None),
                Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
                Some(_) => Err(ApiError::invalid(
                    "bad_filter",
                    format!("{name} is one of {}", allowed.join(", ")),
                )),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ApiError> {
            p.query
                .get(name)
                .map(|v| {
                    v.parse()
                        .map_err(|_| ApiError::invalid("bad_filter", format!("{name} is Unix ms")))
                })
                .transpose()
        };
        let families: Vec<&str> = vigie_domain::alert::AlertFamily::ALL
            .iter()
            .map(|f| f.as_str())
            .collect();
        Ok(Self {
            status: one_of("status", &["open", "acknowledged", "resolved"])?,
            severity: one_of("severity", &["info", "warning", "critical"])?,
            client: p
                .query_id("client_id", ClientId::parse)?
                .map(|c| c.to_string()),
            site: p.query_id("site_id", SiteId::parse)?.map(|s| s.to_string()),
            family: one_of("family", &families)?,
            since_ms: number("since_ms")?,
            until_ms: number("until_ms")?,
        })
    }

    fn accepts(&self, view: &Value) -> bool {
        let eq = |field: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| view[field].as_str() == Some(w.as_str()))
        };
        let opened = view["opened_ms"].as_i64().unwrap_or_default();
        eq("status", &self.status)
            && eq("severity", &self.severity)
            && eq("client_id", &self.client)
            && eq("site_id", &self.site)
            && eq("family", &self.family)
            && self.since_ms.is_none_or(|s| opened >= s)
            && self.until_ms.is_none_or(|u| opened < u)
    }
}

async fn visible_client<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
) -> Result<ClientCompany, ApiError> {
    let id = p.id("client_id", ClientId::parse, "client company")?;
    if !context.may_see(&id) {
        return Err(ApiError::NotFound {
            what: "client company",
        });
    }
    api.ports
        .directory()
        .client(context.tenant()?, &id)
        .await?
        .ok_or(ApiError::NotFound {
            what: "client company",
        })
}

async fn visible_device<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
) -> Result<vigie_domain::device::Device, ApiError> {
    let id = p.id("device_id", DeviceId::parse, "device")?;
    api.ports
        .devices()
        .get(context.tenant()?, &id)
        .await?
        .filter(|d| context.may_see(&d.placement.client))
        .ok_or(ApiError::NotFound { what: "device" })
}

pub(crate) struct Params<'a> {
    pub(crate) path: &'a BTreeMap<&'static str, String>,
    pub(crate) query: BTreeMap<String, String>,
}

impl Params<'_> {
    /// The `{scope}` path parameter: a URL-encoded [`Scope::key`].
    fn scope(&self) -> Result<Scope, ApiError> {
        Scope::from_key(&percent_decode(self.path_str("scope")?)).ok_or(ApiError::NotFound {
            what: "policy scope",
        })
    }

    pub(crate) fn path_str(&self, name: &str) -> Result<&str, ApiError> {
        self.path
            .get(name)
            .map(String::as_str)
            .ok_or(ApiError::NotFound { what: "object" })
    }

    /// A path id; one that cannot exist is simply not found.
    pub(crate) fn id<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, IdError>,
        what: &'static str,
    ) -> Result<T, ApiError> {
        parse(self.path_str(name)?).map_err(|_| ApiError::NotFound { what })
    }

    fn query_id<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, IdError>,
    ) -> Result<Option<T>, ApiError> {
        self.query
            .get(name)
            .map(|v| parse(v).map_err(|e| ApiError::invalid("bad_filter", format!("{name}: {e}"))))
            .transpose()
    }
}

/// One page of `items` ordered by `key`, after the `cursor` query parameter, `limit` long.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    view: impl Fn(&T) -> Value,
    p: &Params<'_>,
) -> Result<HttpResponse, ApiError> {
    let limit = match p.query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("bad_limit", format!("limit must be 1 to {MAX_LIMIT}"))
            })?,
    };
    let after = match p.query.get("cursor") {
        None => None,
        Some(c) => Some(
            B64.decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("bad_cursor", "the cursor is not one we gave"))?,
        ),
    };
    items.sort_by_key(&key);
    let rest: Vec<&T> = items
        .iter()
        .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
        .collect();
    let next = (rest.len() > limit).then(|| B64.encode(key(rest[limit - 1])));
    let values: Vec<Value> = rest.into_iter().take(limit).map(view).collect();
    Ok(HttpResponse::json(
        200,
        &json!({ "items": values, "next_cursor": next }),
    ))
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    request: &HttpRequest,
) -> Result<T, ApiError> {
    if request.body.is_empty() {
        return Err(ApiError::invalid("bad_body", "a JSON body is required"));
    }
    serde_json::from_slice(&request.body).map_err(|e| ApiError::invalid("bad_body", e.to_string()))
}

fn name(name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        return Err(ApiError::invalid(
            "bad_name",
            "a name is 1 to 200 characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `a=1&b=x%20y` → map (last value wins).
fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Maintenance windows: MSP admins and technicians write them; a caller limited to some client
/// companies (a client viewer, a limited technician) reaches only windows whose scope is one
/// of its companies, a site or a device of them — or the whole tenant (read only: it covers
/// their company too). Tag windows name no company, so they are only for unlimited callers.
/// Everything else is 404, like another tenant's window.
async fn windows<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    p: &Params<'_>,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    use vigie_calendar::{MaintenanceWindow, Schedule, Suppress, WindowId};
    use vigie_domain::ports::WindowStore;
    let tenant = context.tenant()?;
    let store = api.ports.windows();
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    let window_id = || p.id("window_id", WindowId::parse, "maintenance window");
    match matched.route.operation {
        Operation::ListWindows => {
            let mut visible = Vec::new();
            for w in store.windows::<MaintenanceWindow>(tenant).await? {
                if window_visible(api, context, &w.scope, false).await? {
                    visible.push(w);
                }
            }
            page(visible, |w| w.id.to_string(), views::window, p)
        }
        Operation::GetWindow => {
            let w = visible_window(api, context, &store, &window_id()?, false).await?;
            ok(views::window(&w))
        }
        Operation::DeleteWindow => {
            let id = window_id()?;
            let w = visible_window(api, context, &store, &id, true).await?;
            if !store.delete(tenant, id.as_str()).await? {
                return Err(ApiError::NotFound {
                    what: "maintenance window",
                });
            }
            audit(context, "maintenance_window.delete", id.as_str());
            ok(views::window(&w))
        }
        Operation::PutWindow => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct WindowInput {
                name: String,
                scope: Scope,
                time_zone: String,
                schedule: Schedule,
                suppress: Suppress,
            }
            let id = window_id()?;
            let body: WindowInput = json_body(request)?;
            let window = MaintenanceWindow {
                id,
                tenant: tenant.clone(),
                name: body.name,
                scope: body.scope,
                time_zone: body.time_zone,
                schedule: body.schedule,
                suppress: body.suppress,
            };
            window
                .validate()
                .map_err(|e| ApiError::invalid(window_invalid_code(&e), e.to_string()))?;
            // A limited caller may neither overwrite a window it cannot see nor write one
            // outside its companies.
            if let Some(old) = store
                .get::<MaintenanceWindow>(tenant, window.id.as_str())
                .await?
                && !window_visible(api, context, &old.scope, true).await?
            {
                return Err(ApiError::NotFound {
                    what: "maintenance window",
                });
            }
            if !window_visible(api, context, &window.scope, true).await? {
                return Err(ApiError::NotFound { what: "scope" });
            }
            check_scope_exists(api, tenant, &window.scope).await?;
            store.put(tenant, window.id.as_str(), &window, now).await?;
            audit(context, "maintenance_window.put", window.id.as_str());
            ok(views::window(&window))
        }
        Operation::WindowOccurrences => {
            let w = visible_window(api, context, &store, &window_id()?, false).await?;
            let number = |name: &str| -> Result<Option<i64>, ApiError> {
                p.query
                    .get(name)
                    .map(|v| {
                        v.parse::<i64>().map_err(|_| {
                            ApiError::invalid("bad_range", format!("{name} is Unix milliseconds"))
                        })
                    })
                    .transpose()
            };
            let from = number("from")?.unwrap_or(now);
            let to = number("to")?.unwrap_or(from + 35 * 86_400_000);
            if to <= from || to - from > 400 * 86_400_000 {
                return Err(ApiError::invalid(
                    "bad_range",
                    "from must be before to, at most 400 days apart",
                ));
            }
            let limit = match p.query.get("limit") {
                None => DEFAULT_LIMIT,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("bad_limit", format!("limit is 1 to {MAX_LIMIT}"))
                    })?,
            };
            let cal = vigie_calendar::LocalCalendar::new(&w.time_zone)
                .map_err(|e| ApiError::invalid("unknown_time_zone", e.to_string()))?;
            let items: Vec<Value> = w
                .occurrences(from, to)
                .into_iter()
                .take(limit)
                .map(|(s, e)| {
                    json!({
                        "start_ms": s,
                        "end_ms": e,
                        "start_utc": utc_text(s),
                        "end_utc": utc_text(e),
                        "start_local": local_text(&cal, s),
                        "end_local": local_text(&cal, e),
                    })
                })
                .collect();
            ok(json!({
                "window_id": w.id,
                "time_zone": w.time_zone,
                "from_ms": from,
                "to_ms": to,
                "items": items,
            }))
        }
        _ => Err(ApiError::NotFound { what: "route" }),
    }
}

/// Built-in policy templates ([`vigie_domain::templates`]): listed with their defaults, and
/// applied to (or removed from) the policy at a scope. Applying merges the template's rules
/// into the scope's policy (creating it if there is none): its earlier rules, of any version
/// and overrides, are replaced and every other rule stays, so applying twice changes nothing.
/// The policy is replaced conditionally on what was read, so two edits of one scope at once
/// both land (the loser reads again). A caller limited to some client companies reaches only
/// the scopes of those companies, as for maintenance windows.
async fn templates<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    p: &Params<'_>,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    use vigie_domain::templates::{Overrides, Template, builtin, template};
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    // Template ids are the platform's, the same in every tenant.
    let chosen = || -> Result<Template, ApiError> {
        template(p.path_str("template_id")?).map_err(|_| ApiError::NotFound {
            what: "policy template",
        })
    };
    let operation = matched.route.operation;
    match operation {
        Operation::ListTemplates => page(builtin(), |t| t.id.clone(), views::template, p),
        Operation::GetTemplate => ok(views::template(&chosen()?)),
        Operation::ApplyTemplate | Operation::RemoveTemplate => {
            #[derive(Deserialize, Default)]
            #[serde(deny_unknown_fields)]
            struct TemplateApplication {
                #[serde(default)]
                overrides: Overrides,
            }
            let tenant = context.tenant()?;
            let scope = p.scope()?;
            if !window_visible(api, context, &scope, true).await? {
                return Err(ApiError::NotFound {
                    what: "policy scope",
                });
            }
            check_scope_exists(api, tenant, &scope).await?;
            let chosen = chosen()?;
            let body = if operation == Operation::ApplyTemplate && !request.body.is_empty() {
                json_body::<TemplateApplication>(request)?
            } else {
                TemplateApplication::default()
            };
            // Instantiating first: bad overrides are refused before anything is read.
            let instantiated = chosen
                .instantiate(&body.overrides)
                .map_err(template_refused)?;
            let store = api.ports.policies();
            for _ in 0..5 {
                let read = store.get(tenant, &scope).await?;
                let existing = read.as_ref().map_or(&[][..], |r| &r.policy.rules[..]);
                let rules: Vec<_> = if operation == Operation::ApplyTemplate {
                    existing
                        .iter()
                        .filter(|r| !chosen.owns(&r.id))
                        .cloned()
                        .chain(instantiated.iter().cloned())
                        .collect()
                } else {
                    let kept: Vec<_> = existing
                        .iter()
                        .filter(|r| !chosen.owns(&r.id))
                        .cloned()
                        .collect();
                    if kept.len() == existing.len() {
                        return Err(ApiError::NotFound {
                            what: "template at this scope",
                        });
                    }
                    kept
                };
                let policy = Policy {
                    scope: scope.clone(),
                    rules,
                };
                policy
                    .validate()
                    .map_err(|e| ApiError::invalid("bad_policy", e.to_string()))?;
                if read.as_ref().is_some_and(|r| r.policy == policy) {
                    // Applied already, exactly so: nothing to write.
                } else if !store.replace(tenant, read.as_ref(), &policy, now).await? {
                    continue;
                }
                let mut view = views::policy(&policy);
                if operation == Operation::ApplyTemplate {
                    audit(context, "policy.template.apply", &scope.key());
                    view["applied"] = json!({ "template": chosen.id, "version": chosen.version });
                } else {
                    audit(context, "policy.template.remove", &scope.key());
                    let removed = existing.len() - policy.rules.len();
                    view["removed"] = json!({ "template": chosen.id, "rules": removed });
                }
                return ok(view);
            }
            Err(ApiError::Conflict {
                code: "busy",
                message: "the policy kept changing; retry".into(),
            })
        }
        _ => Err(ApiError::NotFound { what: "route" }),
    }
}

/// A template that cannot be applied as asked: a stable code and the reason.
fn template_refused(e: vigie_domain::templates::TemplateError) -> ApiError {
    use vigie_domain::templates::TemplateError as T;
    let code = match &e {
        T::UnknownTemplate(_) => {
            return ApiError::NotFound {
                what: "policy template",
            };
        }
        T::UnknownRule { .. } => "unknown_template_rule",
        T::Fixed { .. } => "fixed_template_field",
        T::Malformed { .. } => "bad_override",
        T::Invalid(_) => "bad_policy",
    };
    ApiError::invalid(code, e.to_string())
}

/// The stable error code of an invalid window.
fn window_invalid_code(e: &vigie_calendar::WindowInvalid) -> &'static str {
    use vigie_calendar::WindowInvalid as W;
    match e {
        W::EmptyName | W::NameTooLong => "bad_name",
        W::UnknownTimeZone(_) => "unknown_time_zone",
        W::EmptyTag => "bad_scope",
        W::EndNotAfterStart { .. } => "window_end_not_after_start",
        W::ZeroDuration | W::TooLong { .. } => "bad_duration",
        W::NoWeekdays | W::DayOfMonthOutOfRange(_) => "bad_recurrence",
        W::UntilBeforeFrom { .. } => "bad_dates",
        W::SuppressesNothing => "suppresses_nothing",
    }
}

/// Whether the caller reaches a window of `scope` (see [`windows`]).
pub(crate) async fn window_visible<K: Clock>(
    api: &Api<K>,
    context: &Context,
    scope: &Scope,
    write: bool,
) -> Result<bool, ApiError> {
    if context.client_limit().is_none() {
        return Ok(true);
    }
    Ok(match scope {
        Scope::Tenant => !write,
        Scope::Tag { .. } => false,
        Scope::Client { client } | Scope::Site { client, .. } => context.may_see(client),
        Scope::Device { device } => api
            .ports
            .devices()
            .get(context.tenant()?, device)
            .await?
            .is_some_and(|d| context.may_see(&d.placement.client)),
    })
}

async fn visible_window<K: Clock>(
    api: &Api<K>,
    context: &Context,
    store: &vigie_aws::windows::DynamoWindows,
    id: &vigie_calendar::WindowId,
    write: bool,
) -> Result<vigie_calendar::MaintenanceWindow, ApiError> {
    let w: Option<vigie_calendar::MaintenanceWindow> =
        store.get(context.tenant()?, id.as_str()).await?;
    match w {
        Some(w) if window_visible(api, context, &w.scope, write).await? => Ok(w),
        _ => Err(ApiError::NotFound {
            what: "maintenance window",
        }),
    }
}

/// `2026-03-29T01:00Z`.
pub(crate) fn utc_text(ms: i64) -> String {
    match vigie_calendar::LocalCalendar::new("UTC") {
        Ok(utc) => {
            let (d, t, _) = utc.to_local(ms);
            format!("{d}T{t}Z")
        }
        Err(_) => ms.to_string(),
    }
}

/// `2026-03-29T03:00+02:00`: the wall clock in the window's zone, with its offset then.
fn local_text(cal: &vigie_calendar::LocalCalendar, ms: i64) -> String {
    let (d, t, _) = cal.to_local(ms);
    let as_utc = vigie_calendar::LocalCalendar::new("UTC").map(|u| {
        u.to_utc(
            vigie_calendar::LocalDateTime::new(d, t),
            vigie_calendar::Disambiguation::Earlier,
        )
    });
    let offset_min = as_utc.map_or(0, |naive| (naive - (ms - ms.rem_euclid(60_000))) / 60_000);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let a = offset_min.abs();
    format!("{d}T{t}{sign}{:02}:{:02}", a / 60, a % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_kind_refuses_unknown_fields() {
        let kind = |v: Value| serde_json::from_value::<KindInput>(v).map(ChannelKind::from);
        assert!(matches!(
            kind(json!({ "type": "slack", "webhook_url": "https://hooks.slack.com/x" })),
            Ok(ChannelKind::Slack { .. })
        ));
        assert!(
            kind(json!({ "type": "email", "to": ["a@b.c"], "from": "n@b.c", "x": 1 })).is_err()
        );
    }

    #[test]
    fn queries_decode() {
        let q = parse_query("client_id=acme&label=a%20b+c&x=%zz&limit=");
        assert_eq!(q["client_id"], "acme");
        assert_eq!(q["label"], "a b c");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["limit"], "");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%41"), "A");
    }
}
