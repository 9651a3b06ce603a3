//! The kinds of rule and what each one watches. A rule's JSON names its kind in `kind`; a rule
//! without `kind` is a threshold rule, so policies written before kinds existed parse as they
//! did.
//!
//! | kind        | watches                                   | raises on                                       |
//! |-------------|-------------------------------------------|-------------------------------------------------|
//! | `threshold` | a metric series, or a finding-derived one | value past a level for a duration ([`crate::rules`]) |
//! | `rate`      | a metric series' slope                    | hours left before it reaches `limit`            |
//! | `state`     | findings of one kind                      | a finding's state mapped to a severity          |
//! | `absence`   | backup findings                           | no successful backup for N hours                |
//! | `expiry`    | certificate findings                      | expiry within N days, one event per reminder    |
//! | `count`     | event counts of one kind                  | ≥ N events per source or subject in a window    |
//! | `event`     | event counts of listed kinds              | any such event, per subject                     |
//! | `inventory` | updates findings                          | security updates pending too long, manual ones, reboot pending too long |
//!
//! Shared guarantees, each tested here: input at or before a state's `last_ms` is ignored, so
//! a redelivered or late batch changes nothing and never moves a state backwards; a quiet,
//! steady input asks for no state write (a rate rule refreshes its anchor once per window);
//! an item absent from a batch changes nothing (except that `count` and `event` alerts clear
//! once `clear_after_s` has passed without events, at any later batch of the device).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::alert::{AlertFamily, Severity};
use crate::policy::{DeviceEvaluation, Metric, RuleId, RuleTransition, StateKey};
use crate::protocol::{BackupSource, CertificateTarget, CollectPlan};
use crate::rules::{
    Direction, Evaluation, Level, RuleState, Threshold, ThresholdInvalid, Transition,
};
use crate::telemetry::{EventCount, EventKind, Finding, FindingKind, Series, TelemetryBatch};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// What a rule checks: its kind and that kind's parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Threshold(ThresholdCheck),
    Rate(RateCheck),
    State(StateCheck),
    Absence(AbsenceCheck),
    Expiry(ExpiryCheck),
    Count(CountCheck),
    Event(EventCheck),
    Inventory(InventoryCheck),
}

impl Check {
    pub const KINDS: [&'static str; 8] = [
        "threshold",
        "rate",
        "state",
        "absence",
        "expiry",
        "count",
        "event",
        "inventory",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Threshold(_) => "threshold",
            Self::Rate(_) => "rate",
            Self::State(_) => "state",
            Self::Absence(_) => "absence",
            Self::Expiry(_) => "expiry",
            Self::Count(_) => "count",
            Self::Event(_) => "event",
            Self::Inventory(_) => "inventory",
        }
    }
}

impl Serialize for Check {
    /// Other kinds name themselves in `kind`; a threshold rule is written without it, exactly
    /// as before kinds existed.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Tagged<'a> {
            Rate(&'a RateCheck),
            State(&'a StateCheck),
            Absence(&'a AbsenceCheck),
            Expiry(&'a ExpiryCheck),
            Count(&'a CountCheck),
            Event(&'a EventCheck),
            Inventory(&'a InventoryCheck),
        }
        match self {
            Self::Threshold(c) => c.serialize(s),
            Self::Rate(c) => Tagged::Rate(c).serialize(s),
            Self::State(c) => Tagged::State(c).serialize(s),
            Self::Absence(c) => Tagged::Absence(c).serialize(s),
            Self::Expiry(c) => Tagged::Expiry(c).serialize(s),
            Self::Count(c) => Tagged::Count(c).serialize(s),
            Self::Event(c) => Tagged::Event(c).serialize(s),
            Self::Inventory(c) => Tagged::Inventory(c).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Check {
    /// `kind` picks the variant (absent: `threshold`); each variant refuses unknown fields, and
    /// an error names the kind it was parsing.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        use serde_json::{Value, from_value};
        let mut map = serde_json::Map::deserialize(d)?;
        let kind = match map.remove("kind") {
            None => "threshold".to_owned(),
            Some(Value::String(k)) => k,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`kind` must be a string, not {other}"
                )));
            }
        };
        let v = Value::Object(map);
        let parsed = match kind.as_str() {
            "threshold" => from_value(v).map(Self::Threshold),
            "rate" => from_value(v).map(Self::Rate),
            "state" => from_value(v).map(Self::State),
            "absence" => from_value(v).map(Self::Absence),
            "expiry" => from_value(v).map(Self::Expiry),
            "count" => from_value(v).map(Self::Count),
            "event" => from_value(v).map(Self::Event),
            "inventory" => from_value(v).map(Self::Inventory),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown rule kind `{other}`; expected one of {}",
                    Self::KINDS.join(", ")
                )));
            }
        };
        parsed.map_err(|e| D::Error::custom(format!("{kind} rule: {e}")))
    }
}

/// `threshold`: a metric past a level for a duration, two levels, hysteresis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdCheck {
    pub metric: Metric,
    /// Only this item (a mount point, disk, interface, sensor, backup job, certificate…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(flatten)]
    pub threshold: Threshold,
}

/// `rate`: "full within N hours at the current rate". The slope is measured over `window_s`
/// between an anchor sample kept in the rule state and the first sample a window later; the
/// anchor then moves there (one state write per window). Each sample's hours left before the
/// value reaches `limit` at that slope go through the threshold machine (direction below,
/// levels in hours). A flat or falling value has no hours left to count: it clears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCheck {
    pub metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The value that must not be reached (100 for a filesystem's used %).
    pub limit: f64,
    #[serde(default = "default_rate_window_s")]
    pub window_s: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_h: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_h: Option<f64>,
    #[serde(default)]
    pub for_s: u32,
}

fn default_rate_window_s() -> u32 {
    3_600
}

/// `state`: a finding whose state maps to a severity (`{"failed": "critical"}`); a state not
/// in the map is fine. `subjects` absent: every subject; listed: only those (services that
/// must run, accounts of people who left; an empty list watches nothing until the MSP fills
/// it). A severity holds for `for_s` before it is raised; a fine state clears at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateCheck {
    pub finding: FindingKind,
    pub states: BTreeMap<String, Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<String>>,
    #[serde(default)]
    pub for_s: u32,
    /// For backup findings: where the agent reads each job's result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<BackupSource>,
}

