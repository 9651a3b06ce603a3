//! The OpenAPI 3.1 document, generated from the route table and the schemas below. It is
//! served at `/openapi.json` and checked in at `functions/api/openapi.json`; a test fails when
//! the two differ, so a route cannot change without its document.

use serde_json::{Map, Value, json};

use crate::routes::{ROUTES, Realm};

/// An id (`vigie_domain::ids`): 1 to 64 of a-z, 0-9, '-', '_', starting with a letter or digit.
fn id_schema() -> Value {
    json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$" })
}

/// A name as the handlers take it: 1 to `max` characters, not only white space.
fn name_schema(max: u32) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S" })
}

pub(crate) fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
            "next_cursor": { "type": ["string", "null"] }
        }
    })
}

/// Tags as `vigie_domain::device::validate_tags` accepts them.
fn tags_schema() -> Value {
    json!({
        "type": "object", "maxProperties": 20,
        "propertyNames": { "pattern": "^[a-z0-9._-]{1,64}$" },
        "additionalProperties": { "type": "string", "minLength": 1, "maxLength": 128,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$" }
    })
}

/// `vigie_domain::policy::Metric` on the wire: the metric series first (the ones a rate rule
/// can measure), then the values read from findings.
const METRICS: [&str; 19] = [
    "cpu_total_pct",
    "cpu_iowait_pct",
    "memory_used_pct",
    "load1",
    "filesystem_used_pct",
    "filesystem_inodes_used_pct",
    "disk_busy_pct",
    "network_utilisation_pct",
    "temperature_celsius",
    "backup_age_h",
    "certificate_days_left",
    "updates_pending",
    "updates_security_pending",
    "updates_security_pending_days",
    "updates_manual_pending",
    "antivirus_signature_age_h",
    "smart_reallocated_sectors",
    "smart_pending_sectors",
    "account_password_age_days",
];

/// How many of [`METRICS`] are series (the rest are read from findings).
const SERIES_METRICS: usize = 9;

/// `vigie_domain::checks::InventoryCondition` on the wire.
const INVENTORY_CONDITIONS: [&str; 4] = [
    "security_pending_days",
    "security_pending",
    "manual_pending",
    "reboot_required_days",
];

/// The rule schemas: `Rule` is the kind-less threshold form (how policies were written before
/// kinds existed, and how threshold rules are still written back) or a rule naming its `kind`,
/// one schema per kind with `kind` as the discriminator. Bounds are the ones
/// `vigie_domain::checks::Check::validate` enforces; the handler refuses the rest (levels out
/// of order, duplicate ids) with 422 and the reason.
#[rustfmt::skip]
fn rule_schemas(s: &mut Map<String, Value>, id: &Value, family: &Value) {
    let severity = json!({ "enum": ["info", "warning", "critical"] });
    // A subject or list entry: 1 to 256 bytes (as many characters when they are ASCII).
    let item = json!({ "type": "string", "minLength": 1, "maxLength": 256 });
    let subject = json!({ "type": ["string", "null"], "minLength": 1, "maxLength": 256 });
    let list = json!({ "type": "array", "maxItems": 200, "items": item });
    let day_s = json!({ "type": "integer", "minimum": 0, "maximum": 86_400 });
    let u32_ = json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX });
    let positive = json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX });
    let number = json!({ "type": "number" });
    let maybe_number = json!({ "type": ["number", "null"] });
    let findings: Vec<&str> = vigie_domain::telemetry::FindingKind::ALL
        .iter()
        .map(|f| f.as_str())
        .collect();
    let events: Vec<&str> = vigie_domain::telemetry::EventKind::ALL
        .iter()
        .map(|e| e.as_str())
        .collect();
    let event = json!({ "enum": events });
    let level = json!({ "type": "object", "required": ["threshold"], "additionalProperties": false,
        "properties": { "threshold": number, "for_s": day_s } });
    let maybe_level = json!({ "anyOf": [level, { "type": "null" }] });
    let backups = json!({ "type": "array", "maxItems": 200,
        "items": { "$ref": "#/components/schemas/BackupSource" } });
    // Only a job's name is checked by the domain (1 to 256 bytes); paths, repositories and
    // hosts are taken as given (an empty one is refused by nothing yet: documented as is).
    let job = item.clone();
    let given = json!({ "type": "string" });
    s.insert("BackupSource".into(), json!({ "oneOf": [
        { "type": "object", "required": ["source", "job", "path"], "additionalProperties": false,
          "properties": { "source": { "const": "status_file" }, "job": job, "path": given } },
        { "type": "object", "required": ["source", "job", "argv"], "additionalProperties": false,
          "properties": { "source": { "const": "command" }, "job": job,
            "argv": { "type": "array", "items": given }, "every_s": u32_ } },
        { "type": "object", "required": ["source", "job", "repository"], "additionalProperties": false,
          "properties": { "source": { "const": "restic" }, "job": job, "repository": given,
            "password_file": { "type": ["string", "null"] } } },
        { "type": "object", "required": ["source", "job", "repository"], "additionalProperties": false,
          "properties": { "source": { "const": "borg" }, "job": job, "repository": given } },
        { "type": "object", "required": ["source", "job"], "additionalProperties": false,
          "properties": { "source": { "const": "veeam" }, "job": job } }
    ] }));
    s.insert("CertificateTarget".into(), json!({ "oneOf": [
        { "type": "object", "required": ["source", "host", "port"], "additionalProperties": false,
          "properties": { "source": { "const": "endpoint" }, "host": given,
            "port": { "type": "integer", "minimum": 0, "maximum": 65_535 },
            "sni": { "type": ["string", "null"] } } },
        { "type": "object", "required": ["source", "path"], "additionalProperties": false,
          "properties": { "source": { "const": "file" }, "path": given } }
    ] }));
    // Per kind: its schema's name, its fields, the required ones and which levels it needs.
    struct Kind {
        kind: &'static str,
        name: &'static str,
        fields: Value,
        required: &'static [&'static str],
        any_of: Option<Value>,
    }
    let levels = Some(json!([ { "required": ["warning"] }, { "required": ["critical"] } ]));
    let hours = Some(json!([ { "required": ["warning_h"] }, { "required": ["critical_h"] } ]));
    let threshold = json!({ "metric": { "enum": METRICS }, "subject": subject,
        "direction": { "enum": ["above", "below"] },
        "warning": maybe_level, "critical": maybe_level,
        "hysteresis": { "type": "number", "minimum": 0 }, "max_gap_s": u32_ });
    let kinds = [
        Kind { kind: "threshold", name: "ThresholdKindRule", fields: threshold.clone(),
            required: &["metric", "direction"], any_of: levels.clone() },
        Kind { kind: "rate", name: "RateRule",
            fields: json!({ "metric": { "enum": &METRICS[..SERIES_METRICS] },
                "subject": subject, "limit": number,
                "window_s": { "type": "integer", "minimum": 300, "maximum": 604_800 },
                "warning_h": maybe_number, "critical_h": maybe_number, "for_s": day_s }),
            required: &["metric", "limit"], any_of: hours.clone() },
        Kind { kind: "state", name: "StateRule",
            fields: json!({ "finding": { "enum": findings },
                "states": { "type": "object", "minProperties": 1,
                    "propertyNames": { "minLength": 1, "maxLength": 256 },
                    "additionalProperties": severity },
                "subjects": { "anyOf": [list, { "type": "null" }] }, "for_s": day_s,
                "sources": backups }),
            required: &["finding", "states"], any_of: None },
        Kind { kind: "absence", name: "AbsenceRule",
            fields: json!({ "subject": subject, "warning_h": maybe_number,
                "critical_h": maybe_number, "sources": backups }),
            required: &[], any_of: hours },
        Kind { kind: "expiry", name: "ExpiryRule",
            fields: json!({ "subject": subject,
                "reminders": { "type": "array", "minItems": 1, "maxItems": 8, "items": {
                    "type": "object", "required": ["days", "severity"], "additionalProperties": false,
                    "properties": { "days": { "type": "number", "minimum": 0 }, "severity": severity } } },
                "targets": { "type": "array", "maxItems": 200,
                    "items": { "$ref": "#/components/schemas/CertificateTarget" } } }),
            required: &["reminders"], any_of: None },
        Kind { kind: "count", name: "CountRule",
            fields: json!({ "event": event, "per": { "enum": ["source", "subject"] },
                "at_least": positive,
                "window_s": { "type": "integer", "minimum": 1, "maximum": 86_400 },
                "clear_after_s": positive, "severity": severity, "users": list }),
            required: &["event", "per", "at_least", "window_s", "clear_after_s"], any_of: None },
        Kind { kind: "event", name: "EventRule",
            fields: json!({ "events": { "type": "array", "minItems": 1, "items": event },
                "users": list, "severity": severity, "clear_after_s": positive }),
            required: &["events", "clear_after_s"], any_of: None },
        Kind { kind: "inventory", name: "InventoryRule",
            fields: json!({ "condition": { "enum": INVENTORY_CONDITIONS },
                "warning": maybe_number, "critical": maybe_number }),
            required: &["condition"], any_of: levels.clone() },
    ];
    let rule = |kind: Option<&str>, fields: &Value, required: &[&str], any_of: &Option<Value>| {
        let mut properties = json!({ "id": id, "family": family, "enabled": { "type": "boolean" } });
        let mut all_required = vec!["id", "family"];
        if let Some(kind) = kind {
            properties["kind"] = json!({ "const": kind });
            all_required.push("kind");
        }
        for (k, v) in fields.as_object().into_iter().flatten() {
            properties[k] = v.clone();
        }
        all_required.extend(required);
        let mut schema = json!({ "type": "object", "required": all_required,
            "additionalProperties": false, "properties": properties });
        if let Some(any_of) = any_of {
            schema["anyOf"] = any_of.clone();
        }
        schema
    };
    s.insert("ThresholdRule".into(), rule(None, &threshold, &["metric", "direction"], &levels));
    let mut mapping = Map::new();
    let mut one_of = Vec::new();
    for k in &kinds {
        s.insert(k.name.into(), rule(Some(k.kind), &k.fields, k.required, &k.any_of));
        let reference = format!("#/components/schemas/{}", k.name);
        mapping.insert(k.kind.into(), json!(reference));
        one_of.push(json!({ "$ref": reference }));
    }
    s.insert("KindedRule".into(), json!({ "type": "object", "required": ["kind"],
        "oneOf": one_of, "discriminator": { "propertyName": "kind", "mapping": mapping } }));
    s.insert("Rule".into(), json!({
        "description": "A policy rule: a kind-less threshold rule, or a rule naming its kind.",
        "oneOf": [ { "$ref": "#/components/schemas/ThresholdRule" },
            { "$ref": "#/components/schemas/KindedRule" } ] }));
}

