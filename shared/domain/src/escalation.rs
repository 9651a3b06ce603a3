//! Escalation: an alert nobody acts on climbs a chain of steps until someone does.
//!
//! - An [`EscalationPolicy`] is an ordered list of [`Step`]s (notify, wait, raise severity,
//!   notify the assignee, resolve), repeated up to `repeat` more times, attached by
//!   [`Applies`] (family, Sev, device role, client company, site).
//! - When an alert opens, the matching policy is **copied** onto the alert's episode as an
//!   [`Escalation`]: editing the policy afterwards never changes an escalation already running.
//!   Who is on call, who is in a group and when business hours start are resolved when each
//!   step runs (through [`Resolver`]), not when the chain is copied.
//! - The escalation is a small state machine driven by three inputs: time ([`Escalation::run_due`]),
//!   people ([`Escalation::acknowledged`], [`Escalation::assigned`], [`Escalation::stop`]) and
//!   the alert itself (resolved by measurement). Every change bumps [`Escalation::generation`];
//!   a scheduled wake-up carries the generation it was scheduled for and does nothing unless it
//!   still matches, so a late or repeated wake-up, a second sweeper, or an acknowledgement in
//!   the same second cannot make a step run twice (the store's conditional write on the
//!   episode's version is what makes "still matches" atomic).
//! - Every step that runs leaves a line in the written [`Escalation::trace`] and, when it
//!   notifies, a [`Notice`] with an id derived from (alert, episode, round, step): a notice
//!   sent twice is delivered once (the notifier claims per notice and recipient).
//!
//! Waits are measured from when the wait began (the step's scheduled time), not from when a
//! sweeper happened to run, so a late sweep does not push the whole chain later.
//!
//! Pure: no I/O, no clock; calendars and rosters are behind [`Resolver`].

use serde::{Deserialize, Serialize};

use crate::alert::{AlertFamily, Severity, derived_id};
use crate::ids::{ClientId, DeviceId, SiteId, TenantId};

/// Most steps in a chain, most repeats, longest wait (31 days).
pub const MAX_STEPS: usize = 20;
pub const MAX_REPEAT: u32 = 10;
pub const MAX_WAIT_MINUTES: u32 = 31 * 24 * 60;
/// Lines kept in the written trace of one escalation.
pub const MAX_TRACE: usize = 400;
/// Most recipients a step may name.
pub const MAX_TARGETS: usize = 20;

/// Who a notify step reaches. Schedules, groups and assignees are resolved when the step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A notification channel of the tenant (webhook, Slack, Teams, e-mail list).
    Channel { channel_id: String },
    /// A person of the tenant (their e-mail address on record).
    User { user_id: String },
    /// Every member of a user group of the tenant.
    Group { group_id: String },
    /// Whoever is on call in an on-call schedule when the step runs.
    OnCall { schedule_id: String },
    /// An address outside the tenant's users (a client's IT contact, a supervision mailbox).
    Email {
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The alert's assignee at the time, if any.
    Assignee,
}

impl Target {
    fn validate(&self) -> Result<(), PolicyInvalid> {
        let bad = |what: &str| PolicyInvalid::BadTarget(what.to_owned());
        let id_ok = |s: &str| !s.trim().is_empty() && s.len() <= 120;
        match self {
            Self::Channel { channel_id: s }
            | Self::User { user_id: s }
            | Self::Group { group_id: s }
            | Self::OnCall { schedule_id: s } => {
                if !id_ok(s) {
                    return Err(bad("an id is 1 to 120 characters"));
                }
            }
            Self::Email { address, name } => {
                if !valid_address(address) {
                    return Err(bad(&format!("{address:?} is not an e-mail address")));
                }
                if name.as_ref().is_some_and(|n| n.chars().count() > 120) {
                    return Err(bad("a name is at most 120 characters"));
                }
            }
            Self::Assignee => {}
        }
        Ok(())
    }
}

/// A plain check: one `@`, something before it, a dot after it, no spaces.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && a.len() <= 254
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// How long a wait step waits (the parsed form of a wait step's fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Elapsed minutes.
    Minutes(u32),
    /// A wall-clock time `days_later` days after the day the wait began (0: today if still
    /// ahead, else tomorrow), in the policy's calendar zone; with `open_days_only`, the first
    /// day the business-hours calendar is open on or after it ("the user at D+1").
    TimeOfDay {
        at: (u8, u8),
        days_later: u32,
        open_days_only: bool,
    },
    /// Until the policy's business-hours calendar is open (at once when it is).
    BusinessHours,
}

/// `until` of a wait step that waits for business hours.
pub const UNTIL_BUSINESS_HOURS: &str = "business_hours";

/// One step of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Notify `to`, with `cc` in copy; `say` is the instruction people read ("Phone the
    /// client"). The step is written into the trace with who was reached.
    Notify {
        to: Vec<Target>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cc: Vec<Target>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        say: Option<String>,
    },
    /// `{"do": "wait", "minutes": 30}`, `{"do": "wait", "until": "09:00", "days_later": 1,
    /// "open_days_only": true}` or `{"do": "wait", "until": "business_hours"}`.
    Wait {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minutes: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        days_later: u32,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        open_days_only: bool,
    },
    /// Sev 3 → 2 → 1 (info → warning → critical); at Sev 1 it stays.
    RaiseSeverity,
    /// Notify whoever the alert is assigned to (nothing, and a trace line, when nobody).
    NotifyAssignee {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        say: Option<String>,
    },
    /// Resolve the alert's episode (e.g. an informational alert nobody needs to close).
    Resolve {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        say: Option<String>,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Step {
    /// A wait step's wait; `None` for other steps and for a wait step that is not valid.
    pub fn wait(&self) -> Option<Wait> {
        let Self::Wait {
            minutes,
            until,
            days_later,
            open_days_only,
        } = self
        else {
            return None;
        };
        match (minutes, until.as_deref()) {
            (Some(m), None) if *days_later == 0 && !open_days_only => Some(Wait::Minutes(*m)),
            (None, Some(UNTIL_BUSINESS_HOURS)) if *days_later == 0 && !open_days_only => {
                Some(Wait::BusinessHours)
            }
            (None, Some(at)) => parse_hh_mm(at).map(|at| Wait::TimeOfDay {
                at,
                days_later: *days_later,
                open_days_only: *open_days_only,
            }),
            _ => None,
        }
    }

    /// A wait of `minutes`.
    pub fn wait_minutes(minutes: u32) -> Self {
        Self::Wait {
            minutes: Some(minutes),
            until: None,
            days_later: 0,
            open_days_only: false,
        }
    }

    /// A wait until `at` ("HH:MM") `days_later` days on.
    pub fn wait_until(at: &str, days_later: u32, open_days_only: bool) -> Self {
        Self::Wait {
            minutes: None,
            until: Some(at.to_owned()),
            days_later,
            open_days_only,
        }
    }

    /// A wait for business hours.
    pub fn wait_business_hours() -> Self {
        Self::Wait {
            minutes: None,
            until: Some(UNTIL_BUSINESS_HOURS.to_owned()),
            days_later: 0,
            open_days_only: false,
        }
    }
}

/// What Sev 3 does when the policy's calendar is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sev3Urgency {
    /// Wait for business hours before the first step (the default; MISSION.md).
    #[default]
    BusinessHours,
    /// Page at once, like Sev 1 and 2.
    Now,
}

