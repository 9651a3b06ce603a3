//! Tenant policies: rules attached at tenant, role/tag, client company, site or device level,
//! the effective policy of a device, and evaluating a batch against it.
//!
//! Precedence, most general first: tenant < tag (e.g. `role=server`) < client company < site <
//! device. A rule with the same id at a more specific level replaces the general one entirely;
//! `enabled: false` there switches it off for that scope.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::alert::AlertFamily;
use crate::ids::{ClientId, DeviceId, IdError, SiteId};
use crate::rules::{RuleState, Threshold, ThresholdInvalid, Transition};
use crate::telemetry::{Series, TelemetryBatch};

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
        }
    }
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: RuleId,
    pub family: AlertFamily,
    pub metric: Metric,
    /// Only this item (a mount point, disk, interface or sensor name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(flatten)]
    pub threshold: Threshold,
    #[serde(default = "enabled")]
    pub enabled: bool,
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
    #[error("rule {rule}: {source}")]
    Threshold {
        rule: RuleId,
        source: ThresholdInvalid,
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
            r.threshold
                .validate()
                .map_err(|source| PolicyInvalid::Threshold {
                    rule: r.id.clone(),
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

fn values(s: &Series) -> impl Iterator<Item = Option<f64>> + '_ {
    s.iter().map(|v| v.map(|v| f64::from(v) / 100.0))
}

/// The series a metric reads from a batch: `(item, values)`.
fn series_of(batch: &TelemetryBatch, metric: Metric) -> Vec<(&str, Vec<Option<f64>>)> {
    match metric {
        Metric::CpuTotalPct => batch
            .cpu
            .iter()
            .map(|c| ("", values(&c.total_pct_x100).collect()))
            .collect(),
        Metric::CpuIowaitPct => batch
            .cpu
            .iter()
            .map(|c| ("", values(&c.iowait_pct_x100).collect()))
            .collect(),
        Metric::MemoryUsedPct => batch
            .memory
            .iter()
            .map(|m| ("", values(&m.used_pct_x100).collect()))
            .collect(),
        Metric::Load1 => batch
            .load
            .iter()
            .map(|l| ("", values(&l.one_x100).collect()))
            .collect(),
        Metric::FilesystemUsedPct => batch
            .filesystems
            .iter()
            .map(|f| (f.mount.as_str(), values(&f.used_pct_x100).collect()))
            .collect(),
        Metric::FilesystemInodesUsedPct => batch
            .filesystems
            .iter()
            .filter_map(|f| {
                f.inodes_used_pct_x100
                    .as_ref()
                    .map(|s| (f.mount.as_str(), values(s).collect()))
            })
            .collect(),
        Metric::DiskBusyPct => batch
            .disks
            .iter()
            .map(|d| (d.device.as_str(), values(&d.busy_pct_x100).collect()))
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
                Some((n.interface.as_str(), util))
            })
            .collect(),
        Metric::TemperatureCelsius => batch
            .temperatures
            .iter()
            .map(|t| {
                (
                    t.sensor.as_str(),
                    t.celsius_x100
                        .iter()
                        .map(|v| v.map(|v| f64::from(v) / 100.0))
                        .collect(),
                )
            })
            .collect(),
    }
}

impl EffectivePolicy {
    /// Evaluates a batch. `state` gives the stored state of each (rule, item); a missing entry
    /// is a fresh state.
    pub fn evaluate(
        &self,
        batch: &TelemetryBatch,
        state: impl Fn(&RuleId, &str) -> RuleState,
    ) -> DeviceEvaluation {
        let mut out = DeviceEvaluation::default();
        let times: Vec<i64> = (0..batch.len())
            .filter_map(|i| batch.sample_time(i))
            .collect();
        for (rule, _) in &self.rules {
            for (item, vals) in series_of(batch, rule.metric) {
                if rule.subject.as_deref().is_some_and(|s| s != item) {
                    continue;
                }
                out.checks += vals.len();
                let before = state(&rule.id, item);
                let e = rule
                    .threshold
                    .evaluate(before, times.iter().copied().zip(vals));
                if e.changed {
                    out.changed
                        .insert((rule.id.clone(), item.to_owned()), e.state);
                }
                out.transitions
                    .extend(e.transitions.into_iter().map(|transition| RuleTransition {
                        rule: rule.id.clone(),
                        family: rule.family,
                        subject: item.to_owned(),
                        transition,
                    }));
            }
        }
        out
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
        Rule {
            id: id("disk-used"),
            family: AlertFamily::Resources,
            metric: Metric::FilesystemUsedPct,
            subject: None,
            threshold: Threshold {
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
            enabled: true,
        }
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
            eff.rules[0].0.threshold.warning.map(|l| l.threshold),
            Some(70.0)
        );
        assert_eq!(eff.rules[0].1, site.scope);

        let eff = EffectivePolicy::for_device([tenant.clone(), servers].iter(), &d, &c, &s, &tags);
        assert_eq!(
            eff.rules[0].0.threshold.warning.map(|l| l.threshold),
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
        let e = eff.evaluate(&batch, |_, _| RuleState::default());
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
        let again = eff.evaluate(&batch, |r, item| {
            stored
                .get(&(r.clone(), item.to_owned()))
                .copied()
                .unwrap_or_default()
        });
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
}
