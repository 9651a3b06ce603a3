//! Incidents over HTTP (a child of `handlers`, sharing its parameter, paging and body helpers).
//!
//! Who sees what: MSP admins and technicians without a client limit see every incident of the
//! tenant. A caller limited to client companies (a client viewer, a limited technician) sees
//! an incident only while its `client_id` — the one client company of all its alerts — is one
//! of theirs; anything else is 404, like another tenant's incident. Client viewers read only,
//! and read the external status messages only (see `views::incident`).
//!
//! Every change goes through `DynamoIncidents::update`: read, apply the domain's actions,
//! write conditioned on the version read, again on a race. Alerts are looked up (they must
//! exist in the tenant and be visible to the caller) before, since that is I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use vigie_auth::Role;
use vigie_aws::incidents::{Created, UpdateFailed};
use vigie_domain::clock::Clock;
use vigie_domain::ids::ClientId;
use vigie_domain::incident::{
    AlertRef, Audience, Incident, IncidentAction, IncidentId, IncidentRefused, IncidentRole,
    IncidentStatus, MAX_IDEMPOTENCY_KEY_CHARS, MessageBody, ResponseTimes, caller_fields,
    idempotency_digest, message_template, message_templates,
};
use vigie_edge::{HttpRequest, HttpResponse};

use super::{Params, audit, client_of, json_body, page};
use crate::access::Context;
use crate::error::ApiError;
use crate::routes::{Matched, Operation};
use crate::{Api, views};

const DAY_MS: i64 = 86_400_000;
/// How long an idempotency key is remembered, at least (the TTL attribute then cleans up).
const IDEMPOTENCY_KEPT_S: i64 = 86_400;
/// Longest window of the response-times report.
const MAX_REPORT_DAYS: i64 = 366;

/// A domain refusal as the API answers it.
fn refused(e: IncidentRefused) -> ApiError {
    match e {
        IncidentRefused::AlertNotInIncident(_) => ApiError::NotFound { what: "alert" },
        e if e.is_conflict() => ApiError::Conflict {
            code: e.code(),
            message: e.to_string(),
        },
        e => ApiError::invalid(e.code(), e.to_string()),
    }
}

/// Whether the caller may see `incident` (see the module's doc).
fn may_see(context: &Context, incident: &Incident) -> bool {
    context.client_limit().is_none()
        || incident
            .client_id
            .as_ref()
            .is_some_and(|c| context.may_see(c))
}

/// MSP staff see the whole incident; client viewers its outside face.
fn staff(context: &Context) -> bool {
    context.principal().role() != Role::ClientViewer
}

fn incident_id(p: &Params<'_>) -> Result<IncidentId, ApiError> {
    IncidentId::parse(p.path_str("incident_id")?)
        .map_err(|_| ApiError::NotFound { what: "incident" })
}

async fn visible_incident<K: Clock>(
    api: &Api<K>,
    context: &Context,
    id: &IncidentId,
) -> Result<Incident, ApiError> {
    api.ports
        .incidents()
        .get(context.tenant()?, id)
        .await?
        .filter(|i| may_see(context, i))
        .ok_or(ApiError::NotFound { what: "incident" })
}

/// The alerts named, each found in the tenant and visible to the caller (else 404), as the
/// incident records them: the episode they are in and their client company.
async fn visible_alerts<K: Clock>(
    api: &Api<K>,
    context: &Context,
    alert_ids: &[String],
) -> Result<Vec<AlertRef>, ApiError> {
    let tenant = context.tenant()?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for alert_id in alert_ids {
        if !seen.insert(alert_id.as_str()) {
            continue;
        }
        let not_found = ApiError::NotFound { what: "alert" };
        // An id that could never be a key part is simply not found.
        if alert_id.is_empty() || alert_id.len() > 200 || alert_id.contains('#') {
            return Err(not_found);
        }
        let record = Box::pin(api.ports.evaluation().alert(tenant, alert_id))
            .await?
            .ok_or(not_found)?;
        let client = client_of(&record)
            .filter(|c| context.may_see(c))
            .ok_or(ApiError::NotFound { what: "alert" })?;
        out.push(AlertRef {
            alert_id: alert_id.clone(),
            opened_ms: record["opened_ms"].as_i64().unwrap_or_default(),
            client_id: client,
        });
    }
    Ok(out)
}