/// A site named in a policy's attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRef {
    pub client_id: ClientId,
    pub site_id: SiteId,
}

/// Which alerts a policy takes. Empty lists match everything; lists that are set must all
/// match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applies {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<AlertFamily>,
    /// Sev levels 1, 2, 3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sev: Vec<u8>,
    /// Device roles (the device's `role` tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteRef>,
}

impl Applies {
    pub fn matches(&self, facts: &AlertFacts) -> bool {
        (self.families.is_empty() || self.families.contains(&facts.family))
            && (self.sev.is_empty() || self.sev.contains(&facts.severity.sev_level()))
            && (self.roles.is_empty()
                || facts.role.as_ref().is_some_and(|r| self.roles.contains(r)))
            && (self.clients.is_empty() || self.clients.contains(&facts.client_id))
            && (self.sites.is_empty()
                || self
                    .sites
                    .iter()
                    .any(|s| s.client_id == facts.client_id && s.site_id == facts.site_id))
    }

    /// Whether matching needs the device's role (one more read when it does).
    pub fn needs_role(&self) -> bool {
        !self.roles.is_empty()
    }
}

/// Where a policy came from when it was made from a built-in template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromTemplate {
    pub template_id: String,
    pub version: u32,
}

/// A tenant's escalation policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    pub policy_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub applies: Applies,
    /// Lower is tried first; ties go by id. The first policy that applies escalates.
    #[serde(default)]
    pub priority: i32,
    /// Business hours for waits and for Sev 3 (a calendar of the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<String>,
    /// The zone of time-of-day waits when there is no calendar (IANA; default UTC).
    #[serde(default = "utc")]
    pub time_zone: String,
    #[serde(default)]
    pub sev3: Sev3Urgency,
    /// Times the whole chain runs again after its last step (0: once).
    #[serde(default)]
    pub repeat: u32,
    /// An acknowledgement lapses after this many minutes and escalation resumes (none: an
    /// acknowledgement holds until the alert resolves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_timeout_minutes: Option<u32>,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<FromTemplate>,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyInvalid {
    #[error("a policy id is 1 to 64 lower-case letters, digits, '-' or '_'")]
    BadId,
    #[error("a name is 1 to 200 characters")]
    BadName,
    #[error("a chain has 1 to {MAX_STEPS} steps")]
    StepCount,
    #[error("a chain must notify someone")]
    NobodyNotified,
    #[error("a chain that repeats must end with a wait, or it would notify in a loop")]
    RepeatWithoutWait,
    #[error("repeat is at most {MAX_REPEAT}")]
    TooManyRepeats,
    #[error(
        "step {0}: a wait has either \"minutes\", or \"until\" (\"HH:MM\" with optional days_later and open_days_only, or \"business_hours\")"
    )]
    BadWait(usize),
    #[error("step {0}: a wait is 1 to {MAX_WAIT_MINUTES} minutes")]
    BadMinutes(usize),
    #[error("step {0}: a time of day is \"HH:MM\" (00:00 to 23:59), at most 31 days later")]
    BadTimeOfDay(usize),
    #[error("step {0}: waiting for business hours needs the policy's calendar_id")]
    NoCalendar(usize),
    #[error("step {0}: a notify step names 1 to {MAX_TARGETS} recipients")]
    BadRecipients(usize),
    #[error("a recipient is not valid: {0}")]
    BadTarget(String),
    #[error("an instruction is at most 1,000 characters")]
    BadInstruction,
    #[error("Sev levels are 1, 2 or 3")]
    BadSev,
    #[error("an acknowledgement timeout is 1 to {MAX_WAIT_MINUTES} minutes")]
    BadAckTimeout,
    #[error(
        "an escalation is made only after the steps have run; resolve cannot be the first step"
    )]
    ResolveFirst,
}

impl PolicyInvalid {
    pub fn code(&self) -> &'static str {
        "bad_escalation_policy"
    }
}

/// `HH:MM` → (hour, minute).
pub fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

fn valid_policy_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl EscalationPolicy {
    /// Checks everything that can be checked without the tenant's other records (the API
    /// checks that named channels, calendars and schedules exist).
    pub fn validate(&self) -> Result<(), PolicyInvalid> {
        if !valid_policy_id(&self.policy_id) {
            return Err(PolicyInvalid::BadId);
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(PolicyInvalid::BadName);
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(PolicyInvalid::StepCount);
        }
        if self.repeat > MAX_REPEAT {
            return Err(PolicyInvalid::TooManyRepeats);
        }
        if self.applies.sev.iter().any(|s| !(1..=3).contains(s)) {
            return Err(PolicyInvalid::BadSev);
        }
        if self
            .ack_timeout_minutes
            .is_some_and(|m| m == 0 || m > MAX_WAIT_MINUTES)
        {
            return Err(PolicyInvalid::BadAckTimeout);
        }
        let say_ok = |s: &Option<String>| s.as_ref().is_none_or(|s| s.chars().count() <= 1_000);
        let mut notifies = false;
        for (i, step) in self.steps.iter().enumerate() {
            let n = i + 1;
            match step {
                Step::Notify { to, cc, say } => {
                    if to.is_empty() || to.len() + cc.len() > MAX_TARGETS {
                        return Err(PolicyInvalid::BadRecipients(n));
                    }
                    for t in to.iter().chain(cc) {
                        t.validate()?;
                    }
                    if !say_ok(say) {
                        return Err(PolicyInvalid::BadInstruction);
                    }
                    notifies = true;
                }
                Step::NotifyAssignee { say } => {
                    if !say_ok(say) {
                        return Err(PolicyInvalid::BadInstruction);
                    }
                    notifies = true;
                }
                Step::Resolve { say } => {
                    if i == 0 {
                        return Err(PolicyInvalid::ResolveFirst);
                    }
                    if !say_ok(say) {
                        return Err(PolicyInvalid::BadInstruction);
                    }
                }
                Step::RaiseSeverity => {}
                Step::Wait { .. } => match step.wait() {
                    None => return Err(PolicyInvalid::BadWait(n)),
                    Some(Wait::Minutes(minutes)) => {
                        if minutes == 0 || minutes > MAX_WAIT_MINUTES {
                            return Err(PolicyInvalid::BadMinutes(n));
                        }
                    }
                    Some(Wait::TimeOfDay {
                        days_later,
                        open_days_only,
                        ..
                    }) => {
                        if days_later > 31 {
                            return Err(PolicyInvalid::BadTimeOfDay(n));
                        }
                        if open_days_only && self.calendar_id.is_none() {
                            return Err(PolicyInvalid::NoCalendar(n));
                        }
                    }
                    Some(Wait::BusinessHours) => {
                        if self.calendar_id.is_none() {
                            return Err(PolicyInvalid::NoCalendar(n));
                        }
                    }
                },
            }
        }
        if !notifies {
            return Err(PolicyInvalid::NobodyNotified);
        }
        if self.repeat > 0 && !matches!(self.steps.last(), Some(Step::Wait { .. })) {
            return Err(PolicyInvalid::RepeatWithoutWait);
        }
        Ok(())
    }

    /// Every recipient id the chain names, for the API's existence checks.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.steps.iter().flat_map(|s| match s {
            Step::Notify { to, cc, .. } => to.iter().chain(cc.iter()).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    }
}

