//! What the agent observes besides metrics: **findings** (the current state of one thing it
//! watches: a service, a backup job, a certificate, the antivirus, pending updates, a local
//! account, a disk's SMART health), **events** (things that happened, counted on the agent:
//! failed logins per source, sudo use, account changes, a new machine on the network) and
//! the **status of each collector** (a missing tool or permission is reported, never silent).
//!
//! All three are additive parts of schema v1: a batch without them is a metrics-only batch.
//! Every finding names its subject (service name, backup job, `host:port` or file path, user,
//! disk), which is the item an alert is raised on, like a mount point for disk space.

use serde::{Deserialize, Serialize};

/// One observation of one watched thing, at `observed_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Finding {
    Service(ServiceFinding),
    Backup(BackupFinding),
    Certificate(CertificateFinding),
    Antivirus(AntivirusFinding),
    Updates(UpdatesFinding),
    Account(AccountFinding),
    Smart(SmartFinding),
}

/// The kinds of finding, as rules name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Service,
    Backup,
    Certificate,
    Antivirus,
    Updates,
    Account,
    Smart,
}

impl FindingKind {
    pub const ALL: [Self; 7] = [
        Self::Service,
        Self::Backup,
        Self::Certificate,
        Self::Antivirus,
        Self::Updates,
        Self::Account,
        Self::Smart,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Backup => "backup",
            Self::Certificate => "certificate",
            Self::Antivirus => "antivirus",
            Self::Updates => "updates",
            Self::Account => "account",
            Self::Smart => "smart",
        }
    }
}