/// Applies `actions` to the incident in one conditional write (re-applied on a race), and
/// answers the incident as the caller sees it.
async fn change<K: Clock>(
    api: &Api<K>,
    context: &Context,
    id: &IncidentId,
    actions: Vec<IncidentAction>,
    audit_action: &str,
    status: u16,
) -> Result<HttpResponse, ApiError> {
    let by = context.principal().subject().to_owned();
    let now = api.clock.now_ms();
    let updated = api
        .ports
        .incidents()
        .update(context.tenant()?, id, |incident| {
            if !may_see(context, incident) {
                return Err(ApiError::NotFound { what: "incident" });
            }
            for action in &actions {
                incident.apply(action.clone(), &by, now).map_err(refused)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| match e {
            UpdateFailed::NotFound => ApiError::NotFound { what: "incident" },
            UpdateFailed::Refused(e) => e,
            UpdateFailed::Busy => ApiError::Conflict {
                code: "busy",
                message: "the incident kept changing; retry".into(),
            },
            UpdateFailed::Store(e) => e.into(),
        })?;
    audit(context, audit_action, id.as_str());
    Ok(HttpResponse::json(
        status,
        &views::incident(&updated, staff(context)),
    ))
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The roles of a body: absent is unchanged, `null` clears.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesInput {
    #[serde(default, deserialize_with = "present")]
    incident_manager: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    technical_lead: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    communications_lead: Option<Option<String>>,
}

impl RolesInput {
    fn actions(self) -> Vec<IncidentAction> {
        [
            (IncidentRole::IncidentManager, self.incident_manager),
            (IncidentRole::TechnicalLead, self.technical_lead),
            (IncidentRole::CommunicationsLead, self.communications_lead),
        ]
        .into_iter()
        .filter_map(|(role, person)| person.map(|p| IncidentAction::SetRole(role, p)))
        .collect()
    }
}

/// A Unix-ms query parameter.
fn ms(p: &Params<'_>, name: &str) -> Result<Option<i64>, ApiError> {
    p.query
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| ApiError::invalid("bad_filter", format!("{name} is Unix ms")))
        })
        .transpose()
}

pub(super) async fn incidents<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    p: &Params<'_>,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let success = matched.route.success;
    let operation = matched.route.operation;
    let simple = |action: IncidentAction, name: &'static str| async move {
        Box::pin(change(
            api,
            context,
            &incident_id(p)?,
            vec![action],
            name,
            success,
        ))
        .await
    };
    match operation {
        Operation::CreateIncident => Box::pin(open(api, context, request, now, success)).await,
        Operation::ListIncidents => Box::pin(list(api, context, p, now)).await,
        Operation::GetIncident => Box::pin(get(api, context, p, success)).await,
        Operation::AddIncidentAlerts => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct IncidentAlerts {
                alert_ids: Vec<String>,
            }
            let id = incident_id(p)?;
            visible_incident(api, context, &id).await?;
            let body: IncidentAlerts = json_body(request)?;
            if body.alert_ids.is_empty()
                || body.alert_ids.len() > vigie_domain::incident::MAX_ALERTS
            {
                return Err(ApiError::invalid(
                    "bad_alerts",
                    "alert_ids names 1 to 100 alerts",
                ));
            }
            let alerts = visible_alerts(api, context, &body.alert_ids).await?;
            let actions = alerts.into_iter().map(IncidentAction::AddAlert).collect();
            change(api, context, &id, actions, "incident.add_alerts", success).await
        }
        Operation::RemoveIncidentAlert => {
            let alert_id = p.path_str("alert_id")?.to_owned();
            simple(
                IncidentAction::RemoveAlert(alert_id),
                "incident.remove_alert",
            )
            .await
        }
        Operation::SetIncidentRoles => {
            let body: RolesInput = json_body(request)?;
            let actions = body.actions();
            if actions.is_empty() {
                return Err(ApiError::invalid(
                    "bad_roles",
                    "name at least one of incident_manager, technical_lead, communications_lead",
                ));
            }
            change(
                api,
                context,
                &incident_id(p)?,
                actions,
                "incident.roles",
                success,
            )
            .await
        }
        Operation::SetIncidentSeverity => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct IncidentSeverity {
                sev: u8,
            }
            let body: IncidentSeverity = json_body(request)?;
            simple(IncidentAction::SetSeverity(body.sev), "incident.severity").await
        }
        Operation::SetIncidentStatus => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct IncidentStatusChange {
                status: IncidentStatus,
            }
            let body: IncidentStatusChange = json_body(request)?;
            simple(IncidentAction::SetStatus(body.status), "incident.status").await
        }
        Operation::AcknowledgeIncident => {
            simple(IncidentAction::Acknowledge, "incident.acknowledge").await
        }
        Operation::ResolveIncident => simple(IncidentAction::Resolve, "incident.resolve").await,
        Operation::CommentIncident => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewComment {
                text: String,
            }
            let body: NewComment = json_body(request)?;
            simple(IncidentAction::Comment(body.text), "incident.comment").await
        }
        Operation::PostIncidentStatusMessage => {
            Box::pin(post_message(api, context, p, request, success)).await
        }
        Operation::ListIncidentMessageTemplates => page(
            message_templates().to_vec(),
            |t| t.id.to_owned(),
            views::incident_message_template,
            p,
        ),
        Operation::ResponseTimesReport => Box::pin(report(api, context, p, now, success)).await,
        _ => Err(ApiError::NoRoute {
            method: matched.route.method.into(),
            path: matched.route.path.into(),
        }),
    }
}

