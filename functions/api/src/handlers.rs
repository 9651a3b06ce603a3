//! One function per operation. Each reads and writes only under `context.tenant()` and hides
//! objects of client companies the caller may not see behind "not found".

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};
use vigie_domain::clock::Clock;
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::ids::{ClientId, DeviceId, EnrollmentTokenId, IdError, SiteId, TenantId};
use vigie_domain::notification::{ChannelFilter, ChannelId, ChannelKind, NotificationChannel};
use vigie_domain::policy::{EffectivePolicy, Policy, Scope};
use vigie_domain::ports::{ChannelStore, PolicyStore};
use vigie_domain::workflow::{ActionRefused, AlertAction, AlertWork};
use vigie_edge::{HttpRequest, HttpResponse};

use crate::access::Context;
use crate::error::ApiError;
use crate::routes::{Matched, Operation};
use crate::{Api, views};

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
            }
            let body: NewTenant = json_body(request)?;
            let tenant = Tenant {
                id: body.tenant_id,
                name: name(&body.name)?,
                created_ms: now,
            };
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
            let devices: Vec<_> = ports
                .devices()
                .list(tenant, client.as_ref(), site.as_ref())
                .await?
                .into_iter()
                .filter(|d| context.may_see(&d.placement.client))
                .collect();
            page(devices, |d| d.id.to_string(), |d| views::device(d, now), &p)
        }
        Operation::GetDevice => {
            let device = visible_device(api, context, &p).await?;
            ok(views::device(&device, now))
        }
        Operation::RevokeDevice => {
            let device = visible_device(api, context, &p).await?;
            if !ports
                .devices()
                .revoke(context.tenant()?, &device.id)
                .await?
            {
                return Err(ApiError::NotFound { what: "device" });
            }
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
            }
            let id = p.id("channel_id", ChannelId::parse, "channel")?;
            let body: ChannelInput = json_body(request)?;
            let channel = NotificationChannel {
                id,
                tenant_id: context.tenant()?.clone(),
                name: body.name,
                kind: body.kind.into(),
                filter: body.filter,
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
            ok(views::alert(&record, &work))
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
fn audit(context: &Context, action: &str, object: &str) {
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
async fn check_scope_exists<K: Clock>(
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

struct Params<'a> {
    path: &'a BTreeMap<&'static str, String>,
    query: BTreeMap<String, String>,
}

impl Params<'_> {
    /// The `{scope}` path parameter: a URL-encoded [`Scope::key`].
    fn scope(&self) -> Result<Scope, ApiError> {
        Scope::from_key(&percent_decode(self.path_str("scope")?)).ok_or(ApiError::NotFound {
            what: "policy scope",
        })
    }

    fn path_str(&self, name: &str) -> Result<&str, ApiError> {
        self.path
            .get(name)
            .map(String::as_str)
            .ok_or(ApiError::NotFound { what: "object" })
    }

    /// A path id; one that cannot exist is simply not found.
    fn id<T>(
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
fn page<T>(
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

fn json_body<T: serde::de::DeserializeOwned>(request: &HttpRequest) -> Result<T, ApiError> {
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
