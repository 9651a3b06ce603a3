//! Escalation policies, their built-in templates and user groups in the tenant API, and the
//! escalation an alert episode carries as people read it.
//!
//! The domain ([`vigie_domain::escalation`]) checks what a policy says on its own (steps,
//! waits, repeats); this module adds what only the tenant's other records can tell: every
//! channel, user group and user a chain names must exist in the tenant *now*, so a typo is
//! refused when the policy is written rather than discovered as "nobody to notify" at 3 a.m.
//! The business-hours calendar and the on-call schedules it names must exist too (read one by
//! one: a policy names few). The same check guards the other direction for groups: a group a
//! policy still names cannot be deleted. (A removed user stays refused: nobody would receive
//! the notice.)
//!
//! Policies are documents of the tenant (`ESCPOLICY#<id>`); editing one never touches
//! escalations already running, which carry their own copy of the chain.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use vigie_domain::clock::Clock;
use vigie_domain::escalation::templates::{self, Template, TemplateError, TemplateParams};
use vigie_domain::escalation::{
    Escalation, EscalationPolicy, EscalationState, PolicyInvalid, Target, UserGroup,
};
use vigie_domain::ids::TenantId;
use vigie_domain::ports::ChannelStore;
use vigie_edge::{HttpRequest, HttpResponse};

use crate::Api;
use crate::access::Context;
use crate::error::ApiError;
use crate::handlers::{Params, audit, json_body, page};
use crate::routes::{Matched, Operation};

/// The escalation policy, template and user group operations.
pub(crate) async fn handle<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    p: &Params<'_>,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let tenant = context.tenant()?;
    let store = api.ports.escalations();
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    let policy_id = || p.path_str("policy_id");
    let group_id = || p.path_str("group_id");
    match matched.route.operation {
        Operation::ListEscalationPolicies => {
            let policies = store.policies(tenant).await?;
            page(policies, |x| x.policy_id.clone(), policy_view, p)
        }
        Operation::GetEscalationPolicy => {
            let policy = store
                .policy(tenant, policy_id()?)
                .await?
                .ok_or(NOT_FOUND_POLICY)?;
            ok(policy_view(&policy))
        }
        Operation::PutEscalationPolicy => {
            let body: Value = json_body(request)?;
            let policy = policy_from_body(policy_id()?, body)?;
            Box::pin(Recipients::for_policy(api, tenant, &policy))
                .await?
                .check(&policy)?;
            store.put_policy(tenant, &policy, now, false).await?;
            audit(context, "escalation_policy.put", &policy.policy_id);
            ok(policy_view(&policy))
        }
        Operation::DeleteEscalationPolicy => {
            let id = policy_id()?;
            let policy = store.policy(tenant, id).await?.ok_or(NOT_FOUND_POLICY)?;
            if !store.delete_policy(tenant, id).await? {
                return Err(NOT_FOUND_POLICY);
            }
            audit(context, "escalation_policy.delete", id);
            ok(policy_view(&policy))
        }
        Operation::ListEscalationTemplates => page(
            templates::ALL.to_vec(),
            |t| t.template_id.into(),
            template_view,
            p,
        ),
        Operation::PolicyFromTemplate => {
            let template_id = p.path_str("template_id")?;
            if !templates::ALL.iter().any(|t| t.template_id == template_id) {
                return Err(ApiError::NotFound {
                    what: "escalation template",
                });
            }
            let params: TemplateParams = json_body(request)?;
            let policy = templates::instantiate(template_id, &params).map_err(template_refused)?;
            Box::pin(Recipients::for_policy(api, tenant, &policy))
                .await?
                .check(&policy)?;
            if !store.put_policy(tenant, &policy, now, true).await? {
                return Err(ApiError::Conflict {
                    code: "policy_exists",
                    message: format!(
                        "escalation policy {} exists: choose another policy_id, or edit it with PUT",
                        policy.policy_id
                    ),
                });
            }
            audit(
                context,
                "escalation_policy.from_template",
                &policy.policy_id,
            );
            ok(policy_view(&policy))
        }
        Operation::ListUserGroups => {
            let groups = store.groups(tenant).await?;
            page(groups, |g| g.group_id.clone(), group_view, p)
        }
        Operation::GetUserGroup => {
            let group = store
                .group(tenant, group_id()?)
                .await?
                .ok_or(NOT_FOUND_GROUP)?;
            ok(group_view(&group))
        }
        Operation::PutUserGroup => {
            let body: Value = json_body(request)?;
            let group = group_from_body(group_id()?, body)?;
            Box::pin(Recipients::of(api, tenant))
                .await?
                .check_members(&group)?;
            store.put_group(tenant, &group, now).await?;
            audit(context, "user_group.put", &group.group_id);
            ok(group_view(&group))
        }
        Operation::DeleteUserGroup => {
            let id = group_id()?;
            let group = store.group(tenant, id).await?.ok_or(NOT_FOUND_GROUP)?;
            let users = policies_naming_group(&store.policies(tenant).await?, id);
            if !users.is_empty() {
                return Err(ApiError::Conflict {
                    code: "group_in_use",
                    message: format!(
                        "user group {id} is named by escalation policies {}: change them first",
                        users.join(", ")
                    ),
                });
            }
            if !store.delete_group(tenant, id).await? {
                return Err(NOT_FOUND_GROUP);
            }
            audit(context, "user_group.delete", id);
            ok(group_view(&group))
        }
        _ => Err(ApiError::NotFound { what: "object" }),
    }
}