/// `POST /v1/incidents`: the alerts are looked up first (they must exist and be visible),
/// then the incident is opened with them and its roles, each on the timeline.
async fn open<K: Clock>(
    api: &Api<K>,
    context: &Context,
    request: &HttpRequest,
    now: i64,
    success: u16,
) -> Result<HttpResponse, ApiError> {
    let (tenant, store) = (context.tenant()?, api.ports.incidents());
    let by = context.principal().subject();
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewIncident {
        title: String,
        sev: u8,
        #[serde(default)]
        alert_ids: Vec<String>,
        #[serde(default)]
        roles: RolesInput,
    }
    let body: NewIncident = json_body(request)?;
    if body.alert_ids.len() > vigie_domain::incident::MAX_ALERTS {
        return Err(refused(IncidentRefused::TooManyAlerts));
    }
    if context.client_limit().is_some() && body.alert_ids.is_empty() {
        // It would be invisible to its own author: it belongs to no client company.
        return Err(ApiError::invalid(
            "alerts_required",
            "a caller limited to client companies opens incidents with at least one of their alerts",
        ));
    }
    let alerts = visible_alerts(api, context, &body.alert_ids).await?;
    let actions: Vec<IncidentAction> = alerts
        .into_iter()
        .map(IncidentAction::AddAlert)
        .chain(body.roles.actions())
        .collect();
    // A client that may retry (a timeout, an automation) names the request: the same
    // key from the same caller opens one incident, and a retry answers it again.
    let digest = match request.header("idempotency-key") {
        None => None,
        Some(key) => {
            let ok = (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.chars().count())
                && key.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
            if !ok {
                return Err(ApiError::invalid(
                    "bad_idempotency_key",
                    "Idempotency-Key is 1 to 255 printable ASCII characters",
                ));
            }
            Some(idempotency_digest(by, key))
        }
    };
    // Ids carry 40 random bits: a collision is retried, never overwritten.
    for _ in 0..3 {
        let mut incident =
            Incident::open(IncidentId::generate(now), &body.title, body.sev, by, now)
                .map_err(refused)?;
        for action in &actions {
            incident.apply(action.clone(), by, now).map_err(refused)?;
        }
        let created = match &digest {
            None => match store.create(tenant, &mut incident).await? {
                true => Created::Stored,
                false => Created::IdTaken,
            },
            Some(d) => {
                let expires_at_s = now / 1000 + IDEMPOTENCY_KEPT_S;
                store
                    .create_once(tenant, &mut incident, d, expires_at_s)
                    .await?
            }
        };
        match created {
            Created::Stored => {
                audit(context, "incident.open", incident.incident_id.as_str());
                return Ok(HttpResponse::json(
                    success,
                    &views::incident(&incident, true),
                ));
            }
            Created::Replayed(first) => {
                if !may_see(context, &first) {
                    return Err(ApiError::NotFound { what: "incident" });
                }
                return Ok(HttpResponse::json(success, &views::incident(&first, true))
                    .header("idempotent-replayed", "true"));
            }
            Created::IdTaken => {}
        }
    }
    Err(ApiError::Conflict {
        code: "busy",
        message: "could not allocate an incident id; retry".into(),
    })
}

