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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