const NOT_FOUND_POLICY: ApiError = ApiError::NotFound {
    what: "escalation policy",
};
const NOT_FOUND_GROUP: ApiError = ApiError::NotFound { what: "user group" };

fn invalid(e: &PolicyInvalid) -> ApiError {
    ApiError::invalid(e.code(), e.to_string())
}

/// A `PUT` body: the policy without `policy_id` (the path names it) or with the same one.
fn policy_from_body(path_id: &str, body: Value) -> Result<EscalationPolicy, ApiError> {
    let body = with_path_id(body, "policy_id", path_id)?;
    let policy: EscalationPolicy =
        serde_json::from_value(body).map_err(|e| ApiError::invalid("bad_body", e.to_string()))?;
    policy.validate().map_err(|e| invalid(&e))?;
    Ok(policy)
}

/// A `PUT` body: the group without `group_id` or with the same one.
fn group_from_body(path_id: &str, body: Value) -> Result<UserGroup, ApiError> {
    let body = with_path_id(body, "group_id", path_id)?;
    let mut group: UserGroup =
        serde_json::from_value(body).map_err(|e| ApiError::invalid("bad_body", e.to_string()))?;
    group.name = group.name.trim().to_owned();
    group.validate().map_err(|e| invalid(&e))?;
    // A member named twice is notified once anyway; keep the list as people wrote it, once.
    let mut seen = BTreeSet::new();
    group.members.retain(|m| seen.insert(m.clone()));
    Ok(group)
}

fn with_path_id(body: Value, field: &str, path_id: &str) -> Result<Value, ApiError> {
    let Value::Object(mut object) = body else {
        return Err(ApiError::invalid("bad_body", "the body is a JSON object"));
    };
    match object.get(field) {
        None => {}
        Some(Value::String(s)) if s == path_id => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "id_mismatch",
                format!("{field} {other} in the body differs from {path_id:?} in the path"),
            ));
        }
    }
    object.insert(field.to_owned(), Value::String(path_id.to_owned()));
    Ok(Value::Object(object))
}

/// The tenant's channels, user groups and (current) users, read once per write; and which of
/// the calendars and on-call schedules a policy names exist.
#[derive(Debug, Default)]
struct Recipients {
    channels: BTreeSet<String>,
    groups: BTreeSet<String>,
    users: BTreeSet<String>,
    calendars: BTreeSet<String>,
    schedules: BTreeSet<String>,
}

impl Recipients {
    /// The channels, groups and users (enough for a group's members).
    async fn of<K: Clock>(api: &Api<K>, tenant: &TenantId) -> Result<Self, ApiError> {
        let channels = Box::pin(api.ports.channels().channels(tenant)).await?;
        let groups = Box::pin(api.ports.escalations().groups(tenant)).await?;
        let users = Box::pin(api.ports.users().users(tenant)).await?;
        Ok(Self {
            channels: channels.into_iter().map(|c| c.id.to_string()).collect(),
            groups: groups.into_iter().map(|g| g.group_id).collect(),
            users: users
                .into_iter()
                .filter(|u| u.removed_ms.is_none())
                .map(|u| u.user_id)
                .collect(),
            ..Self::default()
        })
    }

