//! Incidents: related alerts grouped under one severity (Sev 1–3, MISSION.md's model), three
//! named roles (incident manager, technical lead, communications lead), a timeline of every
//! action and status messages for the MSP's own people (internal) and for the client company
//! (external). Resolving records how long it lasted, for MTTA / MTTR.
//!
//! Like [`crate::workflow::AlertWork`], every change is an [`IncidentAction`] applied by
//! someone at an instant; the storage adapter writes the whole document conditionally on the
//! version it read, so two people editing at once both land. An accepted action that changes
//! something appends one [`TimelineEntry`]; one that changes nothing (the same severity again,
//! a second acknowledgement) is accepted silently, so a retried request leaves no trace twice.
//!
//! The document is bounded (alerts, timeline, text, total size) so it always fits one
//! DynamoDB item.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ids::{ClientId, base32, random_bytes};
use crate::workflow::Stamp;

/// Most alerts grouped in one incident.
pub const MAX_ALERTS: usize = 100;
/// Most timeline entries one incident keeps.
pub const MAX_TIMELINE: usize = 500;
/// Longest comment or status message.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Longest title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest name of a person holding a role.
pub const MAX_PERSON_CHARS: usize = 200;
/// Longest value of a template field.
pub const MAX_FIELD_CHARS: usize = 500;
/// Largest serialised incident: a DynamoDB item ends at 400 KB, keys and attributes take the
/// rest. Reaching it refuses the action (open a follow-up incident).
pub const MAX_DOCUMENT_BYTES: usize = 350_000;

// ---- Ids ---------------------------------------------------------------------------------

/// An incident id, made by the server: `inc-`, the opening time in Unix ms on 15 digits, `-`
/// and 8 random base32 characters. Ids sort by opening time, so "opened between" is a key
/// range, never a scan.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IncidentId(String);

/// Why a string is not an incident id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an incident id is inc-<15 digits>-<8 of a-z, 2-7>")]
pub struct BadIncidentId;

const PREFIX: &str = "inc-";

impl IncidentId {
    /// A fresh id for an incident opened at `opened_ms`.
    pub fn generate(opened_ms: i64) -> Self {
        Self(format!(
            "{}{}-{}",
            PREFIX,
            Self::time_part(opened_ms),
            base32(&random_bytes::<5>())
        ))
    }

    fn time_part(ms: i64) -> String {
        format!("{:015}", ms.clamp(0, 999_999_999_999_999))
    }

    /// The smallest id of an incident opened at `ms` or later (a key range bound).
    pub fn lower_bound(ms: i64) -> String {
        format!("{PREFIX}{}", Self::time_part(ms))
    }

    /// A string above every id of an incident opened at `ms` or earlier.
    pub fn upper_bound(ms: i64) -> String {
        format!("{PREFIX}{}~", Self::time_part(ms))
    }

    pub fn parse(s: &str) -> Result<Self, BadIncidentId> {
        let rest = s.strip_prefix(PREFIX).ok_or(BadIncidentId)?;
        let (time, random) = rest.split_once('-').ok_or(BadIncidentId)?;
        let time_ok = time.len() == 15 && time.bytes().all(|b| b.is_ascii_digit());
        let random_ok = random.len() == 8
            && random
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if time_ok && random_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadIncidentId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IncidentId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for IncidentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Longest `Idempotency-Key` a caller may send when opening an incident.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The stored name of a caller's idempotency key: SHA-256 over who sent it and the key, hex.
/// Two people reusing one key never meet; the key itself is never stored.
pub fn idempotency_digest(subject: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(subject.as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- The document ------------------------------------------------------------------------

/// Where the response stands. `Resolved` is reached only by resolving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [Self; 4] = [
        Self::Investigating,
        Self::Identified,
        Self::Monitoring,
        Self::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Who a status message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The MSP's own people.
    Internal,
    /// The client company (its viewers see these, and only these).
    External,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::External => "external",
        }
    }
}

/// An alert grouped into the incident: the episode it was in when added (`opened_ms`) and its
/// client company (the incident's own client company derives from these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentAlert {
    pub alert_id: String,
    pub opened_ms: i64,
    pub client_id: ClientId,
    pub added_ms: i64,
    pub added_by: String,
}

/// The three roles of an incident response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IncidentRole {
    IncidentManager,
    TechnicalLead,
    CommunicationsLead,
}

impl IncidentRole {
    pub const ALL: [Self; 3] = [
        Self::IncidentManager,
        Self::TechnicalLead,
        Self::CommunicationsLead,
    ];

    /// The field name (API bodies, template placeholders).
    pub fn code(self) -> &'static str {
        match self {
            Self::IncidentManager => "incident_manager",
            Self::TechnicalLead => "technical_lead",
            Self::CommunicationsLead => "communications_lead",
        }
    }

    /// As a sentence says it.
    pub fn words(self) -> &'static str {
        match self {
            Self::IncidentManager => "incident manager",
            Self::TechnicalLead => "technical lead",
            Self::CommunicationsLead => "communications lead",
        }
    }
}

/// Who holds each role (nobody yet: `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub incident_manager: Option<String>,
    pub technical_lead: Option<String>,
    pub communications_lead: Option<String>,
}

impl Roles {
    pub fn get(&self, role: IncidentRole) -> Option<&str> {
        match role {
            IncidentRole::IncidentManager => self.incident_manager.as_deref(),
            IncidentRole::TechnicalLead => self.technical_lead.as_deref(),
            IncidentRole::CommunicationsLead => self.communications_lead.as_deref(),
        }
    }

    fn slot(&mut self, role: IncidentRole) -> &mut Option<String> {
        match role {
            IncidentRole::IncidentManager => &mut self.incident_manager,
            IncidentRole::TechnicalLead => &mut self.technical_lead,
            IncidentRole::CommunicationsLead => &mut self.communications_lead,
        }
    }
}

