//! The JSON shapes the API answers (schemas in [`crate::openapi`]). Secrets never appear:
//! a webhook channel shows whether it has a secret, not the secret.

use serde::Serialize;
use serde_json::{Value, json};
use vigie_domain::device::{Device, DeviceStatus};
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::EnrollmentToken;
use vigie_domain::notification::{ChannelKind, NotificationChannel};

pub fn tenant(t: &Tenant) -> Value {
    json!({
        "tenant_id": t.id,
        "name": t.name,
        "created_ms": t.created_ms,
        "plan": t.plan.name,
        "max_devices": t.plan.max_devices,
        "suspended_ms": t.suspended_ms,
    })
}

pub fn client(c: &ClientCompany) -> Value {
    json!({ "client_id": c.id, "name": c.name, "created_ms": c.created_ms })
}

pub fn site(s: &Site) -> Value {
    json!({
        "client_id": s.client, "site_id": s.id, "name": s.name,
        "time_zone": s.time_zone, "created_ms": s.created_ms,
    })
}

/// A device's connection as an MSP reads it.
pub fn connection(d: &Device, now_ms: i64) -> &'static str {
    if d.status == DeviceStatus::Revoked {
        return "revoked";
    }
    if d.last_seen_ms == 0 {
        return "never_seen";
    }
    let heartbeat_ms = i64::from(d.config.heartbeat_s) * 1000;
    let silent = now_ms - d.last_seen_ms;
    let interval_ms = i64::from(d.config.send_interval_s) * 1000;
    if silent > heartbeat_ms {
        "down"
    } else if silent > 2 * interval_ms + 30_000 {
        "late"
    } else {
        "connected"
    }
}

/// The agent version this release ships (agents older than it are outdated).
pub const CURRENT_AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether `version` is older than [`CURRENT_AGENT_VERSION`] (dotted numbers; anything
/// unreadable counts as outdated, so it gets looked at).
pub fn agent_outdated(version: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .map(|part| part.parse().ok())
            .collect()
    };
    match (parse(version), parse(CURRENT_AGENT_VERSION)) {
        (Some(have), Some(want)) => have < want,
        _ => true,
    }
}

pub fn device(d: &Device, now_ms: i64) -> Value {
    json!({
        "device_id": d.id,
        "client_id": d.placement.client,
        "site_id": d.placement.site,
        "hostname": d.hostname,
        "os": d.os,
        "agent_version": d.agent_version,
        "agent_outdated": agent_outdated(&d.agent_version),
        "status": d.status.as_str(),
        "connection": connection(d, now_ms),
        "tags": d.tags,
        "enrolled_ms": d.enrolled_ms,
        "last_seen_ms": (d.last_seen_ms > 0).then_some(d.last_seen_ms),
        "config": d.config,
        // What each of the agent's collectors last said (a missing tool, a permission).
        "collectors": d.collectors,
    })
}

/// A device's place in its tenant's dependency map.
pub fn dependencies(
    device: &vigie_domain::ids::DeviceId,
    map: &vigie_domain::dependency::DependencyMap,
) -> Value {
    json!({
        "device_id": device,
        "parent_id": map.parent(device),
        "children": map.children(device),
    })
}

/// The child alerts attached to an alert while its device was down.
pub fn suppressed_children(children: &[vigie_aws::dependencies::SuppressedAlert]) -> Value {
    let alerts: Vec<Value> = children
        .iter()
        .map(|c| json!({ "alert_id": c.alert_id, "device_id": c.device_id, "rule_id": c.rule_id, "at_ms": c.at_ms }))
        .collect();
    json!({ "count": alerts.len(), "alerts": alerts })
}

pub fn enrollment_token(t: &EnrollmentToken, now_ms: i64) -> Value {
    let state = if t.revoked {
        "revoked"
    } else if t.expires_ms <= now_ms {
        "expired"
    } else if t.uses >= t.max_uses {
        "used_up"
    } else {
        "active"
    };
    json!({
        "token_id": t.id,
        "client_id": t.placement.client,
        "site_id": t.placement.site,
        "label": t.label,
        "tags": t.tags,
        "created_ms": t.created_ms,
        "expires_ms": t.expires_ms,
        "max_uses": t.max_uses,
        "uses": t.uses,
        "state": state,
    })
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KindView<'a> {
    Webhook { url: String, has_secret: bool },
    Slack { webhook_url: String },
    Teams { webhook_url: String },
    Email { to: &'a [String], from: &'a str },
}

