//! Telemetry batch schema v1: what the agent sends, and the rules a batch must satisfy.
//!
//! The schema is strict (`deny_unknown_fields`): the version number, not guesswork, governs
//! what a batch may contain. A batch never names its tenant, client company or site — those
//! come from the device's server-side record.

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

/// One batch of samples from one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryBatch {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Who is sending.
    pub agent: AgentInfo,
    /// Batches the agent's spool had to drop since it last reported (never silent).
    #[serde(default, skip_serializing_if = "SpoolReport::is_empty")]
    pub spool: SpoolReport,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
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

/// Why a parsed batch is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchInvalid {
    #[error("schema version {0} is not supported (this server understands {SCHEMA_VERSION})")]
    UnsupportedSchema(u32),
    #[error("a batch must hold at least one sample")]
    NoSamples,
    #[error("{field}: at most {max} entries are allowed, found {found}")]
    TooMany {
        field: &'static str,
        max: usize,
        found: usize,
    },
    #[error("{field}: text longer than {max} characters", max = bounds::MAX_TEXT)]
    TextTooLong { field: &'static str },
    #[error("{field}: {value} is not a finite number in range")]
    OutOfRange { field: &'static str, value: f64 },
    #[error("sample {index}: timestamp {ts} is too far from the server's clock")]
    SampleTime { index: usize, ts: i64 },
    #[error("samples must be in time order (sample {index} is earlier than the one before)")]
    OutOfOrder { index: usize },
}

fn text(field: &'static str, s: &str) -> Result<(), BatchInvalid> {
    if s.chars().count() > bounds::MAX_TEXT {
        Err(BatchInvalid::TextTooLong { field })
    } else {
        Ok(())
    }
}

fn count(field: &'static str, found: usize, max: usize) -> Result<(), BatchInvalid> {
    if found > max {
        Err(BatchInvalid::TooMany { field, max, found })
    } else {
        Ok(())
    }
}

fn non_negative(field: &'static str, value: f64) -> Result<(), BatchInvalid> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(BatchInvalid::OutOfRange { field, value })
    }
}

fn percent(field: &'static str, value: f64) -> Result<(), BatchInvalid> {
    // A hair above 100 is rounding on the agent, not a lie.
    if value.is_finite() && (0.0..=100.5).contains(&value) {
        Ok(())
    } else {
        Err(BatchInvalid::OutOfRange { field, value })
    }
}

fn celsius(field: &'static str, value: f64) -> Result<(), BatchInvalid> {
    if value.is_finite() && (-100.0..=250.0).contains(&value) {
        Ok(())
    } else {
        Err(BatchInvalid::OutOfRange { field, value })
    }
}

impl TelemetryBatch {
    /// Checks every bound of schema v1. `now_ms` is the server's clock.
    pub fn validate(&self, now_ms: i64) -> Result<(), BatchInvalid> {
        if self.schema != SCHEMA_VERSION {
            return Err(BatchInvalid::UnsupportedSchema(self.schema));
        }
        let a = &self.agent;
        for (field, value) in [
            ("agent.version", &a.version),
            ("agent.hostname", &a.hostname),
            ("agent.os", &a.os),
            ("agent.kernel", &a.kernel),
            ("agent.arch", &a.arch),
        ] {
            text(field, value)?;
        }
        if self.samples.is_empty() {
            return Err(BatchInvalid::NoSamples);
        }
        count("samples", self.samples.len(), bounds::MAX_SAMPLES)?;
        let mut previous = i64::MIN;
        for (index, sample) in self.samples.iter().enumerate() {
            if sample.ts < now_ms - bounds::MAX_SAMPLE_AGE_MS
                || sample.ts > now_ms + bounds::MAX_SAMPLE_LEAD_MS
            {
                return Err(BatchInvalid::SampleTime {
                    index,
                    ts: sample.ts,
                });
            }
            if sample.ts < previous {
                return Err(BatchInvalid::OutOfOrder { index });
            }
            previous = sample.ts;
            sample.validate()?;
        }
        Ok(())
    }
}