/// What a timeline entry records (stable snake_case codes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelineAction {
    Opened,
    AlertAdded,
    AlertRemoved,
    RoleAssigned,
    RoleCleared,
    SeverityChanged,
    StatusChanged,
    Acknowledged,
    StatusMessagePosted,
    Commented,
    Resolved,
}

/// One line of the timeline: who did what, when, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_ms: i64,
    pub by: String,
    pub action: TimelineAction,
    pub text: String,
}

/// A status message as posted (rendered once; editing a template later changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub at_ms: i64,
    pub by: String,
    pub audience: Audience,
    /// The template it was rendered from; `None` for free text.
    pub template: Option<String>,
    pub text: String,
}

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: IncidentId,
    pub title: String,
    /// 1 (critical) to 3 (minor).
    pub sev: u8,
    pub status: IncidentStatus,
    /// Set while every alert is of one client company: that company's viewers see the
    /// incident (its external messages). `None` with no alerts or several companies.
    pub client_id: Option<ClientId>,
    pub alerts: Vec<IncidentAlert>,
    pub roles: Roles,
    pub timeline: Vec<TimelineEntry>,
    pub status_messages: Vec<StatusMessage>,
    pub opened_ms: i64,
    pub opened_by: String,
    /// The first acknowledgement (later ones change nothing).
    pub acknowledged: Option<Stamp>,
    pub resolved: Option<Stamp>,
    /// Stored version, moved by the storage adapter on every write (optimistic locking).
    #[serde(default)]
    pub version: u64,
}

// ---- Actions -----------------------------------------------------------------------------

/// What a status message says: a built-in template with its fields, or free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    Template {
        template: String,
        fields: BTreeMap<String, String>,
    },
    Text(String),
}

/// An alert to group, as the caller found it (the API checks it exists and is visible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRef {
    pub alert_id: String,
    pub opened_ms: i64,
    pub client_id: ClientId,
}

/// A change to an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentAction {
    AddAlert(AlertRef),
    RemoveAlert(String),
    /// `None` clears the role.
    SetRole(IncidentRole, Option<String>),
    SetSeverity(u8),
    /// To `Resolved`: the same as [`IncidentAction::Resolve`].
    SetStatus(IncidentStatus),
    Acknowledge,
    PostStatusMessage {
        audience: Audience,
        body: MessageBody,
    },
    Comment(String),
    Resolve,
}

/// Why a template does not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateRefused {
    #[error("no message template {0:?}; see GET /v1/incident-message-templates")]
    UnknownTemplate(String),
    #[error(
        "field {field:?} is not a placeholder of the {audience} wording of {template:?} (it takes: {takes})"
    )]
    UnknownField {
        field: String,
        template: String,
        audience: &'static str,
        takes: String,
    },
    #[error("field {field:?} is filled from the incident, not given")]
    AutomaticField { field: String },
    #[error("the {audience} wording of {template:?} needs field {field:?}")]
    MissingField {
        field: String,
        template: String,
        audience: &'static str,
    },
    #[error("field {field:?} is 1 to {MAX_FIELD_CHARS} characters without control characters")]
    BadField { field: String },
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentRefused {
    #[error("the incident is resolved: only comments and status messages are taken")]
    Resolved,
    #[error("a title is 1 to {MAX_TITLE_CHARS} characters")]
    BadTitle,
    #[error("sev is 1, 2 or 3")]
    BadSeverity,
    #[error("a text is 1 to {MAX_TEXT_CHARS} characters")]
    BadText,
    #[error("a person's name is 1 to {MAX_PERSON_CHARS} characters")]
    BadPerson,
    #[error("an incident groups at most {MAX_ALERTS} alerts")]
    TooManyAlerts,
    #[error("alert {0} is not in the incident")]
    AlertNotInIncident(String),
    #[error("the incident's timeline is full ({MAX_TIMELINE} entries); open a follow-up incident")]
    TimelineFull,
    #[error(
        "the incident's record is full ({MAX_DOCUMENT_BYTES} bytes); open a follow-up incident"
    )]
    DocumentFull,
    #[error(transparent)]
    Template(#[from] TemplateRefused),
}

impl IncidentRefused {
    /// Stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Resolved => "incident_resolved",
            Self::BadTitle => "bad_title",
            Self::BadSeverity => "bad_severity",
            Self::BadText => "bad_text",
            Self::BadPerson => "bad_person",
            Self::TooManyAlerts => "too_many_alerts",
            Self::AlertNotInIncident(_) => "alert_not_in_incident",
            Self::TimelineFull => "timeline_full",
            Self::DocumentFull => "incident_full",
            Self::Template(TemplateRefused::UnknownTemplate(_)) => "unknown_template",
            Self::Template(_) => "bad_template_fields",
        }
    }

    /// Whether the refusal is about the incident's state (a conflict) rather than the input.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Resolved | Self::TimelineFull | Self::DocumentFull
        )
    }
}

fn text_within(text: &str, max: usize) -> Option<String> {
    let t = text.trim();
    (!t.is_empty() && t.chars().count() <= max).then(|| t.to_owned())
}

/// `1 h 02 min 05 s`, `4 min 10 s`, `12 s`.
pub fn duration_words(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h} h {m:02} min {s:02} s")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

impl Incident {
    /// A new incident, `investigating`, with its `opened` timeline entry. Alerts and roles
    /// come after, as actions (each on the timeline).
    pub fn open(
        incident_id: IncidentId,
        title: &str,
        sev: u8,
        by: &str,
        now_ms: i64,
    ) -> Result<Self, IncidentRefused> {
        let title = text_within(title, MAX_TITLE_CHARS).ok_or(IncidentRefused::BadTitle)?;
        if !(1..=3).contains(&sev) {
            return Err(IncidentRefused::BadSeverity);
        }
        Ok(Self {
            incident_id,
            timeline: vec![TimelineEntry {
                at_ms: now_ms,
                by: by.to_owned(),
                action: TimelineAction::Opened,
                text: format!("{by} opened the incident at sev {sev}: {title}"),
            }],
            title,
            sev,
            status: IncidentStatus::Investigating,
            client_id: None,
            alerts: Vec::new(),
            roles: Roles::default(),
            status_messages: Vec::new(),
            opened_ms: now_ms,
            opened_by: by.to_owned(),
            acknowledged: None,
            resolved: None,
            version: 0,
        })
    }