/// People an escalation step notifies together ("the admins", "the NOC").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGroup {
    pub group_id: String,
    pub name: String,
    /// User ids of the tenant.
    pub members: Vec<String>,
}

/// Most members of a group.
pub const MAX_GROUP_MEMBERS: usize = 100;

impl UserGroup {
    pub fn validate(&self) -> Result<(), PolicyInvalid> {
        if !valid_policy_id(&self.group_id) {
            return Err(PolicyInvalid::BadId);
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(PolicyInvalid::BadName);
        }
        if self.members.len() > MAX_GROUP_MEMBERS
            || self
                .members
                .iter()
                .any(|m| m.trim().is_empty() || m.len() > 120)
        {
            return Err(PolicyInvalid::BadTarget(format!(
                "a group has at most {MAX_GROUP_MEMBERS} members, each a user id"
            )));
        }
        Ok(())
    }
}

/// The first policy that applies to `facts`: lowest priority, then id.
pub fn choose<'a>(
    policies: impl IntoIterator<Item = &'a EscalationPolicy>,
    facts: &AlertFacts,
) -> Option<&'a EscalationPolicy> {
    policies
        .into_iter()
        .filter(|p| p.applies.matches(facts))
        .min_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.policy_id.cmp(&b.policy_id))
        })
}

/// What an escalation knows of its alert (copied from the opening event, so a step needs
/// no other read to say what it is about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFacts {
    pub tenant_id: TenantId,
    pub alert_id: String,
    pub opened_ms: i64,
    pub client_id: ClientId,
    pub site_id: SiteId,
    pub device_id: DeviceId,
    pub device_name: String,
    pub family: AlertFamily,
    pub severity: Severity,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Someone (or something) a notice is sent to, resolved when the step ran.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Recipient {
    Channel {
        channel_id: String,
    },
    /// A person of the tenant; `address` is their e-mail on record, looked up when the step
    /// ran (none: they cannot be reached by e-mail, which the delivery log says).
    User {
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    Email {
        address: String,
    },
}

impl Recipient {
    /// A stable key, for the notifier's per-recipient claim.
    pub fn key(&self) -> String {
        match self {
            Self::Channel { channel_id } => format!("channel:{channel_id}"),
            Self::User { user_id, .. } => format!("user:{user_id}"),
            Self::Email { address } => format!("email:{}", address.to_ascii_lowercase()),
        }
    }
}

/// One notification a step sends: to its recipients, cc in copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Derived from (alert, episode, round, step): the same step computed twice is the same
    /// notice.
    pub notice_id: String,
    pub tenant_id: TenantId,
    pub alert: AlertFacts,
    /// 1-based step number and 0-based round, as the trace names them.
    pub step: usize,
    pub round: u32,
    pub policy_id: String,
    pub policy_name: String,
    pub to: Vec<Recipient>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Recipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<String>,
    /// When the step was due and when it ran.
    pub due_ms: i64,
    pub at_ms: i64,
}

impl Notice {
    /// The user recipients, to fill in their addresses.
    pub fn users_mut(&mut self) -> impl Iterator<Item = (&str, &mut Option<String>)> {
        self.to
            .iter_mut()
            .chain(self.cc.iter_mut())
            .filter_map(|r| match r {
                Recipient::User { user_id, address } => Some((user_id.as_str(), address)),
                _ => None,
            })
    }

    /// One line for people: "Step 2 of \"Server backup\": backup_failure on srv-1 (acme · hq)".
    pub fn headline(&self) -> String {
        format!(
            "[Sev {} · escalation step {}] {} on {} ({} · {}){}",
            self.alert.severity.sev_level(),
            self.step,
            self.alert.family.as_str().replace('_', " "),
            self.alert.device_name,
            self.alert.client_id,
            self.alert.site_id,
            if self.alert.subject.is_empty() {
                String::new()
            } else {
                format!(" — {}", self.alert.subject)
            }
        )
    }

    /// Every recipient, `to` first, each once.
    pub fn recipients(&self) -> Vec<(&Recipient, bool)> {
        let mut seen = std::collections::BTreeSet::new();
        self.to
            .iter()
            .map(|r| (r, false))
            .chain(self.cc.iter().map(|r| (r, true)))
            .filter(|(r, _)| seen.insert(r.key()))
            .collect()
    }
}

/// What the steps need to know of the tenant when they run. Implemented over the tenant's
/// calendars, on-call schedules, groups (loaded before the run) — and by fakes in tests.
pub trait Resolver {
    /// The first instant at or after `at_ms` the calendar is open; `None` when the calendar
    /// is unknown or never open.
    fn next_open(&self, calendar_id: &str, at_ms: i64) -> Option<i64>;
    /// Wall-clock `hh:mm` `days_later` days after the local day of `after_ms` (see
    /// [`Wait::TimeOfDay`]), in the calendar's zone if `calendar_id` is set, else in `zone`.
    fn at_local_time(
        &self,
        calendar_id: Option<&str>,
        zone: &str,
        after_ms: i64,
        at: (u8, u8),
        days_later: u32,
        open_days_only: bool,
    ) -> i64;
    /// Who is on call in the schedule at `at_ms` (a user id), if anyone.
    fn on_call(&self, schedule_id: &str, at_ms: i64) -> Option<String>;
    /// The members of a user group (user ids); empty when unknown.
    fn group_members(&self, group_id: &str) -> Vec<String>;
    /// Local time for people ("Mon 2026-03-30 06:00 +02:00") in the policy's zone.
    fn describe(&self, zone: &str, at_ms: i64) -> String;
}

/// Where an escalation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EscalationState {
    /// Steps run as they fall due.
    Running,
    /// Someone acknowledged; with an acknowledgement timeout, escalation resumes at `until_ms`.
    Acknowledged {
        by: String,
        at_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<i64>,
    },
    /// Over: the alert resolved (measured or by hand) or a resolve step ran.
    Stopped { reason: String, at_ms: i64 },
    /// Every step of every round ran and nobody acted.
    Exhausted { at_ms: i64 },
}

/// A line of the written trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceLine {
    pub at_ms: i64,
    /// Stable code: `started`, `waiting`, `notified`, `nobody_to_notify`, `severity_raised`,
    /// `resolved_by_policy`, `round`, `exhausted`, `acknowledged`, `ack_timed_out`,
    /// `assigned`, `stopped`, `rescheduled`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub round: u32,
    pub text: String,
}

