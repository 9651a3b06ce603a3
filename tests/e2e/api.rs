//! The tenant API over real HTTP, real tokens and the emulator: the authorization matrix is
//! generated from the route table — every route answers 401 without a credential, 403 to
//! every role it does not list, and 404 for another tenant's object (or, for a client viewer,
//! another client company's), exactly as for a missing one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use vigie_api::routes::{Operation, ROUTES, Realm, Route};
use vigie_auth::{Grant, OwnIssuer, Role};
use vigie_domain::ids::{ClientId, TenantId};
use vigie_domain::notification::{ChannelFilter, ChannelId, ChannelKind, NotificationChannel};
use vigie_domain::ports::ChannelStore;
use vigie_local::{ApiAuth, LocalRuntime, RuntimeOptions};

use crate::evaluate::{disk_policy, envelope, evaluator};
use crate::stack::{Answer, Stack, enroll, now_ms, placement, send};

/// The objects of one tenant the matrix points at.
pub(crate) struct Objects {
    pub(crate) tenant: TenantId,
    pub(crate) params: BTreeMap<&'static str, String>,
}

/// Seeds a client company, a site, an enrolled device, a spare token, a channel and an open
/// alert. Client, site and channel ids are the tenant's own (two tenants may reuse them), so
/// the other tenant's are chosen apart from ours.
pub(crate) async fn seed(
    stack: &Stack,
    tenant: &str,
    client: &str,
    site: &str,
    channel: &str,
) -> Objects {
    let p = placement(tenant, client, site);
    stack.seed(&p).await;
    let (token, plain) = stack.token(&p, 1).await;
    // A second token, never used, to revoke.
    let (spare, _) = stack.token(&p, 1).await;
    let (enrolled, _key) = enroll(&stack.url(), plain.expose()).await;
    assert_eq!(enrolled.status, 201, "{:?}", enrolled.json);
    let device_id = enrolled.json["device_id"]
        .as_str()
        .expect("device id")
        .to_owned();
    let _ = token;
    let channel_id = channel;
    let channel = NotificationChannel {
        id: ChannelId::parse(channel_id).expect("id"),
        tenant_id: p.tenant.clone(),
        name: format!("ops of {tenant}"),
        kind: ChannelKind::Slack {
            webhook_url: "https://hooks.slack.com/services/T0/B0/secretpart".into(),
        },
        filter: ChannelFilter::default(),
        group_wait_s: 0,
    };
    stack.ports.save_channel(&channel).await.expect("channel");
    let policies = stack.ports.policies();
    policies
        .put(&p.tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    // A policy at the client company's scope too (the `{scope}` routes point at it).
    let mut client_policy = disk_policy(90.0);
    client_policy.scope = vigie_domain::policy::Scope::Client {
        client: p.client.clone(),
    };
    policies
        .put(&p.tenant, &client_policy, now_ms())
        .await
        .expect("policy");
    let mut batch = envelope(
        &vigie_domain::ids::DeviceId::parse(&device_id).expect("id"),
        1,
        now_ms() - 60_000,
        97.0,
    );
    batch.tenant_id = p.tenant.clone();
    batch.client_id = p.client.clone();
    batch.site_id = p.site.clone();
    let events = evaluator(&stack.ports)
        .evaluate(&batch)
        .await
        .expect("evaluates")
        .events;
    let alert_id = events.first().expect("an alert opened").alert_id.clone();
    // An incident grouping that alert (so it is the client company's).
    let mut incident = vigie_domain::incident::Incident::open(
        vigie_domain::incident::IncidentId::generate(now_ms()),
        "Disk full",
        2,
        "boss",
        now_ms(),
    )
    .expect("incident");
    incident
        .apply(
            vigie_domain::incident::IncidentAction::AddAlert(vigie_domain::incident::AlertRef {
                alert_id: alert_id.clone(),
                opened_ms: events[0].opened_ms,
                client_id: p.client.clone(),
            }),
            "boss",
            now_ms(),
        )
        .expect("grouped");
    assert!(
        stack
            .ports
            .incidents()
            .create(&p.tenant, &mut incident)
            .await
            .expect("store")
    );
    let (_, api_key) = vigie_auth::ApiKey::generate(
        "invoicing",
        vigie_auth::ApiKeyScope::Tenant {
            tenant_id: p.tenant.clone(),
        },
        Role::Accounting,
        now_ms(),
    )
    .expect("key");
    stack
        .ports
        .api_keys()
        .put(&api_key)
        .await
        .expect("store key");
    // A user (by invitation) and a pending invitation.
    let membership = vigie_auth::Membership {
        role: Role::Technician,
        client_id: None,
        clients: vec![],
    };
    let (invite, _) = vigie_auth::Invitation::issue(
        p.tenant.clone(),
        format!("tech@{tenant}.example"),
        membership.clone(),
        "boss",
        now_ms(),
        now_ms() + 3_600_000,
    )
    .expect("invitation");
    stack
        .ports
        .users()
        .put_invitation(&invite)
        .await
        .expect("store");
    let subject = format!("tech-of-{tenant}-{client}");
    let user = vigie_auth::UserRecord {
        user_id: vigie_auth::user_id_for("https://idp.example", &subject),
        tenant_id: p.tenant.clone(),
        issuer: "https://idp.example".into(),
        subject,
        email: None,
        membership,
        created_ms: now_ms(),
        invited_by: "boss".into(),
        removed_ms: None,
    };
    stack.ports.users().put_user(&user).await.expect("store");
    // A maintenance window of the client company.
    let window_id = format!("mw-{client}");
    let window = crate::windows::window_for(
        &p.tenant,
        &window_id,
        vigie_domain::policy::Scope::Client {
            client: p.client.clone(),
        },
        "Europe/Paris",
        crate::windows::weekly_sunday_schedule(),
        true,
    );
    stack
        .ports
        .windows()
        .put(&p.tenant, &window_id, &window, now_ms())
        .await
        .expect("window");
    // A user group (the user above) and an escalation policy naming it, the channel and the
    // user: every escalation route points at them.
    let group_id = format!("grp-{client}");
    let escalations = stack.ports.escalations();
    let group = vigie_domain::escalation::UserGroup {
        group_id: group_id.clone(),
        name: format!("admins of {client}"),
        members: vec![user.user_id.clone()],
    };
    escalations
        .put_group(&p.tenant, &group, now_ms())
        .await
        .expect("group");
    let policy_id = format!("esc-{client}");
    let policy: vigie_domain::escalation::EscalationPolicy = serde_json::from_value(json!({
        "policy_id": policy_id,
        "name": format!("servers of {client}"),
        "steps": [
            { "do": "notify", "to": [{ "type": "group", "group_id": group_id }],
              "cc": [{ "type": "channel", "channel_id": channel_id }] },
            { "do": "wait", "minutes": 30 },
            { "do": "notify", "to": [{ "type": "user", "user_id": user.user_id }] }
        ]
    }))
    .expect("policy");
    escalations
        .put_policy(&p.tenant, &policy, now_ms(), false)
        .await
        .expect("policy");
    // A business-hours calendar of the client company, and an on-call schedule with an
    // override.
    let calendar_id = format!("cal-{client}");
    let calendar = vigie_calendar::BusinessCalendar {
        id: vigie_calendar::CalendarId::parse(&calendar_id).expect("id"),
        name: format!("hours of {client}"),
        time_zone: "Europe/Paris".into(),
        scope: vigie_domain::policy::Scope::Client {
            client: p.client.clone(),
        },
        weekly: vec![vigie_calendar::OpenHours {
            days: vec![vigie_calendar::Weekday::Monday],
            start: "08:00".parse().expect("time"),
            end: "18:00".parse().expect("end"),
        }],
        holidays: vec![],
        exceptions: vec![],
    };
    assert_eq!(calendar.validate(), Ok(()));
    let oncall = stack.ports.oncall();
    oncall
        .calendars()
        .put(&p.tenant, &calendar_id, &calendar, now_ms())
        .await
        .expect("calendar");
    let schedule_id = format!("oncall-{client}");
    let schedule: vigie_calendar::OnCallSchedule = serde_json::from_value(json!({
        "id": schedule_id, "name": "on-call", "time_zone": "Europe/Paris",
        "layers": [{ "name": "base", "participants": ["usr-a"], "rotation": { "type": "weekly" },
                     "start": "2026-01-05T09:00" }],
        "overrides": [{ "id": "swap-1", "user": "usr-b", "start_ms": 0, "end_ms": 3_600_000 }]
    }))
    .expect("schedule");
    assert_eq!(schedule.validate(), Ok(()));
    oncall
        .schedules()
        .put(&p.tenant, &schedule_id, &schedule, now_ms())
        .await
        .expect("schedule");
    let params = BTreeMap::from([
        ("tenant_id", tenant.to_owned()),
        ("client_id", client.to_owned()),
        ("site_id", site.to_owned()),
        ("device_id", device_id),
        ("token_id", spare.id.to_string()),
        ("channel_id", channel_id.to_owned()),
        ("alert_id", alert_id),
        // `client:<id>`, URL-encoded.
        ("scope", format!("client%3A{client}")),
        ("key_id", api_key.key_id.as_str().to_owned()),
        ("user_id", user.user_id.clone()),
        ("invitation_id", invite.invitation_id.clone()),
        ("window_id", window_id),
        ("calendar_id", calendar_id),
        ("schedule_id", schedule_id),
        ("override_id", "swap-1".to_owned()),
        // Built-in, the same in every tenant; applied at the `scope` above.
        ("template_id", "certificate-expiry".to_owned()),
        ("incident_id", incident.incident_id.to_string()),
        ("policy_id", policy_id),
        ("group_id", group_id),
    ]);
    Objects {
        tenant: p.tenant,
        params,
    }
}

fn path_for(route: &Route, params: &BTreeMap<&'static str, String>) -> String {
    route
        .path
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => params
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "missing".into()),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A valid body for the routes that take one.
fn body_for(operation: Operation) -> Vec<u8> {
    let body = match operation {
        Operation::CreateTenant => {
            json!({ "tenant_id": format!("new-{}", now_ms()), "name": "New MSP" })
        }
        Operation::CreateClient => {
            json!({ "client_id": format!("c{}", now_ms()), "name": "New client" })
        }
        Operation::CreateSite => json!({ "site_id": format!("s{}", now_ms()), "name": "New site" }),
        Operation::CreateEnrollmentToken => json!({ "client_id": "acme", "site_id": "hq" }),
        Operation::AssignAlert => json!({ "assignee": "someone" }),
        Operation::CreateApiKey | Operation::CreatePlatformApiKey => json!({ "name": "sync" }),
        Operation::SetMembership => json!({ "role": "technician" }),
        Operation::MoveDevice => json!({ "client_id": "acme", "site_id": "hq" }),
        Operation::SetDeviceTags => json!({ "tags": { "role": "server" } }),
        Operation::SetDeviceParent => json!({ "parent_id": "dev-nothing" }),
        Operation::CreateInvitation => json!({ "email": "new@x.example", "role": "technician" }),
        Operation::AcceptInvitation => json!({ "code": "inv_inv-nothing_x" }),
        Operation::CommentAlert | Operation::CommentIncident => json!({ "text": "looking" }),
        Operation::CreateIncident => json!({ "title": "Outage", "sev": 2 }),
        Operation::AddIncidentAlerts => json!({ "alert_ids": ["zz-no-alert"] }),
        Operation::SetIncidentRoles => json!({ "incident_manager": "someone" }),
        Operation::SetIncidentSeverity => json!({ "sev": 1 }),
        Operation::SetIncidentStatus => json!({ "status": "identified" }),
        Operation::PostIncidentStatusMessage => {
            json!({ "audience": "internal", "text": "looking" })
        }
        Operation::PutPolicy => json!({ "rules": [] }),
        Operation::ApplyTemplate => json!({ "overrides": { "expiry": { "enabled": false } } }),
        Operation::PutWindow => json!({
            "name": "Patch night",
            "scope": { "level": "tenant" },
            "time_zone": "Europe/Paris",
            "schedule": { "type": "once", "start": "2026-03-29T01:30", "end": "2026-03-29T04:00" },
            "suppress": { "notifications": true, "alerts": false }
        }),
        Operation::PutEscalationPolicy => json!({
            "name": "Servers",
            "steps": [{ "do": "notify", "to": [{ "type": "assignee" }] }]
        }),
        Operation::PutUserGroup => json!({ "name": "Night shift", "members": [] }),
        Operation::PolicyFromTemplate => json!({
            "policy_id": format!("tpl-{}", now_ms()),
            "supervisors": { "type": "assignee" },
            "supervision_mailbox": { "type": "email", "address": "noc@msp.example" },
            "account_manager": { "type": "email", "address": "am@msp.example" },
            "client_contact": { "type": "email", "address": "it@client.example" },
            "calendar_id": "hours"
        }),
        Operation::PutCalendar => json!({
            "name": "Office hours", "time_zone": "Europe/Paris", "scope": { "level": "tenant" },
            "weekly": [{ "days": ["monday"], "start": "08:00", "end": "18:00" }]
        }),
        Operation::ImportHolidays => {
            json!({ "holidays": [{ "date": "2026-12-25", "name": "Noël" }] })
        }
        Operation::PutSchedule => json!({
            "name": "On-call", "time_zone": "Europe/Paris",
            "layers": [{ "name": "base", "participants": ["usr-a"],
                         "rotation": { "type": "daily" }, "start": "2026-01-05T09:00" }]
        }),
        Operation::AddOverride => json!({ "user": "usr-c", "start": 0, "end": 60_000 }),
        Operation::PutChannel => json!({
            "name": "changed",
            "kind": { "type": "teams", "webhook_url": "https://example.webhook.office.com/x" }
        }),
        _ => return Vec::new(),
    };
    serde_json::to_vec(&body).expect("json")
}

struct Caller {
    role: Role,
    bearer: String,
}

async fn call(stack: &Stack, route: &Route, path: &str, bearer: Option<&str>) -> Answer {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(token) = bearer {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    send(
        route.method,
        format!("{}{path}", stack.url()),
        headers,
        body_for(route.operation),
    )
    .await
}

pub(crate) async fn api_stack(test: &str, own: &OwnIssuer) -> Stack {
    let (clients, names, provisioned) = vigie_tests::provisioned(test).await;
    let ports = vigie_aws::adapters::AwsPorts::connect(clients, names)
        .await
        .expect("connect");
    let options = RuntimeOptions {
        policy_ttl: Duration::from_secs(1),
        api: Some(ApiAuth::own(own)),
        ..RuntimeOptions::default()
    };
    let runtime = LocalRuntime::start_with(
        &ports,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        &options,
    )
    .await
    .expect("runtime");
    Stack {
        ports,
        provisioned,
        runtime,
    }
}

/// A fresh issuer with the local API's issuer name and audience.
pub(crate) fn local_issuer() -> OwnIssuer {
    OwnIssuer::generate(
        vigie_api::config::DEFAULT_ISSUER,
        vigie_api::config::DEFAULT_AUDIENCE,
    )
}

pub(crate) fn mint(
    own: &OwnIssuer,
    role: Role,
    tenant: Option<&TenantId>,
    client: Option<&str>,
) -> String {
    let grant = Grant::new(
        format!("user-{}", role.as_str()),
        role,
        tenant.cloned(),
        client.map(|c| ClientId::parse(c).expect("id")),
        Vec::new(),
    )
    .expect("grant");
    own.mint(&grant, Duration::from_secs(600), now_ms() / 1000)
        .expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_strangers_wrong_roles_and_other_tenants() {
    let own = local_issuer();
    let stack = api_stack("api-matrix", &own).await;
    let ours = seed(&stack, "msp-ours", "acme", "hq", "ops").await;
    let theirs = seed(&stack, "msp-theirs", "initech", "plant", "their-ops").await;
    // Another client company of our own tenant, for the client viewer.
    let sibling = seed(&stack, "msp-ours", "globex", "hq", "ops").await;

    let callers: Vec<Caller> = Role::ALL
        .iter()
        .map(|&role| {
            let tenant = (role != Role::PlatformOperator).then_some(&ours.tenant);
            let client = (role == Role::ClientViewer).then_some("acme");
            Caller {
                role,
                bearer: mint(&own, role, tenant, client),
            }
        })
        .collect();

    let mut checked = 0;
    for route in ROUTES {
        let own_path = path_for(route, &ours.params);
        // 1. No credential, and a forged one.
        let answer = call(&stack, route, &own_path, None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (401, "unauthenticated"),
            "{} {}",
            route.method,
            route.path
        );
        let answer = call(&stack, route, &own_path, Some("not.a.jwt")).await;
        assert_eq!(
            answer.status, 401,
            "{} {}: {:?}",
            route.method, route.path, answer.json
        );
        for caller in &callers {
            let allowed = route.roles.contains(&caller.role);
            if !allowed {
                // 2. A role the route does not list.
                let answer = call(&stack, route, &own_path, Some(&caller.bearer)).await;
                assert_eq!(
                    (answer.status, answer.code()),
                    (403, "forbidden"),
                    "{} {} as {}",
                    route.method,
                    route.path,
                    caller.role
                );
                checked += 1;
                continue;
            }
            let has_objects = route.path.contains('{');
            if route.realm != Realm::Tenant || !has_objects {
                continue;
            }
            if matches!(
                route.operation,
                Operation::PutChannel
                    | Operation::PutWindow
                    | Operation::PutEscalationPolicy
                    | Operation::PutUserGroup
                    | Operation::PutCalendar
                    | Operation::PutSchedule
            ) {
                // An upsert into the caller's own tenant: checked after the matrix.
                continue;
            }
            // 3. Another tenant's object: not found, like a missing one. (Built-in templates
            //    are the same in every tenant: only a missing one is not found. The matrix's
            //    `template_id` is a policy template, so for escalation templates it is a
            //    missing one.)
            if !matches!(
                route.operation,
                Operation::GetTemplate | Operation::PolicyFromTemplate
            ) {
                let path = path_for(route, &theirs.params);
                let answer = call(&stack, route, &path, Some(&caller.bearer)).await;
                assert_eq!(
                    (answer.status, answer.code()),
                    (404, "not_found"),
                    "{} {} as {} on another tenant: {:?}",
                    route.method,
                    route.path,
                    caller.role,
                    answer.json
                );
            }
            let missing: BTreeMap<_, _> = ours
                .params
                .keys()
                .map(|k| (*k, format!("zz-missing-{k}").replace('_', "-")))
                .collect();
            let answer = call(
                &stack,
                route,
                &path_for(route, &missing),
                Some(&caller.bearer),
            )
            .await;
            assert_eq!(
                answer.status, 404,
                "{} {} missing",
                route.method, route.path
            );
            // 4. A client viewer and another client company of its own tenant.
            if caller.role == Role::ClientViewer
                && [
                    "{client_id}",
                    "{device_id}",
                    "{alert_id}",
                    "{window_id}",
                    "{calendar_id}",
                    "{incident_id}",
                ]
                .iter()
                .any(|p| route.path.contains(p))
            {
                let path = path_for(route, &sibling.params);
                let answer = call(&stack, route, &path, Some(&caller.bearer)).await;
                assert_eq!(
                    answer.status, 404,
                    "{} {} as a viewer of acme on globex: {:?}",
                    route.method, route.path, answer.json
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= ROUTES.len(), "the matrix ran ({checked} checks)");

    // PUT names an object of the caller's own tenant: a channel id the other tenant uses is
    // created in ours, and theirs stays untouched.
    let admin_token = &callers
        .iter()
        .find(|c| c.role == Role::MspAdmin)
        .expect("admin")
        .bearer;
    let put = ROUTES
        .iter()
        .find(|r| r.operation == Operation::PutChannel)
        .expect("route");
    let answer = call(
        &stack,
        put,
        &path_for(put, &theirs.params),
        Some(admin_token),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let untouched = stack
        .ports
        .channels()
        .channels(&theirs.tenant)
        .await
        .expect("read")
        .into_iter()
        .find(|c| c.id.as_str() == "their-ops")
        .map(|c| c.name);
    assert_eq!(untouched.as_deref(), Some("ops of msp-theirs"));
    // The same for a user group: their group id becomes a group of ours.
    let put = ROUTES
        .iter()
        .find(|r| r.operation == Operation::PutUserGroup)
        .expect("route");
    let answer = call(
        &stack,
        put,
        &path_for(put, &theirs.params),
        Some(admin_token),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let theirs_group = stack
        .ports
        .escalations()
        .group(&theirs.tenant, &theirs.params["group_id"])
        .await
        .expect("read")
        .map(|g| g.name);
    assert_eq!(theirs_group.as_deref(), Some("admins of initech"));

    // The allowed roles get their own objects.
    let admin = &callers
        .iter()
        .find(|c| c.role == Role::MspAdmin)
        .expect("admin")
        .bearer;
    for (path, key, expected) in [
        ("/v1/me", "role", json!("msp_admin")),
        ("/v1/clients/acme", "client_id", json!("acme")),
        ("/v1/clients/acme/sites/hq", "site_id", json!("hq")),
        ("/v1/channels/ops", "channel_id", json!("ops")),
    ] {
        let answer = send(
            "GET",
            format!("{}{path}", stack.url()),
            vec![("authorization".into(), format!("Bearer {admin}"))],
            Vec::new(),
        )
        .await;
        assert_eq!(
            (answer.status, &answer.json[key]),
            (200, &expected),
            "{path}: {:?}",
            answer.json
        );
    }
    let device = &ours.params["device_id"];
    let answer = send(
        "GET",
        format!("{}/v1/devices/{device}", stack.url()),
        vec![("authorization".into(), format!("Bearer {admin}"))],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["connection"], "never_seen");
    // Secrets never leave: the Slack URL is redacted.
    let answer = send(
        "GET",
        format!("{}/v1/channels", stack.url()),
        vec![("authorization".into(), format!("Bearer {admin}"))],
        Vec::new(),
    )
    .await;
    assert!(
        !answer.json.to_string().contains("secretpart"),
        "{:?}",
        answer.json
    );
    // The viewer's device list holds only its client company's devices.
    let viewer = &callers
        .iter()
        .find(|c| c.role == Role::ClientViewer)
        .expect("viewer")
        .bearer;
    let answer = send(
        "GET",
        format!("{}/v1/devices", stack.url()),
        vec![("authorization".into(), format!("Bearer {viewer}"))],
        Vec::new(),
    )
    .await;
    let clients: Vec<&Value> = answer.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| &d["client_id"])
        .collect();
    assert!(
        !clients.is_empty() && clients.iter().all(|c| *c == "acme"),
        "{clients:?}"
    );
    // The OpenAPI document and the JWKS are public.
    let doc = send(
        "GET",
        format!("{}/openapi.json", stack.url()),
        vec![],
        Vec::new(),
    )
    .await;
    assert_eq!((doc.status, &doc.json["openapi"]), (200, &json!("3.1.0")));
    let jwks = send(
        "GET",
        format!("{}/.well-known/jwks.json", stack.url()),
        vec![],
        Vec::new(),
    )
    .await;
    assert_eq!(jwks.json["keys"][0]["kty"], "OKP");
}

pub(crate) async fn as_user(
    stack: &Stack,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> Answer {
    send(
        method,
        format!("{}{path}", stack.url()),
        vec![
            ("authorization".into(), format!("Bearer {token}")),
            ("content-type".into(), "application/json".into()),
        ],
        if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("json")
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_works_an_alert_from_open_to_resolved_with_who_and_when() {
    let own = local_issuer();
    let stack = api_stack("api-alerts", &own).await;
    let ours = seed(&stack, "msp-work", "acme", "hq", "ops").await;
    let tech = mint(&own, Role::Technician, Some(&ours.tenant), None);
    let viewer = mint(&own, Role::ClientViewer, Some(&ours.tenant), Some("acme"));
    let alert = format!("/v1/alerts/{}", ours.params["alert_id"]);

    let listed = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/alerts?status=open&severity=critical",
        Value::Null,
    )
    .await;
    assert_eq!(listed.status, 200, "{:?}", listed.json);
    assert_eq!(
        listed.json["items"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        listed.json
    );
    let none = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/alerts?status=acknowledged",
        Value::Null,
    )
    .await;
    assert_eq!(none.json["items"].as_array().map(Vec::len), Some(0));
    let bad = as_user(
        &stack,
        &tech,
        "GET",
        "/v1/alerts?severity=loud",
        Value::Null,
    )
    .await;
    assert_eq!((bad.status, bad.code()), (422, "bad_filter"));

    let acked = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{alert}/acknowledge"),
        Value::Null,
    )
    .await;
    assert_eq!(acked.status, 200, "{:?}", acked.json);
    assert_eq!(acked.json["status"], "acknowledged");
    assert_eq!(acked.json["acknowledged"]["by"], "user-technician");
    assert!(
        acked.json["acknowledged"]["at_ms"]
            .as_i64()
            .is_some_and(|t| t > 0)
    );
    let taken = as_user(&stack, &tech, "POST", &format!("{alert}/take"), Value::Null).await;
    assert_eq!(taken.json["assignee"], "user-technician");
    let commented = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{alert}/comments"),
        json!({ "text": "replacing the disk" }),
    )
    .await;
    assert_eq!(commented.status, 201);
    assert_eq!(commented.json["comments"][0]["text"], "replacing the disk");
    let empty = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{alert}/comments"),
        json!({ "text": " " }),
    )
    .await;
    assert_eq!((empty.status, empty.code()), (422, "bad_comment"));

    // A technician limited to another client company does not see it.
    let limited = own
        .mint(
            &Grant::new(
                "tech-globex",
                Role::Technician,
                Some(ours.tenant.clone()),
                None,
                vec![ClientId::parse("globex").expect("id")],
            )
            .expect("grant"),
            Duration::from_secs(600),
            now_ms() / 1000,
        )
        .expect("token");
    assert_eq!(
        as_user(&stack, &limited, "GET", &alert, Value::Null)
            .await
            .status,
        404
    );
    let none = as_user(&stack, &limited, "GET", "/v1/alerts", Value::Null).await;
    assert_eq!(none.json["items"].as_array().map(Vec::len), Some(0));

    // The client company's viewer reads the same state, and cannot act.
    let seen = as_user(&stack, &viewer, "GET", &alert, Value::Null).await;
    assert_eq!(
        (seen.status, &seen.json["status"]),
        (200, &json!("acknowledged"))
    );
    let refused = as_user(
        &stack,
        &viewer,
        "POST",
        &format!("{alert}/resolve"),
        Value::Null,
    )
    .await;
    assert_eq!(refused.status, 403);

    let resolved = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{alert}/resolve"),
        Value::Null,
    )
    .await;
    assert_eq!(resolved.json["status"], "resolved");
    assert_eq!(resolved.json["resolved_by_hand"]["by"], "user-technician");
    let again = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{alert}/acknowledge"),
        Value::Null,
    )
    .await;
    assert_eq!((again.status, again.code()), (409, "alert_resolved"));
    let listed = as_user(
        &stack,
        &viewer,
        "GET",
        "/v1/alerts?status=resolved&client_id=acme",
        Value::Null,
    )
    .await;
    assert_eq!(
        listed.json["items"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        listed.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_reads_usage_with_an_api_key_as_json_and_csv_and_nothing_else() {
    use vigie_domain::usage::{Day, UsageCounters};
    let own = local_issuer();
    let stack = api_stack("api-usage", &own).await;
    let tenant = TenantId::parse("msp-billed").expect("id");
    let other = TenantId::parse("msp-other-billed").expect("id");
    let admin = mint(&own, Role::MspAdmin, Some(&tenant), None);
    let operator = mint(&own, Role::PlatformOperator, None, None);
    let usage = stack.ports.usage();
    let day = Day::parse("2026-10-30").expect("day");
    let counts = |batches, alerts| UsageCounters {
        batches,
        bytes: batches * 1000,
        device_days: 1,
        alerts_opened: alerts,
        notifications_slack: alerts,
        ..UsageCounters::default()
    };
    for (t, client, c) in [
        (&tenant, "acme", counts(1440, 2)),
        (&tenant, "globex", counts(10, 0)),
        (&other, "acme", counts(5, 1)),
    ] {
        let client = ClientId::parse(client).expect("id");
        usage.add(t, &client, day, &c).await.expect("count");
    }

    // An accounting key made by the tenant's admin.
    let created = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/api-keys",
        json!({ "name": "invoicing" }),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    let key = created.json["key"]
        .as_str()
        .expect("key shown once")
        .to_owned();
    let listed = as_user(&stack, &admin, "GET", "/v1/api-keys", Value::Null).await;
    assert!(
        !listed.json.to_string().contains(&key),
        "the secret is never listed again"
    );
    let with_key = |path: &str| {
        let url = format!("{}{path}", stack.url());
        let key = key.clone();
        async move { send("GET", url, vec![("x-api-key".into(), key)], Vec::new()).await }
    };
    let month = with_key("/v1/usage?month=2026-10").await;
    assert_eq!(month.status, 200, "{:?}", month.json);
    let rows = month.json["rows"].as_array().expect("rows");
    let total = rows
        .iter()
        .find(|r| r["client"] == "*")
        .expect("tenant total");
    assert_eq!(
        (total["batches"].as_u64(), total["alerts_opened"].as_u64()),
        (Some(1450), Some(2))
    );
    assert_eq!(total["device_days"].as_u64(), Some(2));
    assert_eq!(month.json["closed"], false);
    assert!(
        rows.iter().all(|r| r["tenant"] == "msp-billed"),
        "only its tenant: {rows:?}"
    );
    // The same as CSV, stable columns.
    let csv = send(
        "GET",
        format!("{}/v1/usage?month=2026-10&format=csv", stack.url()),
        vec![("x-api-key".into(), key.clone())],
        Vec::new(),
    )
    .await;
    let text = csv.json.as_str().expect("csv text").to_owned();
    assert!(
        text.starts_with("tenant,client,period,batches,bytes,device_days,alerts_opened,"),
        "{text}"
    );
    assert!(
        text.contains("\r\nmsp-billed,*,2026-10,1450,1450000,2,2,0,2,0,0\r\n"),
        "{text}"
    );
    let days = with_key("/v1/usage?month=2026-10&granularity=day&client_id=acme").await;
    assert_eq!(
        days.json["rows"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        days.json
    );
    assert_eq!(
        with_key("/v1/usage?month=2026-13").await.code(),
        "bad_month"
    );
    // Its use is noted on the key.
    let listed = as_user(&stack, &admin, "GET", "/v1/api-keys", Value::Null).await;
    assert!(
        listed.json["items"][0]["last_used_ms"].as_i64().is_some(),
        "{:?}",
        listed.json
    );
    // Nothing else: not the tenant's clients, not the platform's usage.
    assert_eq!(with_key("/v1/clients").await.status, 403);
    assert_eq!(
        with_key("/v1/platform/usage?month=2026-10").await.status,
        403
    );

    // The platform's accounting: every tenant's totals, and nothing inside a tenant.
    let platform = as_user(
        &stack,
        &operator,
        "POST",
        "/v1/platform/api-keys",
        json!({ "name": "saas billing" }),
    )
    .await;
    assert_eq!(platform.status, 201, "{:?}", platform.json);
    let platform_key = platform.json["key"].as_str().expect("key").to_owned();
    let all = send(
        "GET",
        format!("{}/v1/platform/usage?month=2026-10", stack.url()),
        vec![("x-api-key".into(), platform_key.clone())],
        Vec::new(),
    )
    .await;
    assert_eq!(all.status, 200, "{:?}", all.json);
    let tenants: Vec<&str> = all.json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["tenant"].as_str())
        .collect();
    assert_eq!(tenants, ["msp-billed", "msp-other-billed"]);
    let inside = send(
        "GET",
        format!("{}/v1/usage?month=2026-10", stack.url()),
        vec![("x-api-key".into(), platform_key)],
        Vec::new(),
    )
    .await;
    assert_eq!(inside.status, 403);

    // A revoked key stops at once; a wrong secret is unknown.
    let key_id = created.json["key_id"].as_str().expect("id");
    let revoked = as_user(
        &stack,
        &admin,
        "POST",
        &format!("/v1/api-keys/{key_id}/revoke"),
        Value::Null,
    )
    .await;
    assert!(
        revoked.json["revoked_ms"].as_i64().is_some(),
        "{:?}",
        revoked.json
    );
    let refused = with_key("/v1/usage?month=2026-10").await;
    assert_eq!((refused.status, refused.code()), (401, "api_key_revoked"));
    let forged = send(
        "GET",
        format!("{}/v1/usage", stack.url()),
        vec![("x-api-key".into(), format!("{}x", &key[..key.len() - 1]))],
        Vec::new(),
    )
    .await;
    assert_eq!(forged.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_person_joins_with_an_identity_token_and_gets_only_that_role() {
    let own = local_issuer();
    let stack = api_stack("api-invite", &own).await;
    let ours = seed(&stack, "msp-invites", "acme", "hq", "ops").await;
    let admin = mint(&own, Role::MspAdmin, Some(&ours.tenant), None);
    // A person's token from the identity provider: who they are, no role.
    let person = own
        .mint_identity(
            "ana-42",
            Some("ana@client.example"),
            Duration::from_secs(600),
            now_ms() / 1000,
        )
        .expect("token");
    let stranger = as_user(&stack, &person, "GET", "/v1/clients", Value::Null).await;
    assert_eq!((stranger.status, stranger.code()), (403, "no_membership"));

    let invited = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/invitations",
        json!({ "email": "ana@client.example", "role": "client_viewer", "client_id": "acme" }),
    )
    .await;
    assert_eq!(invited.status, 201, "{:?}", invited.json);
    let code = invited.json["code"].as_str().expect("code").to_owned();
    let bad_viewer = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/invitations",
        json!({ "email": "x@y.example", "role": "client_viewer" }),
    )
    .await;
    assert_eq!(
        (bad_viewer.status, bad_viewer.code()),
        (422, "bad_membership")
    );
    let listed = as_user(&stack, &admin, "GET", "/v1/invitations", Value::Null).await;
    assert!(
        !listed.json.to_string().contains(&code),
        "the code is shown once"
    );

    let wrong = as_user(
        &stack,
        &person,
        "POST",
        "/v1/invitations/accept",
        json!({ "code": format!("{}x", &code[..code.len() - 1]) }),
    )
    .await;
    assert_eq!(wrong.status, 404);
    let joined = as_user(
        &stack,
        &person,
        "POST",
        "/v1/invitations/accept",
        json!({ "code": code }),
    )
    .await;
    assert_eq!(joined.status, 201, "{:?}", joined.json);
    assert_eq!(
        (
            joined.json["role"].as_str(),
            joined.json["client_id"].as_str()
        ),
        (Some("client_viewer"), Some("acme"))
    );
    let again = as_user(
        &stack,
        &person,
        "POST",
        "/v1/invitations/accept",
        json!({ "code": code }),
    )
    .await;
    assert_eq!((again.status, again.code()), (409, "already_member"));

    // The same token now reads as a viewer of acme: its devices, not the admin's routes.
    let me = as_user(&stack, &person, "GET", "/v1/me", Value::Null).await;
    assert_eq!(
        (me.json["role"].as_str(), me.json["tenant_id"].as_str()),
        (Some("client_viewer"), Some("msp-invites"))
    );
    assert_eq!(
        as_user(&stack, &person, "GET", "/v1/devices", Value::Null)
            .await
            .status,
        200
    );
    assert_eq!(
        as_user(&stack, &person, "GET", "/v1/users", Value::Null)
            .await
            .status,
        403
    );

    // The admin promotes, then removes: the token follows the record at once.
    let user_id = joined.json["user_id"].as_str().expect("id").to_owned();
    let promoted = as_user(
        &stack,
        &admin,
        "PUT",
        &format!("/v1/users/{user_id}/membership"),
        json!({ "role": "technician" }),
    )
    .await;
    assert_eq!(promoted.json["role"], "technician", "{:?}", promoted.json);
    let me = as_user(&stack, &person, "GET", "/v1/me", Value::Null).await;
    assert_eq!(me.json["role"], "technician");
    let removed = as_user(
        &stack,
        &admin,
        "POST",
        &format!("/v1/users/{user_id}/remove"),
        Value::Null,
    )
    .await;
    assert!(removed.json["removed_ms"].as_i64().is_some());
    let gone = as_user(&stack, &person, "GET", "/v1/me", Value::Null).await;
    assert_eq!((gone.status, gone.code()), (403, "no_membership"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_suspend_tenants_and_admins_move_tag_and_test() {
    let own = local_issuer();
    let stack = api_stack("api-ops", &own).await;
    let ours = seed(&stack, "msp-ops", "acme", "hq", "ops").await;
    stack.seed(&placement("msp-ops", "globex", "lab")).await;
    let admin = mint(&own, Role::MspAdmin, Some(&ours.tenant), None);
    let operator = mint(&own, Role::PlatformOperator, None, None);
    let device = format!("/v1/devices/{}", ours.params["device_id"]);

    // Tags drive the effective policy at once.
    let servers = "tag%3Arole%3Dserver";
    let rules = json!({ "rules": [{
        "id": "cpu-busy", "family": "resources", "metric": "cpu_total_pct",
        "direction": "above", "warning": { "threshold": 90.0, "for_s": 300 },
        "hysteresis": 5.0, "max_gap_s": 600
    }] });
    let put = as_user(
        &stack,
        &admin,
        "PUT",
        &format!("/v1/policies/{servers}"),
        rules,
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.json);
    let bad = as_user(
        &stack,
        &admin,
        "PUT",
        &format!("/v1/policies/{servers}"),
        json!({ "rules": [{ "id": "x" }] }),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (422, "bad_body"));
    let tagged = as_user(
        &stack,
        &admin,
        "PUT",
        &format!("{device}/tags"),
        json!({ "tags": { "role": "server" } }),
    )
    .await;
    assert_eq!(tagged.json["tags"]["role"], "server", "{:?}", tagged.json);
    let bad_tags = as_user(
        &stack,
        &admin,
        "PUT",
        &format!("{device}/tags"),
        json!({ "tags": { "Role": "x" } }),
    )
    .await;
    assert_eq!((bad_tags.status, bad_tags.code()), (422, "bad_tags"));
    let effective = as_user(
        &stack,
        &admin,
        "GET",
        &format!("{device}/effective-policy"),
        Value::Null,
    )
    .await;
    let from: Vec<&str> = effective.json["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["from"].as_str())
        .collect();
    assert!(
        from.contains(&"tag:role=server") && from.contains(&"client:acme"),
        "{from:?}"
    );

    // Moving the device re-files it under the other client company.
    let moved = as_user(
        &stack,
        &admin,
        "POST",
        &format!("{device}/move"),
        json!({ "client_id": "globex", "site_id": "lab" }),
    )
    .await;
    assert_eq!(
        (
            moved.json["client_id"].as_str(),
            moved.json["site_id"].as_str()
        ),
        (Some("globex"), Some("lab"))
    );
    let listed = as_user(
        &stack,
        &admin,
        "GET",
        "/v1/devices?client_id=globex&site_id=lab",
        Value::Null,
    )
    .await;
    assert_eq!(
        listed.json["items"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        listed.json
    );
    let nowhere = as_user(
        &stack,
        &admin,
        "POST",
        &format!("{device}/move"),
        json!({ "client_id": "globex", "site_id": "nowhere" }),
    )
    .await;
    assert_eq!(nowhere.status, 404);

    // "Send test" reaches the receiver, signed; a dead receiver is reported, not hidden.
    let test_through = |name: &'static str, status: u16| {
        let (stack, admin) = (&stack, admin.clone());
        async move {
            let sink =
                vigie_local::webhook_sink::WebhookSink::start("whsec_api_test_secret_01", status)
                    .await
                    .expect("sink");
            let channel = json!({ "name": name, "kind": { "type": "webhook", "url": sink.url(), "secret": "whsec_api_test_secret_01" } });
            let put = as_user(
                stack,
                &admin,
                "PUT",
                &format!("/v1/channels/{name}"),
                channel,
            )
            .await;
            assert_eq!(put.status, 200);
            let tested = as_user(
                stack,
                &admin,
                "POST",
                &format!("/v1/channels/{name}/test"),
                Value::Null,
            )
            .await;
            let outcome = (
                tested.json["delivered"].as_bool(),
                tested.json["response_code"].as_u64(),
            );
            (outcome, sink.received())
        }
    };
    let (outcome, got) = test_through("ticketing", 200).await;
    assert_eq!(outcome, (Some(true), Some(200)));
    assert_eq!(got.len(), 1);
    assert!(got[0].signature_valid);
    let (outcome, _) = test_through("down", 503).await;
    assert_eq!(outcome, (Some(false), Some(503)));

    // The operator suspends the tenant: its people are refused at once; resuming lets them in.
    let suspended = as_user(
        &stack,
        &operator,
        "POST",
        "/v1/tenants/msp-ops/suspend",
        Value::Null,
    )
    .await;
    assert!(
        suspended.json["suspended_ms"].as_i64().is_some(),
        "{:?}",
        suspended.json
    );
    let refused = as_user(&stack, &admin, "GET", "/v1/clients", Value::Null).await;
    assert_eq!((refused.status, refused.code()), (403, "tenant_suspended"));
    let resumed = as_user(
        &stack,
        &operator,
        "POST",
        "/v1/tenants/msp-ops/resume",
        Value::Null,
    )
    .await;
    assert_eq!(resumed.json["suspended_ms"], Value::Null);
    assert_eq!(
        as_user(&stack, &admin, "GET", "/v1/clients", Value::Null)
            .await
            .status,
        200
    );
    // The operator signs tenants up with a plan, and reads no tenant data.
    let created = as_user(
        &stack,
        &operator,
        "POST",
        "/v1/tenants",
        json!({ "tenant_id": "msp-new", "name": "New MSP", "plan": "pro", "max_devices": 1000 }),
    )
    .await;
    assert_eq!(
        (created.status, created.json["plan"].as_str()),
        (201, Some("pro")),
        "{:?}",
        created.json
    );
    let twice = as_user(
        &stack,
        &operator,
        "POST",
        "/v1/tenants",
        json!({ "tenant_id": "msp-new", "name": "Again" }),
    )
    .await;
    assert_eq!((twice.status, twice.code()), (409, "tenant_exists"));
    assert_eq!(
        as_user(&stack, &operator, "GET", "/v1/alerts", Value::Null)
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_tokens_are_refused_over_http_with_their_reason() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use hmac::{Hmac, Mac};

    let own = local_issuer();
    let stack = api_stack("api-jwt", &own).await;
    let tenant = TenantId::parse("msp-jwt").expect("id");
    stack.seed(&placement("msp-jwt", "acme", "hq")).await;
    let now_s = now_ms() / 1000;
    let grant =
        |role| Grant::new("mallory", role, Some(tenant.clone()), None, Vec::new()).expect("grant");
    let good = own
        .mint(&grant(Role::Technician), Duration::from_secs(600), now_s)
        .expect("token");
    assert_eq!(
        as_user(&stack, &good, "GET", "/v1/clients", Value::Null)
            .await
            .status,
        200
    );

    let claims = |extra: Value| {
        let mut c = json!({
            "iss": vigie_api::config::DEFAULT_ISSUER, "aud": vigie_api::config::DEFAULT_AUDIENCE,
            "sub": "mallory", "iat": now_s, "nbf": now_s, "exp": now_s + 600,
            "vigie:tenant": "msp-jwt", "vigie:role": "msp_admin",
        });
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        B64.encode(serde_json::to_vec(&c).expect("json"))
    };
    let header = |h: Value| B64.encode(serde_json::to_vec(&h).expect("json"));
    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        header(json!({ "alg": "none", "typ": "JWT" })),
        claims(json!({}))
    );
    // HS256 "signed" with the issuer's public key as the HMAC secret.
    let public_x = own.jwks()["keys"][0]["x"].as_str().expect("x").to_owned();
    let hs_input = format!(
        "{}.{}",
        header(json!({ "alg": "HS256", "kid": own.kid() })),
        claims(json!({}))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(public_x.as_bytes()).expect("key");
    mac.update(hs_input.as_bytes());
    let hs256 = format!("{hs_input}.{}", B64.encode(mac.finalize().into_bytes()));
    // A technician's real token, its payload changed to admin, the signature kept.
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], claims(json!({})), parts[2]);
    // Same key, other audience or issuer; another key; out of its time window.
    let pem = own.to_pkcs8_pem();
    let other_audience =
        OwnIssuer::from_pkcs8_pem(vigie_api::config::DEFAULT_ISSUER, "another-api", &pem)
            .expect("issuer");
    let other_issuer = OwnIssuer::from_pkcs8_pem(
        "https://evil.example",
        vigie_api::config::DEFAULT_AUDIENCE,
        &pem,
    )
    .expect("issuer");
    let other_key = OwnIssuer::generate(
        vigie_api::config::DEFAULT_ISSUER,
        vigie_api::config::DEFAULT_AUDIENCE,
    );
    let admin = grant(Role::MspAdmin);
    let ttl = Duration::from_secs(600);
    let cases = [
        ("alg none", none, "algorithm_not_allowed"),
        ("HS256 with the public key", hs256, "algorithm_not_allowed"),
        ("tampered claims", tampered, "bad_signature"),
        (
            "wrong audience",
            other_audience.mint(&admin, ttl, now_s).expect("t"),
            "bad_audience",
        ),
        (
            "wrong issuer",
            other_issuer.mint(&admin, ttl, now_s).expect("t"),
            "bad_issuer",
        ),
        (
            "unknown kid",
            other_key.mint(&admin, ttl, now_s).expect("t"),
            "unknown_key",
        ),
        (
            "expired",
            own.mint(&admin, Duration::from_secs(60), now_s - 7200)
                .expect("t"),
            "token_expired",
        ),
        (
            "not yet valid",
            own.mint(&admin, ttl, now_s + 3600).expect("t"),
            "token_not_yet_valid",
        ),
    ];
    for (what, token, code) in cases {
        let answer = as_user(&stack, &token, "GET", "/v1/clients", Value::Null).await;
        assert_eq!(
            (answer.status, answer.code()),
            (401, code),
            "{what}: {:?}",
            answer.json
        );
        let message = answer.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("mallory"),
            "{what}: no claim value in errors"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_limits_enrolled_devices_and_revoking_frees_a_place() {
    let own = local_issuer();
    let stack = api_stack("api-limit", &own).await;
    let operator = mint(&own, Role::PlatformOperator, None, None);
    let signed_up = as_user(
        &stack,
        &operator,
        "POST",
        "/v1/tenants",
        json!({ "tenant_id": "msp-small", "name": "Small MSP", "plan": "trial", "max_devices": 1 }),
    )
    .await;
    assert_eq!(signed_up.status, 201, "{:?}", signed_up.json);
    let tenant = TenantId::parse("msp-small").expect("id");
    let admin = mint(&own, Role::MspAdmin, Some(&tenant), None);
    assert_eq!(
        as_user(
            &stack,
            &admin,
            "POST",
            "/v1/clients",
            json!({ "client_id": "acme", "name": "ACME" })
        )
        .await
        .status,
        201
    );
    assert_eq!(
        as_user(
            &stack,
            &admin,
            "POST",
            "/v1/clients/acme/sites",
            json!({ "site_id": "hq", "name": "HQ" })
        )
        .await
        .status,
        201
    );
    let token = as_user(
        &stack,
        &admin,
        "POST",
        "/v1/enrollment-tokens",
        json!({ "client_id": "acme", "site_id": "hq", "max_uses": 3 }),
    )
    .await;
    let code = token.json["token"].as_str().expect("token").to_owned();

    let (first, _) = enroll(&stack.url(), &code).await;
    assert_eq!(first.status, 201, "{:?}", first.json);
    let (second, _) = enroll(&stack.url(), &code).await;
    assert_eq!(
        (second.status, second.code()),
        (403, "device_limit_reached"),
        "{:?}",
        second.json
    );
    let device = first.json["device_id"].as_str().expect("id");
    let revoked = as_user(
        &stack,
        &admin,
        "POST",
        &format!("/v1/devices/{device}/revoke"),
        Value::Null,
    )
    .await;
    assert_eq!(revoked.json["status"], "revoked");
    // Revoking again changes nothing (and frees nothing more).
    assert_eq!(
        as_user(
            &stack,
            &admin,
            "POST",
            &format!("/v1/devices/{device}/revoke"),
            Value::Null
        )
        .await
        .status,
        200
    );
    let (third, _) = enroll(&stack.url(), &code).await;
    assert_eq!(third.status, 201, "{:?}", third.json);
    let (fourth, _) = enroll(&stack.url(), &code).await;
    assert_eq!(fourth.code(), "device_limit_reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_every_episode_with_its_human_side() {
    let own = local_issuer();
    let stack = api_stack("api-history", &own).await;
    let ours = seed(&stack, "msp-history", "acme", "hq", "ops").await;
    let tech = mint(&own, Role::Technician, Some(&ours.tenant), None);
    let viewer = mint(&own, Role::ClientViewer, Some(&ours.tenant), Some("acme"));
    let alert = format!("/v1/alerts/{}", ours.params["alert_id"]);
    let acked = as_user(
        &stack,
        &tech,
        "POST",
        &format!("{alert}/acknowledge"),
        Value::Null,
    )
    .await;
    assert_eq!(acked.status, 200);

    // The disk recovers, then fills again: a second episode of the same alert.
    let device = vigie_domain::ids::DeviceId::parse(&ours.params["device_id"]).expect("id");
    let evaluator = evaluator(&stack.ports);
    for (seq, at, used) in [(2, now_ms() - 30_000, 40.0), (3, now_ms() - 10_000, 97.0)] {
        let mut batch = envelope(&device, seq, at, used);
        batch.tenant_id = ours.tenant.clone();
        batch.client_id = vigie_domain::ids::ClientId::parse("acme").expect("id");
        batch.site_id = vigie_domain::ids::SiteId::parse("hq").expect("id");
        evaluator.evaluate(&batch).await.expect("evaluates");
    }

    let history = as_user(&stack, &viewer, "GET", "/v1/alert-history", Value::Null).await;
    assert_eq!(history.status, 200, "{:?}", history.json);
    let episodes = history.json["items"].as_array().expect("items");
    assert_eq!(episodes.len(), 2, "{episodes:#?}");
    assert_eq!(episodes[0]["alert_id"], episodes[1]["alert_id"]);
    assert_eq!(
        (
            episodes[0]["status"].as_str(),
            episodes[1]["status"].as_str()
        ),
        (Some("resolved"), Some("open"))
    );
    assert_eq!(
        episodes[0]["acknowledged"]["by"], "user-technician",
        "the first episode keeps its acknowledgement"
    );
    assert_eq!(
        episodes[1]["acknowledged"],
        Value::Null,
        "a new episode starts unacknowledged"
    );
    // The current alert is the new episode.
    let current = as_user(&stack, &viewer, "GET", &alert, Value::Null).await;
    assert_eq!(current.json["opened_ms"], episodes[1]["opened_ms"]);
    let resolved_only = as_user(
        &stack,
        &viewer,
        "GET",
        "/v1/alert-history?status=resolved",
        Value::Null,
    )
    .await;
    assert_eq!(
        resolved_only.json["items"].as_array().map(Vec::len),
        Some(1)
    );
    let bad = as_user(
        &stack,
        &viewer,
        "GET",
        "/v1/alert-history?since_ms=10&until_ms=5",
        Value::Null,
    )
    .await;
    assert_eq!((bad.status, bad.code()), (422, "bad_window"));
}