    /// Opening → first acknowledgement.
    pub fn time_to_acknowledge_ms(&self) -> Option<i64> {
        self.acknowledged.as_ref().map(|a| a.at_ms - self.opened_ms)
    }

    /// Opening → resolution.
    pub fn duration_ms(&self) -> Option<i64> {
        self.resolved.as_ref().map(|r| r.at_ms - self.opened_ms)
    }

    /// Applies `action` by `by` at `now_ms`, all or nothing. After resolution only comments and
    /// status messages are taken (the post-mortem, the "resolved" notice).
    pub fn apply(
        &mut self,
        action: IncidentAction,
        by: &str,
        now_ms: i64,
    ) -> Result<(), IncidentRefused> {
        let mut next = self.clone();
        let entry = next.change(action, by, now_ms)?;
        if let Some((action, text)) = entry {
            if next.timeline.len() >= MAX_TIMELINE {
                return Err(IncidentRefused::TimelineFull);
            }
            next.timeline.push(TimelineEntry {
                at_ms: now_ms,
                by: by.to_owned(),
                action,
                text,
            });
        }
        if serde_json::to_vec(&next).map_or(usize::MAX, |b| b.len()) > MAX_DOCUMENT_BYTES {
            return Err(IncidentRefused::DocumentFull);
        }
        *self = next;
        Ok(())
    }

    /// Makes the change; the timeline entry it deserves, if it changed anything.
    fn change(
        &mut self,
        action: IncidentAction,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<(TimelineAction, String)>, IncidentRefused> {
        let closed = self.resolved.is_some();
        let entry = |action, text: String| Ok(Some((action, text)));
        match action {
            IncidentAction::Comment(text) => {
                let text = text_within(&text, MAX_TEXT_CHARS).ok_or(IncidentRefused::BadText)?;
                entry(TimelineAction::Commented, text)
            }
            IncidentAction::PostStatusMessage { audience, body } => {
                let (template, text) = match body {
                    MessageBody::Text(text) => (
                        None,
                        text_within(&text, MAX_TEXT_CHARS).ok_or(IncidentRefused::BadText)?,
                    ),
                    MessageBody::Template { template, fields } => {
                        let text = render(&template, audience, &fields, self)?;
                        if text.chars().count() > MAX_TEXT_CHARS {
                            return Err(IncidentRefused::BadText);
                        }
                        (Some(template), text)
                    }
                };
                let said = match &template {
                    Some(t) => format!(
                        "{by} posted an {} status message from template {t}",
                        audience.as_str()
                    ),
                    None => format!("{by} posted an {} status message", audience.as_str()),
                };
                self.status_messages.push(StatusMessage {
                    at_ms: now_ms,
                    by: by.to_owned(),
                    audience,
                    template,
                    text,
                });
                entry(TimelineAction::StatusMessagePosted, said)
            }
            _ if closed => Err(IncidentRefused::Resolved),
            IncidentAction::AddAlert(alert) => {
                if self.alerts.iter().any(|a| a.alert_id == alert.alert_id) {
                    return Ok(None);
                }
                if self.alerts.len() >= MAX_ALERTS {
                    return Err(IncidentRefused::TooManyAlerts);
                }
                let text = format!(
                    "{by} added alert {} (client company {})",
                    alert.alert_id, alert.client_id
                );
                self.alerts.push(IncidentAlert {
                    alert_id: alert.alert_id,
                    opened_ms: alert.opened_ms,
                    client_id: alert.client_id,
                    added_ms: now_ms,
                    added_by: by.to_owned(),
                });
                self.client_id = self.common_client();
                entry(TimelineAction::AlertAdded, text)
            }
            IncidentAction::RemoveAlert(alert_id) => {
                let before = self.alerts.len();
                self.alerts.retain(|a| a.alert_id != alert_id);
                if self.alerts.len() == before {
                    return Err(IncidentRefused::AlertNotInIncident(alert_id));
                }
                self.client_id = self.common_client();
                entry(
                    TimelineAction::AlertRemoved,
                    format!("{by} removed alert {alert_id}"),
                )
            }
            IncidentAction::SetRole(role, person) => {
                let person = match person {
                    None => None,
                    Some(p) => {
                        Some(text_within(&p, MAX_PERSON_CHARS).ok_or(IncidentRefused::BadPerson)?)
                    }
                };
                let slot = self.roles.slot(role);
                if *slot == person {
                    return Ok(None);
                }
                let before = std::mem::replace(slot, person.clone());
                match (person, before) {
                    (Some(p), _) => entry(
                        TimelineAction::RoleAssigned,
                        format!("{p} became {}", role.words()),
                    ),
                    (None, Some(was)) => entry(
                        TimelineAction::RoleCleared,
                        format!("{was} is no longer {}", role.words()),
                    ),
                    (None, None) => Ok(None),
                }
            }
            IncidentAction::SetSeverity(sev) => {
                if !(1..=3).contains(&sev) {
                    return Err(IncidentRefused::BadSeverity);
                }
                if sev == self.sev {
                    return Ok(None);
                }
                let text = format!("sev {} → sev {sev}", self.sev);
                self.sev = sev;
                entry(TimelineAction::SeverityChanged, text)
            }
            IncidentAction::SetStatus(IncidentStatus::Resolved) | IncidentAction::Resolve => {
                self.resolved = Some(Stamp {
                    by: by.to_owned(),
                    at_ms: now_ms,
                });
                self.status = IncidentStatus::Resolved;
                entry(
                    TimelineAction::Resolved,
                    format!(
                        "{by} resolved the incident after {}",
                        duration_words(now_ms - self.opened_ms)
                    ),
                )
            }
            IncidentAction::SetStatus(status) => {
                if status == self.status {
                    return Ok(None);
                }
                let text = format!("{} → {}", self.status.as_str(), status.as_str());
                self.status = status;
                entry(TimelineAction::StatusChanged, text)
            }
            IncidentAction::Acknowledge => {
                if self.acknowledged.is_some() {
                    return Ok(None);
                }
                self.acknowledged = Some(Stamp {
                    by: by.to_owned(),
                    at_ms: now_ms,
                });
                entry(
                    TimelineAction::Acknowledged,
                    format!(
                        "{by} acknowledged the incident after {}",
                        duration_words(now_ms - self.opened_ms)
                    ),
                )
            }
        }
    }

    /// The one client company of every alert, if there is exactly one.
    fn common_client(&self) -> Option<ClientId> {
        let companies: BTreeSet<&ClientId> = self.alerts.iter().map(|a| &a.client_id).collect();
        match companies.into_iter().collect::<Vec<_>>().as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    }
}

// ---- Status message templates ------------------------------------------------------------

/// A built-in status message template: one wording for the MSP's people, one for the client
/// company. Placeholders are `{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTemplate {
    pub id: &'static str,
    pub name: &'static str,
    pub internal: &'static str,
    pub external: &'static str,
}

