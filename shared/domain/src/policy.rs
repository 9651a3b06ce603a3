//! Tenant policies: rules attached at tenant, role/tag, client company, site or device level,
//! the effective policy of a device, and evaluating a batch against it.
//!
//! Precedence, most general first: tenant < tag (e.g. `role=server`) < client company < site <
//! device. A rule with the same id at a more specific level replaces the general one entirely;
//! `enabled: false` there switches it off for that scope.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::alert::AlertFamily;
use crate::checks::{Check, CheckInvalid, States, ThresholdCheck};
use crate::ids::{ClientId, DeviceId, IdError, SiteId};
use crate::protocol::CollectPlan;
use crate::rules::{RuleState, Threshold, Transition};
use crate::telemetry::TelemetryBatch;

/// A rule's id inside a tenant ("disk-used", "cpu-high").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RuleId(String);

impl RuleId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        crate::ids::TenantId::parse(s)
            .map(|t| Self(t.as_str().to_owned()))
            .map_err(|e| match e {
                IdError::Empty { .. } => IdError::Empty { kind: "rule id" },
                IdError::TooLong { max, .. } => IdError::TooLong {
                    kind: "rule id",
                    max,
                },
                IdError::BadCharacter { .. } => IdError::BadCharacter { kind: "rule id" },
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RuleId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RuleId> for String {
    fn from(r: RuleId) -> Self {
        r.0
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a rule measures. Per-item metrics apply to every item (filesystem, disk, interface,
/// sensor) unless the rule names one in `subject`.
///
/// The metrics after `temperature_celsius` are read from findings, one point per finding at
/// its `observed_ms`, the finding's subject (backup job, certificate, package manager,
/// antivirus product, disk, user) being the item. Findings come at the collector's pace
/// (minutes to hours): a rule on them with `for_s` needs `max_gap_s` above that period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    CpuTotalPct,
    CpuIowaitPct,
    MemoryUsedPct,
    Load1,
    FilesystemUsedPct,
    FilesystemInodesUsedPct,
    DiskBusyPct,
    /// Receive plus transmit throughput as a share of the link speed (interfaces whose speed
    /// the kernel does not know are skipped).
    NetworkUtilisationPct,
    TemperatureCelsius,
    /// Hours since the backup job's last success; none on record: infinitely old.
    BackupAgeH,
    /// Days until the certificate's `not_after` (negative once expired).
    CertificateDaysLeft,
    UpdatesPending,
    UpdatesSecurityPending,
    /// Days security updates have been pending (0 when none are).
    UpdatesSecurityPendingDays,
    UpdatesManualPending,
    AntivirusSignatureAgeH,
    SmartReallocatedSectors,
    SmartPendingSectors,
    AccountPasswordAgeDays,
}

impl Metric {
    /// The metric's name on the wire and in alert events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuTotalPct => "cpu_total_pct",
            Self::CpuIowaitPct => "cpu_iowait_pct",
            Self::MemoryUsedPct => "memory_used_pct",
            Self::Load1 => "load1",
            Self::FilesystemUsedPct => "filesystem_used_pct",
            Self::FilesystemInodesUsedPct => "filesystem_inodes_used_pct",
            Self::DiskBusyPct => "disk_busy_pct",
            Self::NetworkUtilisationPct => "network_utilisation_pct",
            Self::TemperatureCelsius => "temperature_celsius",
            Self::BackupAgeH => "backup_age_h",
            Self::CertificateDaysLeft => "certificate_days_left",
            Self::UpdatesPending => "updates_pending",
            Self::UpdatesSecurityPending => "updates_security_pending",
            Self::UpdatesSecurityPendingDays => "updates_security_pending_days",
            Self::UpdatesManualPending => "updates_manual_pending",
            Self::AntivirusSignatureAgeH => "antivirus_signature_age_h",
            Self::SmartReallocatedSectors => "smart_reallocated_sectors",
            Self::SmartPendingSectors => "smart_pending_sectors",
            Self::AccountPasswordAgeDays => "account_password_age_days",
        }
    }
}

/// One rule of a policy: an id, the alert family it raises, and what it checks (its `kind`
/// and that kind's fields, flattened; see [`crate::checks`]). Unknown fields are refused by
/// the kind's parser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: RuleId,
    pub family: AlertFamily,
    #[serde(flatten)]
    pub check: Check,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

impl Rule {
    /// A threshold rule (the kind every rule was before kinds existed).
    pub fn threshold(
        id: RuleId,
        family: AlertFamily,
        metric: Metric,
        subject: Option<String>,
        threshold: Threshold,
    ) -> Self {
        Self {
            id,
            family,
            check: Check::Threshold(ThresholdCheck {
                metric,
                subject,
                threshold,
            }),
            enabled: true,
        }
    }

    /// The threshold of a threshold rule.
    pub fn as_threshold(&self) -> Option<&Threshold> {
        match &self.check {
            Check::Threshold(t) => Some(&t.threshold),
            _ => None,
        }
    }
}

fn enabled() -> bool {
    true
}

/// Where a policy attaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum Scope {
    Tenant,
    Tag { key: String, value: String },
    Client { client: ClientId },
    Site { client: ClientId, site: SiteId },
    Device { device: DeviceId },
}

impl Scope {
    /// Rank in the precedence order (higher overrides lower).
    pub fn rank(&self) -> u8 {
        match self {
            Self::Tenant => 0,
            Self::Tag { .. } => 1,
            Self::Client { .. } => 2,
            Self::Site { .. } => 3,
            Self::Device { .. } => 4,
        }
    }

    /// The scope's part of a storage key (unique per scope within a tenant).
    pub fn key(&self) -> String {
        match self {
            Self::Tenant => "tenant".to_owned(),
            Self::Tag { key, value } => format!("tag:{key}={value}"),
            Self::Client { client } => format!("client:{client}"),
            Self::Site { client, site } => format!("site:{client}/{site}"),
            Self::Device { device } => format!("device:{device}"),
        }
    }

    /// The scope a [`Scope::key`] names, if it is one.
    pub fn from_key(key: &str) -> Option<Self> {
        let (level, rest) = key.split_once(':').unwrap_or((key, ""));
        Some(match level {
            "tenant" if rest.is_empty() => Self::Tenant,
            "tag" => {
                let (k, v) = rest.split_once('=')?;
                (!k.is_empty() && !v.is_empty()).then(|| Self::Tag {
                    key: k.to_owned(),
                    value: v.to_owned(),
                })?
            }
            "client" => Self::Client {
                client: ClientId::parse(rest).ok()?,
            },
            "site" => {
                let (c, s) = rest.split_once('/')?;
                Self::Site {
                    client: ClientId::parse(c).ok()?,
                    site: SiteId::parse(s).ok()?,
                }
            }
            "device" => Self::Device {
                device: DeviceId::parse(rest).ok()?,
            },
            _ => return None,
        })
    }

    /// Whether the scope covers a device placed at `client`/`site` with `tags`.
    pub fn covers(
        &self,
        device: &DeviceId,
        client: &ClientId,
        site: &SiteId,
        tags: &BTreeMap<String, String>,
    ) -> bool {
        match self {
            Self::Tenant => true,
            Self::Tag { key, value } => tags.get(key) == Some(value),
            Self::Client { client: c } => c == client,
            Self::Site { client: c, site: s } => c == client && s == site,
            Self::Device { device: d } => d == device,
        }
    }
}

/// A policy: rules at one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub scope: Scope,
    pub rules: Vec<Rule>,
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyInvalid {
    #[error("rule {rule} ({kind}): {source}")]
    Check {
        rule: RuleId,
        kind: &'static str,
        source: CheckInvalid,
    },
    #[error("rule {0} appears twice")]
    DuplicateRule(RuleId),
    #[error("a policy holds at most {max} rules", max = Policy::MAX_RULES)]
    TooManyRules,
}

impl Policy {
    pub const MAX_RULES: usize = 200;

    pub fn validate(&self) -> Result<(), PolicyInvalid> {
        if self.rules.len() > Self::MAX_RULES {
            return Err(PolicyInvalid::TooManyRules);
        }
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|o| o.id == r.id) {
                return Err(PolicyInvalid::DuplicateRule(r.id.clone()));
            }
            r.check.validate().map_err(|source| PolicyInvalid::Check {
                rule: r.id.clone(),
                kind: r.check.kind(),
                source,
            })?;
        }
        Ok(())
    }
}

