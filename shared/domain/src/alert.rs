//! Alert vocabulary shared by policies, the evaluator and notifications.

use serde::{Deserialize, Serialize};

/// How bad it is. Maps onto the industry's Sev 1 / 2 / 3 model (see MISSION.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// Sev 1 pages now, Sev 2 pages now, Sev 3 waits for business hours.
    pub fn sev_level(self) -> u8 {
        match self {
            Self::Critical => 1,
            Self::Warning => 2,
            Self::Info => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// The ten alert families small MSPs ask for (MISSION.md), plus agent health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFamily {
    Overheating,
    DeviceDown,
    NetworkSaturated,
    Resources,
    BackupFailure,
    CertificateExpiry,
    Intrusion,
    Malware,
    Updates,
    Accounts,
    AgentHealth,
}

impl AlertFamily {
    pub const ALL: [Self; 11] = [
        Self::Overheating,
        Self::DeviceDown,
        Self::NetworkSaturated,
        Self::Resources,
        Self::BackupFailure,
        Self::CertificateExpiry,
        Self::Intrusion,
        Self::Malware,
        Self::Updates,
        Self::Accounts,
        Self::AgentHealth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overheating => "overheating",
            Self::DeviceDown => "device_down",
            Self::NetworkSaturated => "network_saturated",
            Self::Resources => "resources",
            Self::BackupFailure => "backup_failure",
            Self::CertificateExpiry => "certificate_expiry",
            Self::Intrusion => "intrusion",
            Self::Malware => "malware",
            Self::Updates => "updates",
            Self::Accounts => "accounts",
            Self::AgentHealth => "agent_health",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_and_maps_to_sev_levels() {
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(
            [Severity::Critical, Severity::Warning, Severity::Info].map(Severity::sev_level),
            [1, 2, 3]
        );
    }

    #[test]
    fn family_names_are_their_serde_names() {
        for f in AlertFamily::ALL {
            assert_eq!(
                serde_json::to_value(f).expect("json"),
                serde_json::json!(f.as_str())
            );
        }
    }
}

/// What happened to an alert. Each is published once, with its own event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEventKind {
    Opened,
    SeverityRaised,
    SeverityLowered,
    Resolved,
    /// The alert keeps changing state: announced once, then quiet until it settles (see
    /// [`crate::flapping`]).
    Flapping,
    /// A flapping alert has been stable for the settle period and is still open at its
    /// severity (a settled alert that ended is told as `resolved`).
    Settled,
    /// A further reminder at unchanged severity (an expiry rule's next reminder level).
    Reminder,
}

impl AlertEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::SeverityRaised => "severity_raised",
            Self::SeverityLowered => "severity_lowered",
            Self::Resolved => "resolved",
            Self::Flapping => "flapping",
            Self::Settled => "settled",
            Self::Reminder => "reminder",
        }
    }

    /// The kind of a level change `from` → `to`; `None` when nothing changed.
    pub fn of(from: Option<Severity>, to: Option<Severity>) -> Option<Self> {
        match (from, to) {
            (None, Some(_)) => Some(Self::Opened),
            (Some(_), None) => Some(Self::Resolved),
            (Some(a), Some(b)) if b > a => Some(Self::SeverityRaised),
            (Some(a), Some(b)) if b < a => Some(Self::SeverityLowered),
            _ => None,
        }
    }
}

/// One alert transition, as published on the alerts topic and rendered into notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Unique per transition (never just the alert id), and the same when the same transition
    /// is computed twice, so consumers deduplicate on it.
    pub event_id: String,
    pub kind: AlertEventKind,
    /// Stable per (tenant, device, rule, item).
    pub alert_id: String,
    pub tenant_id: crate::ids::TenantId,
    pub client_id: crate::ids::ClientId,
    pub site_id: crate::ids::SiteId,
    pub device_id: crate::ids::DeviceId,
    /// The device's host name, for people.
    pub device_name: String,
    pub rule_id: String,
    pub family: AlertFamily,
    /// What the rule watches on the device ("/var", "eth0", "" for device-wide metrics).
    pub subject: String,
    /// Metric name, e.g. "filesystem_used_pct"; for other rule kinds `finding:<kind>`
    /// ("finding:service"), `event:<kind>` ("event:auth_failure") or `rate:<metric>`.
    pub metric: String,
    /// Severity after the transition (for `resolved`: the last one it had).
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_severity: Option<Severity>,
    /// The value that caused the transition, and the threshold of the level concerned (for a
    /// count rule: events counted and `at_least`; for an expiry rule: days left and the
    /// reminder's days; for a state rule: the Sev level of the state, 0 once fine).
    pub value: f64,
    pub threshold: f64,
    /// When the transition happened (the sample's time) and when the alert opened, Unix ms.
    pub at_ms: i64,
    pub opened_ms: i64,
    /// Set when a maintenance window decided about this event (see [`crate::maintenance`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::MaintenanceNote>,
    /// What happened, for people, when the rule knows more than a number ("nginx is failed
    /// (systemd: dead)", "12 failed logins for root from 203.0.113.9 within 5 min").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AlertEvent {
    /// The maintenance effect on this event, if any.
    pub fn maintenance_effect(&self) -> Option<crate::maintenance::MaintenanceEffect> {
        self.maintenance.as_ref().map(|n| n.effect)
    }

    /// The severity notifications are routed on: the higher of the new and the previous one,
    /// so a channel that asked for critical alerts also hears that one stepped down or ended.
    pub fn routing_severity(&self) -> Severity {
        self.previous_severity
            .map_or(self.severity, |p| p.max(self.severity))
    }
}

/// Derives an id from its parts: a prefix and 26 base32 characters of their SHA-256.
pub fn derived_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut id = crate::ids::base32(&digest[..16]);
    id.truncate(26);
    format!("{prefix}-{id}")
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn kinds_follow_the_level_change() {
        use Severity::*;
        assert_eq!(
            AlertEventKind::of(None, Some(Warning)),
            Some(AlertEventKind::Opened)
        );
        assert_eq!(
            AlertEventKind::of(Some(Warning), Some(Critical)),
            Some(AlertEventKind::SeverityRaised)
        );
        assert_eq!(
            AlertEventKind::of(Some(Critical), Some(Warning)),
            Some(AlertEventKind::SeverityLowered)
        );
        assert_eq!(
            AlertEventKind::of(Some(Critical), None),
            Some(AlertEventKind::Resolved)
        );
        assert_eq!(AlertEventKind::of(Some(Warning), Some(Warning)), None);
    }

    #[test]
    fn derived_ids_are_stable_and_separate_their_parts() {
        assert_eq!(
            derived_id("evt", &["a", "b"]),
            derived_id("evt", &["a", "b"])
        );
        assert_ne!(
            derived_id("evt", &["ab", ""]),
            derived_id("evt", &["a", "b"])
        );
        assert_eq!(derived_id("al", &["x"]).len(), 3 + 26);
    }
}