impl MessageTemplate {
    pub fn wording(&self, audience: Audience) -> &'static str {
        match audience {
            Audience::Internal => self.internal,
            Audience::External => self.external,
        }
    }
}

/// Placeholders Vigie fills from the incident itself; a caller may not give them.
pub const AUTOMATIC_FIELDS: [&str; 7] = [
    "title",
    "sev",
    "status",
    "incident_manager",
    "technical_lead",
    "communications_lead",
    "alert_count",
];

/// The only placeholders an external wording may use: nothing about devices, roles, alerts or
/// internal severity reaches a client through a template.
pub const EXTERNAL_FIELDS: [&str; 5] = ["title", "impact", "next_update", "client", "update"];

const TEMPLATES: [MessageTemplate; 5] = [
    MessageTemplate {
        id: "investigating",
        name: "Investigating",
        internal: "[Sev {sev}] {title}: investigating. Impact: {impact}. Incident manager: \
                   {incident_manager}; technical lead: {technical_lead}. Next update by \
                   {next_update}.",
        external: "{client}: we are investigating an issue affecting {impact}. We will post \
                   an update by {next_update}.",
    },
    MessageTemplate {
        id: "identified",
        name: "Cause identified",
        internal: "[Sev {sev}] {title}: cause identified: {cause}. Impact: {impact}. Technical \
                   lead: {technical_lead}. Next update by {next_update}.",
        external: "{client}: we have identified the cause of the issue affecting {impact} and \
                   are working on a fix. Next update by {next_update}.",
    },
    MessageTemplate {
        id: "monitoring",
        name: "Fix applied, monitoring",
        internal: "[Sev {sev}] {title}: fix applied ({fix}), monitoring. Next update by \
                   {next_update}.",
        external: "{client}: a fix has been applied for the issue affecting {impact}; we are \
                   monitoring the results. Next update by {next_update}.",
    },
    MessageTemplate {
        id: "resolved",
        name: "Resolved",
        internal: "[Sev {sev}] {title}: resolved. Cause: {cause}. Fix: {fix}. {alert_count} \
                   alert(s) grouped; a post-mortem follows.",
        external: "{client}: the issue affecting {impact} is resolved. Thank you for your \
                   patience.",
    },
    MessageTemplate {
        id: "scheduled-update",
        name: "Scheduled update",
        internal: "[Sev {sev}] {title}, {status}: {update} Next update by {next_update}.",
        external: "{client}: we are still working on the issue affecting {impact}. {update} \
                   Next update by {next_update}.",
    },
];

/// The built-in status message templates.
pub fn message_templates() -> &'static [MessageTemplate] {
    &TEMPLATES
}

pub fn message_template(id: &str) -> Option<&'static MessageTemplate> {
    TEMPLATES.iter().find(|t| t.id == id)
}