/// Incoming-webhook URLs are credentials: shown as scheme, host and their last four characters.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let tail: String = url
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{scheme}://{host}/…{tail}")
}

pub fn channel(c: &NotificationChannel) -> Value {
    let kind = match &c.kind {
        ChannelKind::Webhook { url, .. } => KindView::Webhook {
            url: redact_url(url),
            has_secret: true,
        },
        ChannelKind::Slack { webhook_url } => KindView::Slack {
            webhook_url: redact_url(webhook_url),
        },
        ChannelKind::Teams { webhook_url } => KindView::Teams {
            webhook_url: redact_url(webhook_url),
        },
        ChannelKind::Email { to, from } => KindView::Email { to, from },
    };
    json!({ "channel_id": c.id, "name": c.name, "kind": kind, "filter": c.filter, "group_wait_s": c.group_wait_s })
}

/// An alert: the evaluator's record with the human side of its current episode.
pub fn alert(record: &Value, work: &vigie_domain::workflow::AlertWork) -> Value {
    let mut view = record.clone();
    let measured_resolved = record["status"] == "resolved";
    view["status"] = json!(work.status(measured_resolved));
    if record["status"] == "suppressed" {
        // Held back by a maintenance window: known, never raised (see the evaluator).
        view["status"] = json!("suppressed");
    }
    view["acknowledged"] = json!(work.acknowledged);
    view["assignee"] = json!(work.assignee);
    view["assigned"] = json!(work.assigned);
    view["resolved_by_hand"] = json!(work.resolved);
    view["comments"] = json!(work.comments);
    // The escalation running on the episode, if any (absent otherwise, so older clients see
    // the same alert as before).
    if let Some(e) = &work.escalation {
        view["escalation"] = crate::escalation::escalation_view(e);
    }
    // Sev 1 / 2 / 3 next to the severity's name (records stored before it carry none).
    if let Ok(severity) =
        serde_json::from_value::<vigie_domain::alert::Severity>(record["severity"].clone())
    {
        view["sev"] = json!(severity.sev_level());
    }
    view
}

pub fn policy(p: &vigie_domain::policy::Policy) -> Value {
    json!({ "scope": p.scope.key(), "rules": p.rules })
}

/// A built-in template: what it is for and its rules with their defaults (the rules as a
/// policy holds them, so an MSP sees exactly what applying it writes).
pub fn template(t: &vigie_domain::templates::Template) -> Value {
    json!({
        "template_id": t.id,
        "version": t.version,
        "family": t.family,
        "title": t.title,
        "description": t.description,
        "rules": t.rules,
    })
}

pub fn effective_policy(d: &Device, e: &vigie_domain::policy::EffectivePolicy) -> Value {
    let rules: Vec<Value> = e
        .rules
        .iter()
        .map(|(rule, scope)| json!({ "rule": rule, "from": scope.key() }))
        .collect();
    json!({ "device_id": d.id, "rules": rules })
}

pub fn api_key(k: &vigie_auth::ApiKeyRecord) -> Value {
    json!({
        "key_id": k.key_id.as_str(),
        "name": k.name,
        "role": k.role.as_str(),
        "created_ms": k.created_ms,
        "revoked_ms": k.revoked_ms,
        "last_used_ms": k.last_used_ms,
    })
}

pub fn user(u: &vigie_auth::UserRecord) -> Value {
    json!({
        "user_id": u.user_id,
        "email": u.email,
        "issuer": u.issuer,
        "subject": u.subject,
        "role": u.membership.role.as_str(),
        "client_id": u.membership.client_id,
        "clients": u.membership.clients,
        "created_ms": u.created_ms,
        "invited_by": u.invited_by,
        "removed_ms": u.removed_ms,
    })
}