/// Every schema a route names.
#[rustfmt::skip]
fn schemas() -> Map<String, Value> {
    let id = id_schema();
    let family: Vec<&str> = vigie_domain::alert::AlertFamily::ALL
        .iter()
        .map(|f| f.as_str())
        .collect();
    let family = json!({ "enum": family });
    let ms = json!({ "type": "integer" });
    let text = json!({ "type": "string" });
    let mut s = Map::new();
    s.insert(
        "Error".into(),
        json!({
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"],
                "properties": { "code": text, "message": text } } }
        }),
    );
    s.insert("Me".into(), json!({
        "type": "object", "required": ["subject", "role", "tenant_id", "client_id", "clients"],
        "properties": {
            "subject": text,
            "role": { "enum": ["platform_operator", "msp_admin", "technician", "client_viewer", "accounting"] },
            "tenant_id": { "type": ["string", "null"] },
            "client_id": { "type": ["string", "null"] },
            "clients": { "type": "array", "items": text }
        }
    }));
    s.insert("Tenant".into(), json!({
        "type": "object",
        "required": ["tenant_id", "name", "created_ms", "plan", "max_devices", "suspended_ms"],
        "properties": { "tenant_id": id, "name": text, "created_ms": ms, "plan": text,
            "max_devices": ms, "suspended_ms": { "type": ["integer", "null"] } }
    }));
    s.insert("NewTenant".into(), json!({
        "type": "object", "required": ["tenant_id", "name"], "additionalProperties": false,
        "properties": { "tenant_id": id, "name": name_schema(200),
            "plan": { "type": "string", "minLength": 1, "maxLength": 200 },
            "max_devices": { "type": "integer", "minimum": 1, "maximum": 1_000_000 } }
    }));
    s.insert("DeviceMove".into(), json!({
        "type": "object", "required": ["client_id", "site_id"], "additionalProperties": false,
        "properties": { "client_id": id, "site_id": id }
    }));
    s.insert("DeviceTags".into(), json!({
        "type": "object", "required": ["tags"], "additionalProperties": false,
        "properties": { "tags": { "type": "object", "maxProperties": 20,
            "propertyNames": { "pattern": "^[a-z0-9_.-]{1,64}$" },
            "additionalProperties": { "type": "string", "minLength": 1, "maxLength": 128 } } }
    }));
    s.insert("DeviceParent".into(), json!({
        "type": "object", "required": ["parent_id"], "additionalProperties": false,
        "properties": { "parent_id": text }
    }));
    s.insert("DeviceDependencies".into(), json!({
        "type": "object", "required": ["device_id", "parent_id", "children"],
        "properties": { "device_id": text, "parent_id": { "type": ["string", "null"] },
            "children": { "type": "array", "items": text } }
    }));
    s.insert("TestResult".into(), json!({
        "type": "object", "required": ["delivered", "response_code", "detail"],
        "properties": { "delivered": { "type": "boolean" },
            "response_code": { "type": ["integer", "null"] }, "detail": text }
    }));
    s.insert("TenantPage".into(), page_of("Tenant"));
    s.insert("SitePage".into(), page_of("Site"));
    s.insert(
        "Client".into(),
        json!({
            "type": "object", "required": ["client_id", "name", "created_ms"],
            "properties": { "client_id": id, "name": text, "created_ms": ms }
        }),
    );
    s.insert(
        "NewClient".into(),
        json!({
            "type": "object", "required": ["client_id", "name"], "additionalProperties": false,
            "properties": { "client_id": id, "name": name_schema(200) }
        }),
    );
    s.insert("ClientPage".into(), page_of("Client"));
    s.insert("Site".into(), json!({
        "type": "object", "required": ["client_id", "site_id", "name", "time_zone", "created_ms"],
        "properties": { "client_id": id, "site_id": id, "name": text, "time_zone": text, "created_ms": ms }
    }));
    s.insert(
        "NewSite".into(),
        json!({
            "type": "object", "required": ["site_id", "name"], "additionalProperties": false,
            "properties": { "site_id": id, "name": name_schema(200),
                "time_zone": text }
        }),
    );
    s.insert("Device".into(), json!({
        "type": "object",
        "required": ["device_id", "client_id", "site_id", "hostname", "os", "agent_version",
            "status", "connection", "tags", "enrolled_ms", "last_seen_ms", "config"],
        "properties": {
            "device_id": text, "client_id": id, "site_id": id, "hostname": text, "os": text,
            "agent_version": text, "agent_outdated": { "type": "boolean" }, "status": { "enum": ["active", "revoked"] },
            "connection": { "enum": ["connected", "late", "down", "never_seen", "revoked"] },
            "tags": tags_schema(), "enrolled_ms": ms, "last_seen_ms": { "type": ["integer", "null"] },
            "config": { "type": "object" },
            "parent_id": { "type": ["string", "null"] },
            "children": { "type": "array", "items": text },
            "collectors": { "type": "array", "items": {
                "type": "object", "required": ["collector", "state", "at_ms"],
                "properties": {
                    "collector": text,
                    "state": { "enum": ["ok", "missing_tool", "no_permission", "not_applicable", "error"] },
                    "detail": text, "at_ms": ms
                }
            } }
        }
    }));
    s.insert("DevicePage".into(), page_of("Device"));
    s.insert("EnrollmentToken".into(), json!({
        "type": "object",
        "required": ["token_id", "client_id", "site_id", "label", "tags", "created_ms",
            "expires_ms", "max_uses", "uses", "state"],
        "properties": {
            "token_id": text, "client_id": id, "site_id": id, "label": text, "tags": tags_schema(),
            "created_ms": ms, "expires_ms": ms, "max_uses": ms, "uses": ms,
            "state": { "enum": ["active", "expired", "used_up", "revoked"] }
        }
    }));
    s.insert(
        "CreatedEnrollmentToken".into(),
        json!({
            "allOf": [ { "$ref": "#/components/schemas/EnrollmentToken" },
                { "type": "object", "required": ["token"], "properties": { "token": text } } ]
        }),
    );
    s.insert(
        "NewEnrollmentToken".into(),
        json!({
            "type": "object", "required": ["client_id", "site_id"], "additionalProperties": false,
            "properties": {
                "client_id": id, "site_id": id,
                "expires_in_s": { "type": "integer", "minimum": 60, "maximum": 7_776_000 },
                "max_uses": { "type": "integer", "minimum": 1, "maximum": 10_000 },
                "label": text, "tags": tags_schema()
            }
        }),
    );
    s.insert("EnrollmentTokenPage".into(), page_of("EnrollmentToken"));
    let filter = json!({
        "type": "object", "required": ["min_severity"],
        "properties": {
            "min_severity": { "enum": ["info", "warning", "critical"] },
            "clients": { "type": "array", "items": id },
            "sites": { "type": "array", "items": id },
            "families": { "type": "array", "items": family }
        }
    });
    s.insert(
        "Channel".into(),
        json!({
            "type": "object", "required": ["channel_id", "name", "kind", "filter"],
            "properties": { "channel_id": id, "name": text,
                "kind": { "type": "object", "required": ["type"],
                    "properties": { "type": { "enum": ["webhook", "slack", "teams", "email"] } } },
                "filter": filter,
                "group_wait_s": { "type": "integer", "minimum": 0, "maximum": 900 } }
        }),
    );
    // As `NotificationChannel::validate` checks them: https, or http to this machine only.
    let url = json!({ "type": "string",
        "pattern": "^(https://[^\\s/?#@:][^\\s/?#@]*|http://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]+)?)([/?#]\\S*)?$" });
    let email =
        json!({ "type": "string", "pattern": "^[^@\\s,<]+@[^.\\s,<][^.\\s,<]*\\.[^\\s,<]*$" });
    s.insert("ChannelInput".into(), json!({
        "type": "object", "required": ["name", "kind"], "additionalProperties": false,
        "properties": { "name": { "type": "string", "minLength": 1, "pattern": "\\S" },
            "group_wait_s": { "type": "integer", "minimum": 0, "maximum": 900 },
            "kind": { "oneOf": [
                { "type": "object", "required": ["type", "url", "secret"], "additionalProperties": false,
                  "properties": { "type": { "const": "webhook" }, "url": url, "secret": { "type": "string", "minLength": 16 } } },
                { "type": "object", "required": ["type", "webhook_url"], "additionalProperties": false,
                  "properties": { "type": { "enum": ["slack", "teams"] }, "webhook_url": url } },
                { "type": "object", "required": ["type", "to", "from"], "additionalProperties": false,
                  "properties": { "type": { "const": "email" }, "to": { "type": "array", "items": email, "minItems": 1 }, "from": email } }
            ] },
            "filter": filter }
    }));
    s.insert("ChannelPage".into(), page_of("Channel"));
    let stamp = json!({ "type": ["object", "null"], "required": ["by", "at_ms"],
        "properties": { "by": text, "at_ms": ms } });
    s.insert(
        "Alert".into(),
        json!({
            "type": "object",
            "required": ["alert_id", "status", "severity", "tenant_id", "client_id", "site_id",
                "device_id", "family", "opened_ms", "acknowledged", "assignee", "assigned",
                "resolved_by_hand", "comments"],
            "properties": {
                "alert_id": text,
                "status": { "enum": ["open", "acknowledged", "resolved", "suppressed"] },
                "severity": { "enum": ["info", "warning", "critical"] },
                "sev": { "enum": [1, 2, 3] },
                "suppressed_children": { "type": "object", "required": ["count", "alerts"],
                    "properties": { "count": ms, "alerts": { "type": "array", "items": { "type": "object" } } } },
                "tenant_id": id, "client_id": id, "site_id": id, "device_id": text,
                "device_name": text, "rule_id": text, "family": text, "subject": text,
                "metric": text, "value": { "type": "number" }, "threshold": { "type": "number" },
                "detail": { "type": ["string", "null"] },
                "opened_ms": ms, "updated_ms": ms, "resolved_ms": { "type": ["integer", "null"] },
                "acknowledged": stamp, "assignee": { "type": ["string", "null"] },
                "assigned": stamp, "resolved_by_hand": stamp,
                "comments": { "type": "array", "items": { "type": "object",
                    "required": ["by", "at_ms", "text"],
                    "properties": { "by": text, "at_ms": ms, "text": text } } },
                "escalation": { "$ref": "#/components/schemas/AlertEscalation" }
            }
        }),
    );
    s.insert("AlertPage".into(), page_of("Alert"));
    s.insert("Assignment".into(), json!({
        "type": "object", "required": ["assignee"], "additionalProperties": false,
        "properties": { "assignee": { "type": ["string", "null"], "minLength": 1, "maxLength": 200, "pattern": "\\S" } }
    }));
    s.insert(
        "NewComment".into(),
        json!({
            "type": "object", "required": ["text"], "additionalProperties": false,
            "properties": { "text": name_schema(4000) }
        }),
    );
    rule_schemas(&mut s, &id, &family);
    let rules = json!({ "type": "array", "maxItems": 200,
        "items": { "$ref": "#/components/schemas/Rule" } });
    s.insert(
        "Policy".into(),
        json!({
            "type": "object", "required": ["scope", "rules"],
            "properties": { "scope": text, "rules": rules }
        }),
    );
    s.insert(
        "PolicyInput".into(),
        json!({
            "type": "object", "required": ["rules"], "additionalProperties": false,
            "properties": { "rules": rules }
        }),
    );
    s.insert("PolicyPage".into(), page_of("Policy"));
    s.insert("Template".into(), json!({
        "type": "object",
        "required": ["template_id", "version", "family", "title", "description", "rules"],
        "properties": { "template_id": id, "version": { "type": "integer", "minimum": 1 },
            "family": family, "title": text, "description": text, "rules": rules }
    }));
    s.insert("TemplatePage".into(), page_of("Template"));
    // Per rule (its short name, `disk`, or full id): fields merged over the rule's defaults.
    s.insert("TemplateApplication".into(), json!({
        "type": "object", "additionalProperties": false,
        "properties": { "overrides": { "type": "object",
            "additionalProperties": { "type": "object" } } }
    }));
    let template_ref = json!({ "type": "object", "required": ["template", "version"],
        "properties": { "template": id, "version": { "type": "integer", "minimum": 1 } } });
    s.insert("AppliedTemplate".into(), json!({
        "allOf": [ { "$ref": "#/components/schemas/Policy" },
            { "type": "object", "required": ["applied"], "properties": { "applied": template_ref } } ]
    }));
    s.insert("RemovedTemplate".into(), json!({
        "allOf": [ { "$ref": "#/components/schemas/Policy" },
            { "type": "object", "required": ["removed"], "properties": { "removed": {
                "type": "object", "required": ["template", "rules"],
                "properties": { "template": id, "rules": { "type": "integer", "minimum": 1 } } } } } ]
    }));
    // Maintenance windows as `vigie_calendar::MaintenanceWindow` reads them; the handler
    // validates the rest (zone, dates, durations) with stable error codes.
    let weekday = json!({ "enum": ["monday", "tuesday", "wednesday", "thursday", "friday",
        "saturday", "sunday"] });
    let date = json!({ "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" });
    let time = json!({ "type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$" });
    let datetime = json!({ "type": "string",
        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$" });
    let scope = json!({ "type": "object", "required": ["level"], "properties": {
        "level": { "enum": ["tenant", "tag", "client", "site", "device"] },
        "key": text, "value": text, "client": id, "site": id, "device": text } });
    let window_body = json!({
        "name": { "type": "string", "minLength": 1, "maxLength": 200 },
        "scope": scope,
        "time_zone": text,
        "schedule": { "oneOf": [
            { "type": "object", "required": ["type", "start", "end"], "additionalProperties": false,
              "properties": { "type": { "const": "once" }, "start": datetime, "end": datetime } },
            { "type": "object", "additionalProperties": false,
              "required": ["type", "rule", "start_time", "duration_minutes", "from_date"],
              "properties": { "type": { "const": "recurring" },
                "rule": { "type": "object", "required": ["repeat"], "properties": {
                    "repeat": { "enum": ["daily", "weekly", "monthly", "monthly_nth"] },
                    "days": { "type": "array", "items": weekday },
                    "day_of_month": { "type": "integer", "minimum": 1, "maximum": 31 },
                    "nth": { "enum": ["first", "second", "third", "fourth", "last"] },
                    "weekday": weekday } },
                "start_time": time,
                "duration_minutes": { "type": "integer", "minimum": 1, "maximum": 10_080 },
                "from_date": date, "until_date": date } } ] },
        "suppress": { "type": "object", "required": ["notifications", "alerts"],
            "properties": { "notifications": { "type": "boolean" }, "alerts": { "type": "boolean" },
                "families": { "type": "array", "items": family } } },
    });
    s.insert(
        "WindowInput".into(),
        json!({ "type": "object", "additionalProperties": false,
            "required": ["name", "scope", "time_zone", "schedule", "suppress"],
            "properties": window_body }),
    );
    let mut window = window_body.clone();
    window["window_id"] = id.clone();
    s.insert(
        "Window".into(),
        json!({ "type": "object",
            "required": ["window_id", "name", "scope", "time_zone", "schedule", "suppress"],
            "properties": window }),
    );
    s.insert("WindowPage".into(), page_of("Window"));
    s.insert(
        "WindowOccurrences".into(),
        json!({ "type": "object", "required": ["window_id", "time_zone", "from_ms", "to_ms", "items"],
            "properties": { "window_id": id, "time_zone": text, "from_ms": ms, "to_ms": ms,
                "items": { "type": "array", "items": { "type": "object",
                    "required": ["start_ms", "end_ms", "start_utc", "end_utc", "start_local", "end_local"],
                    "properties": { "start_ms": ms, "end_ms": ms, "start_utc": text,
                        "end_utc": text, "start_local": text, "end_local": text } } } } }),
    );
    // Business-hours calendars and on-call schedules as `vigie_calendar` reads them; the
    // handler validates the rest (zone, spans, layers) with stable error codes.
    let end_time = json!({ "type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$" });
    let open_hours = json!({ "type": "object", "additionalProperties": false,
        "required": ["days", "start", "end"],
        "properties": { "days": { "type": "array", "items": weekday }, "start": time, "end": end_time } });
    let holiday = json!({ "type": "object", "additionalProperties": false, "required": ["date", "name"],
        "properties": { "date": date, "name": text } });
    let calendar_body = json!({
        "name": { "type": "string", "minLength": 1, "maxLength": 200 },
        "time_zone": text,
        "scope": scope,
        "weekly": { "type": "array", "items": open_hours },
        "holidays": { "type": "array", "items": holiday },
        "exceptions": { "type": "array", "items": { "type": "object", "additionalProperties": false,
            "required": ["date"], "properties": { "date": date, "note": text,
                "hours": { "type": "array", "items": { "type": "object", "additionalProperties": false,
                    "required": ["start", "end"], "properties": { "start": time, "end": end_time } } } } } },
    });
    s.insert(
        "CalendarInput".into(),
        json!({ "type": "object", "additionalProperties": false,
            "required": ["name", "time_zone", "scope", "weekly"], "properties": calendar_body }),
    );
    let mut calendar = calendar_body.clone();
    calendar["calendar_id"] = id.clone();
    s.insert(
        "Calendar".into(),
        json!({ "type": "object",
            "required": ["calendar_id", "name", "time_zone", "scope", "weekly", "holidays", "exceptions"],
            "properties": calendar }),
    );
    s.insert("CalendarPage".into(), page_of("Calendar"));
    s.insert(
        "HolidayImport".into(),
        json!({ "type": "object", "additionalProperties": false,
            "description": "Either iCalendar text (RFC 5545: all-day VEVENTs, yearly RRULEs) or a list",
            "properties": { "ical": { "type": "string", "maxLength": 1_048_576 },
                "holidays": { "type": "array", "items": holiday } } }),
    );
    s.insert(
        "HolidaysImported".into(),
        json!({ "type": "object", "required": ["calendar", "added", "holidays"],
            "properties": { "calendar": { "$ref": "#/components/schemas/Calendar" },
                "added": { "type": "integer", "minimum": 0 },
                "holidays": { "type": "integer", "minimum": 0 } } }),
    );
    let maybe_ms = json!({ "type": ["integer", "null"] });
    let maybe_text = json!({ "type": ["string", "null"] });
    s.insert(
        "CalendarOpen".into(),
        json!({ "type": "object",
            "required": ["calendar_id", "time_zone", "at_ms", "at_utc", "local", "open", "next_open_ms", "next_close_ms"],
            "properties": { "calendar_id": id, "time_zone": text, "at_ms": ms, "at_utc": text,
                "local": text, "open": { "type": "boolean" },
                "next_open_ms": maybe_ms, "next_open_local": maybe_text,
                "next_close_ms": maybe_ms, "next_close_local": maybe_text } }),
    );
    let override_schema = json!({ "type": "object", "additionalProperties": false,
        "required": ["id", "user", "start_ms", "end_ms"],
        "properties": { "id": id, "user": text, "start_ms": ms, "end_ms": ms, "note": text } });
    let schedule_body = json!({
        "name": { "type": "string", "minLength": 1, "maxLength": 200 },
        "time_zone": text,
        "layers": { "type": "array", "minItems": 1, "maxItems": 10, "items": {
            "type": "object", "additionalProperties": false,
            "required": ["name", "participants", "rotation", "start"],
            "properties": { "name": text,
                "participants": { "type": "array", "minItems": 1, "maxItems": 50, "items": text },
                "rotation": { "type": "object", "additionalProperties": false, "required": ["type"],
                    "properties": { "type": { "enum": ["daily", "weekly", "custom"] },
                        "hours": { "type": "integer", "minimum": 1, "maximum": 2160 } } },
                "start": datetime,
                "active": { "type": "array", "items": open_hours } } } },
        "overrides": { "type": "array", "items": override_schema },
    });
    s.insert(
        "ScheduleInput".into(),
        json!({ "type": "object", "additionalProperties": false,
            "required": ["name", "time_zone", "layers"], "properties": schedule_body }),
    );
    let mut schedule = schedule_body.clone();
    schedule["schedule_id"] = id.clone();
    s.insert(
        "Schedule".into(),
        json!({ "type": "object",
            "required": ["schedule_id", "name", "time_zone", "layers", "overrides"],
            "properties": schedule }),
    );
    s.insert("SchedulePage".into(), page_of("Schedule"));
    s.insert(
        "OnCall".into(),
        json!({ "type": "object", "required": ["schedule_id", "time_zone", "at_ms", "at_utc", "at_local", "on_call"],
            "properties": { "schedule_id": id, "time_zone": text, "at_ms": ms, "at_utc": text,
                "at_local": text,
                "on_call": { "oneOf": [ { "type": "null" }, { "type": "object",
                    "required": ["user", "layer", "override_id", "since_ms", "until_ms", "since_utc",
                        "until_utc", "since_local", "until_local"],
                    "properties": { "user": text, "layer": maybe_text, "override_id": maybe_text,
                        "since_ms": ms, "until_ms": ms, "since_utc": text, "until_utc": text,
                        "since_local": text, "until_local": text } } ] } } }),
    );
    s.insert(
        "Shifts".into(),
        json!({ "type": "object", "required": ["schedule_id", "time_zone", "from_ms", "to_ms", "items"],
            "properties": { "schedule_id": id, "time_zone": text, "from_ms": ms, "to_ms": ms,
                "items": { "type": "array", "items": { "type": "object",
                    "required": ["user", "layer", "override_id", "start_ms", "end_ms", "start_local", "end_local"],
                    "properties": { "user": text, "layer": maybe_text, "override_id": maybe_text,
                        "start_ms": ms, "end_ms": ms, "start_local": text, "end_local": text } } } } }),
    );
    let body_instant = json!({ "oneOf": [ { "type": "integer" }, { "type": "string", "format": "date-time" } ] });
    s.insert(
        "NewOverride".into(),
        json!({ "type": "object", "additionalProperties": false, "required": ["user", "start", "end"],
            "properties": { "id": id, "user": text, "start": body_instant, "end": body_instant,
                "note": text } }),
    );
    s.insert(
        "OverrideAdded".into(),
        json!({ "type": "object", "required": ["schedule", "override"],
            "properties": { "schedule": { "$ref": "#/components/schemas/Schedule" },
                "override": override_schema } }),
    );
    s.insert(
        "EffectivePolicy".into(),
        json!({
            "type": "object", "required": ["device_id", "rules"],
            "properties": { "device_id": text, "rules": { "type": "array", "items": {
                "type": "object", "required": ["rule", "from"],
                "properties": { "rule": { "$ref": "#/components/schemas/Rule" }, "from": text } } } }
        }),
    );
    let count = json!({ "type": "integer", "minimum": 0 });
    s.insert(
        "Usage".into(),
        json!({
            "type": "object", "required": ["tenant_id", "month", "closed", "rows"],
            "properties": {
                "tenant_id": { "type": ["string", "null"] },
                "month": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$" },
                "closed": { "type": "boolean" },
                "rows": { "type": "array", "items": { "type": "object",
                    "required": ["tenant", "client", "period", "batches", "bytes", "device_days",
                        "alerts_opened", "notifications_webhook", "notifications_slack",
                        "notifications_teams", "notifications_email"],
                    "properties": {
                        "tenant": id, "client": text, "period": text,
                        "batches": count, "bytes": count, "device_days": count,
                        "alerts_opened": count, "notifications_webhook": count,
                        "notifications_slack": count, "notifications_teams": count,
                        "notifications_email": count
                    } } }
            }
        }),
    );
    s.insert("ApiKey".into(), json!({
        "type": "object", "required": ["key_id", "name", "role", "created_ms", "revoked_ms", "last_used_ms"],
        "properties": { "key_id": text, "name": text,
            "role": { "enum": ["accounting", "msp_admin"] }, "created_ms": ms,
            "revoked_ms": { "type": ["integer", "null"] },
            "last_used_ms": { "type": ["integer", "null"] } }
    }));
    s.insert(
        "CreatedApiKey".into(),
        json!({
            "allOf": [ { "$ref": "#/components/schemas/ApiKey" },
                { "type": "object", "required": ["key"], "properties": { "key": text } } ]
        }),
    );
    s.insert("ApiKeyPage".into(), page_of("ApiKey"));
    s.insert(
        "NewApiKey".into(),
        json!({
            "type": "object", "required": ["name"], "additionalProperties": false,
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 200 },
                "role": { "enum": ["accounting", "msp_admin"] } }
        }),
    );
    s.insert(
        "NewPlatformApiKey".into(),
        json!({
            "type": "object", "required": ["name"], "additionalProperties": false,
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 200 },
                "role": { "const": "accounting" } }
        }),
    );
    let role = json!({ "enum": ["platform_operator", "msp_admin", "technician", "client_viewer", "accounting"] });
    let member_role = json!({ "enum": ["msp_admin", "technician", "client_viewer", "accounting"] });
    s.insert("User".into(), json!({
        "type": "object",
        "required": ["user_id", "email", "issuer", "subject", "role", "client_id", "clients",
            "created_ms", "invited_by", "removed_ms"],
        "properties": { "user_id": text, "email": { "type": ["string", "null"] }, "issuer": text,
            "subject": text, "role": role, "client_id": { "type": ["string", "null"] },
            "clients": { "type": "array", "items": text }, "created_ms": ms, "invited_by": text,
            "removed_ms": { "type": ["integer", "null"] } }
    }));
    s.insert("UserPage".into(), page_of("User"));
    s.insert(
        "Membership".into(),
        json!({
            "type": "object", "required": ["role"], "additionalProperties": false,
            "properties": { "role": member_role, "client_id": id,
                "clients": { "type": "array", "items": id } }
        }),
    );
    s.insert("Invitation".into(), json!({
        "type": "object",
        "required": ["invitation_id", "email", "role", "client_id", "clients", "created_ms",
            "expires_ms", "invited_by", "state"],
        "properties": { "invitation_id": text, "email": text, "role": role,
            "client_id": { "type": ["string", "null"] }, "clients": { "type": "array", "items": text },
            "created_ms": ms, "expires_ms": ms, "invited_by": text,
            "state": { "enum": ["pending", "accepted", "expired", "revoked"] } }
    }));
    s.insert(
        "CreatedInvitation".into(),
        json!({
            "allOf": [ { "$ref": "#/components/schemas/Invitation" },
                { "type": "object", "required": ["code"], "properties": { "code": text } } ]
        }),
    );
    s.insert("InvitationPage".into(), page_of("Invitation"));
    s.insert(
        "NewInvitation".into(),
        json!({
            "type": "object", "required": ["email", "role"], "additionalProperties": false,
            "properties": { "email": { "type": "string", "format": "email" }, "role": member_role,
                "client_id": id, "clients": { "type": "array", "items": id },
                "expires_in_s": { "type": "integer", "minimum": 60, "maximum": 2_592_000 } }
        }),
    );
    s.insert(
        "InvitationAcceptance".into(),
        json!({
            "type": "object", "required": ["code"], "additionalProperties": false,
            "properties": { "code": text }
        }),
    );
    incident_schemas(&mut s);
    crate::escalation::schemas(&mut s);
    s
}