/// `absence`: no successful backup for N hours (a threshold on `backup_age_h`; a job with no
/// success on record is infinitely old).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsenceCheck {
    /// Only this backup job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_h: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_h: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<BackupSource>,
}

/// `expiry`: a certificate expiring within a reminder's days. Each newly reached reminder is
/// one event (opened, severity raised, or a reminder at unchanged severity); renewed past the
/// first reminder resolves; expired is critical whatever the reminders say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub reminders: Vec<Reminder>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<CertificateTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reminder {
    pub days: f64,
    pub severity: Severity,
}

/// How a count rule groups events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountPer {
    Source,
    Subject,
}

/// `count`: at least `at_least` events of one kind per source (or subject) within
/// `window_s`; the alert's subject is that source. Clears after `clear_after_s` without such
/// events.
///
/// Window across batches: the agent sends counts `(count, first_ms, last_ms)`, not single
/// events, so the rule keeps one window per group: it starts at the `first_ms` of the count
/// that opened it and takes every later count whose `last_ms` is within `window_s` of that
/// start; a count ending later opens a new window at its own `first_ms`. Every event counted
/// lies inside one `window_s`, so the rule never over-counts; a burst straddling two windows
/// may be counted in halves (at most one window late).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountCheck {
    pub event: EventKind,
    pub per: CountPer,
    pub at_least: u32,
    pub window_s: u32,
    pub clear_after_s: u32,
    #[serde(default = "warning")]
    pub severity: Severity,
    /// Only events about these users (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

/// `event`: any event of the listed kinds, optionally only about `users`; one alert per
/// subject, cleared after `clear_after_s` without more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCheck {
    pub events: Vec<EventKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default = "warning")]
    pub severity: Severity,
    pub clear_after_s: u32,
}

fn warning() -> Severity {
    Severity::Warning
}

/// What an inventory rule measures on the updates finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InventoryCondition {
    /// Days security updates have been pending (from the agent's `security_since_ms`).
    SecurityPendingDays,
    /// Security updates pending.
    SecurityPending,
    /// Updates that need someone to act.
    ManualPending,
    /// Days a reboot has been required, counted from the first finding that said so.
    RebootRequiredDays,
}

impl InventoryCondition {
    fn metric(self) -> &'static str {
        match self {
            Self::SecurityPendingDays => Metric::UpdatesSecurityPendingDays.as_str(),
            Self::SecurityPending => Metric::UpdatesSecurityPending.as_str(),
            Self::ManualPending => Metric::UpdatesManualPending.as_str(),
            Self::RebootRequiredDays => "updates_reboot_required_days",
        }
    }
}

/// `inventory`: a threshold (above, at once) on pending updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryCheck {
    pub condition: InventoryCondition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
}