impl Sample {
    fn validate(&self) -> Result<(), BatchInvalid> {
        if let Some(cpu) = &self.cpu {
            percent("cpu.total_pct", cpu.total_pct)?;
            percent("cpu.iowait_pct", cpu.iowait_pct)?;
            count(
                "cpu.per_core_pct",
                cpu.per_core_pct.len(),
                bounds::MAX_CORES,
            )?;
            for &core in &cpu.per_core_pct {
                percent("cpu.per_core_pct", core)?;
            }
        }
        if let Some(load) = &self.load {
            for v in [load.one, load.five, load.fifteen] {
                non_negative("load", v)?;
            }
        }
        if let Some(m) = &self.memory {
            percent("memory.used_pct", m.used_pct)?;
        }
        count("filesystems", self.filesystems.len(), bounds::MAX_ITEMS)?;
        for fs in &self.filesystems {
            text("filesystems.mount", &fs.mount)?;
            text("filesystems.fs_type", &fs.fs_type)?;
            text("filesystems.device", &fs.device)?;
            percent("filesystems.used_pct", fs.used_pct)?;
            if let Some(i) = fs.inodes_used_pct {
                percent("filesystems.inodes_used_pct", i)?;
            }
        }
        count("disks", self.disks.len(), bounds::MAX_ITEMS)?;
        for d in &self.disks {
            text("disks.device", &d.device)?;
            for v in [
                d.read_bytes_per_s,
                d.write_bytes_per_s,
                d.reads_per_s,
                d.writes_per_s,
            ] {
                non_negative("disks.rate", v)?;
            }
            percent("disks.busy_pct", d.busy_pct)?;
        }
        count("network", self.network.len(), bounds::MAX_ITEMS)?;
        for n in &self.network {
            text("network.interface", &n.interface)?;
            non_negative("network.rx_bytes_per_s", n.rx_bytes_per_s)?;
            non_negative("network.tx_bytes_per_s", n.tx_bytes_per_s)?;
        }
        count("temperatures", self.temperatures.len(), bounds::MAX_ITEMS)?;
        for t in &self.temperatures {
            text("temperatures.sensor", &t.sensor)?;
            celsius("temperatures.celsius", t.celsius)?;
            if let Some(c) = t.critical_celsius {
                celsius("temperatures.critical_celsius", c)?;
            }
        }
        Ok(())
    }
}

/// A compact summary of a batch, for logs and the demo's read-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    pub samples: usize,
    /// Metric families present in at least one sample ("cpu", "filesystems", …).
    pub metrics: Vec<String>,
}

