//! The HTTP contract between the agent and the ingestion function: routes, bodies, limits.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, DeviceId, SiteId, TenantId};

/// Routes served by the ingestion function.
pub mod routes {
    /// `POST`: redeem an enrolment token, register the device's public key.
    pub const ENROLL: &str = "/v1/agent/enroll";
    /// `POST`: a signed, gzip-compressed telemetry batch.
    pub const BATCHES: &str = "/v1/agent/batches";
    /// `GET`: the device's current configuration (signed, sequence 0).
    pub const CONFIG: &str = "/v1/agent/config";
}

/// Size limits enforced before anything is parsed.
pub mod limits {
    /// Largest compressed body accepted (bytes on the wire).
    pub const MAX_COMPRESSED_BODY: usize = 256 * 1024;
    /// Largest body after decompression; inflation stops at this size (zip-bomb guard).
    pub const MAX_DECOMPRESSED_BODY: usize = 2 * 1024 * 1024;
    /// Largest enrolment request.
    pub const MAX_ENROLL_BODY: usize = 8 * 1024;
    /// Accepted distance between the request's timestamp and the server's clock.
    pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;
}

/// Body of `POST /v1/agent/enroll`. Names no tenant, client company or site: those are bound
/// to the token on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrolment token as given to the installer (`<token id>.<secret>`).
    pub token: String,
    /// The device's Ed25519 public key, base64.
    pub public_key: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
}

/// Answer to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub site_id: SiteId,
    pub config: AgentConfig,
}

/// What the server tells an agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Seconds between samples.
    pub sample_interval_s: u32,
    /// Seconds between batches.
    pub send_interval_s: u32,
    /// Seconds of silence after which the device is considered down.
    pub heartbeat_s: u32,
    /// What the collectors watch on this device, derived from its effective policy.
    #[serde(default, skip_serializing_if = "CollectPlan::is_empty")]
    pub collect: CollectPlan,
}

/// What the agent's collectors watch beyond the machine's own metrics: the union of what the
/// device's effective rules ask for (services that must run, backup jobs, certificates).
/// Collectors that need no parameters (logins, updates, antivirus, accounts, SMART,
/// neighbours) always run unless listed in `disabled`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectPlan {
    /// Services (systemd units without `.service`, or process names) that must be running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateTarget>,
    /// Collectors switched off on this device (`auth`, `updates`, `malware`, `accounts`,
    /// `smart`, `neighbours`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<String>,
}

impl CollectPlan {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.backups.is_empty()
            && self.certificates.is_empty()
            && self.disabled.is_empty()
    }

    /// Adds what `other` asks for, without duplicates (order of first appearance).
    pub fn merge(&mut self, other: &CollectPlan) {
        fn add<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
            for x in from {
                if !into.contains(x) {
                    into.push(x.clone());
                }
            }
        }
        add(&mut self.services, &other.services);
        add(&mut self.backups, &other.backups);
        add(&mut self.certificates, &other.certificates);
        add(&mut self.disabled, &other.disabled);
    }
}

/// Where the agent reads the result of one backup job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackupSource {
    /// A file the job writes when it ends: JSON `{"status": "success"|"failed"|…,
    /// "finished_at": <Unix s or RFC 3339>, "message": …}`, or a first line `OK` / `FAILED`
    /// (then the file's modification time is the run's time).
    StatusFile { job: String, path: String },
    /// A command whose exit status is the result (0: success), run at most every `every_s`.
    Command {
        job: String,
        argv: Vec<String>,
        #[serde(default = "default_command_every_s")]
        every_s: u32,
    },
    /// `restic snapshots --json --latest 1` on a repository.
    Restic {
        job: String,
        repository: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<String>,
    },
    /// `borg info --json --last 1` on a repository.
    Borg { job: String, repository: String },
    /// Veeam Agent for Linux: `veeamconfig session list` (the job's last session).
    Veeam { job: String },
}

fn default_command_every_s() -> u32 {
    3_600
}

impl BackupSource {
    pub fn job(&self) -> &str {
        match self {
            Self::StatusFile { job, .. }
            | Self::Command { job, .. }
            | Self::Restic { job, .. }
            | Self::Borg { job, .. }
            | Self::Veeam { job } => job,
        }
    }
}

/// A certificate to watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum CertificateTarget {
    /// A TLS endpoint on the client's network, probed by the agent; `sni` defaults to `host`.
    Endpoint {
        host: String,
        port: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    },
    /// A PEM or DER certificate file on the machine.
    File { path: String },
}

impl CertificateTarget {
    /// The finding's `target`: `host:port` or the path.
    pub fn target(&self) -> String {
        match self {
            Self::Endpoint { host, port, .. } => format!("{host}:{port}"),
            Self::File { path } => path.clone(),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            sample_interval_s: 60,
            send_interval_s: 60,
            heartbeat_s: 300,
            collect: CollectPlan::default(),
        }
    }
}

impl AgentConfig {
    /// Smallest intervals the server hands out (protects the fleet's cost).
    pub const MIN_INTERVAL_S: u32 = 5;
    pub const MAX_INTERVAL_S: u32 = 3_600;

    pub fn is_valid(&self) -> bool {
        let range = Self::MIN_INTERVAL_S..=Self::MAX_INTERVAL_S;
        range.contains(&self.sample_interval_s)
            && range.contains(&self.send_interval_s)
            && self.heartbeat_s >= self.send_interval_s
    }
}

/// Answer to an accepted batch (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAccepted {
    pub seq: u64,
    /// The queue's message id.
    pub message_id: String,
}

/// Every error answer of every Vigie HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (`bad_signature`, `sequence_replayed`, …).
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// For `sequence_replayed`: the last sequence number the server accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accepted_seq: Option<u64>,
}