/// Why a rule's parameters are not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckInvalid {
    #[error("{0}")]
    Threshold(#[from] ThresholdInvalid),
    #[error("metric {metric} is not a series a rate can be measured on")]
    RateMetric { metric: &'static str },
    #[error("a rate rule needs a finite limit and a window of 5 min to 7 days")]
    RateWindow,
    #[error("a state rule needs at least one state mapped to a severity")]
    NoStates,
    #[error("backup sources belong on rules about backups")]
    SourcesOffTopic,
    #[error("an expiry rule needs 1 to 8 reminders with finite, distinct, non-negative days")]
    Reminders,
    #[error("reminders must not lower the severity as the date nears")]
    RemindersOutOfOrder,
    #[error("a count rule needs at_least ≥ 1, a window of 1 s to 1 day and clear_after_s ≥ 1")]
    CountBounds,
    #[error("an event rule needs at least one event kind and clear_after_s ≥ 1")]
    NoEvents,
    #[error("a list holds at most {max} entries")]
    ListTooLong { max: usize },
    #[error("a subject or list entry must be 1 to 256 characters")]
    BadText,
    #[error("durations may not exceed one day")]
    DurationTooLong,
}

const MAX_LIST: usize = 200;

fn check_list(items: &[String]) -> Result<(), CheckInvalid> {
    if items.len() > MAX_LIST {
        return Err(CheckInvalid::ListTooLong { max: MAX_LIST });
    }
    check_texts(items.iter().map(String::as_str))
}

fn check_texts<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<(), CheckInvalid> {
    if items.into_iter().any(|s| s.is_empty() || s.len() > 256) {
        return Err(CheckInvalid::BadText);
    }
    Ok(())
}

/// A threshold "above, at once" from hours or counts (absence, inventory).
fn above_at_once(warning: Option<f64>, critical: Option<f64>) -> Threshold {
    let level = |t: Option<f64>| {
        t.map(|threshold| Level {
            threshold,
            for_s: 0,
        })
    };
    Threshold {
        direction: Direction::Above,
        warning: level(warning),
        critical: level(critical),
        hysteresis: 0.0,
        // Findings come at the agent's pace (minutes to a day): no duration spans a gap.
        max_gap_s: u32::MAX,
    }
}

impl RateCheck {
    fn threshold(&self) -> Threshold {
        let level = |t: Option<f64>| {
            t.map(|threshold| Level {
                threshold,
                for_s: self.for_s,
            })
        };
        Threshold {
            direction: Direction::Below,
            warning: level(self.warning_h),
            critical: level(self.critical_h),
            hysteresis: 0.0,
            max_gap_s: self.window_s.saturating_mul(2),
        }
    }
}

impl AbsenceCheck {
    fn threshold(&self) -> Threshold {
        above_at_once(self.warning_h, self.critical_h)
    }
}

impl InventoryCheck {
    fn threshold(&self) -> Threshold {
        above_at_once(self.warning, self.critical)
    }
}

impl Check {
    pub fn validate(&self) -> Result<(), CheckInvalid> {
        match self {
            Self::Threshold(c) => {
                check_texts(c.subject.as_deref())?;
                Ok(c.threshold.validate()?)
            }
            Self::Rate(c) => {
                if c.metric.finding_kind().is_some() {
                    return Err(CheckInvalid::RateMetric {
                        metric: c.metric.as_str(),
                    });
                }
                if !c.limit.is_finite() || !(300..=7 * 86_400).contains(&c.window_s) {
                    return Err(CheckInvalid::RateWindow);
                }
                check_texts(c.subject.as_deref())?;
                Ok(c.threshold().validate()?)
            }
            Self::State(c) => {
                if c.states.is_empty() {
                    return Err(CheckInvalid::NoStates);
                }
                if !c.sources.is_empty() && c.finding != FindingKind::Backup {
                    return Err(CheckInvalid::SourcesOffTopic);
                }
                if c.for_s > 86_400 {
                    return Err(CheckInvalid::DurationTooLong);
                }
                check_list(c.subjects.as_deref().unwrap_or_default())?;
                check_texts(c.states.keys().map(String::as_str))?;
                check_sources(&c.sources)
            }
            Self::Absence(c) => {
                check_texts(c.subject.as_deref())?;
                c.threshold().validate()?;
                check_sources(&c.sources)
            }
            Self::Expiry(c) => {
                let r = &c.reminders;
                if r.is_empty()
                    || r.len() > 8
                    || r.iter().any(|r| !r.days.is_finite() || r.days < 0.0)
                {
                    return Err(CheckInvalid::Reminders);
                }
                let mut sorted = r.clone();
                sorted.sort_by(|a, b| b.days.total_cmp(&a.days));
                if sorted.windows(2).any(|w| w[0].days == w[1].days) {
                    return Err(CheckInvalid::Reminders);
                }
                if sorted.windows(2).any(|w| w[1].severity < w[0].severity) {
                    return Err(CheckInvalid::RemindersOutOfOrder);
                }
                if c.targets.len() > MAX_LIST {
                    return Err(CheckInvalid::ListTooLong { max: MAX_LIST });
                }
                check_texts(c.subject.as_deref())
            }
            Self::Count(c) => {
                if c.at_least == 0 || c.window_s == 0 || c.window_s > 86_400 || c.clear_after_s == 0
                {
                    return Err(CheckInvalid::CountBounds);
                }
                check_list(&c.users)
            }
            Self::Event(c) => {
                if c.events.is_empty() || c.clear_after_s == 0 {
                    return Err(CheckInvalid::NoEvents);
                }
                check_list(&c.users)
            }
            Self::Inventory(c) => Ok(c.threshold().validate()?),
        }
    }

    /// What this rule asks the agent to watch.
    pub fn collect(&self) -> CollectPlan {
        let mut plan = CollectPlan::default();
        match self {
            Self::State(c) => {
                if c.finding == FindingKind::Service {
                    plan.services = c.subjects.clone().unwrap_or_default();
                }
                plan.backups = c.sources.clone();
            }
            Self::Absence(c) => plan.backups = c.sources.clone(),
            Self::Expiry(c) => plan.certificates = c.targets.clone(),
            _ => {}
        }
        plan
    }
}

fn check_sources(sources: &[BackupSource]) -> Result<(), CheckInvalid> {
    if sources.len() > MAX_LIST {
        return Err(CheckInvalid::ListTooLong { max: MAX_LIST });
    }
    check_texts(sources.iter().map(BackupSource::job))
}

// ---------------------------------------------------------------------------------------------
// Reading values out of a batch.

impl Metric {
    /// The finding a finding-derived metric reads, `None` for metric series.
    pub fn finding_kind(self) -> Option<FindingKind> {
        Some(match self {
            Self::BackupAgeH => FindingKind::Backup,
            Self::CertificateDaysLeft => FindingKind::Certificate,
            Self::UpdatesPending
            | Self::UpdatesSecurityPending
            | Self::UpdatesSecurityPendingDays
            | Self::UpdatesManualPending => FindingKind::Updates,
            Self::AntivirusSignatureAgeH => FindingKind::Antivirus,
            Self::SmartReallocatedSectors | Self::SmartPendingSectors => FindingKind::Smart,
            Self::AccountPasswordAgeDays => FindingKind::Account,
            _ => return None,
        })
    }

    /// The metric's value in a finding (at the finding's `observed_ms`), if it has one.
    pub fn of_finding(self, f: &Finding) -> Option<f64> {
        let hours = |since: i64| (f.observed_ms() - since) as f64 / HOUR_MS as f64;
        let days = |since: i64| (f.observed_ms() - since) as f64 / DAY_MS as f64;
        match (self, f) {
            // No success on record: infinitely old (the largest finite number, which the
            // threshold machine accepts).
            (Self::BackupAgeH, Finding::Backup(b)) => {
                Some(b.last_success_ms.map_or(f64::MAX, hours))
            }
            (Self::CertificateDaysLeft, Finding::Certificate(c)) => c
                .not_after_ms
                .map(|t| (t - c.observed_ms) as f64 / DAY_MS as f64),
            (Self::UpdatesPending, Finding::Updates(u)) => Some(f64::from(u.pending)),
            (Self::UpdatesSecurityPending, Finding::Updates(u)) => Some(f64::from(u.security)),
            (Self::UpdatesSecurityPendingDays, Finding::Updates(u)) => Some(if u.security > 0 {
                u.security_since_ms.map_or(0.0, days)
            } else {
                0.0
            }),
            (Self::UpdatesManualPending, Finding::Updates(u)) => Some(f64::from(u.manual)),
            (Self::AntivirusSignatureAgeH, Finding::Antivirus(a)) => a.signatures_ms.map(hours),
            (Self::SmartReallocatedSectors, Finding::Smart(s)) => {
                s.reallocated_sectors.map(|n| n as f64)
            }
            (Self::SmartPendingSectors, Finding::Smart(s)) => s.pending_sectors.map(|n| n as f64),
            (Self::AccountPasswordAgeDays, Finding::Account(a)) => a.password_changed_ms.map(days),
            _ => None,
        }
    }
}

fn values(s: &Series) -> impl Iterator<Item = Option<f64>> + '_ {
    s.iter().map(|v| v.map(|v| f64::from(v) / 100.0))
}