/// An escalation running on one alert episode: the copied chain and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// The policy as it was when escalation started.
    pub policy: EscalationPolicy,
    pub facts: AlertFacts,
    pub started_ms: i64,
    /// Index of the next step to run, and the round (0 = first pass).
    pub position: usize,
    pub round: u32,
    pub state: EscalationState,
    /// When the next thing happens (a step falls due, an acknowledgement lapses); `None` when
    /// nothing will.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_ms: Option<i64>,
    /// Bumped by every change; a wake-up scheduled for another generation does nothing.
    pub generation: u64,
    /// The assignee must act by this time (the step deadline when they were assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_deadline_ms: Option<i64>,
    pub trace: Vec<TraceLine>,
    /// Notices decided and not yet handed to the notifier (cleared once sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<Notice>,
    /// Notices sent so far (all rounds).
    #[serde(default)]
    pub notices_sent: u32,
}

/// What people did to the episode, as the steps need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People<'a> {
    pub assignee: Option<&'a str>,
}

/// What a run did besides changing the escalation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Steps that ran.
    pub steps_run: usize,
    /// A resolve step ran: the episode must be resolved by "escalation policy".
    pub resolve: bool,
    /// An acknowledgement lapsed: the episode goes back to unacknowledged.
    pub ack_lapsed: bool,
}

/// Steps run at most this many times in one call (a chain with no waits that repeats is
/// refused by validation; this bounds anything else).
const MAX_STEPS_PER_RUN: usize = MAX_STEPS * (MAX_REPEAT as usize + 1);

impl Escalation {
    /// Copies `policy` onto the alert. The first step is due at once — or, for a Sev 3 alert
    /// under a policy whose Sev 3 waits, when business hours next start.
    pub fn start(
        policy: &EscalationPolicy,
        facts: AlertFacts,
        now_ms: i64,
        resolver: &dyn Resolver,
    ) -> Self {
        let mut e = Self {
            policy: policy.clone(),
            facts,
            started_ms: now_ms,
            position: 0,
            round: 0,
            state: EscalationState::Running,
            due_ms: Some(now_ms),
            generation: 1,
            owner_deadline_ms: None,
            trace: Vec::new(),
            outbox: Vec::new(),
            notices_sent: 0,
        };
        e.line(
            now_ms,
            "started",
            None,
            format!(
                "escalation policy \"{}\" started for Sev {} {}",
                policy.name,
                e.facts.severity.sev_level(),
                e.facts.family.as_str()
            ),
        );
        if e.facts.severity.sev_level() == 3
            && policy.sev3 == Sev3Urgency::BusinessHours
            && let Some(cal) = &policy.calendar_id
        {
            {
                match resolver.next_open(cal, now_ms) {
                    Some(open) if open > now_ms => {
                        e.due_ms = Some(open);
                        let when = resolver.describe(&policy.time_zone, open);
                        e.line(
                            now_ms,
                            "waiting",
                            None,
                            format!("Sev 3 waits for business hours: first step at {when}"),
                        );
                    }
                    Some(_) => {}
                    None => e.line(
                        now_ms,
                        "waiting",
                        None,
                        format!("calendar {cal} is unknown or never open: first step now"),
                    ),
                }
            }
        }
        e
    }

    /// The wake-up token: the generation this escalation is at.
    pub fn token(&self) -> u64 {
        self.generation
    }

    /// When the sweeper must look at this escalation: at once while notices wait in the
    /// outbox (the writer that put them there stopped before handing them over), else when
    /// the next thing is due; `None`: never again.
    pub fn timer_ms(&self) -> Option<i64> {
        match (self.outbox.first(), self.due_ms) {
            (Some(n), Some(d)) => Some(n.at_ms.min(d)),
            (Some(n), None) => Some(n.at_ms),
            (None, d) => d,
        }
    }

    /// Whether anything is still to happen.
    pub fn is_live(&self) -> bool {
        self.due_ms.is_some()
    }

    fn line(&mut self, at_ms: i64, action: &str, step: Option<usize>, text: String) {
        if self.trace.len() >= MAX_TRACE {
            self.trace.remove(1);
        }
        self.trace.push(TraceLine {
            at_ms,
            action: action.to_owned(),
            step,
            round: self.round,
            text,
        });
    }

    /// Runs whatever is due at `now_ms`: steps in order until a wait that has not elapsed,
    /// the end of the chain, or a stop. Notices go to [`Escalation::outbox`]. Nothing is
    /// due (or the escalation is over): nothing changes and the generation stays.
    pub fn run_due(
        &mut self,
        now_ms: i64,
        people: &People<'_>,
        resolver: &dyn Resolver,
    ) -> RunOutcome {
        let mut out = RunOutcome::default();
        let Some(mut due) = self.due_ms.filter(|d| *d <= now_ms) else {
            return out;
        };
        self.generation += 1;
        if let EscalationState::Acknowledged { by, .. } = &self.state {
            let by = by.clone();
            self.state = EscalationState::Running;
            out.ack_lapsed = true;
            self.line(
                now_ms,
                "ack_timed_out",
                None,
                format!("the acknowledgement by {by} timed out; escalation resumes"),
            );
        }
        if !matches!(self.state, EscalationState::Running) {
            self.due_ms = None;
            return out;
        }
        while out.steps_run < MAX_STEPS_PER_RUN {
            if self.position >= self.policy.steps.len() {
                if self.round < self.policy.repeat {
                    self.round += 1;
                    self.position = 0;
                    let n = self.round + 1;
                    self.line(
                        now_ms,
                        "round",
                        None,
                        format!("the chain starts again (pass {n})"),
                    );
                    continue;
                }
                self.state = EscalationState::Exhausted { at_ms: now_ms };
                self.due_ms = None;
                self.line(
                    now_ms,
                    "exhausted",
                    None,
                    "every step ran and nobody acknowledged: escalation is over".to_owned(),
                );
                return out;
            }
            let index = self.position;
            let n = index + 1;
            let step = self.policy.steps[index].clone();
            self.position += 1;
            out.steps_run += 1;
            match step {
                Step::Wait { .. } => {
                    let Some(wait) = step.wait() else {
                        continue;
                    };
                    let until = self.wait_end(&wait, due, resolver);
                    if until > now_ms {
                        self.due_ms = Some(until);
                        if self.owner_deadline_ms.is_some() {
                            self.owner_deadline_ms = Some(until);
                        }
                        let when = resolver.describe(&self.policy.time_zone, until);
                        self.line(now_ms, "waiting", Some(n), format!("next step at {when}"));
                        return out;
                    }
                    // Already over (a late run): the next step is due when this wait ended.
                    due = until;
                }
                Step::Notify { to, cc, say } => {
                    let to = self.resolve_targets(&to, now_ms, people, resolver);
                    let cc = self.resolve_targets(&cc, now_ms, people, resolver);
                    self.notify(n, due, now_ms, to, cc, say);
                }
                Step::NotifyAssignee { say } => {
                    let to = self.resolve_targets(&[Target::Assignee], now_ms, people, resolver);
                    self.notify(n, due, now_ms, to, Vec::new(), say);
                }
                Step::RaiseSeverity => {
                    let from = self.facts.severity;
                    let to = match from {
                        Severity::Info => Severity::Warning,
                        _ => Severity::Critical,
                    };
                    self.facts.severity = to;
                    self.line(
                        now_ms,
                        "severity_raised",
                        Some(n),
                        format!("Sev {} → Sev {}", from.sev_level(), to.sev_level()),
                    );
                }
                Step::Resolve { say } => {
                    out.resolve = true;
                    self.state = EscalationState::Stopped {
                        reason: "resolved_by_policy".into(),
                        at_ms: now_ms,
                    };
                    self.due_ms = None;
                    let text = say.unwrap_or_else(|| "resolved by the escalation policy".into());
                    self.line(now_ms, "resolved_by_policy", Some(n), text);
                    return out;
                }
            }
        }
        self.due_ms = None;
        out
    }