/// Incidents (`vigie_domain::incident`): bounds are the domain's; a client viewer's `Incident`
/// carries only the common fields and its external status messages.
#[rustfmt::skip]
fn incident_schemas(s: &mut Map<String, Value>) {
    use vigie_domain::incident::{IncidentStatus, MAX_ALERTS, MAX_FIELD_CHARS, MAX_PERSON_CHARS, MAX_TEXT_CHARS, MAX_TITLE_CHARS, TimelineAction};
    let ms = json!({ "type": "integer" });
    let maybe_ms = json!({ "type": ["integer", "null"] });
    let text = json!({ "type": "string" });
    let seconds = json!({ "type": ["number", "null"] });
    let sev = json!({ "enum": [1, 2, 3] });
    let statuses: Vec<&str> = IncidentStatus::ALL.iter().map(|s| s.as_str()).collect();
    let status = json!({ "enum": statuses });
    let audience = json!({ "enum": ["internal", "external"] });
    let person = json!({ "type": ["string", "null"], "minLength": 1, "maxLength": MAX_PERSON_CHARS, "pattern": "\\S" });
    let alert_ids = json!({ "type": "array", "maxItems": MAX_ALERTS,
        "items": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^#]+$" } });
    let stamp = json!({ "type": ["object", "null"], "required": ["by", "at_ms"],
        "properties": { "by": text, "at_ms": ms } });
    let roles = json!({ "type": "object",
        "required": ["incident_manager", "technical_lead", "communications_lead"],
        "properties": { "incident_manager": { "type": ["string", "null"] },
            "technical_lead": { "type": ["string", "null"] },
            "communications_lead": { "type": ["string", "null"] } } });
    let roles_input = json!({ "type": "object", "additionalProperties": false, "minProperties": 1,
        "properties": { "incident_manager": person, "technical_lead": person, "communications_lead": person } });
    s.insert("IncidentRoles".into(), roles_input.clone());
    s.insert("NewIncident".into(), json!({
        "type": "object", "required": ["title", "sev"], "additionalProperties": false,
        "properties": { "title": name_schema(MAX_TITLE_CHARS as u32), "sev": sev,
            "alert_ids": alert_ids,
            "roles": { "type": "object", "additionalProperties": false,
                "properties": roles_input["properties"].clone() } }
    }));
    let mut some_alerts = alert_ids.clone();
    some_alerts["minItems"] = json!(1);
    s.insert("IncidentAlerts".into(), json!({
        "type": "object", "required": ["alert_ids"], "additionalProperties": false,
        "properties": { "alert_ids": some_alerts }
    }));
    s.insert("IncidentSeverity".into(), json!({
        "type": "object", "required": ["sev"], "additionalProperties": false,
        "properties": { "sev": sev }
    }));
    s.insert("IncidentStatusChange".into(), json!({
        "type": "object", "required": ["status"], "additionalProperties": false,
        "properties": { "status": status }
    }));
    let template_ids: Vec<&str> = vigie_domain::incident::message_templates().iter().map(|t| t.id).collect();
    s.insert("NewStatusMessage".into(), json!({ "oneOf": [
        { "type": "object", "required": ["audience", "template"], "additionalProperties": false,
          "properties": { "audience": audience, "template": { "enum": template_ids },
            "fields": { "type": "object", "additionalProperties": { "type": "string",
                "minLength": 1, "maxLength": MAX_FIELD_CHARS, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$" } } } },
        { "type": "object", "required": ["audience", "text"], "additionalProperties": false,
          "properties": { "audience": audience, "text": name_schema(MAX_TEXT_CHARS as u32) } }
    ] }));
    let common = json!({
        "incident_id": text, "title": text, "sev": sev, "status": status,
        "client_id": { "type": ["string", "null"] }, "opened_ms": ms, "resolved_ms": maybe_ms,
        "time_to_acknowledge_s": seconds, "duration_s": seconds,
        "alert_count": { "type": "integer", "minimum": 0 },
    });
    let common_required = ["incident_id", "title", "sev", "status", "client_id", "opened_ms",
        "resolved_ms", "time_to_acknowledge_s", "duration_s", "alert_count"];
    let mut summary = common.clone();
    summary["roles"] = roles.clone();
    s.insert("IncidentSummary".into(), json!({ "type": "object", "required": common_required,
        "properties": summary }));
    s.insert("IncidentSummaryPage".into(), page_of("IncidentSummary"));
    let actions: Vec<Value> = [
        TimelineAction::Opened, TimelineAction::AlertAdded, TimelineAction::AlertRemoved,
        TimelineAction::RoleAssigned, TimelineAction::RoleCleared, TimelineAction::SeverityChanged,
        TimelineAction::StatusChanged, TimelineAction::Acknowledged,
        TimelineAction::StatusMessagePosted, TimelineAction::Commented, TimelineAction::Resolved,
    ].iter().map(|a| serde_json::to_value(a).unwrap_or(Value::Null)).collect();
    let mut full = common;
    full["opened_by"] = text.clone();
    full["acknowledged"] = stamp.clone();
    full["resolved"] = stamp;
    full["roles"] = roles;
    full["version"] = json!({ "type": "integer", "minimum": 1 });
    full["alerts"] = json!({ "type": "array", "items": { "type": "object",
        "required": ["alert_id", "opened_ms", "client_id", "added_ms", "added_by"],
        "properties": { "alert_id": text, "opened_ms": ms, "client_id": text, "added_ms": ms,
            "added_by": text } } });
    full["timeline"] = json!({ "type": "array", "items": { "type": "object",
        "required": ["at_ms", "by", "action", "text"],
        "properties": { "at_ms": ms, "by": text, "action": { "enum": actions }, "text": text } } });
    full["status_messages"] = json!({ "type": "array", "items": { "type": "object",
        "required": ["at_ms", "audience", "template", "text"],
        "properties": { "at_ms": ms, "by": text, "audience": audience,
            "template": { "type": ["string", "null"] }, "text": text } } });
    let mut required = common_required.to_vec();
    required.push("status_messages");
    s.insert("Incident".into(), json!({ "type": "object", "required": required, "properties": full }));
    let names = json!({ "type": "array", "items": text });
    s.insert("IncidentMessageTemplate".into(), json!({ "type": "object",
        "required": ["template_id", "name", "internal", "external", "internal_fields", "external_fields", "automatic_fields"],
        "properties": { "template_id": text, "name": text, "internal": text, "external": text,
            "internal_fields": names, "external_fields": names, "automatic_fields": names } }));
    s.insert("IncidentMessageTemplatePage".into(), page_of("IncidentMessageTemplate"));
    let durations = json!({ "type": "object", "required": ["count", "mean_s", "median_s"],
        "properties": { "count": { "type": "integer", "minimum": 0 }, "mean_s": seconds, "median_s": seconds } });
    let times = json!({ "type": "object", "required": ["sev", "incidents", "mtta", "mttr"],
        "properties": { "sev": { "enum": [1, 2, 3, null] }, "incidents": { "type": "integer", "minimum": 0 },
            "mtta": durations, "mttr": durations } });
    s.insert("ResponseTimes".into(), json!({ "type": "object",
        "required": ["from_ms", "to_ms", "client_id", "by_sev", "all"],
        "properties": { "from_ms": ms, "to_ms": ms, "client_id": { "type": ["string", "null"] },
            "by_sev": { "type": "array", "minItems": 3, "maxItems": 3, "items": times }, "all": times } }));
}

fn error_response(description: &str) -> Value {
    json!({ "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// Request bodies a route may omit (applying a template without overrides).
const OPTIONAL_BODIES: &[&str] = &["TemplateApplication"];

/// Operations that take an `Idempotency-Key` header.
const IDEMPOTENT: &[(&str, &str)] = &[("POST", "/v1/incidents")];

/// The query filters a summary names: `… (filters: a, b, c)` or `… (a=…; b=…)`.
fn filters(summary: &str) -> Vec<&str> {
    let Some(inner) = summary
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let inner = inner.strip_prefix("filters: ").unwrap_or(inner);
    inner
        .split([',', ';'])
        .map(|part| part.trim().split(['=', ' ']).next().unwrap_or_default())
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(route.summary.contains("List").then(|| {
                [
                    json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200 } }),
                    json!({ "name": "cursor", "in": "query", "schema": { "type": "string" } }),
                ]
            }).into_iter().flatten())
            .chain(filters(route.summary).into_iter().map(|name| {
                json!({ "name": name, "in": "query", "schema": { "type": "string" } })
            }))
            .chain(IDEMPOTENT.contains(&(route.method, route.path)).then(|| {
                json!({ "name": "idempotency-key", "in": "header", "schema": { "type": "string",
                    "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$" },
                    "description": "Names the request: a retry with the same key (from the same caller, within a day) answers what the first one created, with `idempotent-replayed: true`" })
            }))
            .collect();
        let mut responses = Map::new();
        let mut content = json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{}", route.response) } } });
        if route.response == "Usage" {
            content["text/csv"] = json!({ "schema": { "type": "string" } });
        }
        responses.insert(
            route.success.to_string(),
            json!({ "description": "success", "content": content }),
        );
        responses.insert("401".into(), error_response("no valid credential"));
        responses.insert(
            "403".into(),
            error_response("the caller's role may not do this"),
        );
        responses.insert(
            "404".into(),
            error_response("no such object (or not the caller's)"),
        );
        responses.insert("422".into(), error_response("invalid input"));
        responses.insert("503".into(), error_response("temporarily unavailable"));
        if route.method != "GET" {
            responses.insert("409".into(), error_response("conflict"));
        }
        let roles: Vec<&str> = route.roles.iter().map(|r| r.as_str()).collect();
        let mut operation = json!({
            "operationId": format!("{:?}", route.operation),
            "summary": route.summary,
            "description": format!("Roles: {}.", roles.join(", ")),
            "x-vigie-roles": roles,
            "x-vigie-realm": match route.realm { Realm::Platform => "platform", Realm::Tenant => "tenant", Realm::Caller => "caller", Realm::Identity => "identity" },
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(request) = route.request {
            operation["requestBody"] = json!({ "required": !OPTIONAL_BODIES.contains(&request),
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{request}") } } } });
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigie tenant API",
            "version": "1",
            "description": "MSP operations, client-company read access and usage exports. Authenticate with `Authorization: Bearer <JWT>` or `x-api-key: vk_…`. Errors are `{\"error\":{\"code\",\"message\"}}` with stable codes.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" }
            }
        },
        "security": [ { "bearer": [] }, { "apiKey": [] } ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in document is the generated one (`cargo xtask openapi` rewrites it).
    #[test]
    fn the_checked_in_document_matches_the_routes() {
        let checked_in: Value = serde_json::from_str(include_str!("../openapi.json"))
            .expect("functions/api/openapi.json is JSON");
        assert!(
            checked_in == document(),
            "functions/api/openapi.json is out of date: run `cargo xtask openapi`"
        );
    }

    #[test]
    fn the_documented_metrics_are_the_domains() {
        use vigie_domain::policy::Metric;
        let mut parsed = Vec::new();
        for name in METRICS {
            let metric: Metric = serde_json::from_value(json!(name)).expect(name);
            assert_eq!(metric.as_str(), name);
            parsed.push(metric);
        }
        // Exhaustive: a metric added to the domain fails to compile here until it is listed.
        let listed = |m: Metric| match m {
            Metric::CpuTotalPct
            | Metric::CpuIowaitPct
            | Metric::MemoryUsedPct
            | Metric::Load1
            | Metric::FilesystemUsedPct
            | Metric::FilesystemInodesUsedPct
            | Metric::DiskBusyPct
            | Metric::NetworkUtilisationPct
            | Metric::TemperatureCelsius
            | Metric::BackupAgeH
            | Metric::CertificateDaysLeft
            | Metric::UpdatesPending
            | Metric::UpdatesSecurityPending
            | Metric::UpdatesSecurityPendingDays
            | Metric::UpdatesManualPending
            | Metric::AntivirusSignatureAgeH
            | Metric::SmartReallocatedSectors
            | Metric::SmartPendingSectors
            | Metric::AccountPasswordAgeDays => parsed.contains(&m),
        };
        assert!(parsed.iter().all(|m| listed(*m)));
        // The series come first: exactly the metrics a rate rule accepts.
        for (i, m) in parsed.iter().enumerate() {
            assert_eq!(m.finding_kind().is_none(), i < SERIES_METRICS, "{m:?}");
        }
        for name in INVENTORY_CONDITIONS {
            let c: Result<vigie_domain::checks::InventoryCondition, _> =
                serde_json::from_value(json!(name));
            assert!(c.is_ok(), "{name}");
        }
    }

    /// Every built-in template's rules, as the API writes them, use only documented fields
    /// of their kind's schema and carry its required ones.
    #[test]
    fn template_rules_fit_their_kinds_schema() {
        let schemas = schemas();
        let mut kinds_seen = std::collections::BTreeSet::new();
        for t in vigie_domain::templates::builtin() {
            for rule in &t.rules {
                let value = serde_json::to_value(rule).expect("json");
                let kind = value["kind"].as_str().unwrap_or("threshold");
                kinds_seen.insert(kind.to_owned());
                let name = match value["kind"].as_str() {
                    None => "ThresholdRule".to_owned(),
                    Some(k) => {
                        let reference = &schemas["KindedRule"]["discriminator"]["mapping"][k];
                        reference
                            .as_str()
                            .and_then(|r| r.rsplit('/').next())
                            .expect("mapped kind")
                            .to_owned()
                    }
                };
                let schema = &schemas[&name];
                let properties = schema["properties"].as_object().expect("properties");
                for key in value.as_object().expect("object").keys() {
                    assert!(
                        properties.contains_key(key),
                        "{}: {key} not in {name}",
                        rule.id
                    );
                }
                for key in schema["required"].as_array().expect("required") {
                    let key = key.as_str().expect("name");
                    assert!(value.get(key).is_some(), "{}: {key} missing", rule.id);
                }
            }
        }
        // The discriminator maps every kind the domain knows.
        let mapping = schemas["KindedRule"]["discriminator"]["mapping"]
            .as_object()
            .expect("mapping");
        let mut kinds: Vec<&str> = mapping.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        let mut domain = vigie_domain::checks::Check::KINDS.to_vec();
        domain.sort_unstable();
        assert_eq!(kinds, domain);
        assert!(kinds_seen.len() >= 7, "{kinds_seen:?}");
    }

    #[test]
    fn every_route_is_documented_with_resolvable_schemas() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method.to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} undocumented",
                route.method,
                route.path
            );
            for name in [Some(route.response), route.request].into_iter().flatten() {
                assert!(schemas.contains_key(name), "schema {name} missing");
            }
        }
        let text = doc.to_string();
        for reference in text.split("#/components/schemas/").skip(1) {
            let name: String = reference
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
    }
}