/// The rules in force for one device, each with the scope it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectivePolicy {
    pub rules: Vec<(Rule, Scope)>,
}

impl EffectivePolicy {
    /// Merges the policies that cover a device; the most specific scope wins per rule id.
    pub fn for_device<'a>(
        policies: impl IntoIterator<Item = &'a Policy>,
        device: &DeviceId,
        client: &ClientId,
        site: &SiteId,
        tags: &BTreeMap<String, String>,
    ) -> Self {
        let mut covering: Vec<&Policy> = policies
            .into_iter()
            .filter(|p| p.scope.covers(device, client, site, tags))
            .collect();
        // Stable: equal ranks (two tags) keep their given order, the later one winning.
        covering.sort_by_key(|p| p.scope.rank());
        let mut chosen: BTreeMap<&RuleId, (&Rule, &Scope)> = BTreeMap::new();
        for p in covering {
            for r in &p.rules {
                chosen.insert(&r.id, (r, &p.scope));
            }
        }
        Self {
            rules: chosen
                .into_values()
                .filter(|(r, _)| r.enabled)
                .map(|(r, s)| (r.clone(), s.clone()))
                .collect(),
        }
    }
}

/// A state key: the rule and the item it watches ("" for device-wide metrics).
pub type StateKey = (RuleId, String);