    /// [`Recipients::of`] and the calendar and schedules `policy` names, where they exist.
    async fn for_policy<K: Clock>(
        api: &Api<K>,
        tenant: &TenantId,
        policy: &EscalationPolicy,
    ) -> Result<Self, ApiError> {
        use serde::de::IgnoredAny;
        // Boxed, like every read here: the SDK's futures are large, and a debug build polls
        // them nested on a worker's stack.
        let mut known = Box::pin(Self::of(api, tenant)).await?;
        let oncall = api.ports.oncall();
        if let Some(calendar) = &policy.calendar_id
            && Box::pin(oncall.calendars().get::<IgnoredAny>(tenant, calendar))
                .await?
                .is_some()
        {
            known.calendars.insert(calendar.clone());
        }
        let named: BTreeSet<&String> = policy
            .targets()
            .filter_map(|t| match t {
                Target::OnCall { schedule_id } => Some(schedule_id),
                _ => None,
            })
            .collect();
        for schedule in named {
            if Box::pin(oncall.schedules().get::<IgnoredAny>(tenant, schedule))
                .await?
                .is_some()
            {
                known.schedules.insert(schedule.clone());
            }
        }
        Ok(known)
    }

    /// Every channel, group, user, on-call schedule and the calendar the policy names exist;
    /// the first missing one is named.
    fn check(&self, policy: &EscalationPolicy) -> Result<(), ApiError> {
        if let Some(calendar) = &policy.calendar_id
            && !self.calendars.contains(calendar)
        {
            return Err(ApiError::invalid(
                "unknown_calendar",
                format!("business-hours calendar {calendar} does not exist: create it first"),
            ));
        }
        for target in policy.targets() {
            match target {
                Target::Channel { channel_id } if !self.channels.contains(channel_id) => {
                    return Err(ApiError::invalid(
                        "unknown_channel",
                        format!("channel {channel_id} is not a notification channel of the tenant"),
                    ));
                }
                Target::Group { group_id } if !self.groups.contains(group_id) => {
                    return Err(ApiError::invalid(
                        "unknown_group",
                        format!("user group {group_id} does not exist: create it first"),
                    ));
                }
                Target::OnCall { schedule_id } if !self.schedules.contains(schedule_id) => {
                    return Err(ApiError::invalid(
                        "unknown_schedule",
                        format!("on-call schedule {schedule_id} does not exist: create it first"),
                    ));
                }
                Target::User { user_id } => self.check_user(user_id)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn check_members(&self, group: &UserGroup) -> Result<(), ApiError> {
        group.members.iter().try_for_each(|m| self.check_user(m))
    }

    fn check_user(&self, user_id: &str) -> Result<(), ApiError> {
        if self.users.contains(user_id) {
            Ok(())
        } else {
            Err(ApiError::invalid(
                "unknown_user",
                format!("user {user_id} is not a (current) user of the tenant"),
            ))
        }
    }
}

/// The ids of the policies whose chain names `group_id`, sorted.
fn policies_naming_group(policies: &[EscalationPolicy], group_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = policies
        .iter()
        .filter(|p| {
            p.targets()
                .any(|t| matches!(t, Target::Group { group_id: g } if g == group_id))
        })
        .map(|p| p.policy_id.clone())
        .collect();
    ids.sort();
    ids
}

fn template_refused(e: TemplateError) -> ApiError {
    match e {
        TemplateError::Unknown(_) => ApiError::NotFound {
            what: "escalation template",
        },
        TemplateError::NoClientContact => ApiError::invalid("bad_template_params", e.to_string()),
        TemplateError::Invalid(p) => invalid(&p),
    }
}

/// A policy as stored (the domain's document is the API's shape).
fn policy_view(policy: &EscalationPolicy) -> Value {
    serde_json::to_value(policy).unwrap_or(Value::Null)
}

fn group_view(group: &UserGroup) -> Value {
    json!({ "group_id": group.group_id, "name": group.name, "members": group.members })
}

/// One parameter of a template, as an MSP fills it in.
struct TemplateParam {
    name: &'static str,
    required: bool,
    kind: &'static str,
    description: &'static str,
}

/// [`TemplateParams`], field by field; `client_contact` is required only by templates that
/// need it.
fn template_params(t: &Template) -> Vec<TemplateParam> {
    let p = |name, required, kind, description| TemplateParam {
        name,
        required,
        kind,
        description,
    };
    vec![
        p(
            "policy_id",
            false,
            "id",
            "the new policy's id (default: the template's id)",
        ),
        p(
            "supervisors",
            true,
            "target",
            "who supervises: the technicians to page (an on-call schedule, a group, a user)",
        ),
        p(
            "supervision_mailbox",
            true,
            "target",
            "the supervision mailbox, in copy of every written step",
        ),
        p(
            "account_manager",
            true,
            "target",
            "the account manager of the client company",
        ),
        p(
            "client_contact",
            t.needs_client_contact,
            "target",
            "the workstation's user or the client's IT contact",
        ),
        p(
            "calendar_id",
            true,
            "id",
            "the business-hours calendar the waits follow",
        ),
        p(
            "time_zone",
            false,
            "time_zone",
            "IANA zone of time-of-day waits without a calendar (default UTC)",
        ),
        p(
            "clients",
            false,
            "client_ids",
            "attach to these client companies only (default: all)",
        ),
    ]
}

fn template_view(t: &Template) -> Value {
    let parameters: Vec<Value> = template_params(t)
        .into_iter()
        .map(|p| {
            json!({ "name": p.name, "required": p.required, "type": p.kind,
                "description": p.description })
        })
        .collect();
    json!({
        "template_id": t.template_id,
        "version": t.version,
        "name": t.name,
        "description": t.description,
        "parameters": parameters,
    })
}

/// The escalation running on an alert episode, as a technician reads it: where it stands,
/// what comes next and when, and the written trace of every step so far.
pub(crate) fn escalation_view(e: &Escalation) -> Value {
    let (state, since_ms, by, until_ms, reason) = match &e.state {
        EscalationState::Running => ("running", None, None, None, None),
        EscalationState::Acknowledged {
            by,
            at_ms,
            until_ms,
        } => (
            "acknowledged",
            Some(*at_ms),
            Some(by.clone()),
            *until_ms,
            None,
        ),
        EscalationState::Stopped { reason, at_ms } => {
            ("stopped", Some(*at_ms), None, None, Some(reason.clone()))
        }
        EscalationState::Exhausted { at_ms } => ("exhausted", Some(*at_ms), None, None, None),
    };
    let next_step = e.next_step().and_then(|n| {
        e.policy
            .steps
            .get(n - 1)
            .map(|step| json!({ "number": n, "step": step }))
    });
    json!({
        "policy_id": e.policy.policy_id,
        "policy_name": e.policy.name,
        "state": state,
        "state_since_ms": since_ms,
        "acknowledged_by": by,
        "ack_until_ms": until_ms,
        "stop_reason": reason,
        "next_step": next_step,
        "due_ms": e.due_ms,
        "round": e.round,
        "rounds": e.policy.repeat + 1,
        "owner_deadline_ms": e.owner_deadline_ms,
        "started_ms": e.started_ms,
        "notices_sent": e.notices_sent,
        "trace": e.trace,
    })
}

/// The OpenAPI schemas of this module's bodies (called by [`crate::openapi`]).
#[rustfmt::skip]
pub(crate) fn schemas(s: &mut Map<String, Value>) {
    let text = json!({ "type": "string" });
    let ms = json!({ "type": "integer" });
    let maybe_ms = json!({ "type": ["integer", "null"] });
    // `valid_policy_id`: the ids of policies and groups.
    let own_id = json!({ "type": "string", "pattern": "^[a-z0-9_-]{1,64}$" });
    let ref_id = json!({ "type": "string", "minLength": 1, "maxLength": 120, "pattern": "\\S" });
    let name = json!({ "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S" });
    let say = json!({ "type": "string", "maxLength": 1000 });
    let target = |ty: &str, field: Option<&str>| {
        let mut properties = json!({ "type": { "const": ty } });
        let mut required = vec!["type".to_owned()];
        if let Some(f) = field {
            properties[f] = ref_id.clone();
            required.push(f.to_owned());
        }
        json!({ "type": "object", "additionalProperties": false, "required": required,
            "properties": properties })
    };
    s.insert("EscalationTarget".into(), json!({ "oneOf": [
        target("channel", Some("channel_id")),
        target("user", Some("user_id")),
        target("group", Some("group_id")),
        target("on_call", Some("schedule_id")),
        { "type": "object", "additionalProperties": false, "required": ["type", "address"],
          "properties": { "type": { "const": "email" },
            "address": { "type": "string", "format": "email", "maxLength": 254 },
            "name": { "type": "string", "maxLength": 120 } } },
        target("assignee", None),
    ] }));
    let targets = |min: u32| json!({ "type": "array", "minItems": min, "maxItems": 20,
        "items": { "$ref": "#/components/schemas/EscalationTarget" } });
    let said = |ty: &str| json!({ "type": "object", "additionalProperties": false,
        "required": ["do"], "properties": { "do": { "const": ty }, "say": say } });
    s.insert("EscalationStep".into(), json!({ "oneOf": [
        { "type": "object", "additionalProperties": false, "required": ["do", "to"],
          "properties": { "do": { "const": "notify" }, "to": targets(1), "cc": targets(0),
            "say": say } },
        { "type": "object", "additionalProperties": false, "required": ["do"],
          "description": "Either minutes, or until (\"HH:MM\" with optional days_later and open_days_only, or \"business_hours\").",
          "properties": { "do": { "const": "wait" },
            "minutes": { "type": "integer", "minimum": 1, "maximum": 44_640 },
            "until": { "type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^business_hours$" },
            "days_later": { "type": "integer", "minimum": 0, "maximum": 31 },
            "open_days_only": { "type": "boolean" } } },
        { "type": "object", "additionalProperties": false, "required": ["do"],
          "properties": { "do": { "const": "raise_severity" } } },
        said("notify_assignee"),
        said("resolve"),
    ] }));
    let body = json!({
        "policy_id": own_id,
        "name": name,
        "description": { "type": "string" },
        "applies": { "type": "object", "additionalProperties": false, "properties": {
            "families": { "type": "array", "items": text },
            "sev": { "type": "array", "items": { "enum": [1, 2, 3] } },
            "roles": { "type": "array", "items": text },
            "clients": { "type": "array", "items": text },
            "sites": { "type": "array", "items": { "type": "object", "additionalProperties": false,
                "required": ["client_id", "site_id"],
                "properties": { "client_id": text, "site_id": text } } } } },
        "priority": { "type": "integer" },
        "calendar_id": ref_id,
        "time_zone": text,
        "sev3": { "enum": ["business_hours", "now"] },
        "repeat": { "type": "integer", "minimum": 0, "maximum": 10 },
        "ack_timeout_minutes": { "type": "integer", "minimum": 1, "maximum": 44_640 },
        "steps": { "type": "array", "minItems": 1, "maxItems": 20,
            "items": { "$ref": "#/components/schemas/EscalationStep" } },
        "template": { "type": "object", "additionalProperties": false,
            "required": ["template_id", "version"],
            "properties": { "template_id": text, "version": { "type": "integer", "minimum": 1 } } },
    });
    s.insert("EscalationPolicyInput".into(), json!({ "type": "object",
        "additionalProperties": false, "required": ["name", "steps"], "properties": body,
        "description": "policy_id may be omitted (the path names it) or repeat the path's." }));
    s.insert("EscalationPolicy".into(), json!({ "type": "object",
        "required": ["policy_id", "name", "applies", "priority", "time_zone", "sev3", "repeat", "steps"],
        "properties": body }));
    s.insert("EscalationPolicyPage".into(), crate::openapi::page_of("EscalationPolicy"));
    s.insert("EscalationTemplate".into(), json!({ "type": "object",
        "required": ["template_id", "version", "name", "description", "parameters"],
        "properties": { "template_id": text, "version": { "type": "integer", "minimum": 1 },
            "name": text, "description": text,
            "parameters": { "type": "array", "items": { "type": "object",
                "required": ["name", "required", "type", "description"],
                "properties": { "name": text, "required": { "type": "boolean" },
                    "type": { "enum": ["id", "target", "time_zone", "client_ids"] },
                    "description": text } } } } }));
    s.insert("EscalationTemplatePage".into(), crate::openapi::page_of("EscalationTemplate"));
    let target_ref = json!({ "$ref": "#/components/schemas/EscalationTarget" });
    s.insert("EscalationTemplateParams".into(), json!({ "type": "object",
        "additionalProperties": false,
        "required": ["supervisors", "supervision_mailbox", "account_manager", "calendar_id"],
        "properties": { "policy_id": own_id, "supervisors": target_ref,
            "supervision_mailbox": target_ref, "account_manager": target_ref,
            "client_contact": target_ref, "calendar_id": ref_id, "time_zone": text,
            "clients": { "type": "array", "items": text } } }));
    let members = json!({ "type": "array", "maxItems": 100, "items": ref_id });
    s.insert("UserGroupInput".into(), json!({ "type": "object", "additionalProperties": false,
        "required": ["name", "members"],
        "properties": { "group_id": own_id, "name": name, "members": members },
        "description": "group_id may be omitted (the path names it) or repeat the path's." }));
    s.insert("UserGroup".into(), json!({ "type": "object",
        "required": ["group_id", "name", "members"],
        "properties": { "group_id": own_id, "name": text, "members": members } }));
    s.insert("UserGroupPage".into(), crate::openapi::page_of("UserGroup"));
    s.insert("AlertEscalation".into(), json!({ "type": "object",
        "required": ["policy_id", "policy_name", "state", "next_step", "due_ms", "round",
            "owner_deadline_ms", "trace"],
        "properties": {
            "policy_id": text, "policy_name": text,
            "state": { "enum": ["running", "acknowledged", "stopped", "exhausted"] },
            "state_since_ms": maybe_ms, "acknowledged_by": { "type": ["string", "null"] },
            "ack_until_ms": maybe_ms, "stop_reason": { "type": ["string", "null"] },
            "next_step": { "anyOf": [ { "type": "null" }, { "type": "object",
                "required": ["number", "step"], "properties": {
                    "number": { "type": "integer", "minimum": 1 },
                    "step": { "$ref": "#/components/schemas/EscalationStep" } } } ] },
            "due_ms": maybe_ms, "round": { "type": "integer", "minimum": 0 },
            "rounds": { "type": "integer", "minimum": 1 },
            "owner_deadline_ms": maybe_ms, "started_ms": ms,
            "notices_sent": { "type": "integer", "minimum": 0 },
            "trace": { "type": "array", "items": { "type": "object",
                "required": ["at_ms", "action", "round", "text"],
                "properties": { "at_ms": ms, "action": text,
                    "step": { "type": "integer", "minimum": 1 },
                    "round": { "type": "integer", "minimum": 0 }, "text": text } } }
        } }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipients() -> Recipients {
        let set = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect();
        Recipients {
            channels: set(&["ops"]),
            groups: set(&["admins"]),
            users: set(&["usr-ana", "usr-bob"]),
            calendars: set(&["hours"]),
            schedules: set(&["night"]),
        }
    }

    fn body(steps: Value) -> Value {
        json!({ "name": "Servers", "steps": steps })
    }

    fn code(r: Result<impl std::fmt::Debug, ApiError>) -> (u16, &'static str, String) {
        let e = r.expect_err("refused");
        (e.status(), e.code(), e.to_string())
    }

    #[test]
    fn the_path_names_the_policy_and_a_different_id_in_the_body_is_refused() {
        let steps = json!([{ "do": "notify", "to": [{ "type": "channel", "channel_id": "ops" }] }]);
        let p = policy_from_body("servers", body(steps.clone())).expect("valid");
        assert_eq!(p.policy_id, "servers");
        let mut same = body(steps.clone());
        same["policy_id"] = json!("servers");
        assert_eq!(policy_from_body("servers", same).expect("same id"), p);
        let mut other = body(steps);
        other["policy_id"] = json!("desktops");
        let (status, c, message) = code(policy_from_body("servers", other));
        assert_eq!((status, c), (422, "id_mismatch"));
        assert!(message.contains("desktops"), "{message}");
        assert_eq!(code(policy_from_body("servers", json!([]))).1, "bad_body");
    }

    #[test]
    fn invalid_chains_are_refused_with_the_domains_reason() {
        let notify = json!({ "do": "notify", "to": [{ "type": "user", "user_id": "usr-ana" }] });
        let (status, c, message) = code(policy_from_body(
            "p",
            body(json!([notify, { "do": "wait", "minutes": 0 }])),
        ));
        assert_eq!((status, c), (422, "bad_escalation_policy"));
        assert!(message.contains("step 2"), "{message}");
        let mut repeating = body(json!([{ "do": "wait", "minutes": 5 }, notify]));
        repeating["repeat"] = json!(2);
        let (_, c, message) = code(policy_from_body("p", repeating));
        assert_eq!(c, "bad_escalation_policy");
        assert!(message.contains("end with a wait"), "{message}");
        let (_, c, _) = code(policy_from_body(
            "p",
            body(json!([notify, { "do": "wait", "minutes": 5, "x": 1 }])),
        ));
        assert_eq!(c, "bad_body");
    }

    #[test]
    fn every_named_channel_group_user_schedule_and_calendar_must_exist() {
        let r = recipients();
        let with = |extra: Value| {
            policy_from_body(
                "p",
                body(json!([{ "do": "notify",
                    "to": [{ "type": "channel", "channel_id": "ops" }, { "type": "group", "group_id": "admins" }],
                    "cc": [{ "type": "user", "user_id": "usr-bob" }, { "type": "email", "address": "noc@msp.example" },
                        { "type": "on_call", "schedule_id": "night" }, { "type": "assignee" }] },
                    { "do": "wait", "minutes": 5 },
                    { "do": "notify", "to": [extra] }])),
            )
            .expect("valid")
        };
        r.check(&with(json!({ "type": "assignee" })))
            .expect("all exist");
        let mut with_calendar = with(json!({ "type": "assignee" }));
        with_calendar.calendar_id = Some("hours".into());
        r.check(&with_calendar).expect("the calendar exists");
        with_calendar.calendar_id = Some("office".into());
        let (status, c, message) = code(r.check(&with_calendar));
        assert_eq!((status, c), (422, "unknown_calendar"));
        assert!(message.contains("office"), "{message}");
        for (extra, want, named) in [
            (
                json!({ "type": "user", "user_id": "usr-gone" }),
                "unknown_user",
                "usr-gone",
            ),
            (
                json!({ "type": "group", "group_id": "nobody" }),
                "unknown_group",
                "nobody",
            ),
            (
                json!({ "type": "channel", "channel_id": "pager" }),
                "unknown_channel",
                "pager",
            ),
            (
                json!({ "type": "on_call", "schedule_id": "day" }),
                "unknown_schedule",
                "day",
            ),
        ] {
            let (status, c, message) = code(r.check(&with(extra)));
            assert_eq!((status, c), (422, want));
            assert!(message.contains(named), "{message}");
        }
    }

    #[test]
    fn group_members_are_users_of_the_tenant_once_each() {
        let r = recipients();
        let g = group_from_body(
            "admins",
            json!({ "name": " Admins ", "members": ["usr-ana", "usr-bob", "usr-ana"] }),
        )
        .expect("valid");
        assert_eq!(g.name, "Admins");
        assert_eq!(g.members, ["usr-ana", "usr-bob"]);
        r.check_members(&g).expect("members exist");
        let g =
            group_from_body("admins", json!({ "name": "A", "members": ["usr-x"] })).expect("valid");
        assert_eq!(code(r.check_members(&g)).1, "unknown_user");
        assert_eq!(
            code(group_from_body(
                "Bad Id",
                json!({ "name": "A", "members": [] })
            ))
            .1,
            "bad_escalation_policy"
        );
    }

    #[test]
    fn a_group_in_use_is_found_in_to_and_cc_of_every_policy() {
        let policy = |id: &str, target: Value| {
            policy_from_body(
                id,
                body(json!([{ "do": "notify",
                "to": [{ "type": "user", "user_id": "usr-ana" }], "cc": [target] }])),
            )
            .expect("valid")
        };
        let ps = [
            policy("b", json!({ "type": "group", "group_id": "admins" })),
            policy("a", json!({ "type": "group", "group_id": "admins" })),
            policy("c", json!({ "type": "group", "group_id": "noc" })),
        ];
        assert_eq!(policies_naming_group(&ps, "admins"), ["a", "b"]);
        assert!(policies_naming_group(&ps, "other").is_empty());
    }

    #[test]
    fn templates_list_their_parameters_and_refusals_map_to_statuses() {
        let server = template_view(&templates::ALL[0]);
        let required = |v: &Value, name: &str| {
            v["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name))
                .map(|p| p["required"].clone())
        };
        assert_eq!(required(&server, "client_contact"), Some(json!(false)));
        assert_eq!(required(&server, "supervisors"), Some(json!(true)));
        let ws = template_view(&templates::ALL[1]);
        assert_eq!(required(&ws, "client_contact"), Some(json!(true)));
        assert_eq!(ws["version"], 1);
        // Every parameter listed is a field of TemplateParams, and every field is listed.
        let names: BTreeSet<String> = template_params(&templates::ALL[1])
            .iter()
            .map(|p| p.name.to_owned())
            .collect();
        let params = TemplateParams {
            policy_id: Some("x".into()),
            supervisors: Target::Assignee,
            supervision_mailbox: Target::Assignee,
            account_manager: Target::Assignee,
            client_contact: Some(Target::Assignee),
            calendar_id: "c".into(),
            time_zone: "UTC".into(),
            clients: vec![vigie_domain::ids::ClientId::parse("acme").expect("id")],
        };
        let fields: BTreeSet<String> = serde_json::to_value(&params)
            .expect("json")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(names, fields);
        assert_eq!(
            template_refused(TemplateError::Unknown("x".into())).status(),
            404
        );
        assert_eq!(
            code(Err::<(), _>(template_refused(
                TemplateError::NoClientContact
            )))
            .1,
            "bad_template_params"
        );
    }

    struct NoCalendars;
    impl vigie_domain::escalation::Resolver for NoCalendars {
        fn next_open(&self, _: &str, at_ms: i64) -> Option<i64> {
            Some(at_ms)
        }
        fn at_local_time(
            &self,
            _: Option<&str>,
            _: &str,
            after: i64,
            _: (u8, u8),
            _: u32,
            _: bool,
        ) -> i64 {
            after
        }
        fn on_call(&self, _: &str, _: i64) -> Option<String> {
            None
        }
        fn group_members(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn describe(&self, _: &str, at_ms: i64) -> String {
            at_ms.to_string()
        }
    }

    #[test]
    fn the_alert_view_shows_where_the_escalation_stands_and_its_trace() {
        use vigie_domain::alert::{AlertFamily, Severity};
        use vigie_domain::escalation::{AlertFacts, People};
        use vigie_domain::ids::{ClientId, DeviceId, SiteId};
        let p = policy_from_body(
            "servers",
            body(json!([
                { "do": "notify", "to": [{ "type": "user", "user_id": "usr-ana" }] },
                { "do": "wait", "minutes": 30 },
                { "do": "notify", "to": [{ "type": "user", "user_id": "usr-bob" }] }])),
        )
        .expect("valid");
        let facts = AlertFacts {
            tenant_id: TenantId::parse("msp").expect("id"),
            alert_id: "al-1".into(),
            opened_ms: 0,
            client_id: ClientId::parse("acme").expect("id"),
            site_id: SiteId::parse("hq").expect("id"),
            device_id: DeviceId::parse("dev-1").expect("id"),
            device_name: "srv".into(),
            family: AlertFamily::BackupFailure,
            severity: Severity::Critical,
            subject: "nightly".into(),
            detail: None,
            role: None,
        };
        let mut e = Escalation::start(&p, facts, 1_000, &NoCalendars);
        e.run_due(1_000, &People::default(), &NoCalendars);
        let v = escalation_view(&e);
        assert_eq!(v["state"], "running");
        assert_eq!(v["policy_name"], "Servers");
        assert_eq!(v["next_step"]["number"], 3);
        assert_eq!(v["next_step"]["step"]["to"][0]["user_id"], "usr-bob");
        assert_eq!(v["due_ms"], 1_000 + 30 * 60_000);
        let actions: Vec<&str> = v["trace"]
            .as_array()
            .expect("trace")
            .iter()
            .filter_map(|l| l["action"].as_str())
            .collect();
        assert_eq!(actions, ["started", "notified", "waiting"]);
        e.acknowledged("usr-ana", 2_000);
        let v = escalation_view(&e);
        assert_eq!(
            (&v["state"], &v["acknowledged_by"], &v["state_since_ms"]),
            (&json!("acknowledged"), &json!("usr-ana"), &json!(2_000))
        );
        assert_eq!(
            (&v["next_step"], &v["due_ms"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(v["trace"][3]["action"], "acknowledged");
    }
}