/// The pieces of a wording: literal text and placeholders, in order.
enum Piece<'a> {
    Literal(&'a str),
    Field(&'a str),
}

fn pieces(wording: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = wording;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(Piece::Literal(&rest[..open]));
        out.push(Piece::Field(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    out.push(Piece::Literal(rest));
    out
}

/// The placeholders of a wording, in order of first use.
pub fn placeholders(wording: &str) -> Vec<&str> {
    let mut seen = Vec::new();
    for piece in pieces(wording) {
        if let Piece::Field(f) = piece
            && !seen.contains(&f)
        {
            seen.push(f);
        }
    }
    seen
}

/// The placeholders of a wording a caller must give (the rest come from the incident).
pub fn caller_fields(wording: &str) -> Vec<&str> {
    placeholders(wording)
        .into_iter()
        .filter(|f| !AUTOMATIC_FIELDS.contains(f))
        .collect()
}

fn automatic_value(field: &str, incident: &Incident) -> Option<String> {
    let role = |r: IncidentRole| {
        incident
            .roles
            .get(r)
            .map_or_else(|| "unassigned".to_owned(), str::to_owned)
    };
    Some(match field {
        "title" => incident.title.clone(),
        "sev" => incident.sev.to_string(),
        "status" => incident.status.as_str().to_owned(),
        "incident_manager" => role(IncidentRole::IncidentManager),
        "technical_lead" => role(IncidentRole::TechnicalLead),
        "communications_lead" => role(IncidentRole::CommunicationsLead),
        "alert_count" => incident.alerts.len().to_string(),
        _ => return None,
    })
}

/// Renders template `template`'s wording for `audience` with the caller's `fields` (the
/// automatic ones come from `incident`). Refuses a field the wording does not take, one it
/// needs and was not given, and one Vigie fills itself.
pub fn render(
    template: &str,
    audience: Audience,
    fields: &BTreeMap<String, String>,
    incident: &Incident,
) -> Result<String, TemplateRefused> {
    let t = message_template(template)
        .ok_or_else(|| TemplateRefused::UnknownTemplate(template.to_owned()))?;
    let wording = t.wording(audience);
    let takes = caller_fields(wording);
    for (field, value) in fields {
        if AUTOMATIC_FIELDS.contains(&field.as_str()) {
            return Err(TemplateRefused::AutomaticField {
                field: field.clone(),
            });
        }
        if !takes.contains(&field.as_str()) {
            return Err(TemplateRefused::UnknownField {
                field: field.clone(),
                template: t.id.to_owned(),
                audience: audience.as_str(),
                takes: takes.join(", "),
            });
        }
        let v = value.trim();
        if v.is_empty() || v.chars().count() > MAX_FIELD_CHARS || v.chars().any(char::is_control) {
            return Err(TemplateRefused::BadField {
                field: field.clone(),
            });
        }
    }
    let mut out = String::new();
    for piece in pieces(wording) {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Field(f) => match automatic_value(f, incident) {
                Some(v) => out.push_str(&v),
                None => {
                    let v = fields.get(f).ok_or_else(|| TemplateRefused::MissingField {
                        field: f.to_owned(),
                        template: t.id.to_owned(),
                        audience: audience.as_str(),
                    })?;
                    out.push_str(v.trim());
                }
            },
        }
    }
    Ok(out)
}

// ---- Response times ----------------------------------------------------------------------

/// Mean and median of a set of durations, in seconds; `None` over nothing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Durations {
    /// How many incidents had the stamp measured.
    pub count: usize,
    pub mean_s: Option<f64>,
    pub median_s: Option<f64>,
}

impl Durations {
    fn of(mut ms: Vec<i64>) -> Self {
        ms.sort_unstable();
        let count = ms.len();
        let as_s = |ms: f64| ms / 1000.0;
        let mean =
            (count > 0).then(|| as_s(ms.iter().map(|&v| v as f64).sum::<f64>() / count as f64));
        let median = (count > 0).then(|| {
            let mid = count / 2;
            if count % 2 == 1 {
                as_s(ms[mid] as f64)
            } else {
                as_s((ms[mid - 1] as f64 + ms[mid] as f64) / 2.0)
            }
        });
        Self {
            count,
            mean_s: mean,
            median_s: median,
        }
    }
}

/// Response times of the incidents of one severity (or of all: `sev` `None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SevResponseTimes {
    pub sev: Option<u8>,
    /// Incidents counted (acknowledged or not, resolved or not).
    pub incidents: usize,
    /// Mean time to acknowledge: opening → first acknowledgement, over acknowledged ones.
    pub mtta: Durations,
    /// Mean time to resolve: opening → resolution, over resolved ones.
    pub mttr: Durations,
}

impl SevResponseTimes {
    fn of<'a>(sev: Option<u8>, incidents: impl Iterator<Item = &'a Incident> + Clone) -> Self {
        Self {
            sev,
            incidents: incidents.clone().count(),
            mtta: Durations::of(
                incidents
                    .clone()
                    .filter_map(Incident::time_to_acknowledge_ms)
                    .collect(),
            ),
            mttr: Durations::of(incidents.filter_map(Incident::duration_ms).collect()),
        }
    }
}

/// MTTA and MTTR per severity, and over all incidents. Severity is the incident's current one
/// (where it ended up, which is how it is reported).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseTimes {
    /// Sev 1, 2 and 3, always all three.
    pub by_sev: Vec<SevResponseTimes>,
    pub all: SevResponseTimes,
}