impl TelemetryBatch {
    pub fn summary(&self) -> BatchSummary {
        let mut seen = [false; 8];
        for s in &self.samples {
            seen[0] |= s.cpu.is_some();
            seen[1] |= s.load.is_some();
            seen[2] |= s.memory.is_some();
            seen[3] |= !s.filesystems.is_empty();
            seen[4] |= !s.disks.is_empty();
            seen[5] |= !s.network.is_empty();
            seen[6] |= !s.temperatures.is_empty();
            seen[7] |= s.uptime_s.is_some();
        }
        let names = [
            "cpu",
            "load",
            "memory",
            "filesystems",
            "disks",
            "network",
            "temperatures",
            "uptime",
        ];
        BatchSummary {
            samples: self.samples.len(),
            metrics: names
                .iter()
                .zip(seen)
                .filter(|(_, on)| *on)
                .map(|(n, _)| (*n).to_owned())
                .collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A realistic sample as a small server would report it.
    pub(crate) fn sample(ts: i64) -> Sample {
        Sample {
            ts,
            cpu: Some(CpuSample {
                total_pct: 12.5,
                per_core_pct: vec![10.0, 15.0, 11.0, 14.0],
                iowait_pct: 0.4,
            }),
            load: Some(LoadAverage {
                one: 0.4,
                five: 0.3,
                fifteen: 0.2,
            }),
            memory: Some(MemorySample {
                total_bytes: 16 << 30,
                available_bytes: 9 << 30,
                used_pct: 43.75,
                swap_total_bytes: 2 << 30,
                swap_used_bytes: 0,
            }),
            filesystems: vec![FilesystemSample {
                mount: "/".into(),
                fs_type: "ext4".into(),
                device: "/dev/sda1".into(),
                total_bytes: 100 << 30,
                used_bytes: 61 << 30,
                available_bytes: 39 << 30,
                used_pct: 61.0,
                inodes_used_pct: Some(12.0),
            }],
            disks: vec![DiskIoSample {
                device: "sda".into(),
                read_bytes_per_s: 1024.0,
                write_bytes_per_s: 4096.0,
                reads_per_s: 1.0,
                writes_per_s: 3.0,
                busy_pct: 0.5,
            }],
            network: vec![NetworkSample {
                interface: "eth0".into(),
                rx_bytes_per_s: 12_000.0,
                tx_bytes_per_s: 3_000.0,
                rx_errors: 0,
                tx_errors: 0,
                link_speed_mbps: Some(1000),
            }],
            temperatures: vec![TemperatureSample {
                sensor: "coretemp/Package id 0".into(),
                celsius: 48.0,
                critical_celsius: Some(100.0),
            }],
            uptime_s: Some(86_400),
        }
    }

    pub(crate) fn batch(now_ms: i64, n: usize) -> TelemetryBatch {
        TelemetryBatch {
            schema: SCHEMA_VERSION,
            agent: AgentInfo {
                version: "0.1.0".into(),
                hostname: "srv-files-01".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
                kernel: "6.1.0-18-amd64".into(),
                arch: "x86_64".into(),
                boot_time: now_ms / 1000 - 86_400,
            },
            spool: SpoolReport::default(),
            samples: (0..n)
                .map(|i| sample(now_ms - (n - i) as i64 * 1_000))
                .collect(),
        }
    }

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn a_realistic_batch_is_valid_and_round_trips() {
        let b = batch(NOW, 60);
        assert_eq!(b.validate(NOW), Ok(()));
        let json = serde_json::to_vec(&b).expect("serialises");
        let back: TelemetryBatch = serde_json::from_slice(&json).expect("parses");
        assert_eq!(back, b);
        assert_eq!(back.summary().samples, 60);
        assert_eq!(back.summary().metrics.len(), 8);
    }

    #[test]
    fn refuses_each_broken_bound() {
        let mut b = batch(NOW, 2);
        b.schema = 2;
        assert_eq!(b.validate(NOW), Err(BatchInvalid::UnsupportedSchema(2)));

        let mut b = batch(NOW, 2);
        b.samples.clear();
        assert_eq!(b.validate(NOW), Err(BatchInvalid::NoSamples));

        let mut b = batch(NOW, 2);
        b.samples[1].cpu.as_mut().expect("cpu").total_pct = f64::NAN;
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::OutOfRange {
                field: "cpu.total_pct",
                ..
            })
        ));

        let mut b = batch(NOW, 2);
        b.samples[0].filesystems[0].used_pct = 140.0;
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::OutOfRange { .. })
        ));

        let mut b = batch(NOW, 2);
        b.samples[0].ts = NOW + 10 * 60_000;
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::SampleTime { index: 0, .. })
        ));

        let mut b = batch(NOW, 2);
        b.samples.swap(0, 1);
        assert_eq!(b.validate(NOW), Err(BatchInvalid::OutOfOrder { index: 1 }));

        let mut b = batch(NOW, 1);
        b.agent.hostname = "h".repeat(600);
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::TextTooLong { .. })
        ));

        let mut b = batch(NOW, 1);
        b.samples[0].network = vec![b.samples[0].network[0].clone(); 300];
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::TooMany {
                field: "network",
                ..
            })
        ));
    }

    #[test]
    fn unknown_fields_are_refused_so_a_batch_cannot_name_its_tenant() {
        let b = batch(NOW, 1);
        let mut v = serde_json::to_value(&b).expect("value");
        v["tenant_id"] = serde_json::json!("other-msp");
        assert!(serde_json::from_value::<TelemetryBatch>(v).is_err());
    }
}