/// One item's points: `(item, [(time ms, value)])`.
pub(crate) type ItemPoints<'b> = (&'b str, Vec<(i64, Option<f64>)>);

/// The points a metric reads from a batch: `(item, [(time, value)])`. Metric series give one
/// point per sample; finding-derived metrics one point per finding.
pub(crate) fn points_of<'b>(
    batch: &'b TelemetryBatch,
    times: &[i64],
    metric: Metric,
) -> Vec<ItemPoints<'b>> {
    if let Some(kind) = metric.finding_kind() {
        let mut out: Vec<ItemPoints<'b>> = Vec::new();
        for f in batch.findings.iter().filter(|f| f.kind() == kind) {
            let point = (f.observed_ms(), metric.of_finding(f));
            match out.iter_mut().find(|(item, _)| *item == f.subject()) {
                Some((_, points)) => points.push(point),
                None => out.push((f.subject(), vec![point])),
            }
        }
        for (_, points) in &mut out {
            points.sort_by_key(|p| p.0);
        }
        return out;
    }
    let zip =
        |item: &'b str, vals: Vec<Option<f64>>| (item, times.iter().copied().zip(vals).collect());
    match metric {
        Metric::CpuTotalPct => batch
            .cpu
            .iter()
            .map(|c| zip("", values(&c.total_pct_x100).collect()))
            .collect(),
        Metric::CpuIowaitPct => batch
            .cpu
            .iter()
            .map(|c| zip("", values(&c.iowait_pct_x100).collect()))
            .collect(),
        Metric::MemoryUsedPct => batch
            .memory
            .iter()
            .map(|m| zip("", values(&m.used_pct_x100).collect()))
            .collect(),
        Metric::Load1 => batch
            .load
            .iter()
            .map(|l| zip("", values(&l.one_x100).collect()))
            .collect(),
        Metric::FilesystemUsedPct => batch
            .filesystems
            .iter()
            .map(|f| zip(&f.mount, values(&f.used_pct_x100).collect()))
            .collect(),
        Metric::FilesystemInodesUsedPct => batch
            .filesystems
            .iter()
            .filter_map(|f| {
                f.inodes_used_pct_x100
                    .as_ref()
                    .map(|s| zip(&f.mount, values(s).collect()))
            })
            .collect(),
        Metric::DiskBusyPct => batch
            .disks
            .iter()
            .map(|d| zip(&d.device, values(&d.busy_pct_x100).collect()))
            .collect(),
        Metric::NetworkUtilisationPct => batch
            .network
            .iter()
            .filter_map(|n| {
                let link_bits = n.link_speed_mbps.filter(|s| *s > 0)? as f64 * 1_000_000.0;
                let util = n
                    .rx_bytes_per_s
                    .iter()
                    .zip(&n.tx_bytes_per_s)
                    .map(|pair| match pair {
                        (Some(rx), Some(tx)) => Some((rx + tx) as f64 * 8.0 / link_bits * 100.0),
                        _ => None,
                    })
                    .collect();
                Some(zip(&n.interface, util))
            })
            .collect(),
        Metric::TemperatureCelsius => batch
            .temperatures
            .iter()
            .map(|t| {
                let c = t
                    .celsius_x100
                    .iter()
                    .map(|v| v.map(|v| f64::from(v) / 100.0));
                zip(&t.sensor, c.collect())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The latest instant a batch speaks for: its last sample, finding, event or collector status.
pub fn batch_time(batch: &TelemetryBatch) -> Option<i64> {
    let samples = batch
        .len()
        .checked_sub(1)
        .and_then(|i| batch.sample_time(i));
    samples
        .into_iter()
        .chain(batch.findings.iter().map(Finding::observed_ms))
        .chain(batch.events.iter().map(|e| e.last_ms))
        .chain(batch.collectors.iter().map(|c| c.at_ms))
        .max()
}

// ---------------------------------------------------------------------------------------------
// Words for people.

/// `2026-12-04` (UTC).
pub fn date(ms: i64) -> String {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y}-{m:02}-{d:02}")
}

fn plural(n: i64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `5 min`, `2 h`, `3 d`.
fn span(s: i64) -> String {
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// What a finding says, in a sentence fragment.
pub fn finding_detail(f: &Finding) -> String {
    match f {
        Finding::Service(s) => match &s.sub_state {
            Some(sub) => format!("{} is {} ({}: {sub})", s.name, s.state, s.via),
            None => format!("{} is {} ({})", s.name, s.state, s.via),
        },
        Finding::Backup(b) => {
            let mut d = format!("backup {} {}", b.job, b.status.as_str());
            if let Some(m) = &b.message {
                d.push_str(&format!(": {m}"));
            }
            match b.last_success_ms {
                Some(t) => d.push_str(&format!(
                    "; last success {} h ago",
                    (b.observed_ms - t).max(0) / HOUR_MS
                )),
                None => d.push_str("; no successful run on record"),
            }
            d
        }
        Finding::Certificate(c) => match c.not_after_ms {
            Some(t) if t <= c.observed_ms => {
                format!("certificate of {} expired on {}", c.target, date(t))
            }
            Some(t) => format!(
                "certificate of {} expires in {} ({})",
                c.target,
                plural((t - c.observed_ms) / DAY_MS, "day"),
                date(t)
            ),
            None => match &c.error {
                Some(e) => format!("certificate of {} is {}: {e}", c.target, c.state),
                None => format!("certificate of {} is {}", c.target, c.state),
            },
        },
        Finding::Antivirus(a) if a.state == "absent" => "no antivirus installed".to_owned(),
        Finding::Antivirus(a) => {
            let mut d = format!("{} reports {}", a.product, a.state);
            if let Some(t) = a.threats.first() {
                d.push_str(&format!(": {} in {}", t.name, t.path));
                if a.threats.len() > 1 {
                    d.push_str(&format!(" and {} more", a.threats.len() - 1));
                }
            }
            if let Some(s) = a.signatures_ms {
                d.push_str(&format!(
                    "; signatures {} h old",
                    (a.observed_ms - s).max(0) / HOUR_MS
                ));
            }
            d
        }
        Finding::Updates(u) => {
            let mut d = format!(
                "{} pending updates ({} security, {} manual) via {}",
                u.pending, u.security, u.manual, u.manager
            );
            if let Some(s) = u.security_since_ms.filter(|_| u.security > 0) {
                d.push_str(&format!(
                    "; security updates pending for {}",
                    plural((u.observed_ms - s).max(0) / DAY_MS, "day")
                ));
            }
            if u.reboot_required {
                d.push_str("; reboot required");
            }
            d
        }
        Finding::Account(a) => {
            let admin = if a.admin { " administrator" } else { "" };
            format!("account{admin} {} is {}", a.user, a.state)
        }
        Finding::Smart(s) => {
            let mut d = format!("disk {} SMART {}", s.disk, s.state);
            if let Some(n) = s.reallocated_sectors.filter(|n| *n > 0) {
                d.push_str(&format!(", {n} reallocated sectors"));
            }
            if let Some(n) = s.pending_sectors.filter(|n| *n > 0) {
                d.push_str(&format!(", {n} pending sectors"));
            }
            d
        }
    }
}

fn event_words(kind: EventKind) -> &'static str {
    match kind {
        EventKind::AuthFailure => "failed logins",
        EventKind::AuthSuccess => "logins",
        EventKind::Sudo => "sudo uses",
        EventKind::AccountAdded => "account added",
        EventKind::AccountRemoved => "account removed",
        EventKind::AdminAdded => "new administrator",
        EventKind::AdminRemoved => "administrator removed",
        EventKind::PasswordChanged => "password changed",
        EventKind::LoginNewSource => "login from a new source",
        EventKind::NeighbourNew => "new device on the network",
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/// Stored states of a device: what the evaluator read, keyed by (rule, item).
pub type States = HashMap<StateKey, RuleState>;

/// Writes down one (rule, item)'s evaluation.
struct Sink<'a> {
    out: &'a mut DeviceEvaluation,
    rule: &'a RuleId,
    family: AlertFamily,
}

/// A transition's words and numbers, besides the level change.
struct Meta {
    metric: String,
    threshold: f64,
    detail: Option<String>,
    reminder: bool,
}

impl Sink<'_> {
    fn record(&mut self, item: &str, e: Evaluation, meta: impl Fn(&Transition) -> Meta) {
        if e.changed {
            self.out
                .changed
                .insert((self.rule.clone(), item.to_owned()), e.state);
        }
        for t in e.transitions {
            let m = meta(&t);
            self.out.transitions.push(RuleTransition {
                rule: self.rule.clone(),
                family: self.family,
                subject: item.to_owned(),
                transition: t,
                metric: m.metric,
                threshold: m.threshold,
                detail: m.detail,
                reminder: m.reminder,
            });
        }
    }
}

/// Stored states by borrowed (rule, item), so a lookup allocates nothing.
pub(crate) type StateIndex<'a> = HashMap<(&'a str, &'a str), RuleState>;

pub(crate) fn index(states: &States) -> StateIndex<'_> {
    states
        .iter()
        .map(|((r, i), s)| ((r.as_str(), i.as_str()), *s))
        .collect()
}

fn stored(index: &StateIndex<'_>, rule: &RuleId, item: &str) -> RuleState {
    index
        .get(&(rule.as_str(), item))
        .copied()
        .unwrap_or_default()
}

/// Whether two states differ in more than `last_ms` (a write is due).
fn differs(a: &RuleState, b: &RuleState) -> bool {
    RuleState { last_ms: 0, ..*a } != RuleState { last_ms: 0, ..*b }
}

/// The threshold of the level a transition concerns.
fn level_line(t: &Threshold, tr: &Transition) -> f64 {
    let sev = tr.to.or(tr.from).unwrap_or(Severity::Warning);
    t.level(sev)
        .or(t.warning)
        .or(t.critical)
        .map_or(0.0, |l| l.threshold)
}

/// Everything a rule kind needs to evaluate one batch.
pub(crate) struct Input<'a> {
    pub batch: &'a TelemetryBatch,
    pub times: &'a [i64],
    pub states: &'a States,
    pub index: StateIndex<'a>,
    pub now: Option<i64>,
}

pub(crate) fn evaluate(
    check: &Check,
    rule: &RuleId,
    family: AlertFamily,
    input: &Input<'_>,
    out: &mut DeviceEvaluation,
) {
    let mut sink = Sink { out, rule, family };
    match check {
        Check::Threshold(c) => {
            let points = points_of(input.batch, input.times, c.metric);
            for (item, pts) in points {
                if c.subject.as_deref().is_some_and(|s| s != item) {
                    continue;
                }
                sink.out.checks += pts.len();
                let e = c.threshold.evaluate(stored(&input.index, rule, item), pts);
                let finding = c
                    .metric
                    .finding_kind()
                    .and_then(|k| latest(input.batch, k, item));
                sink.record(item, e, |t| Meta {
                    metric: c.metric.as_str().to_owned(),
                    threshold: level_line(&c.threshold, t),
                    detail: finding.map(finding_detail),
                    reminder: false,
                });
            }
        }
        Check::Absence(c) => {
            let th = c.threshold();
            for (item, pts) in points_of(input.batch, input.times, Metric::BackupAgeH) {
                if c.subject.as_deref().is_some_and(|s| s != item) {
                    continue;
                }
                sink.out.checks += pts.len();
                let e = th.evaluate(stored(&input.index, rule, item), pts);
                let finding = latest(input.batch, FindingKind::Backup, item);
                sink.record(item, e, |t| Meta {
                    metric: Metric::BackupAgeH.as_str().to_owned(),
                    threshold: level_line(&th, t),
                    detail: finding.map(finding_detail),
                    reminder: false,
                });
            }
        }
        Check::Inventory(c) => inventory(c, rule, input, &mut sink),
        Check::Rate(c) => rate(c, rule, input, &mut sink),
        Check::State(c) => state(c, rule, input, &mut sink),
        Check::Expiry(c) => expiry(c, rule, input, &mut sink),
        Check::Count(c) => {
            let matches = |e: &EventCount| {
                e.kind == c.event && (c.users.is_empty() || c.users.contains(&e.subject))
            };
            let group = |e: &EventCount| match c.per {
                CountPer::Source => e.source.clone(),
                CountPer::Subject => e.subject.clone(),
            };
            let rule_c = CountRule {
                at_least: c.at_least,
                window_ms: i64::from(c.window_s) * 1000,
                clear_after_ms: i64::from(c.clear_after_s) * 1000,
                severity: c.severity,
                metric: format!("event:{}", c.event.as_str()),
            };
            counted(
                &rule_c,
                rule,
                input,
                &mut sink,
                matches,
                group,
                |g, n, gone| {
                    let what = event_words(c.event);
                    let whom = match c.per {
                        CountPer::Source => {
                            format!("from {}", if g.is_empty() { "local" } else { g })
                        }
                        CountPer::Subject => format!("for {g}"),
                    };
                    if gone {
                        format!(
                            "no more {what} {whom} for {}",
                            span(i64::from(c.clear_after_s))
                        )
                    } else {
                        format!("{n} {what} {whom} within {}", span(i64::from(c.window_s)))
                    }
                },
            );
        }
        Check::Event(c) => {
            let matches = |e: &EventCount| {
                c.events.contains(&e.kind) && (c.users.is_empty() || c.users.contains(&e.subject))
            };
            let kinds: Vec<&str> = c.events.iter().map(|k| k.as_str()).collect();
            let rule_c = CountRule {
                at_least: 1,
                // Any event opens; the window plays no part.
                window_ms: i64::MAX / 4,
                clear_after_ms: i64::from(c.clear_after_s) * 1000,
                severity: c.severity,
                metric: format!("event:{}", kinds.join("|")),
            };
            let batch = input.batch;
            counted(
                &rule_c,
                rule,
                input,
                &mut sink,
                matches,
                |e: &EventCount| e.subject.clone(),
                |g, _, gone| {
                    if gone {
                        return format!(
                            "no new event for {g} for {}",
                            span(i64::from(c.clear_after_s))
                        );
                    }
                    let mut parts: Vec<String> = Vec::new();
                    for e in batch.events.iter().filter(|e| matches(e) && e.subject == g) {
                        let from = if e.source.is_empty() {
                            String::new()
                        } else {
                            format!(" from {}", e.source)
                        };
                        let part = format!("{}: {g}{from}", event_words(e.kind));
                        if !parts.contains(&part) {
                            parts.push(part);
                        }
                    }
                    parts.join("; ")
                },
            );
        }
    }
}

/// The last finding of a kind about an item in the batch.
fn latest<'a>(batch: &'a TelemetryBatch, kind: FindingKind, item: &str) -> Option<&'a Finding> {
    batch
        .findings
        .iter()
        .filter(|f| f.kind() == kind && f.subject() == item)
        .max_by_key(|f| f.observed_ms())
}