/// A level change of one (rule, item).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTransition {
    pub rule: RuleId,
    pub family: AlertFamily,
    pub subject: String,
    pub transition: Transition,
    /// The alert event's `metric`: a metric name, or `finding:<kind>` / `event:<kind>` /
    /// `rate:<metric>` for other kinds.
    pub metric: String,
    /// The line of the level concerned (threshold, reminder days, events required).
    pub threshold: f64,
    /// What happened, for people ("nginx is failed (systemd: dead)").
    pub detail: Option<String>,
    /// A reminder at unchanged severity (an expiry rule's next reminder level).
    pub reminder: bool,
}

/// What evaluating one batch produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceEvaluation {
    pub transitions: Vec<RuleTransition>,
    /// States that changed and must be stored.
    pub changed: HashMap<StateKey, RuleState>,
    /// Samples × rules evaluated (throughput accounting).
    pub checks: usize,
}

impl EffectivePolicy {
    /// Evaluates a batch against the stored states of the device's (rule, item) pairs; a
    /// missing entry is a fresh state.
    pub fn evaluate(&self, batch: &TelemetryBatch, states: &States) -> DeviceEvaluation {
        let mut out = DeviceEvaluation::default();
        let times: Vec<i64> = (0..batch.len())
            .filter_map(|i| batch.sample_time(i))
            .collect();
        let input = crate::checks::Input {
            batch,
            times: &times,
            states,
            index: crate::checks::index(states),
            now: crate::checks::batch_time(batch),
        };
        for (rule, _) in &self.rules {
            crate::checks::evaluate(&rule.check, &rule.id, rule.family, &input, &mut out);
        }
        out
    }

    /// What the agent must watch for these rules: services, backup jobs, certificates.
    pub fn collect_plan(&self) -> CollectPlan {
        let mut plan = CollectPlan::default();
        for (rule, _) in &self.rules {
            plan.merge(&rule.check.collect());
        }
        plan
    }
}

#[cfg(test)]
mod scope_key_tests {
    use super::*;

