//! Telemetry schema v1: what the agent measures ([`Sample`], one row per instant) and what it
//! sends ([`TelemetryBatch`], the same readings laid out as one series per metric).
//!
//! The schema is strict (`deny_unknown_fields`): the version number, not guesswork, governs
//! what a batch may contain. A batch never names its tenant, client company or site — those
//! come from the device's server-side record.
//!
//! Why columns: a batch of 60 samples parses about twice as fast as series of numbers than as
//! 60 nested objects, compresses better, and is the shape duration rules read (a metric over
//! time). See `benches/intake.rs`.

pub(crate) mod batch;
pub mod findings;

pub use batch::*;
pub use findings::*;

use serde::{Deserialize, Serialize};

/// The only schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Bounds a batch must respect; anything outside is refused as invalid.
pub mod bounds {
    /// Samples in one batch.
    pub const MAX_SAMPLES: usize = 1_440;
    /// Logical CPUs reported per sample.
    pub const MAX_CORES: usize = 1_024;
    /// Filesystems, disks, interfaces or sensors per sample.
    pub const MAX_ITEMS: usize = 256;
    /// Length of any free-text field (mount point, interface name, sensor label, …).
    pub const MAX_TEXT: usize = 512;
    /// How far in the past a sample may lie (7 days, in ms): a long offline spool is fine.
    pub const MAX_SAMPLE_AGE_MS: i64 = 7 * 24 * 3_600_000;
    /// How far in the future a sample may lie (clock skew, in ms).
    pub const MAX_SAMPLE_LEAD_MS: i64 = 5 * 60_000;
}

/// The agent and the machine it runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    pub version: String,
    pub hostname: String,
    /// Operating system name and version, e.g. "Debian GNU/Linux 12 (bookworm)".
    pub os: String,
    pub kernel: String,
    pub arch: String,
    /// Boot time, Unix seconds.
    pub boot_time: i64,
}

/// Batches lost because the on-disk spool was full.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolReport {
    /// Batches dropped since the last report.
    pub dropped_batches: u64,
    /// Sequence numbers of the first and last dropped batch, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_seq_range: Option<(u64, u64)>,
}

impl SpoolReport {
    pub fn is_empty(&self) -> bool {
        self.dropped_batches == 0
    }
}

/// Everything measured at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// When the sample was taken, Unix milliseconds.
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuSample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadAverage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<FilesystemSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskIoSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetworkSample>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temperatures: Vec<TemperatureSample>,
    /// Seconds since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
}

/// CPU busy time over the sampling interval, in percent of capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSample {
    pub total_pct: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_core_pct: Vec<f64>,
    #[serde(default)]
    pub iowait_pct: f64,
}

/// The 1, 5 and 15 minute load averages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// Memory and swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySample {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_pct: f64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
}

/// One mounted, real filesystem (pseudo filesystems are not reported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemSample {
    pub mount: String,
    pub fs_type: String,
    pub device: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub used_pct: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_used_pct: Option<f64>,
}

/// Block device throughput over the sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskIoSample {
    pub device: String,
    pub read_bytes_per_s: f64,
    pub write_bytes_per_s: f64,
    pub reads_per_s: f64,
    pub writes_per_s: f64,
    /// Share of the interval the device was busy.
    pub busy_pct: f64,
}

/// Network interface throughput over the sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSample {
    pub interface: String,
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
    #[serde(default)]
    pub rx_errors: u64,
    #[serde(default)]
    pub tx_errors: u64,
    /// Negotiated link speed, where the kernel knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_speed_mbps: Option<u64>,
}

/// One temperature sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureSample {
    pub sensor: String,
    pub celsius: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_celsius: Option<f64>,
}