fn inventory(c: &InventoryCheck, rule: &RuleId, input: &Input<'_>, sink: &mut Sink<'_>) {
    let th = c.threshold();
    let metric = match c.condition {
        InventoryCondition::SecurityPendingDays => Some(Metric::UpdatesSecurityPendingDays),
        InventoryCondition::SecurityPending => Some(Metric::UpdatesSecurityPending),
        InventoryCondition::ManualPending => Some(Metric::UpdatesManualPending),
        InventoryCondition::RebootRequiredDays => None,
    };
    if let Some(metric) = metric {
        for (item, pts) in points_of(input.batch, input.times, metric) {
            sink.out.checks += pts.len();
            let e = th.evaluate(stored(&input.index, rule, item), pts);
            let finding = latest(input.batch, FindingKind::Updates, item);
            sink.record(item, e, |t| Meta {
                metric: c.condition.metric().to_owned(),
                threshold: level_line(&th, t),
                detail: finding.map(finding_detail),
                reminder: false,
            });
        }
        return;
    }
    // Reboot required: the agent says only "now"; the rule remembers since when (`mark_ms`).
    let mut findings: Vec<&Finding> = input
        .batch
        .findings
        .iter()
        .filter(|f| f.kind() == FindingKind::Updates)
        .collect();
    findings.sort_by_key(|f| f.observed_ms());
    let mut items: Vec<&str> = findings.iter().map(|f| f.subject()).collect();
    items.dedup();
    items.sort_unstable();
    items.dedup();
    for item in items {
        let before = stored(&input.index, rule, item);
        let mut s = before;
        let mut transitions = Vec::new();
        for f in findings.iter().filter(|f| f.subject() == item) {
            let Finding::Updates(u) = f else { continue };
            sink.out.checks += 1;
            if u.observed_ms <= s.last_ms {
                continue;
            }
            s.mark_ms = if u.reboot_required {
                Some(s.mark_ms.unwrap_or(u.observed_ms))
            } else {
                None
            };
            let days = s
                .mark_ms
                .map_or(0.0, |m| (u.observed_ms - m) as f64 / DAY_MS as f64);
            let e = th.evaluate(s, [(u.observed_ms, Some(days))]);
            s = e.state;
            transitions.extend(e.transitions);
        }
        let e = Evaluation {
            changed: differs(&s, &before),
            state: s,
            transitions,
        };
        let finding = latest(input.batch, FindingKind::Updates, item);
        sink.record(item, e, |t| Meta {
            metric: c.condition.metric().to_owned(),
            threshold: level_line(&th, t),
            detail: finding.map(|f| {
                format!(
                    "{}; reboot required for {}",
                    finding_detail(f),
                    plural(t.value as i64, "day")
                )
            }),
            reminder: false,
        });
    }
}