    #[test]
    fn scope_keys_round_trip() {
        let scopes = [
            Scope::Tenant,
            Scope::Tag {
                key: "role".into(),
                value: "server".into(),
            },
            Scope::Client {
                client: ClientId::parse("acme").expect("id"),
            },
            Scope::Site {
                client: ClientId::parse("acme").expect("id"),
                site: SiteId::parse("hq").expect("id"),
            },
            Scope::Device {
                device: DeviceId::generate(),
            },
        ];
        for scope in scopes {
            assert_eq!(Scope::from_key(&scope.key()), Some(scope));
        }
        for bad in [
            "",
            "tenant:x",
            "tag:role",
            "client:Bad!",
            "site:acme",
            "moon:1",
        ] {
            assert_eq!(Scope::from_key(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::rules::{Direction, Level};
    use crate::telemetry::batch::tests::{agent, sample};
    use crate::telemetry::{Sample, SpoolReport};

    fn id(s: &str) -> RuleId {
        RuleId::parse(s).expect("rule id")
    }

    fn disk_rule(warn: f64) -> Rule {
        Rule::threshold(
            id("disk-used"),
            AlertFamily::Resources,
            Metric::FilesystemUsedPct,
            None,
            Threshold {
                direction: Direction::Above,
                warning: Some(Level {
                    threshold: warn,
                    for_s: 0,
                }),
                critical: Some(Level {
                    threshold: 95.0,
                    for_s: 0,
                }),
                hysteresis: 2.0,
                max_gap_s: 600,
            },
        )
    }

    fn device() -> (DeviceId, ClientId, SiteId, BTreeMap<String, String>) {
        let mut tags = BTreeMap::new();
        tags.insert("role".to_owned(), "server".to_owned());
        (
            DeviceId::parse("dev-a").expect("id"),
            ClientId::parse("acme").expect("id"),
            SiteId::parse("hq").expect("id"),
            tags,
        )
    }

    #[test]
    fn the_most_specific_scope_wins_and_can_switch_a_rule_off() {
        let (d, c, s, tags) = device();
        let tenant = Policy {
            scope: Scope::Tenant,
            rules: vec![disk_rule(85.0)],
        };
        let servers = Policy {
            scope: Scope::Tag {
                key: "role".into(),
                value: "server".into(),
            },
            rules: vec![disk_rule(80.0)],
        };
        let site = Policy {
            scope: Scope::Site {
                client: c.clone(),
                site: s.clone(),
            },
            rules: vec![disk_rule(70.0)],
        };
        let other_site = Policy {
            scope: Scope::Site {
                client: c.clone(),
                site: SiteId::parse("branch").expect("id"),
            },
            rules: vec![disk_rule(10.0)],
        };
        let all = [
            tenant.clone(),
            servers.clone(),
            other_site.clone(),
            site.clone(),
        ];
        let eff = EffectivePolicy::for_device(all.iter(), &d, &c, &s, &tags);
        assert_eq!(eff.rules.len(), 1);
        assert_eq!(
            eff.rules[0]
                .0
                .as_threshold()
                .and_then(|t| t.warning)
                .map(|l| l.threshold),
            Some(70.0)
        );
        assert_eq!(eff.rules[0].1, site.scope);

        let eff = EffectivePolicy::for_device([tenant.clone(), servers].iter(), &d, &c, &s, &tags);
        assert_eq!(
            eff.rules[0]
                .0
                .as_threshold()
                .and_then(|t| t.warning)
                .map(|l| l.threshold),
            Some(80.0)
        );

        let off = Policy {
            scope: Scope::Device { device: d.clone() },
            rules: vec![Rule {
                enabled: false,
                ..disk_rule(85.0)
            }],
        };
        let eff = EffectivePolicy::for_device([tenant, off].iter(), &d, &c, &s, &tags);
        assert!(eff.rules.is_empty());
    }

    #[test]
    fn a_batch_raises_per_filesystem_transitions() {
        let (d, c, s, tags) = device();
        let now = 1_790_000_000_000;
        let rows: Vec<Sample> = (0..3)
            .map(|i| {
                let mut r = sample(now - (3 - i) * 60_000);
                r.filesystems.push(crate::telemetry::FilesystemSample {
                    mount: "/data".into(),
                    used_pct: 96.0,
                    ..r.filesystems[0].clone()
                });
                r
            })
            .collect();
        let batch = TelemetryBatch::from_samples(agent(now), SpoolReport::default(), &rows);
        let eff = EffectivePolicy::for_device(
            [Policy {
                scope: Scope::Tenant,
                rules: vec![disk_rule(85.0)],
            }]
            .iter(),
            &d,
            &c,
            &s,
            &tags,
        );
        let e = eff.evaluate(&batch, &States::new());
        // "/" is at 61 %: nothing. "/data" at 96 %: critical at once (for_s = 0).
        assert_eq!(e.transitions.len(), 1);
        assert_eq!(e.transitions[0].subject, "/data");
        assert_eq!(e.transitions[0].transition.to, Some(Severity::Critical));
        assert_eq!(e.checks, 6);
        assert_eq!(
            e.changed.len(),
            1,
            "only the firing item's state is written"
        );
        // The same batch against the stored state: nothing new.
        let stored = e.changed.clone();
        let again = eff.evaluate(&batch, &stored);
        assert!(again.transitions.is_empty() && again.changed.is_empty());
    }

    #[test]
    fn metric_names_are_their_serde_names() {
        for m in [
            Metric::CpuTotalPct,
            Metric::FilesystemUsedPct,
            Metric::NetworkUtilisationPct,
            Metric::Load1,
        ] {
            assert_eq!(
                serde_json::to_value(m).expect("json"),
                serde_json::json!(m.as_str())
            );
        }
    }

    #[test]
    fn policies_validate_and_round_trip_as_json() {
        let p = Policy {
            scope: Scope::Tenant,
            rules: vec![disk_rule(85.0), disk_rule(80.0)],
        };
        assert_eq!(
            p.validate(),
            Err(PolicyInvalid::DuplicateRule(id("disk-used")))
        );
        let p = Policy {
            scope: Scope::Client {
                client: ClientId::parse("acme").expect("id"),
            },
            rules: vec![disk_rule(85.0)],
        };
        assert_eq!(p.validate(), Ok(()));
        let json = serde_json::to_string(&p).expect("json");
        assert!(json.contains("\"level\":\"client\""), "{json}");
        assert_eq!(serde_json::from_str::<Policy>(&json).expect("parses"), p);
    }

    proptest::proptest! {
        /// A threshold an MSP sets comes back from storage as the very same number: JSON is
        /// parsed with correct rounding (`float_roundtrip`), never one unit off in the last place.
        #[test]
        fn a_policy_keeps_every_threshold_exactly_through_json(warn in 0.0f64..100.0) {
            let p = Policy { scope: Scope::Tenant, rules: vec![disk_rule(warn)] };
            let back: Policy = serde_json::from_str(&serde_json::to_string(&p).expect("json"))
                .expect("parses");
            let level = back.rules[0].as_threshold().and_then(|t| t.warning).expect("warning");
            proptest::prop_assert_eq!(level.threshold.to_bits(), warn.to_bits());
        }
    }
}