    fn wait_end(&self, wait: &Wait, from_ms: i64, resolver: &dyn Resolver) -> i64 {
        let p = &self.policy;
        match wait {
            Wait::Minutes(minutes) => from_ms + i64::from(*minutes) * 60_000,
            Wait::TimeOfDay {
                at,
                days_later,
                open_days_only,
            } => resolver.at_local_time(
                p.calendar_id.as_deref(),
                &p.time_zone,
                from_ms,
                *at,
                *days_later,
                *open_days_only,
            ),
            Wait::BusinessHours => p
                .calendar_id
                .as_deref()
                .and_then(|c| resolver.next_open(c, from_ms))
                .unwrap_or(from_ms),
        }
    }

    fn resolve_targets(
        &self,
        targets: &[Target],
        now_ms: i64,
        people: &People<'_>,
        resolver: &dyn Resolver,
    ) -> Vec<Recipient> {
        let mut out: Vec<Recipient> = Vec::new();
        let mut push = |r: Recipient| {
            if !out.contains(&r) {
                out.push(r);
            }
        };
        for t in targets {
            match t {
                Target::Channel { channel_id } => push(Recipient::Channel {
                    channel_id: channel_id.clone(),
                }),
                Target::User { user_id } => push(Recipient::User {
                    user_id: user_id.clone(),
                    address: None,
                }),
                Target::Email { address, .. } => push(Recipient::Email {
                    address: address.clone(),
                }),
                Target::Group { group_id } => {
                    for user_id in resolver.group_members(group_id) {
                        push(Recipient::User {
                            user_id,
                            address: None,
                        });
                    }
                }
                Target::OnCall { schedule_id } => {
                    if let Some(user_id) = resolver.on_call(schedule_id, now_ms) {
                        push(Recipient::User {
                            user_id,
                            address: None,
                        });
                    }
                }
                Target::Assignee => {
                    if let Some(a) = people.assignee {
                        push(Recipient::User {
                            user_id: a.to_owned(),
                            address: None,
                        });
                    }
                }
            }
        }
        out
    }