fn rate(c: &RateCheck, rule: &RuleId, input: &Input<'_>, sink: &mut Sink<'_>) {
    let th = c.threshold();
    let window_ms = i64::from(c.window_s) * 1000;
    for (item, pts) in points_of(input.batch, input.times, c.metric) {
        if c.subject.as_deref().is_some_and(|s| s != item) {
            continue;
        }
        sink.out.checks += pts.len();
        let before = stored(&input.index, rule, item);
        let mut s = before;
        let mut transitions = Vec::new();
        let mut last_value = None;
        for (at, v) in pts {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            if at <= s.last_ms {
                continue;
            }
            let milli = (v * 1000.0).round() as i64;
            match s.mark_ms {
                None => {
                    s.mark_ms = Some(at);
                    s.mark = milli;
                }
                Some(anchor) if at - anchor >= window_ms => {
                    let per_h = (milli - s.mark) as f64 / ((at - anchor) as f64 / HOUR_MS as f64);
                    s.slope_milli_per_h = Some(per_h.round() as i64);
                    s.mark_ms = Some(at);
                    s.mark = milli;
                }
                Some(_) => {}
            }
            // Hours left at the last completed window's slope; none known yet: no reading.
            let hours = s.slope_milli_per_h.map(|slope| {
                if slope > 0 {
                    ((c.limit - v) * 1000.0 / slope as f64).max(0.0)
                } else {
                    f64::MAX
                }
            });
            let e = th.evaluate(s, [(at, hours)]);
            s = e.state;
            // A step without a reading still moves past this sample.
            s.last_ms = s.last_ms.max(at);
            transitions.extend(e.transitions);
            last_value = Some(v);
        }
        let e = Evaluation {
            changed: differs(&s, &before),
            state: s,
            transitions,
        };
        let limit = c.limit;
        let metric = c.metric.as_str();
        sink.record(item, e, |t| Meta {
            metric: format!("rate:{metric}"),
            threshold: level_line(&th, t),
            detail: Some(match (t.to, last_value) {
                (Some(_), Some(v)) => format!(
                    "{metric} {item} at {v:.1}, reaching {limit} in about {:.0} h at the current rate",
                    t.value
                ),
                _ => format!("{metric} {item} no longer rising towards {limit}"),
            }),
            reminder: false,
        });
    }
}