/// `GET /v1/incidents`: the key range of the opening times, then the filters.
async fn list<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let (tenant, store) = (context.tenant()?, api.ports.incidents());
    let status = match p.query.get("status") {
        None => None,
        Some(s) => Some(IncidentStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "bad_filter",
                "status is investigating, identified, monitoring or resolved",
            )
        })?),
    };
    let sev = match p.query.get("sev").map(String::as_str) {
        None => None,
        Some(s @ ("1" | "2" | "3")) => s.parse::<u8>().ok(),
        Some(_) => return Err(ApiError::invalid("bad_filter", "sev is 1, 2 or 3")),
    };
    let client = p.query_id("client_id", ClientId::parse)?;
    // "Which incident is this alert in?": the alert's own record does not say.
    let alert = p.query.get("alert_id");
    let since = ms(p, "since_ms")?.unwrap_or(0);
    let until = ms(p, "until_ms")?.unwrap_or(now + 1);
    if until <= since {
        return Err(ApiError::invalid(
            "bad_window",
            "since_ms must be before until_ms",
        ));
    }
    let staff = staff(context);
    let items: Vec<Incident> = store
        .opened_between(tenant, since, until)
        .await?
        .into_iter()
        .filter(|i| may_see(context, i))
        .filter(|i| status.is_none_or(|s| i.status == s))
        .filter(|i| sev.is_none_or(|s| i.sev == s))
        .filter(|i| client.is_none() || i.client_id == client)
        .filter(|i| alert.is_none_or(|a| i.alerts.iter().any(|x| &x.alert_id == a)))
        .collect();
    page(
        items,
        |i| i.incident_id.to_string(),
        |i| views::incident_summary(i, staff),
        p,
    )
}

/// `POST …/status-messages`: a template with its fields (`{client}` defaults to the
/// incident's client company's name) or free text.
async fn post_message<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
    request: &HttpRequest,
    success: u16,
) -> Result<HttpResponse, ApiError> {
    let tenant = context.tenant()?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewStatusMessage {
        audience: Audience,
        template: Option<String>,
        fields: Option<BTreeMap<String, String>>,
        text: Option<String>,
    }
    let id = incident_id(p)?;
    let incident = visible_incident(api, context, &id).await?;
    let body: NewStatusMessage = json_body(request)?;
    let message = match (body.template, body.text, body.fields) {
        (Some(template), None, fields) => {
            let mut fields = fields.unwrap_or_default();
            // `{client}` defaults to the incident's client company's name.
            let wants_client = message_template(&template)
                .is_some_and(|t| caller_fields(t.wording(body.audience)).contains(&"client"));
            if wants_client
                && !fields.contains_key("client")
                && let Some(client) = &incident.client_id
                && let Some(company) =
                    Box::pin(api.ports.directory().client(tenant, client)).await?
            {
                fields.insert("client".into(), company.name);
            }
            MessageBody::Template { template, fields }
        }
        (None, Some(text), None) => MessageBody::Text(text),
        _ => {
            return Err(ApiError::invalid(
                "bad_message",
                "give either template (with its fields) or text",
            ));
        }
    };
    let action = IncidentAction::PostStatusMessage {
        audience: body.audience,
        body: message,
    };
    change(
        api,
        context,
        &id,
        vec![action],
        "incident.status_message",
        success,
    )
    .await
}

/// `GET /v1/reports/response-times`: MTTA / MTTR over the incidents the caller may see.
async fn report<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
    now: i64,
    success: u16,
) -> Result<HttpResponse, ApiError> {
    let (tenant, store) = (context.tenant()?, api.ports.incidents());
    let to = ms(p, "to")?.unwrap_or(now + 1);
    let from = ms(p, "from")?.unwrap_or(to - 30 * DAY_MS);
    if to <= from || to - from > MAX_REPORT_DAYS * DAY_MS {
        return Err(ApiError::invalid(
            "bad_window",
            format!("from must be before to, at most {MAX_REPORT_DAYS} days apart"),
        ));
    }
    let client = p.query_id("client_id", ClientId::parse)?;
    let incidents: Vec<Incident> = store
        .opened_between(tenant, from, to)
        .await?
        .into_iter()
        .filter(|i| may_see(context, i))
        .filter(|i| client.is_none() || i.client_id == client)
        .collect();
    let times = ResponseTimes::from(incidents.as_slice());
    let mut view: Value = serde_json::to_value(&times)
        .map_err(|e| ApiError::Internal(vigie_domain::ports::StoreError::Corrupt(e.to_string())))?;
    view["from_ms"] = json!(from);
    view["to_ms"] = json!(to);
    view["client_id"] = json!(client);
    Ok(HttpResponse::json(success, &view))
}

/// `GET /v1/incidents/{incident_id}`, as the caller may see it.
async fn get<K: Clock>(
    api: &Api<K>,
    context: &Context,
    p: &Params<'_>,
    success: u16,
) -> Result<HttpResponse, ApiError> {
    let incident = visible_incident(api, context, &incident_id(p)?).await?;
    Ok(HttpResponse::json(
        success,
        &views::incident(&incident, staff(context)),
    ))
}