    fn notify(
        &mut self,
        n: usize,
        due_ms: i64,
        now_ms: i64,
        to: Vec<Recipient>,
        cc: Vec<Recipient>,
        say: Option<String>,
    ) {
        if to.is_empty() && cc.is_empty() {
            self.line(
                now_ms,
                "nobody_to_notify",
                Some(n),
                "nobody to notify (no one on call, empty group or no assignee)".to_owned(),
            );
            return;
        }
        let names = |rs: &[Recipient]| {
            rs.iter()
                .map(|r| match r {
                    Recipient::Channel { channel_id } => format!("channel {channel_id}"),
                    Recipient::User { user_id, .. } => user_id.clone(),
                    Recipient::Email { address } => address.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!("notified {}", names(&to));
        if !cc.is_empty() {
            text.push_str(&format!(" (cc {})", names(&cc)));
        }
        if let Some(s) = &say {
            text.push_str(&format!(": {s}"));
        }
        let notice = Notice {
            notice_id: derived_id(
                "esc",
                &[
                    self.facts.tenant_id.as_str(),
                    &self.facts.alert_id,
                    &self.facts.opened_ms.to_string(),
                    &self.round.to_string(),
                    &n.to_string(),
                ],
            ),
            tenant_id: self.facts.tenant_id.clone(),
            alert: self.facts.clone(),
            step: n,
            round: self.round,
            policy_id: self.policy.policy_id.clone(),
            policy_name: self.policy.name.clone(),
            to,
            cc,
            say,
            due_ms,
            at_ms: now_ms,
        };
        self.outbox.push(notice);
        self.notices_sent += 1;
        self.line(now_ms, "notified", Some(n), text);
    }

    /// Someone acknowledged: no further step runs. With the policy's acknowledgement timeout
    /// the escalation wakes up when it lapses (and resumes where it stood).
    pub fn acknowledged(&mut self, by: &str, now_ms: i64) {
        if !matches!(self.state, EscalationState::Running) {
            return;
        }
        self.generation += 1;
        let until_ms = self
            .policy
            .ack_timeout_minutes
            .map(|m| now_ms + i64::from(m) * 60_000);
        self.state = EscalationState::Acknowledged {
            by: by.to_owned(),
            at_ms: now_ms,
            until_ms,
        };
        self.due_ms = until_ms;
        self.owner_deadline_ms = None;
        let text = match until_ms {
            Some(_) => format!(
                "acknowledged by {by}; escalation paused for {} min",
                self.policy.ack_timeout_minutes.unwrap_or(0)
            ),
            None => format!("acknowledged by {by}; escalation stopped"),
        };
        self.line(now_ms, "acknowledged", None, text);
    }

    /// Someone was assigned (or took the alert): they own it and must act before the next
    /// step falls due, else the chain goes on (and a `notify_assignee` step reaches them).
    pub fn assigned(&mut self, assignee: Option<&str>, by: &str, now_ms: i64) {
        self.generation += 1;
        match assignee {
            Some(a) => {
                self.owner_deadline_ms = self.due_ms;
                let text = match (&self.state, self.due_ms) {
                    (EscalationState::Running, Some(due)) => {
                        format!(
                            "{by} assigned the alert to {a}, who must act before the next step (due at {due} ms)"
                        )
                    }
                    _ => format!("{by} assigned the alert to {a}"),
                };
                self.line(now_ms, "assigned", None, text);
            }
            None => {
                self.owner_deadline_ms = None;
                self.line(
                    now_ms,
                    "assigned",
                    None,
                    format!("{by} unassigned the alert"),
                );
            }
        }
    }

    /// The alert resolved (measured, by hand, or the episode ended): nothing more runs.
    pub fn stop(&mut self, reason: &str, now_ms: i64, text: String) {
        if matches!(
            self.state,
            EscalationState::Stopped { .. } | EscalationState::Exhausted { .. }
        ) {
            return;
        }
        self.generation += 1;
        self.state = EscalationState::Stopped {
            reason: reason.to_owned(),
            at_ms: now_ms,
        };
        self.due_ms = None;
        self.line(now_ms, "stopped", None, text);
    }

    /// The auditor found the escalation overdue: it runs again now, with a new generation
    /// so any wake-up still in flight for the old one does nothing.
    pub fn rescheduled(&mut self, now_ms: i64, overdue_ms: i64) {
        self.generation += 1;
        self.due_ms = Some(now_ms);
        self.line(
            now_ms,
            "rescheduled",
            None,
            format!(
                "the auditor found this escalation {} s overdue and ran it",
                overdue_ms / 1000
            ),
        );
    }

    /// The next step's number (1-based) when the escalation is running.
    pub fn next_step(&self) -> Option<usize> {
        matches!(self.state, EscalationState::Running)
            .then_some(self.position + 1)
            .filter(|n| *n <= self.policy.steps.len())
    }
}

/// The built-in escalation templates: MISSION.md's written procedures.
pub mod templates {
    use super::*;

    /// What an MSP fills in when it makes a policy from a template.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TemplateParams {
        /// The new policy's id (default: the template's id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub policy_id: Option<String>,
        /// Who supervises: the technicians to page (an on-call schedule, a group, a user).
        pub supervisors: Target,
        /// The supervision mailbox, in copy of every written step.
        pub supervision_mailbox: Target,
        /// The account manager of the client company.
        pub account_manager: Target,
        /// The workstation's user or the client's IT contact (workstation template).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_contact: Option<Target>,
        /// The business-hours calendar ("sites supervised 06:00–22:00 Monday to Saturday").
        pub calendar_id: String,
        #[serde(default = "super::utc")]
        pub time_zone: String,
        /// Attach to these client companies only (default: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub clients: Vec<ClientId>,
    }

    /// A built-in template, as the API lists it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
    pub struct Template {
        pub template_id: &'static str,
        pub version: u32,
        pub name: &'static str,
        pub description: &'static str,
        /// Parameters the template needs besides the common ones.
        pub needs_client_contact: bool,
    }

    pub const SERVER_BACKUP: &str = "server-backup-same-day";
    pub const WORKSTATION_BACKUP: &str = "workstation-backup-next-day";

    pub const ALL: [Template; 2] = [
        Template {
            template_id: SERVER_BACKUP,
            version: 1,
            name: "Server / NAS backup failure — same day",
            description: "Page the supervisors at once; if nobody acknowledges within 2 hours, tell the account manager in writing (supervision mailbox in copy) and check that the local backup works; 2 hours later, raise to Sev 1 and escalate for action the same day. An acknowledgement lapses after 4 hours, so an acknowledged failure left alone still climbs the same day.",
            needs_client_contact: false,
        },
        Template {
            template_id: WORKSTATION_BACKUP,
            version: 1,
            name: "Workstation backup failure — user at D+1, phone after 7 days",
            description: "A workstation is often off: nothing the same day. At 09:00 on the next business day, e-mail the user (or the client's IT contact), account manager and supervision mailbox in copy; at 09:00 one week later, with no change and no answer, ask the supervisors to phone the client, with the same written copies. Each step is written in the alert's trace.",
            needs_client_contact: true,
        },
    ];

    /// Why a template cannot be instantiated.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum TemplateError {
        #[error("no escalation template {0}")]
        Unknown(String),
        #[error("the workstation template needs client_contact")]
        NoClientContact,
        #[error(transparent)]
        Invalid(#[from] PolicyInvalid),
    }

    /// The template's policy with `params` filled in, validated.
    pub fn instantiate(
        id: &str,
        params: &TemplateParams,
    ) -> Result<EscalationPolicy, TemplateError> {
        let t = ALL
            .iter()
            .find(|t| t.template_id == id)
            .ok_or_else(|| TemplateError::Unknown(id.to_owned()))?;
        let say = |s: &str| Some(s.to_owned());
        let (roles, sev3, ack_timeout, steps) = match id {
            SERVER_BACKUP => (
                vec!["server".to_owned(), "nas".to_owned()],
                Sev3Urgency::Now,
                Some(240),
                vec![
                    Step::Notify {
                        to: vec![params.supervisors.clone()],
                        cc: Vec::new(),
                        say: say("A server or NAS backup failed: handle it today."),
                    },
                    Step::wait_minutes(120),
                    Step::Notify {
                        to: vec![params.account_manager.clone()],
                        cc: vec![params.supervision_mailbox.clone()],
                        say: say(
                            "The backup failure was not handled within 2 hours. Check in parallel that the local backup works.",
                        ),
                    },
                    Step::wait_minutes(120),
                    Step::RaiseSeverity,
                    Step::Notify {
                        to: vec![params.supervisors.clone(), params.account_manager.clone()],
                        cc: vec![params.supervision_mailbox.clone()],
                        say: say("Still failing after 4 hours: escalate for action today."),
                    },
                ],
            ),
            _ => {
                let contact = params
                    .client_contact
                    .clone()
                    .ok_or(TemplateError::NoClientContact)?;
                (
                    vec!["workstation".to_owned()],
                    Sev3Urgency::BusinessHours,
                    None,
                    vec![
                        Step::wait_until("09:00", 1, true),
                        Step::Notify {
                            to: vec![contact],
                            cc: vec![
                                params.account_manager.clone(),
                                params.supervision_mailbox.clone(),
                            ],
                            say: say(
                                "The backup of this workstation failed. It may simply be off or offline: please switch it on and connect it, or tell us.",
                            ),
                        },
                        Step::wait_until("09:00", 7, true),
                        Step::Notify {
                            to: vec![params.supervisors.clone()],
                            cc: vec![
                                params.account_manager.clone(),
                                params.supervision_mailbox.clone(),
                            ],
                            say: say(
                                "No change and no answer for a week: phone the client, and write the call in the alert.",
                            ),
                        },
                    ],
                )
            }
        };
        let policy = EscalationPolicy {
            policy_id: params.policy_id.clone().unwrap_or_else(|| id.to_owned()),
            name: t.name.to_owned(),
            description: Some(t.description.to_owned()),
            applies: Applies {
                families: vec![AlertFamily::BackupFailure],
                roles,
                clients: params.clients.clone(),
                ..Applies::default()
            },
            priority: 0,
            calendar_id: Some(params.calendar_id.clone()),
            time_zone: params.time_zone.clone(),
            sev3,
            repeat: 0,
            ack_timeout_minutes: ack_timeout,
            steps,
            template: Some(FromTemplate {
                template_id: t.template_id.to_owned(),
                version: t.version,
            }),
        };
        policy.validate()?;
        Ok(policy)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const MIN: i64 = 60_000;
    pub const HOUR: i64 = 60 * MIN;
    pub const DAY: i64 = 24 * HOUR;

    /// Open 06:00–22:00 UTC every day but Sunday; day 0 (1970-01-01) was a Thursday.
    pub struct Fake;
    impl Fake {
        fn open_day(day: i64) -> bool {
            (day + 4).rem_euclid(7) != 0
        }
    }
    impl Resolver for Fake {
        fn next_open(&self, cal: &str, at: i64) -> Option<i64> {
            if cal != "hours" {
                return None;
            }
            let mut day = at.div_euclid(DAY);
            loop {
                let (open, close) = (day * DAY + 6 * HOUR, day * DAY + 22 * HOUR);
                if Self::open_day(day) && at < close {
                    return Some(at.max(open));
                }
                day += 1;
            }
        }
        fn at_local_time(
            &self,
            _cal: Option<&str>,
            _zone: &str,
            after: i64,
            at: (u8, u8),
            days_later: u32,
            open_days_only: bool,
        ) -> i64 {
            let tod = i64::from(at.0) * HOUR + i64::from(at.1) * MIN;
            let mut day = after.div_euclid(DAY) + i64::from(days_later);
            if days_later == 0 && day * DAY + tod <= after {
                day += 1;
            }
            while open_days_only && !Self::open_day(day) {
                day += 1;
            }
            day * DAY + tod
        }
        fn on_call(&self, schedule: &str, at: i64) -> Option<String> {
            (schedule == "night").then(|| {
                if (at.rem_euclid(DAY)) < 12 * HOUR {
                    "usr-ana".to_owned()
                } else {
                    "usr-bob".to_owned()
                }
            })
        }
        fn group_members(&self, group: &str) -> Vec<String> {
            match group {
                "admins" => vec!["usr-ana".into(), "usr-cy".into()],
                _ => Vec::new(),
            }
        }
        fn describe(&self, _zone: &str, at: i64) -> String {
            at.to_string()
        }
    }

    pub fn facts(sev: Severity) -> AlertFacts {
        AlertFacts {
            tenant_id: TenantId::parse("msp").expect("id"),
            alert_id: "al-1".into(),
            opened_ms: 1_000,
            client_id: ClientId::parse("acme").expect("id"),
            site_id: SiteId::parse("hq").expect("id"),
            device_id: DeviceId::parse("dev-1").expect("id"),
            device_name: "srv-1".into(),
            family: AlertFamily::BackupFailure,
            severity: sev,
            subject: "nightly".into(),
            detail: None,
            role: Some("server".into()),
        }
    }

    fn notify(to: Target) -> Step {
        Step::Notify {
            to: vec![to],
            cc: Vec::new(),
            say: None,
        }
    }

    fn wait(minutes: u32) -> Step {
        Step::wait_minutes(minutes)
    }

    pub fn policy(steps: Vec<Step>) -> EscalationPolicy {
        EscalationPolicy {
            policy_id: "p1".into(),
            name: "P1".into(),
            description: None,
            applies: Applies::default(),
            priority: 0,
            calendar_id: Some("hours".into()),
            time_zone: "UTC".into(),
            sev3: Sev3Urgency::BusinessHours,
            repeat: 0,
            ack_timeout_minutes: None,
            steps,
            template: None,
        }
    }

    fn user(u: &str) -> Recipient {
        Recipient::User {
            user_id: u.into(),
            address: None,
        }
    }

    /// Runs `e` at each instant in `times`; returns (time, step, recipients) of every notice.
    fn drive(e: &mut Escalation, until: i64) -> Vec<(i64, usize, Vec<Recipient>)> {
        let mut sent = Vec::new();
        while let Some(due) = e.due_ms.filter(|d| *d <= until) {
            e.run_due(due, &People::default(), &Fake);
            for n in e.outbox.drain(..) {
                sent.push((n.at_ms, n.step, n.to));
            }
        }
        sent
    }

    #[test]
    fn a_chain_notifies_waits_and_repeats_then_is_exhausted() {
        let mut p = policy(vec![
            notify(Target::OnCall {
                schedule_id: "night".into(),
            }),
            wait(15),
            notify(Target::Group {
                group_id: "admins".into(),
            }),
            wait(30),
        ]);
        p.repeat = 1;
        p.validate().expect("valid");
        let t0 = 10 * DAY + 13 * HOUR;
        let mut e = Escalation::start(&p, facts(Severity::Critical), t0, &Fake);
        let sent = drive(&mut e, t0 + DAY);
        assert_eq!(
            sent,
            vec![
                (t0, 1, vec![user("usr-bob")]),
                (t0 + 15 * MIN, 3, vec![user("usr-ana"), user("usr-cy")]),
                (t0 + 45 * MIN, 1, vec![user("usr-bob")]),
                (t0 + 60 * MIN, 3, vec![user("usr-ana"), user("usr-cy")]),
            ]
        );
        assert!(matches!(e.state, EscalationState::Exhausted { at_ms } if at_ms == t0 + 90 * MIN));
        assert_eq!(e.due_ms, None);
    }

    #[test]
    fn running_twice_at_the_same_instant_sends_nothing_more() {
        let p = policy(vec![
            notify(Target::User {
                user_id: "usr-ana".into(),
            }),
            wait(10),
        ]);
        let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
        e.run_due(0, &People::default(), &Fake);
        assert_eq!(e.outbox.len(), 1);
        let generation = e.generation;
        let before = e.clone();
        let out = e.run_due(0, &People::default(), &Fake);
        assert_eq!(out, RunOutcome::default());
        assert_eq!(e, before);
        assert_eq!(e.generation, generation);
    }

    #[test]
    fn notice_ids_are_the_same_for_the_same_step_and_differ_per_round() {
        let mut p = policy(vec![
            notify(Target::User {
                user_id: "usr-ana".into(),
            }),
            wait(10),
        ]);
        p.repeat = 1;
        let run = || {
            let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
            e.run_due(0, &People::default(), &Fake);
            e.run_due(10 * MIN, &People::default(), &Fake);
            e.outbox
                .iter()
                .map(|n| n.notice_id.clone())
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn an_acknowledgement_stops_the_chain_and_can_lapse_back() {
        let mut p = policy(vec![
            notify(Target::User {
                user_id: "usr-ana".into(),
            }),
            wait(10),
            notify(Target::User {
                user_id: "usr-bob".into(),
            }),
            wait(10),
        ]);
        let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
        e.run_due(0, &People::default(), &Fake);
        e.acknowledged("usr-ana", 5 * MIN);
        assert_eq!(e.due_ms, None);
        assert_eq!(drive(&mut e, DAY), vec![]);

        p.ack_timeout_minutes = Some(30);
        let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
        e.run_due(0, &People::default(), &Fake);
        e.outbox.clear();
        e.acknowledged("usr-ana", 5 * MIN);
        assert_eq!(e.due_ms, Some(35 * MIN));
        let g = e.generation;
        let out = e.run_due(35 * MIN, &People::default(), &Fake);
        assert!(out.ack_lapsed);
        assert!(e.generation > g);
        // Resumes with the step after the wait it was in.
        assert_eq!(e.outbox[0].to, vec![user("usr-bob")]);
        assert_eq!(e.outbox[0].at_ms, 35 * MIN);
    }

    #[test]
    fn sev3_waits_for_business_hours_and_sev1_pages_at_once() {
        let p = policy(vec![notify(Target::User {
            user_id: "usr-ana".into(),
        })]);
        // Day 3 is a Sunday (closed); 23:00 on Saturday (day 2).
        let sat_night = 2 * DAY + 23 * HOUR;
        let mut e = Escalation::start(&p, facts(Severity::Info), sat_night, &Fake);
        assert_eq!(e.due_ms, Some(4 * DAY + 6 * HOUR));
        assert_eq!(drive(&mut e, 5 * DAY)[0].0, 4 * DAY + 6 * HOUR);
        let e = Escalation::start(&p, facts(Severity::Critical), sat_night, &Fake);
        assert_eq!(e.due_ms, Some(sat_night));
        let mut now = p.clone();
        now.sev3 = Sev3Urgency::Now;
        let e = Escalation::start(&now, facts(Severity::Info), sat_night, &Fake);
        assert_eq!(e.due_ms, Some(sat_night));
    }

    #[test]
    fn a_late_run_keeps_the_schedule_and_runs_each_overdue_step_once() {
        let p = policy(vec![
            notify(Target::User {
                user_id: "usr-ana".into(),
            }),
            wait(10),
            notify(Target::User {
                user_id: "usr-bob".into(),
            }),
            wait(10),
            notify(Target::User {
                user_id: "usr-cy".into(),
            }),
            wait(60),
        ]);
        let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
        e.run_due(25 * MIN, &People::default(), &Fake);
        let steps: Vec<(usize, i64)> = e.outbox.iter().map(|n| (n.step, n.due_ms)).collect();
        assert_eq!(steps, vec![(1, 0), (3, 10 * MIN), (5, 20 * MIN)]);
        assert_eq!(e.due_ms, Some(80 * MIN));
    }

    #[test]
    fn steps_raise_severity_reach_the_assignee_and_resolve() {
        let p = policy(vec![
            notify(Target::User {
                user_id: "usr-ana".into(),
            }),
            wait(10),
            Step::RaiseSeverity,
            Step::NotifyAssignee {
                say: Some("act now".into()),
            },
            wait(10),
            Step::Resolve { say: None },
        ]);
        p.validate().expect("valid");
        let mut e = Escalation::start(&p, facts(Severity::Warning), 0, &Fake);
        e.run_due(0, &People::default(), &Fake);
        e.assigned(Some("usr-dan"), "usr-ana", MIN);
        assert_eq!(e.owner_deadline_ms, Some(10 * MIN));
        e.outbox.clear();
        e.run_due(
            10 * MIN,
            &People {
                assignee: Some("usr-dan"),
            },
            &Fake,
        );
        assert_eq!(e.facts.severity, Severity::Critical);
        assert_eq!(e.outbox[0].to, vec![user("usr-dan")]);
        assert_eq!(e.outbox[0].alert.severity, Severity::Critical);
        let out = e.run_due(20 * MIN, &People::default(), &Fake);
        assert!(out.resolve);
        assert!(matches!(e.state, EscalationState::Stopped { .. }));
        assert_eq!(e.due_ms, None);
    }

    #[test]
    fn nobody_on_call_is_written_in_the_trace() {
        let p = policy(vec![Step::NotifyAssignee { say: None }]);
        let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
        e.run_due(0, &People::default(), &Fake);
        assert!(e.outbox.is_empty());
        assert!(e.trace.iter().any(|l| l.action == "nobody_to_notify"));
    }

    #[test]
    fn stopping_ends_it_and_a_stopped_escalation_ignores_acknowledgements() {
        let p = policy(vec![
            notify(Target::User {
                user_id: "usr-ana".into(),
            }),
            wait(10),
        ]);
        let mut e = Escalation::start(&p, facts(Severity::Critical), 0, &Fake);
        e.stop("resolved", 1, "the alert resolved".into());
        let g = e.generation;
        e.acknowledged("usr-ana", 2);
        e.stop("resolved", 3, "again".into());
        assert_eq!(e.generation, g);
        assert_eq!(e.due_ms, None);
        assert_eq!(drive(&mut e, DAY), vec![]);
    }

    #[test]
    fn policies_are_validated_and_chosen_by_priority() {
        let mut p = policy(vec![wait(10)]);
        assert_eq!(p.validate(), Err(PolicyInvalid::NobodyNotified));
        p.steps = vec![notify(Target::User {
            user_id: "u".into(),
        })];
        p.repeat = 1;
        assert_eq!(p.validate(), Err(PolicyInvalid::RepeatWithoutWait));
        p.repeat = 0;
        p.steps.push(Step::wait_until("25:00", 1, false));
        assert_eq!(p.validate(), Err(PolicyInvalid::BadWait(2)));
        p.steps.pop();
        p.steps.push(Step::Wait {
            minutes: Some(5),
            until: Some("09:00".into()),
            days_later: 0,
            open_days_only: false,
        });
        assert_eq!(p.validate(), Err(PolicyInvalid::BadWait(2)));
        p.steps.pop();
        p.calendar_id = None;
        p.steps.push(Step::wait_business_hours());
        assert_eq!(p.validate(), Err(PolicyInvalid::NoCalendar(2)));
        p.steps = vec![notify(Target::Email {
            address: "not an address".into(),
            name: None,
        })];
        assert!(matches!(p.validate(), Err(PolicyInvalid::BadTarget(_))));

        let mut a = policy(vec![notify(Target::Assignee)]);
        a.policy_id = "b-servers".into();
        a.applies.roles = vec!["server".into()];
        a.applies.families = vec![AlertFamily::BackupFailure];
        let mut b = a.clone();
        b.policy_id = "a-any".into();
        b.applies = Applies::default();
        b.priority = 10;
        let f = facts(Severity::Critical);
        assert_eq!(
            choose([&a, &b], &f).map(|p| p.policy_id.as_str()),
            Some("b-servers")
        );
        let mut ws = f.clone();
        ws.role = Some("workstation".into());
        assert_eq!(
            choose([&a, &b], &ws).map(|p| p.policy_id.as_str()),
            Some("a-any")
        );
    }

    #[test]
    fn a_policy_reads_back_from_json_and_unknown_fields_are_refused() {
        let json = r#"{"policy_id":"p","name":"P","steps":[
            {"do":"notify","to":[{"type":"on_call","schedule_id":"s"}],"cc":[{"type":"email","address":"noc@msp.example"}]},
            {"do":"wait","until":"09:00","days_later":1},
            {"do":"wait","minutes":5}]}"#;
        let p: EscalationPolicy = serde_json::from_str(json).expect("parses");
        p.validate().expect("valid");
        assert_eq!(p.time_zone, "UTC");
        assert_eq!(p.steps[2].wait(), Some(Wait::Minutes(5)));
        assert_eq!(
            p.steps[1].wait(),
            Some(Wait::TimeOfDay {
                at: (9, 0),
                days_later: 1,
                open_days_only: false
            })
        );
        let back: EscalationPolicy =
            serde_json::from_str(&serde_json::to_string(&p).expect("json")).expect("again");
        assert_eq!(back, p);
        let bad = json.replace("\"minutes\":5", "\"minutes\":5,\"x\":1");
        assert!(serde_json::from_str::<EscalationPolicy>(&bad).is_err());
    }
}