impl From<&[Incident]> for ResponseTimes {
    fn from(incidents: &[Incident]) -> Self {
        Self {
            by_sev: (1..=3)
                .map(|sev| {
                    SevResponseTimes::of(Some(sev), incidents.iter().filter(move |i| i.sev == sev))
                })
                .collect(),
            all: SevResponseTimes::of(None, incidents.iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000;

    fn id() -> IncidentId {
        IncidentId::generate(T0)
    }

    fn acme() -> ClientId {
        ClientId::parse("acme").expect("id")
    }

    fn alert(id: &str, client: &str) -> IncidentAction {
        IncidentAction::AddAlert(AlertRef {
            alert_id: id.into(),
            opened_ms: T0 - 60_000,
            client_id: ClientId::parse(client).expect("id"),
        })
    }

    fn opened() -> Incident {
        Incident::open(id(), "  Mail server down ", 2, "alice", T0).expect("opens")
    }

    #[test]
    fn ids_are_time_ordered_valid_and_bounded_by_their_range() {
        let a = IncidentId::generate(T0);
        let b = IncidentId::generate(T0 + 1);
        assert_eq!(a.as_str().len(), 4 + 15 + 1 + 8);
        assert!(a < b);
        assert_eq!(IncidentId::parse(a.as_str()), Ok(a.clone()));
        assert!(IncidentId::lower_bound(T0).as_str() <= a.as_str());
        assert!(a.as_str() < IncidentId::upper_bound(T0).as_str());
        assert!(b.as_str() > IncidentId::upper_bound(T0).as_str());
        assert!(a.as_str() < IncidentId::lower_bound(T0 + 1).as_str());
        for bad in [
            "inc-1-abcdefgh",
            "inc-001790000000000-ABCDEFGH",
            "inc-001790000000000-abcdefg1",
            "x-001790000000000-abcdefgh",
            "inc-001790000000000",
            "inc-001790000000000-abcdefgh#x",
        ] {
            assert_eq!(IncidentId::parse(bad), Err(BadIncidentId), "{bad}");
        }
        assert!(serde_json::from_str::<IncidentId>("\"inc-x\"").is_err());
    }

    #[test]
    fn opening_checks_title_and_severity_and_starts_the_timeline() {
        let i = opened();
        assert_eq!(i.title, "Mail server down");
        assert_eq!(i.status, IncidentStatus::Investigating);
        assert_eq!(i.timeline.len(), 1);
        assert_eq!(i.timeline[0].action, TimelineAction::Opened);
        assert_eq!(
            i.timeline[0].text,
            "alice opened the incident at sev 2: Mail server down"
        );
        assert_eq!(
            Incident::open(id(), " ", 2, "a", T0),
            Err(IncidentRefused::BadTitle)
        );
        assert_eq!(
            Incident::open(id(), &"x".repeat(201), 2, "a", T0),
            Err(IncidentRefused::BadTitle)
        );
        assert!(Incident::open(id(), &"é".repeat(200), 2, "a", T0).is_ok());
        for sev in [0, 4] {
            assert_eq!(
                Incident::open(id(), "t", sev, "a", T0),
                Err(IncidentRefused::BadSeverity)
            );
        }
    }

    #[test]
    fn every_action_says_who_did_what_on_the_timeline() {
        let mut i = opened();
        i.apply(alert("a1", "acme"), "alice", T0 + 1_000)
            .expect("add");
        i.apply(
            IncidentAction::SetRole(IncidentRole::IncidentManager, Some(" alice ".into())),
            "bob",
            T0 + 2_000,
        )
        .expect("role");
        i.apply(IncidentAction::SetSeverity(1), "bob", T0 + 3_000)
            .expect("sev");
        i.apply(
            IncidentAction::SetStatus(IncidentStatus::Identified),
            "bob",
            T0 + 4_000,
        )
        .expect("status");
        i.apply(IncidentAction::Acknowledge, "carol", T0 + 5_000)
            .expect("ack");
        i.apply(
            IncidentAction::Comment("disk swapped".into()),
            "bob",
            T0 + 6_000,
        )
        .expect("comment");
        i.apply(
            IncidentAction::SetRole(IncidentRole::IncidentManager, None),
            "bob",
            T0 + 7_000,
        )
        .expect("clear");
        i.apply(IncidentAction::RemoveAlert("a1".into()), "bob", T0 + 8_000)
            .expect("remove");
        let lines: Vec<(TimelineAction, &str, &str, i64)> = i
            .timeline
            .iter()
            .map(|e| (e.action, e.by.as_str(), e.text.as_str(), e.at_ms - T0))
            .collect();
        assert_eq!(
            lines,
            vec![
                (
                    TimelineAction::Opened,
                    "alice",
                    "alice opened the incident at sev 2: Mail server down",
                    0
                ),
                (
                    TimelineAction::AlertAdded,
                    "alice",
                    "alice added alert a1 (client company acme)",
                    1_000
                ),
                (
                    TimelineAction::RoleAssigned,
                    "bob",
                    "alice became incident manager",
                    2_000
                ),
                (
                    TimelineAction::SeverityChanged,
                    "bob",
                    "sev 2 → sev 1",
                    3_000
                ),
                (
                    TimelineAction::StatusChanged,
                    "bob",
                    "investigating → identified",
                    4_000
                ),
                (
                    TimelineAction::Acknowledged,
                    "carol",
                    "carol acknowledged the incident after 5 s",
                    5_000
                ),
                (TimelineAction::Commented, "bob", "disk swapped", 6_000),
                (
                    TimelineAction::RoleCleared,
                    "bob",
                    "alice is no longer incident manager",
                    7_000
                ),
                (
                    TimelineAction::AlertRemoved,
                    "bob",
                    "bob removed alert a1",
                    8_000
                ),
            ]
        );
        assert_eq!(i.sev, 1);
        assert!(i.alerts.is_empty() && i.client_id.is_none());
    }

    #[test]
    fn repeating_a_change_is_accepted_without_a_second_entry() {
        let mut i = opened();
        for at in [1, 2] {
            i.apply(IncidentAction::Acknowledge, "bob", T0 + at * 1000)
                .expect("ack");
            i.apply(IncidentAction::SetSeverity(2), "bob", T0 + at)
                .expect("same sev");
            i.apply(alert("a1", "acme"), "bob", T0 + at).expect("add");
            i.apply(
                IncidentAction::SetRole(IncidentRole::TechnicalLead, Some("dan".into())),
                "bob",
                T0 + at,
            )
            .expect("role");
            i.apply(
                IncidentAction::SetStatus(IncidentStatus::Investigating),
                "bob",
                T0 + at,
            )
            .expect("status");
        }
        // The first acknowledgement is kept.
        assert_eq!(
            i.acknowledged,
            Some(Stamp {
                by: "bob".into(),
                at_ms: T0 + 1000
            })
        );
        assert_eq!(i.timeline.len(), 4, "{:#?}", i.timeline);
        assert_eq!(i.alerts.len(), 1);
        // Clearing a role nobody holds: nothing.
        i.apply(
            IncidentAction::SetRole(IncidentRole::CommunicationsLead, None),
            "bob",
            T0,
        )
        .expect("clear");
        assert_eq!(i.timeline.len(), 4);
    }

    #[test]
    fn the_client_company_is_the_alerts_one_while_there_is_exactly_one() {
        let mut i = opened();
        assert_eq!(i.client_id, None);
        i.apply(alert("a1", "acme"), "b", T0).expect("add");
        i.apply(alert("a2", "acme"), "b", T0).expect("add");
        assert_eq!(i.client_id, Some(acme()));
        i.apply(alert("g1", "globex"), "b", T0).expect("add");
        assert_eq!(i.client_id, None);
        i.apply(IncidentAction::RemoveAlert("g1".into()), "b", T0)
            .expect("remove");
        assert_eq!(i.client_id, Some(acme()));
        assert_eq!(
            i.apply(IncidentAction::RemoveAlert("g1".into()), "b", T0),
            Err(IncidentRefused::AlertNotInIncident("g1".into()))
        );
    }

    #[test]
    fn resolving_records_the_duration_and_closes_all_but_comments_and_messages() {
        let mut i = opened();
        i.apply(IncidentAction::Acknowledge, "bob", T0 + 90_000)
            .expect("ack");
        i.apply(IncidentAction::Resolve, "bob", T0 + 3_725_000)
            .expect("resolve");
        assert_eq!(i.status, IncidentStatus::Resolved);
        assert_eq!(i.time_to_acknowledge_ms(), Some(90_000));
        assert_eq!(i.duration_ms(), Some(3_725_000));
        assert_eq!(
            i.timeline.last().map(|e| e.text.as_str()),
            Some("bob resolved the incident after 1 h 02 min 05 s")
        );
        for refused in [
            IncidentAction::Resolve,
            IncidentAction::SetStatus(IncidentStatus::Monitoring),
            IncidentAction::SetSeverity(1),
            IncidentAction::Acknowledge,
            alert("a9", "acme"),
            IncidentAction::SetRole(IncidentRole::TechnicalLead, Some("x".into())),
        ] {
            assert_eq!(
                i.apply(refused.clone(), "bob", T0 + 4_000_000),
                Err(IncidentRefused::Resolved),
                "{refused:?}"
            );
        }
        i.apply(
            IncidentAction::Comment("post-mortem Monday".into()),
            "bob",
            T0 + 4_000_000,
        )
        .expect("comment");
        i.apply(
            IncidentAction::PostStatusMessage {
                audience: Audience::External,
                body: MessageBody::Text("All good now.".into()),
            },
            "bob",
            T0 + 4_000_001,
        )
        .expect("message");
        assert_eq!(
            i.duration_ms(),
            Some(3_725_000),
            "the first resolution stays"
        );
        // Status `resolved` is resolving.
        let mut j = opened();
        j.apply(
            IncidentAction::SetStatus(IncidentStatus::Resolved),
            "amy",
            T0 + 5_000,
        )
        .expect("resolve");
        assert_eq!(
            j.resolved,
            Some(Stamp {
                by: "amy".into(),
                at_ms: T0 + 5_000
            })
        );
        assert_eq!(
            j.timeline.last().map(|e| e.action),
            Some(TimelineAction::Resolved)
        );
    }

    #[test]
    fn bounds_refuse_with_their_reason_and_change_nothing() {
        let mut i = opened();
        for n in 0..MAX_ALERTS {
            i.apply(alert(&format!("a{n}"), "acme"), "b", T0)
                .expect("add");
        }
        let before = i.clone();
        assert_eq!(
            i.apply(alert("one-more", "acme"), "b", T0),
            Err(IncidentRefused::TooManyAlerts)
        );
        assert_eq!(i, before);
        assert_eq!(
            i.apply(IncidentAction::Comment("x".repeat(4_001)), "b", T0),
            Err(IncidentRefused::BadText)
        );
        assert_eq!(
            i.apply(IncidentAction::Comment(" \n ".into()), "b", T0),
            Err(IncidentRefused::BadText)
        );
        assert_eq!(
            i.apply(
                IncidentAction::SetRole(IncidentRole::TechnicalLead, Some("".into())),
                "b",
                T0
            ),
            Err(IncidentRefused::BadPerson)
        );
        assert_eq!(
            i.apply(IncidentAction::SetSeverity(4), "b", T0),
            Err(IncidentRefused::BadSeverity)
        );
        // The timeline: fill it with short comments.
        let mut j = opened();
        while j.timeline.len() < MAX_TIMELINE {
            j.apply(IncidentAction::Comment("ok".into()), "b", T0)
                .expect("comment");
        }
        assert_eq!(
            j.apply(IncidentAction::Comment("one more".into()), "b", T0),
            Err(IncidentRefused::TimelineFull)
        );
        assert_eq!(j.timeline.len(), MAX_TIMELINE);
        // The size: long comments fill the document before the timeline.
        let mut k = opened();
        let mut refused = None;
        for _ in 0..MAX_TIMELINE {
            if let Err(e) = k.apply(IncidentAction::Comment("y".repeat(4_000)), "b", T0) {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused, Some(IncidentRefused::DocumentFull));
        let size = serde_json::to_vec(&k).expect("json").len();
        assert!(
            size <= MAX_DOCUMENT_BYTES && size > MAX_DOCUMENT_BYTES - 5_000,
            "{size}"
        );
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn templates_render_with_the_incidents_own_fields_and_the_callers() {
        let mut i = opened();
        i.apply(
            IncidentAction::SetRole(IncidentRole::IncidentManager, Some("alice".into())),
            "a",
            T0,
        )
        .expect("role");
        let given = fields(&[
            ("impact", "e-mail for all staff"),
            ("next_update", "14:30 CET"),
            ("client", "Acme"),
        ]);
        assert_eq!(
            render("investigating", Audience::External, &given, &i),
            Ok(
                "Acme: we are investigating an issue affecting e-mail for all staff. We will \
                post an update by 14:30 CET."
                    .into()
            )
        );
        let internal = fields(&[("impact", "e-mail for all staff"), ("next_update", "14:30")]);
        assert_eq!(
            render("investigating", Audience::Internal, &internal, &i),
            Ok(
                "[Sev 2] Mail server down: investigating. Impact: e-mail for all staff. Incident \
                manager: alice; technical lead: unassigned. Next update by 14:30."
                    .into()
            )
        );
    }

    #[test]
    fn rendering_refuses_unknown_missing_automatic_and_bad_fields_clearly() {
        let i = opened();
        let e = render("nope", Audience::External, &BTreeMap::new(), &i).expect_err("unknown");
        assert_eq!(e, TemplateRefused::UnknownTemplate("nope".into()));
        // `cause` is internal only: the external wording does not take it.
        let e = render(
            "identified",
            Audience::External,
            &fields(&[
                ("impact", "x"),
                ("next_update", "y"),
                ("client", "c"),
                ("cause", "a failed RAID controller"),
            ]),
            &i,
        )
        .expect_err("unknown field");
        assert_eq!(
            e.to_string(),
            "field \"cause\" is not a placeholder of the external wording of \"identified\" \
             (it takes: client, impact, next_update)"
        );
        let e = render(
            "identified",
            Audience::External,
            &fields(&[("impact", "x"), ("client", "c")]),
            &i,
        )
        .expect_err("missing");
        assert_eq!(
            e.to_string(),
            "the external wording of \"identified\" needs field \"next_update\""
        );
        let e = render(
            "resolved",
            Audience::External,
            &fields(&[("impact", "x"), ("client", "c"), ("title", "other")]),
            &i,
        )
        .expect_err("automatic");
        assert_eq!(
            e,
            TemplateRefused::AutomaticField {
                field: "title".into()
            }
        );
        let e = render(
            "resolved",
            Audience::External,
            &fields(&[("impact", " "), ("client", "c")]),
            &i,
        )
        .expect_err("blank");
        assert_eq!(
            e,
            TemplateRefused::BadField {
                field: "impact".into()
            }
        );
        // Through `apply`, a refusal posts nothing.
        let mut j = i.clone();
        let refused = j.apply(
            IncidentAction::PostStatusMessage {
                audience: Audience::External,
                body: MessageBody::Template {
                    template: "resolved".into(),
                    fields: BTreeMap::new(),
                },
            },
            "a",
            T0,
        );
        assert_eq!(refused.map_err(|e| e.code()), Err("bad_template_fields"));
        assert_eq!(j, i);
    }

    #[test]
    fn external_wordings_use_only_client_safe_placeholders_and_every_template_renders() {
        let mut i = opened();
        i.apply(alert("dev-secret-1", "acme"), "a", T0)
            .expect("add");
        i.apply(
            IncidentAction::SetRole(IncidentRole::TechnicalLead, Some("tech-bob".into())),
            "a",
            T0,
        )
        .expect("role");
        let ids: Vec<&str> = message_templates().iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "investigating",
                "identified",
                "monitoring",
                "resolved",
                "scheduled-update"
            ]
        );
        for t in message_templates() {
            for f in placeholders(t.external) {
                assert!(
                    EXTERNAL_FIELDS.contains(&f),
                    "{}: {f} in the external wording",
                    t.id
                );
            }
            for audience in [Audience::Internal, Audience::External] {
                let given: BTreeMap<String, String> = caller_fields(t.wording(audience))
                    .into_iter()
                    .map(|f| (f.to_owned(), format!("<{f}>")))
                    .collect();
                let text = render(t.id, audience, &given, &i).expect(t.id);
                assert!(!text.contains('{') && !text.contains('}'), "{text}");
                if audience == Audience::External {
                    for leak in ["tech-bob", "dev-secret-1", "Sev", "alice"] {
                        assert!(!text.contains(leak), "{}: {leak} in {text}", t.id);
                    }
                }
            }
        }
    }

    fn incident_with(sev: u8, opened: i64, ack: Option<i64>, resolved: Option<i64>) -> Incident {
        let mut i =
            Incident::open(IncidentId::generate(opened), "t", sev, "a", opened).expect("opens");
        if let Some(at) = ack {
            i.apply(IncidentAction::Acknowledge, "a", at).expect("ack");
        }
        if let Some(at) = resolved {
            i.apply(IncidentAction::Resolve, "a", at).expect("resolve");
        }
        i
    }

    #[test]
    fn response_times_are_means_and_medians_per_sev_over_stamped_incidents() {
        let incidents = vec![
            // Sev 1: acknowledged after 60 s, 120 s, 300 s; resolved after 1 h, 3 h.
            incident_with(1, T0, Some(T0 + 60_000), Some(T0 + 3_600_000)),
            incident_with(
                1,
                T0 + 10,
                Some(T0 + 10 + 120_000),
                Some(T0 + 10 + 10_800_000),
            ),
            incident_with(1, T0 + 20, Some(T0 + 20 + 300_000), None),
            // Sev 2: one never acknowledged but resolved after 30 min.
            incident_with(2, T0, None, Some(T0 + 1_800_000)),
            // Sev 3: none.
        ];
        let r = ResponseTimes::from(incidents.as_slice());
        let sev1 = &r.by_sev[0];
        assert_eq!((sev1.sev, sev1.incidents), (Some(1), 3));
        assert_eq!(
            sev1.mtta,
            Durations {
                count: 3,
                mean_s: Some(160.0),
                median_s: Some(120.0)
            }
        );
        assert_eq!(
            sev1.mttr,
            Durations {
                count: 2,
                mean_s: Some(7_200.0),
                median_s: Some(7_200.0)
            }
        );
        let sev2 = &r.by_sev[1];
        assert_eq!(
            (sev2.incidents, sev2.mtta.count, sev2.mtta.mean_s),
            (1, 0, None)
        );
        assert_eq!(sev2.mttr.median_s, Some(1_800.0));
        let sev3 = &r.by_sev[2];
        assert_eq!((sev3.sev, sev3.incidents, sev3.mttr.count), (Some(3), 0, 0));
        assert_eq!(r.all.incidents, 4);
        assert_eq!(
            r.all.mttr,
            Durations {
                count: 3,
                mean_s: Some(5_400.0),
                median_s: Some(3_600.0)
            }
        );
        // An even count takes the middle two: acknowledgements after 60, 120, 300 and 1 s.
        let mut more = incidents.clone();
        more.push(incident_with(3, T0, Some(T0 + 1_000), None));
        let r = ResponseTimes::from(more.as_slice());
        assert_eq!(r.all.mtta.median_s, Some(90.0));
        assert_eq!(r.all.mtta.mean_s, Some(120.25));
        assert_eq!(ResponseTimes::from(&[][..]).all.mtta.mean_s, None);
    }

    #[test]
    fn idempotency_digests_separate_callers_and_keys() {
        let d = idempotency_digest("alice", "k1");
        assert_eq!(d.len(), 64);
        assert!(
            d.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(d, idempotency_digest("alice", "k1"));
        assert_ne!(d, idempotency_digest("bob", "k1"));
        assert_ne!(d, idempotency_digest("alice", "k2"));
        assert_ne!(idempotency_digest("ab", "c"), idempotency_digest("a", "bc"));
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(12_999), "12 s");
        assert_eq!(duration_words(250_000), "4 min 10 s");
        assert_eq!(duration_words(3_725_000), "1 h 02 min 05 s");
        assert_eq!(duration_words(-5), "0 s");
    }
}