/// The state machine of a state rule, one finding at a time.
fn state_step(
    s: &mut RuleState,
    at: i64,
    bad: Option<Severity>,
    for_ms: i64,
) -> Option<Transition> {
    s.last_ms = at;
    s.warning_since_ms = match bad {
        Some(_) => Some(s.warning_since_ms.unwrap_or(at)),
        None => None,
    };
    let next = match (bad, s.warning_since_ms) {
        (Some(sev), Some(since)) if at - since >= for_ms => Some(sev),
        // Still waiting out the duration: a firing level holds.
        (Some(_), _) => s.firing,
        (None, _) => None,
    };
    if next == s.firing {
        return None;
    }
    let t = Transition {
        at_ms: at,
        from: s.firing,
        to: next,
        value: next.map_or(0.0, |sev| f64::from(sev.sev_level())),
    };
    s.firing_since_ms = match (s.firing, next) {
        (_, None) => None,
        (None, Some(_)) => Some(at),
        (Some(_), Some(_)) => s.firing_since_ms,
    };
    s.firing = next;
    Some(t)
}

fn state(c: &StateCheck, rule: &RuleId, input: &Input<'_>, sink: &mut Sink<'_>) {
    let for_ms = i64::from(c.for_s) * 1000;
    let mut findings: Vec<&Finding> = input
        .batch
        .findings
        .iter()
        .filter(|f| f.kind() == c.finding)
        .filter(|f| {
            c.subjects
                .as_ref()
                .is_none_or(|list| list.iter().any(|s| s == f.subject()))
        })
        .collect();
    findings.sort_by_key(|f| f.observed_ms());
    let mut items: Vec<&str> = findings.iter().map(|f| f.subject()).collect();
    items.sort_unstable();
    items.dedup();
    for item in items {
        let before = stored(&input.index, rule, item);
        let mut s = before;
        let mut transitions = Vec::new();
        let mut details = Vec::new();
        for f in findings.iter().filter(|f| f.subject() == item) {
            sink.out.checks += 1;
            if f.observed_ms() <= s.last_ms {
                continue;
            }
            let bad = c.states.get(f.state()).copied();
            if let Some(t) = state_step(&mut s, f.observed_ms(), bad, for_ms) {
                transitions.push(t);
                details.push((t.at_ms, finding_detail(f)));
            }
        }
        let e = Evaluation {
            changed: differs(&s, &before),
            state: s,
            transitions,
        };
        let metric = format!("finding:{}", c.finding.as_str());
        sink.record(item, e, |t| Meta {
            metric: metric.clone(),
            threshold: t.value,
            detail: details
                .iter()
                .find(|(at, _)| *at == t.at_ms)
                .map(|(_, d)| d.clone()),
            reminder: false,
        });
    }
}