/// A service the MSP wants running (systemd unit, or a process where systemd is absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFinding {
    pub observed_ms: i64,
    /// Unit name without `.service` ("nginx"), or the process name.
    pub name: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`, or
    /// `not_found` (no such unit or process).
    pub state: String,
    /// systemd's sub-state when known ("running", "dead", "exited").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_state: Option<String>,
    /// How it was read: `systemd` or `process` (the systemd-less fallback).
    pub via: String,
}

/// The outcome of the last run of one backup job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFinding {
    pub observed_ms: i64,
    /// The job's name as configured ("nas-nightly").
    pub job: String,
    /// Where the result was read: `status_file`, `command`, `restic`, `borg`, `veeam`.
    pub source: String,
    pub status: BackupStatus,
    /// When the last run ended (or started, if only that is known), Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_ms: Option<i64>,
    /// When the last successful run ended, Unix ms; `None` if none is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_ms: Option<i64>,
    /// The product's own message, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    Success,
    Warning,
    Failed,
    Running,
    /// The job has no run on record.
    Never,
    /// The source could not be read (see the collector's status for why).
    Unknown,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Failed => "failed",
            Self::Running => "running",
            Self::Never => "never",
            Self::Unknown => "unknown",
        }
    }
}

/// A TLS certificate: presented by an endpoint the agent probed, or a file on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFinding {
    pub observed_ms: i64,
    /// `host:port` of an endpoint, or the file's path.
    pub target: String,
    /// `endpoint` or `file`.
    pub source: String,
    /// `valid`, `invalid_chain`, `expired`, `unreachable` (endpoint did not answer a TLS
    /// handshake) or `unreadable` (file missing or not a certificate).
    pub state: String,
    /// End of validity, Unix ms (absent when unreachable or unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Why the chain does not verify, or why the endpoint is unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The antivirus as the machine reports it. "No antivirus" is a finding of its own
/// (`state: absent`), never silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntivirusFinding {
    pub observed_ms: i64,
    /// "clamav", or "" when none is installed.
    pub product: String,
    /// `clean`, `infected` or `absent`.
    pub state: String,
    /// Threats found by the last scans the agent read (name and path, at most a few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threats: Vec<Threat>,
    /// When the signatures were last updated, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures_ms: Option<i64>,
    /// When the last scan ended, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    pub name: String,
    pub path: String,
}

/// Pending updates from the package manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatesFinding {
    pub observed_ms: i64,
    /// `apt`, `dnf` or `zypper`.
    pub manager: String,
    pub pending: u32,
    pub security: u32,
    /// Updates that will not install by themselves (held back, kept back, needing a
    /// decision): someone must act by hand.
    pub manual: u32,
    /// Since when security updates have been pending without interruption, Unix ms (kept
    /// by the agent across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_since_ms: Option<i64>,
    pub reboot_required: bool,
    /// A few package names, for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<String>,
}

/// One local account (sent when the inventory changes and at most daily otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFinding {
    pub observed_ms: i64,
    pub user: String,
    pub uid: u32,
    /// Member of an administrators' group (sudo, wheel, admin) or uid 0.
    pub admin: bool,
    /// `active`, `locked` (password locked) or `expired`.
    pub state: String,
    /// Last password change, Unix ms, when the shadow file is readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed_ms: Option<i64>,
}

/// SMART health of one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartFinding {
    pub observed_ms: i64,
    /// Device name ("sda", "nvme0n1").
    pub disk: String,
    /// `passed`, `failed` or `unknown`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reallocated_sectors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_sectors: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_celsius: Option<i32>,
}

impl Finding {
    pub fn kind(&self) -> FindingKind {
        match self {
            Self::Service(_) => FindingKind::Service,
            Self::Backup(_) => FindingKind::Backup,
            Self::Certificate(_) => FindingKind::Certificate,
            Self::Antivirus(_) => FindingKind::Antivirus,
            Self::Updates(_) => FindingKind::Updates,
            Self::Account(_) => FindingKind::Account,
            Self::Smart(_) => FindingKind::Smart,
        }
    }

    pub fn observed_ms(&self) -> i64 {
        match self {
            Self::Service(f) => f.observed_ms,
            Self::Backup(f) => f.observed_ms,
            Self::Certificate(f) => f.observed_ms,
            Self::Antivirus(f) => f.observed_ms,
            Self::Updates(f) => f.observed_ms,
            Self::Account(f) => f.observed_ms,
            Self::Smart(f) => f.observed_ms,
        }
    }

    /// The item an alert on this finding is raised on.
    pub fn subject(&self) -> &str {
        match self {
            Self::Service(f) => &f.name,
            Self::Backup(f) => &f.job,
            Self::Certificate(f) => &f.target,
            Self::Antivirus(f) => &f.product,
            Self::Updates(f) => &f.manager,
            Self::Account(f) => &f.user,
            Self::Smart(f) => &f.disk,
        }
    }

    /// The state a state-change rule matches on.
    pub fn state(&self) -> &str {
        match self {
            Self::Service(f) => &f.state,
            Self::Backup(f) => f.status.as_str(),
            Self::Certificate(f) => &f.state,
            Self::Antivirus(f) => &f.state,
            Self::Updates(f) => {
                if f.reboot_required {
                    "reboot_required"
                } else if f.pending > 0 {
                    "pending"
                } else {
                    "up_to_date"
                }
            }
            Self::Account(f) => &f.state,
            Self::Smart(f) => &f.state,
        }
    }
}

/// Something that happened on the machine, counted on the agent: `count` occurrences of one
/// (kind, subject, source) between `first_ms` and `last_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCount {
    pub kind: EventKind,
    /// The user concerned, or the MAC address for `neighbour_new`.
    pub subject: String,
    /// Where from: the remote address of a login, the IP of a new neighbour; "" if local.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub count: u32,
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    AuthFailure,
    AuthSuccess,
    Sudo,
    AccountAdded,
    AccountRemoved,
    AdminAdded,
    AdminRemoved,
    PasswordChanged,
    /// A successful login for a user from a source this machine had not seen for them.
    LoginNewSource,
    /// A MAC/IP pair not seen before in the neighbour table.
    NeighbourNew,
}

impl EventKind {
    pub const ALL: [Self; 10] = [
        Self::AuthFailure,
        Self::AuthSuccess,
        Self::Sudo,
        Self::AccountAdded,
        Self::AccountRemoved,
        Self::AdminAdded,
        Self::AdminRemoved,
        Self::PasswordChanged,
        Self::LoginNewSource,
        Self::NeighbourNew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailure => "auth_failure",
            Self::AuthSuccess => "auth_success",
            Self::Sudo => "sudo",
            Self::AccountAdded => "account_added",
            Self::AccountRemoved => "account_removed",
            Self::AdminAdded => "admin_added",
            Self::AdminRemoved => "admin_removed",
            Self::PasswordChanged => "password_changed",
            Self::LoginNewSource => "login_new_source",
            Self::NeighbourNew => "neighbour_new",
        }
    }
}

/// How a collector fared on its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorStatus {
    /// `services`, `backups`, `certificates`, `auth`, `malware`, `updates`, `accounts`,
    /// `smart`, `neighbours`.
    pub collector: String,
    pub state: CollectorState,
    /// What is missing or what failed, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorState {
    Ok,
    /// The tool it reads is not installed (no smartctl, no ClamAV, no package manager).
    MissingTool,
    /// The agent lacks the permission to read its input.
    NoPermission,
    /// Nothing to do here (no job configured, no systemd and no process to check).
    NotApplicable,
    Error,
}