pub fn invitation(i: &vigie_auth::Invitation, now_ms: i64) -> Value {
    let state = if i.revoked_ms.is_some() {
        "revoked"
    } else if i.accepted_by.is_some() {
        "accepted"
    } else if i.expires_ms <= now_ms {
        "expired"
    } else {
        "pending"
    };
    json!({
        "invitation_id": i.invitation_id,
        "email": i.email,
        "role": i.membership.role.as_str(),
        "client_id": i.membership.client_id,
        "clients": i.membership.clients,
        "created_ms": i.created_ms,
        "expires_ms": i.expires_ms,
        "invited_by": i.invited_by,
        "state": state,
    })
}

/// A maintenance window as the API shows it: the stored document.
pub fn window(w: &vigie_calendar::MaintenanceWindow) -> Value {
    json!({
        "window_id": w.id,
        "name": w.name,
        "scope": w.scope,
        "time_zone": w.time_zone,
        "schedule": w.schedule,
        "suppress": w.suppress,
    })
}

// ---- Incidents ---------------------------------------------------------------------------

fn seconds(ms: Option<i64>) -> Value {
    json!(ms.map(|ms| ms as f64 / 1000.0))
}

/// What everyone allowed to see an incident reads about it: no people, no alerts' details.
fn incident_common(i: &vigie_domain::incident::Incident) -> Value {
    json!({
        "incident_id": i.incident_id,
        "title": i.title,
        "sev": i.sev,
        "status": i.status,
        "client_id": i.client_id,
        "opened_ms": i.opened_ms,
        "resolved_ms": i.resolved.as_ref().map(|r| r.at_ms),
        "time_to_acknowledge_s": seconds(i.time_to_acknowledge_ms()),
        "duration_s": seconds(i.duration_ms()),
        "alert_count": i.alerts.len(),
    })
}

/// An incident in a list: MSP staff also see who holds its roles.
pub fn incident_summary(i: &vigie_domain::incident::Incident, staff: bool) -> Value {
    let mut view = incident_common(i);
    if staff {
        view["roles"] = json!(i.roles);
    }
    view
}

/// A whole incident. MSP staff see everything; a client company's viewer sees the external
/// status messages only — no timeline (internal actions, comments), no internal messages, no
/// roles, no alerts' devices, no authors.
pub fn incident(i: &vigie_domain::incident::Incident, staff: bool) -> Value {
    use vigie_domain::incident::Audience;
    let mut view = incident_common(i);
    if staff {
        view["opened_by"] = json!(i.opened_by);
        view["acknowledged"] = json!(i.acknowledged);
        view["resolved"] = json!(i.resolved);
        view["alerts"] = json!(i.alerts);
        view["roles"] = json!(i.roles);
        view["timeline"] = json!(i.timeline);
        view["status_messages"] = json!(i.status_messages);
        view["version"] = json!(i.version);
    } else {
        let external: Vec<Value> = i
            .status_messages
            .iter()
            .filter(|m| m.audience == Audience::External)
            .map(|m| json!({ "at_ms": m.at_ms, "audience": m.audience, "template": m.template, "text": m.text }))
            .collect();
        view["status_messages"] = json!(external);
    }
    view
}

/// A built-in status message template with the fields a caller gives for each wording.
pub fn incident_message_template(t: &vigie_domain::incident::MessageTemplate) -> Value {
    use vigie_domain::incident::{AUTOMATIC_FIELDS, caller_fields};
    json!({
        "template_id": t.id,
        "name": t.name,
        "internal": t.internal,
        "external": t.external,
        "internal_fields": caller_fields(t.internal),
        "external_fields": caller_fields(t.external),
        "automatic_fields": AUTOMATIC_FIELDS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_agents_are_outdated() {
        assert!(!agent_outdated(CURRENT_AGENT_VERSION));
        assert!(agent_outdated("0.0.9"));
        assert!(agent_outdated("garbage"));
        assert!(!agent_outdated("99.0.0"));
        assert!(!agent_outdated(&format!("v{CURRENT_AGENT_VERSION}")));
    }

    #[test]
    fn webhook_urls_are_redacted() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secretpart"),
            "https://hooks.slack.com/…part"
        );
    }
}