fn expiry(c: &ExpiryCheck, rule: &RuleId, input: &Input<'_>, sink: &mut Sink<'_>) {
    let mut reminders = c.reminders.clone();
    reminders.sort_by(|a, b| b.days.total_cmp(&a.days));
    let mut findings: Vec<&Finding> = input
        .batch
        .findings
        .iter()
        .filter(|f| f.kind() == FindingKind::Certificate)
        .filter(|f| c.subject.as_deref().is_none_or(|s| s == f.subject()))
        .collect();
    findings.sort_by_key(|f| f.observed_ms());
    let mut items: Vec<&str> = findings.iter().map(|f| f.subject()).collect();
    items.sort_unstable();
    items.dedup();
    for item in items {
        let before = stored(&input.index, rule, item);
        let mut s = before;
        // (transition, reminder at unchanged severity, detail, reminder days)
        let mut steps: Vec<(Transition, bool, String, f64)> = Vec::new();
        for f in findings.iter().filter(|f| f.subject() == item) {
            sink.out.checks += 1;
            let Finding::Certificate(cert) = f else {
                continue;
            };
            // Unreachable or unreadable: no date, nothing to say (a state rule's business).
            let Some(not_after) = cert.not_after_ms else {
                continue;
            };
            if cert.observed_ms <= s.last_ms {
                continue;
            }
            s.last_ms = cert.observed_ms;
            let days_left = (not_after - cert.observed_ms) as f64 / DAY_MS as f64;
            let reached = reminders.iter().filter(|r| days_left <= r.days).count();
            let mut next = reached.checked_sub(1).map(|i| reminders[i].severity);
            if days_left <= 0.0 {
                next = Some(Severity::Critical);
            }
            let was = usize::try_from(s.mark).unwrap_or(0);
            let expired_now = days_left <= 0.0 && s.firing != Some(Severity::Critical);
            if reached == was && next == s.firing && !expired_now {
                continue;
            }
            let newly = reached > was;
            let reminder = newly && next == s.firing;
            let line = match reached.checked_sub(1) {
                Some(i) => reminders[i].days,
                None => reminders.first().map_or(0.0, |r| r.days),
            };
            let t = Transition {
                at_ms: cert.observed_ms,
                from: s.firing,
                to: next,
                value: days_left.floor(),
            };
            s.firing_since_ms = match (s.firing, next) {
                (_, None) => None,
                (None, Some(_)) => Some(cert.observed_ms),
                (Some(_), Some(_)) => s.firing_since_ms,
            };
            s.firing = next;
            s.mark = reached as i64;
            if next != t.from || reminder {
                let detail = if next.is_none() {
                    format!(
                        "certificate of {item} renewed, valid until {}",
                        date(not_after)
                    )
                } else {
                    finding_detail(f)
                };
                steps.push((t, reminder, detail, line));
            }
        }
        let e = Evaluation {
            changed: differs(&s, &before),
            state: s,
            transitions: steps.iter().map(|(t, ..)| *t).collect(),
        };
        sink.record(item, e, |t| {
            let step = steps.iter().find(|(x, ..)| x.at_ms == t.at_ms);
            Meta {
                metric: "finding:certificate".to_owned(),
                threshold: step.map_or(0.0, |s| s.3),
                detail: step.map(|s| s.2.clone()),
                reminder: step.is_some_and(|s| s.1),
            }
        });
    }
}

/// The shared machine of `count` and `event` rules.
struct CountRule {
    at_least: u32,
    window_ms: i64,
    clear_after_ms: i64,
    severity: Severity,
    metric: String,
}

/// Per group: counts the batch's new events into the group's window (`mark_ms`: start,
/// `mark`: events) and opens at `at_least`; `last_ms` is the last event counted. Then, for
/// every open group of the rule, in this batch or not: clears once `clear_after` has passed
/// since its last event, at the batch's time.
fn counted(
    c: &CountRule,
    rule: &RuleId,
    input: &Input<'_>,
    sink: &mut Sink<'_>,
    matches: impl Fn(&EventCount) -> bool,
    group: impl Fn(&EventCount) -> String,
    words: impl Fn(&str, i64, bool) -> String,
) {
    let mut groups: BTreeMap<String, Vec<&EventCount>> = BTreeMap::new();
    for e in input.batch.events.iter().filter(|e| matches(e)) {
        groups.entry(group(e)).or_default().push(e);
    }
    let mut seen: Vec<String> = Vec::new();
    for (g, mut events) in groups {
        sink.out.checks += events.len();
        let before = stored(&input.index, rule, &g);
        let mut s = before;
        // Only counts that end after the last one counted: a replayed batch adds nothing.
        events.retain(|e| e.last_ms > before.last_ms);
        events.sort_by_key(|e| (e.last_ms, e.first_ms));
        let mut transitions = Vec::new();
        for e in events {
            match s.mark_ms {
                Some(start) if e.last_ms - start <= c.window_ms => s.mark += i64::from(e.count),
                _ => {
                    s.mark_ms = Some(e.first_ms);
                    s.mark = i64::from(e.count);
                }
            }
            s.last_ms = s.last_ms.max(e.last_ms);
            if s.firing.is_none() && s.mark >= i64::from(c.at_least) {
                s.firing = Some(c.severity);
                s.firing_since_ms = Some(e.last_ms);
                transitions.push(Transition {
                    at_ms: e.last_ms,
                    from: None,
                    to: Some(c.severity),
                    value: s.mark as f64,
                });
            }
        }
        clear(c, input.now, &mut s, &mut transitions);
        let n = s.mark;
        let e = Evaluation {
            // An event always moves the window or the clearing clock: written.
            changed: s != before,
            state: s,
            transitions,
        };
        sink.record(&g, e, |t| Meta {
            metric: c.metric.clone(),
            threshold: f64::from(c.at_least),
            detail: Some(words(
                &g,
                if t.to.is_some() { t.value as i64 } else { n },
                t.to.is_none(),
            )),
            reminder: false,
        });
        seen.push(g);
    }
    // Open groups without events in this batch.
    let mut open: Vec<(&String, &RuleState)> = input
        .states
        .iter()
        .filter(|((r, g), s)| r == rule && s.firing.is_some() && !seen.contains(g))
        .map(|((_, g), s)| (g, s))
        .collect();
    open.sort_by(|a, b| a.0.cmp(b.0));
    for (g, before) in open {
        let mut s = *before;
        let mut transitions = Vec::new();
        clear(c, input.now, &mut s, &mut transitions);
        if transitions.is_empty() {
            continue;
        }
        let e = Evaluation {
            changed: true,
            state: s,
            transitions,
        };
        sink.record(g, e, |_| Meta {
            metric: c.metric.clone(),
            threshold: f64::from(c.at_least),
            detail: Some(words(g, 0, true)),
            reminder: false,
        });
    }
}

fn clear(c: &CountRule, now: Option<i64>, s: &mut RuleState, transitions: &mut Vec<Transition>) {
    let Some(now) = now else { return };
    if s.firing.is_some() && now - s.last_ms >= c.clear_after_ms {
        transitions.push(Transition {
            at_ms: now.max(s.last_ms + c.clear_after_ms),
            from: s.firing,
            to: None,
            value: 0.0,
        });
        // Keep `last_ms`: events already counted can never count again.
        *s = RuleState {
            last_ms: s.last_ms,
            ..RuleState::default()
        };
    }
}

#[cfg(test)]
mod tests;