impl CollectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::MissingTool => "missing_tool",
            Self::NoPermission => "no_permission",
            Self::NotApplicable => "not_applicable",
            Self::Error => "error",
        }
    }
}

/// Bounds on findings, events and collector statuses in one batch.
pub mod limits {
    pub const MAX_FINDINGS: usize = 512;
    pub const MAX_EVENTS: usize = 512;
    pub const MAX_COLLECTORS: usize = 32;
    pub const MAX_THREATS: usize = 16;
    pub const MAX_SAMPLE_PACKAGES: usize = 16;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::batch::tests::batch;
    use crate::telemetry::{BatchInvalid, TelemetryBatch};

    const NOW: i64 = 1_790_000_000_000;

    fn one_of_each() -> Vec<Finding> {
        vec![
            Finding::Service(ServiceFinding {
                observed_ms: NOW,
                name: "nginx".into(),
                state: "failed".into(),
                sub_state: Some("dead".into()),
                via: "systemd".into(),
            }),
            Finding::Backup(BackupFinding {
                observed_ms: NOW,
                job: "nas-nightly".into(),
                source: "status_file".into(),
                status: BackupStatus::Failed,
                last_run_ms: Some(NOW - 3_600_000),
                last_success_ms: None,
                message: Some("repository locked".into()),
            }),
            Finding::Certificate(CertificateFinding {
                observed_ms: NOW,
                target: "portal.example:443".into(),
                source: "endpoint".into(),
                state: "valid".into(),
                not_after_ms: Some(NOW + 10 * 86_400_000),
                subject: Some("CN=portal.example".into()),
                issuer: Some("CN=Example CA".into()),
                error: None,
            }),
            Finding::Antivirus(AntivirusFinding {
                observed_ms: NOW,
                product: String::new(),
                state: "absent".into(),
                threats: vec![],
                signatures_ms: None,
                last_scan_ms: None,
            }),
            Finding::Updates(UpdatesFinding {
                observed_ms: NOW,
                manager: "apt".into(),
                pending: 3,
                security: 1,
                manual: 0,
                security_since_ms: Some(NOW - 86_400_000),
                reboot_required: false,
                sample: vec!["openssl".into()],
            }),
            Finding::Account(AccountFinding {
                observed_ms: NOW,
                user: "alice".into(),
                uid: 1000,
                admin: true,
                state: "active".into(),
                password_changed_ms: None,
            }),
            Finding::Smart(SmartFinding {
                observed_ms: NOW,
                disk: "sda".into(),
                state: "passed".into(),
                model: None,
                reallocated_sectors: Some(0),
                pending_sectors: None,
                temperature_celsius: Some(34),
            }),
        ]
    }

    #[test]
    fn a_batch_with_findings_events_and_collectors_round_trips_and_validates() {
        let mut b = batch(NOW, 3);
        b.findings = one_of_each();
        b.events = vec![EventCount {
            kind: EventKind::AuthFailure,
            subject: "root".into(),
            source: "203.0.113.9".into(),
            count: 12,
            first_ms: NOW - 60_000,
            last_ms: NOW - 1_000,
        }];
        b.collectors = vec![CollectorStatus {
            collector: "smart".into(),
            state: CollectorState::MissingTool,
            detail: Some("smartctl not found".into()),
            at_ms: NOW,
        }];
        b.validate(NOW).expect("valid");
        let json = serde_json::to_string(&b).expect("json");
        assert!(json.contains(r#""kind":"service""#), "{json}");
        let back: TelemetryBatch = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, b);
        let kinds: Vec<FindingKind> = back.findings.iter().map(Finding::kind).collect();
        assert_eq!(kinds, FindingKind::ALL);
        assert_eq!(back.findings[1].state(), "failed");
        assert_eq!(back.findings[4].state(), "pending");
        assert_eq!(back.findings[2].subject(), "portal.example:443");
    }

    #[test]
    fn bad_events_and_unknown_finding_kinds_are_refused() {
        let mut b = batch(NOW, 1);
        b.events = vec![EventCount {
            kind: EventKind::Sudo,
            subject: "bob".into(),
            source: String::new(),
            count: 0,
            first_ms: NOW,
            last_ms: NOW,
        }];
        assert_eq!(
            b.validate(NOW),
            Err(BatchInvalid::EventSpan { kind: "sudo" })
        );
        let unknown = r#"{"kind":"toaster","observed_ms":1}"#;
        assert!(serde_json::from_str::<Finding>(unknown).is_err());
        let extra = r#"{"kind":"smart","observed_ms":1,"disk":"sda","state":"passed","x":1}"#;
        assert!(serde_json::from_str::<Finding>(extra).is_err());
    }
}
