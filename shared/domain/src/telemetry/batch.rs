//! The batch as sent: one series per metric, `None` (JSON `null`) where a sample lacks it.
//!
//! Series are integers. Fractional readings travel in fixed point, named with an `_x100`
//! suffix (`"total_pct_x100": [2340]` is 23.40 %); sizes travel in KiB, byte rates as whole
//! bytes per second. Integers parse markedly faster than decimals, which keeps the ingest path
//! within its budget; [`TelemetryBatch::rows`] turns a batch back into readings.

use serde::{Deserialize, Serialize};

use super::findings::{CollectorStatus, EventCount, Finding};
use super::{
    AgentInfo, CpuSample, DiskIoSample, FilesystemSample, LoadAverage, MemorySample, NetworkSample,
    SCHEMA_VERSION, Sample, SpoolReport, TemperatureSample, bounds,
};

/// Non-negative readings × 100, one per sample; `None` where that sample did not have it.
pub type Series = Vec<Option<u32>>;
/// Signed readings × 100 (temperatures), one per sample.
pub type SignedSeries = Vec<Option<i32>>;
/// Counts and sizes, one per sample.
pub type CountSeries = Vec<Option<u64>>;

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
    /// Time of the first sample, Unix ms.
    pub start_ms: i64,
    /// Each sample's time as an offset from `start_ms`, in ms, non-decreasing. Its length is
    /// the number of samples, and the length of every series.
    pub offsets_ms: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuSeries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSeries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySeries>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<FilesystemSeries>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<DiskSeries>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetworkSeries>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub temperatures: Vec<TemperatureSeries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<CountSeries>,
    /// The state of what the agent watches (services, backups, certificates, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// What happened since the last batch, counted on the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventCount>,
    /// How each collector fared (sent when it changes, and with the first batch of a run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collectors: Vec<CollectorStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSeries {
    pub total_pct_x100: Series,
    pub iowait_pct_x100: Series,
    /// One series per logical CPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_core_pct_x100: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSeries {
    pub one_x100: Series,
    pub five_x100: Series,
    pub fifteen_x100: Series,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySeries {
    pub total_bytes: u64,
    pub swap_total_bytes: u64,
    pub available_kib: CountSeries,
    pub used_pct_x100: Series,
    pub swap_used_kib: CountSeries,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemSeries {
    pub mount: String,
    pub fs_type: String,
    pub device: String,
    pub total_bytes: u64,
    pub used_kib: CountSeries,
    pub available_kib: CountSeries,
    pub used_pct_x100: Series,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_used_pct_x100: Option<Series>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSeries {
    pub device: String,
    pub read_bytes_per_s: CountSeries,
    pub write_bytes_per_s: CountSeries,
    pub reads_per_s_x100: Series,
    pub writes_per_s_x100: Series,
    pub busy_pct_x100: Series,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSeries {
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_speed_mbps: Option<u64>,
    pub rx_bytes_per_s: CountSeries,
    pub tx_bytes_per_s: CountSeries,
    pub rx_errors: CountSeries,
    pub tx_errors: CountSeries,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureSeries {
    pub sensor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_celsius: Option<f64>,
    pub celsius_x100: SignedSeries,
}

/// A non-negative reading in hundredths (two decimals: finer is noise).
fn x100(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        (v * 100.0).round().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// A signed reading in hundredths.
fn sx100(v: f64) -> i32 {
    if v.is_finite() {
        (v * 100.0)
            .round()
            .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
    } else {
        0
    }
}

/// Byte rates travel as whole bytes per second.
fn whole(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

fn un100(v: u32) -> f64 {
    f64::from(v) / 100.0
}

/// Sizes travel in KiB: the kernel reports memory in KiB and filesystems in blocks of at least
/// 1 KiB, so nothing is lost, and the numbers are shorter.
fn kib(bytes: u64) -> u64 {
    bytes / 1024
}

/// A series over `rows`, with `f` picking the value of one row.
fn series<T>(rows: &[Sample], f: impl Fn(&Sample) -> Option<T>) -> Vec<Option<T>> {
    rows.iter().map(f).collect()
}

/// Names in order of first appearance across rows.
fn names<'a>(rows: &'a [Sample], each: impl Fn(&'a Sample) -> Vec<&'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for row in rows {
        for name in each(row) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

impl TelemetryBatch {
    /// Lays out `rows` (oldest first, as the agent took them) as a batch.
    pub fn from_samples(agent: AgentInfo, spool: SpoolReport, rows: &[Sample]) -> Self {
        let start_ms = rows.first().map_or(0, |r| r.ts);
        let offsets_ms = rows
            .iter()
            .map(|r| u32::try_from(r.ts.saturating_sub(start_ms).max(0)).unwrap_or(u32::MAX))
            .collect();
        let cpu = rows.iter().any(|r| r.cpu.is_some()).then(|| {
            let cores = rows
                .iter()
                .filter_map(|r| r.cpu.as_ref())
                .map(|c| c.per_core_pct.len())
                .max()
                .unwrap_or(0);
            CpuSeries {
                total_pct_x100: series(rows, |r| r.cpu.as_ref().map(|c| x100(c.total_pct))),
                iowait_pct_x100: series(rows, |r| r.cpu.as_ref().map(|c| x100(c.iowait_pct))),
                per_core_pct_x100: (0..cores)
                    .map(|i| {
                        series(rows, |r| {
                            r.cpu
                                .as_ref()
                                .and_then(|c| c.per_core_pct.get(i))
                                .map(|v| x100(*v))
                        })
                    })
                    .collect(),
            }
        });
        let load = rows.iter().any(|r| r.load.is_some()).then(|| LoadSeries {
            one_x100: series(rows, |r| r.load.as_ref().map(|l| x100(l.one))),
            five_x100: series(rows, |r| r.load.as_ref().map(|l| x100(l.five))),
            fifteen_x100: series(rows, |r| r.load.as_ref().map(|l| x100(l.fifteen))),
        });
        let memory = rows
            .iter()
            .rev()
            .find_map(|r| r.memory.as_ref())
            .map(|last| MemorySeries {
                total_bytes: last.total_bytes,
                swap_total_bytes: last.swap_total_bytes,
                available_kib: series(rows, |r| r.memory.as_ref().map(|m| kib(m.available_bytes))),
                used_pct_x100: series(rows, |r| r.memory.as_ref().map(|m| x100(m.used_pct))),
                swap_used_kib: series(rows, |r| r.memory.as_ref().map(|m| kib(m.swap_used_bytes))),
            });
        let filesystems = names(rows, |r| {
            r.filesystems.iter().map(|f| f.mount.as_str()).collect()
        })
        .into_iter()
        .filter_map(|mount| {
            let find = |r: &Sample| r.filesystems.iter().find(|f| f.mount == mount).cloned();
            let last = rows.iter().rev().find_map(find)?;
            let inodes = series(rows, |r| find(r).and_then(|f| f.inodes_used_pct).map(x100));
            Some(FilesystemSeries {
                mount: last.mount,
                fs_type: last.fs_type,
                device: last.device,
                total_bytes: last.total_bytes,
                used_kib: series(rows, |r| find(r).map(|f| kib(f.used_bytes))),
                available_kib: series(rows, |r| find(r).map(|f| kib(f.available_bytes))),
                used_pct_x100: series(rows, |r| find(r).map(|f| x100(f.used_pct))),
                inodes_used_pct_x100: inodes.iter().any(Option::is_some).then_some(inodes),
            })
        })
        .collect();
        let disks = names(rows, |r| {
            r.disks.iter().map(|d| d.device.as_str()).collect()
        })
        .into_iter()
        .map(|device| {
            let find = |r: &Sample| r.disks.iter().find(|d| d.device == device).cloned();
            let rate =
                |f: fn(&DiskIoSample) -> f64| series(rows, |r| find(r).map(|d| whole(f(&d))));
            let fixed =
                |f: fn(&DiskIoSample) -> f64| series(rows, |r| find(r).map(|d| x100(f(&d))));
            DiskSeries {
                device: device.to_owned(),
                read_bytes_per_s: rate(|d| d.read_bytes_per_s),
                write_bytes_per_s: rate(|d| d.write_bytes_per_s),
                reads_per_s_x100: fixed(|d| d.reads_per_s),
                writes_per_s_x100: fixed(|d| d.writes_per_s),
                busy_pct_x100: fixed(|d| d.busy_pct),
            }
        })
        .collect();
        let network = names(rows, |r| {
            r.network.iter().map(|n| n.interface.as_str()).collect()
        })
        .into_iter()
        .map(|interface| {
            let find = |r: &Sample| r.network.iter().find(|n| n.interface == interface).cloned();
            NetworkSeries {
                interface: interface.to_owned(),
                link_speed_mbps: rows
                    .iter()
                    .rev()
                    .find_map(find)
                    .and_then(|n| n.link_speed_mbps),
                rx_bytes_per_s: series(rows, |r| find(r).map(|n| whole(n.rx_bytes_per_s))),
                tx_bytes_per_s: series(rows, |r| find(r).map(|n| whole(n.tx_bytes_per_s))),
                rx_errors: series(rows, |r| find(r).map(|n| n.rx_errors)),
                tx_errors: series(rows, |r| find(r).map(|n| n.tx_errors)),
            }
        })
        .collect();
        let temperatures = names(rows, |r| {
            r.temperatures.iter().map(|t| t.sensor.as_str()).collect()
        })
        .into_iter()
        .map(|sensor| {
            let find = |r: &Sample| r.temperatures.iter().find(|t| t.sensor == sensor).cloned();
            TemperatureSeries {
                sensor: sensor.to_owned(),
                critical_celsius: rows
                    .iter()
                    .rev()
                    .find_map(find)
                    .and_then(|t| t.critical_celsius),
                celsius_x100: series(rows, |r| find(r).map(|t| sx100(t.celsius))),
            }
        })
        .collect();
        let uptime = series(rows, |r| r.uptime_s);
        Self {
            schema: SCHEMA_VERSION,
            agent,
            spool,
            start_ms,
            offsets_ms,
            cpu,
            load,
            memory,
            filesystems,
            disks,
            network,
            temperatures,
            uptime_s: uptime.iter().any(Option::is_some).then_some(uptime),
            findings: Vec::new(),
            events: Vec::new(),
            collectors: Vec::new(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.offsets_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets_ms.is_empty()
    }

    /// Time of sample `i`, Unix ms.
    pub fn sample_time(&self, i: usize) -> Option<i64> {
        self.offsets_ms
            .get(i)
            .map(|o| self.start_ms + i64::from(*o))
    }

    /// Sample `i` as a row (what the agent measured at that instant).
    pub fn row(&self, i: usize) -> Option<Sample> {
        let ts = self.sample_time(i)?;
        let at = |s: &Series| s.get(i).copied().flatten().map(un100);
        let at_n = |s: &CountSeries| s.get(i).copied().flatten();
        let at_rate = |s: &CountSeries| s.get(i).copied().flatten().map(|v| v as f64);
        Some(Sample {
            ts,
            cpu: self.cpu.as_ref().and_then(|c| {
                Some(CpuSample {
                    total_pct: at(&c.total_pct_x100)?,
                    per_core_pct: c.per_core_pct_x100.iter().filter_map(at).collect(),
                    iowait_pct: at(&c.iowait_pct_x100).unwrap_or(0.0),
                })
            }),
            load: self.load.as_ref().and_then(|l| {
                Some(LoadAverage {
                    one: at(&l.one_x100)?,
                    five: at(&l.five_x100)?,
                    fifteen: at(&l.fifteen_x100)?,
                })
            }),
            memory: self.memory.as_ref().and_then(|m| {
                Some(MemorySample {
                    total_bytes: m.total_bytes,
                    available_bytes: at_n(&m.available_kib)? * 1024,
                    used_pct: at(&m.used_pct_x100)?,
                    swap_total_bytes: m.swap_total_bytes,
                    swap_used_bytes: at_n(&m.swap_used_kib)? * 1024,
                })
            }),
            filesystems: self
                .filesystems
                .iter()
                .filter_map(|f| {
                    Some(FilesystemSample {
                        mount: f.mount.clone(),
                        fs_type: f.fs_type.clone(),
                        device: f.device.clone(),
                        total_bytes: f.total_bytes,
                        used_bytes: at_n(&f.used_kib)? * 1024,
                        available_bytes: at_n(&f.available_kib)? * 1024,
                        used_pct: at(&f.used_pct_x100)?,
                        inodes_used_pct: f.inodes_used_pct_x100.as_ref().and_then(at),
                    })
                })
                .collect(),
            disks: self
                .disks
                .iter()
                .filter_map(|d| {
                    Some(DiskIoSample {
                        device: d.device.clone(),
                        read_bytes_per_s: at_rate(&d.read_bytes_per_s)?,
                        write_bytes_per_s: at_rate(&d.write_bytes_per_s)?,
                        reads_per_s: at(&d.reads_per_s_x100)?,
                        writes_per_s: at(&d.writes_per_s_x100)?,
                        busy_pct: at(&d.busy_pct_x100)?,
                    })
                })
                .collect(),
            network: self
                .network
                .iter()
                .filter_map(|n| {
                    Some(NetworkSample {
                        interface: n.interface.clone(),
                        rx_bytes_per_s: at_rate(&n.rx_bytes_per_s)?,
                        tx_bytes_per_s: at_rate(&n.tx_bytes_per_s)?,
                        rx_errors: at_n(&n.rx_errors)?,
                        tx_errors: at_n(&n.tx_errors)?,
                        link_speed_mbps: n.link_speed_mbps,
                    })
                })
                .collect(),
            temperatures: self
                .temperatures
                .iter()
                .filter_map(|t| {
                    Some(TemperatureSample {
                        sensor: t.sensor.clone(),
                        celsius: f64::from(t.celsius_x100.get(i).copied().flatten()?) / 100.0,
                        critical_celsius: t.critical_celsius,
                    })
                })
                .collect(),
            uptime_s: self.uptime_s.as_ref().and_then(at_n),
        })
    }

    /// Every sample as a row, oldest first.
    pub fn rows(&self) -> Vec<Sample> {
        (0..self.len()).filter_map(|i| self.row(i)).collect()
    }
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
    #[error("{field}: {found} values for {samples} samples")]
    SeriesLength {
        field: &'static str,
        found: usize,
        samples: usize,
    },
    #[error("sample {index}: timestamp {ts} is too far from the server's clock")]
    SampleTime { index: usize, ts: i64 },
    #[error("samples must be in time order (sample {index} is earlier than the one before)")]
    OutOfOrder { index: usize },
    #[error("events: a {kind} count must be at least 1 and end no earlier than it starts")]
    EventSpan { kind: &'static str },
}

/// Checks of one batch against schema v1's bounds.
struct Check {
    samples: usize,
}

impl Check {
    fn text(&self, field: &'static str, s: &str) -> Result<(), BatchInvalid> {
        if s.chars().count() > bounds::MAX_TEXT {
            Err(BatchInvalid::TextTooLong { field })
        } else {
            Ok(())
        }
    }

    fn count(&self, field: &'static str, found: usize, max: usize) -> Result<(), BatchInvalid> {
        if found > max {
            Err(BatchInvalid::TooMany { field, max, found })
        } else {
            Ok(())
        }
    }

    fn len<T>(&self, field: &'static str, s: &[T]) -> Result<(), BatchInvalid> {
        if s.len() == self.samples {
            Ok(())
        } else {
            Err(BatchInvalid::SeriesLength {
                field,
                found: s.len(),
                samples: self.samples,
            })
        }
    }

    fn range<T>(
        &self,
        field: &'static str,
        s: &[Option<T>],
        range: std::ops::RangeInclusive<T>,
    ) -> Result<(), BatchInvalid>
    where
        T: PartialOrd + Copy + Into<f64>,
    {
        self.len(field, s)?;
        match s.iter().flatten().find(|v| !range.contains(v)) {
            Some(&value) => Err(BatchInvalid::OutOfRange {
                field,
                value: value.into() / 100.0,
            }),
            None => Ok(()),
        }
    }

    /// Percent × 100; a hair above 100 % is rounding on the agent, not a lie.
    fn percent(&self, field: &'static str, s: &Series) -> Result<(), BatchInvalid> {
        self.range(field, s, 0..=10_050)
    }

    /// Non-negative by type; only the length is left to check.
    fn non_negative<T>(&self, field: &'static str, s: &[T]) -> Result<(), BatchInvalid> {
        self.len(field, s)
    }

    /// Degrees × 100.
    fn celsius(&self, field: &'static str, s: &SignedSeries) -> Result<(), BatchInvalid> {
        self.range(field, s, -10_000..=25_000)
    }
}

impl TelemetryBatch {
    /// Checks every bound of schema v1. `now_ms` is the server's clock.
    pub fn validate(&self, now_ms: i64) -> Result<(), BatchInvalid> {
        if self.schema != SCHEMA_VERSION {
            return Err(BatchInvalid::UnsupportedSchema(self.schema));
        }
        let c = Check {
            samples: self.offsets_ms.len(),
        };
        let a = &self.agent;
        for (field, value) in [
            ("agent.version", &a.version),
            ("agent.hostname", &a.hostname),
            ("agent.os", &a.os),
            ("agent.kernel", &a.kernel),
            ("agent.arch", &a.arch),
        ] {
            c.text(field, value)?;
        }
        if c.samples == 0 {
            return Err(BatchInvalid::NoSamples);
        }
        c.count("samples", c.samples, bounds::MAX_SAMPLES)?;
        if let Some(index) = self.offsets_ms.windows(2).position(|w| w[1] < w[0]) {
            return Err(BatchInvalid::OutOfOrder { index: index + 1 });
        }
        for (index, ts) in [
            (0, self.start_ms),
            (c.samples - 1, self.sample_time(c.samples - 1).unwrap_or(0)),
        ] {
            if ts < now_ms - bounds::MAX_SAMPLE_AGE_MS || ts > now_ms + bounds::MAX_SAMPLE_LEAD_MS {
                return Err(BatchInvalid::SampleTime { index, ts });
            }
        }
        if let Some(cpu) = &self.cpu {
            c.percent("cpu.total_pct_x100", &cpu.total_pct_x100)?;
            c.percent("cpu.iowait_pct_x100", &cpu.iowait_pct_x100)?;
            c.count(
                "cpu.per_core_pct_x100",
                cpu.per_core_pct_x100.len(),
                bounds::MAX_CORES,
            )?;
            for core in &cpu.per_core_pct_x100 {
                c.percent("cpu.per_core_pct_x100", core)?;
            }
        }
        if let Some(l) = &self.load {
            c.non_negative("load.one_x100", &l.one_x100)?;
            c.non_negative("load.five_x100", &l.five_x100)?;
            c.non_negative("load.fifteen_x100", &l.fifteen_x100)?;
        }
        if let Some(m) = &self.memory {
            c.percent("memory.used_pct_x100", &m.used_pct_x100)?;
            c.len("memory.available_kib", &m.available_kib)?;
            c.len("memory.swap_used_kib", &m.swap_used_kib)?;
        }
        c.count("filesystems", self.filesystems.len(), bounds::MAX_ITEMS)?;
        for f in &self.filesystems {
            c.text("filesystems.mount", &f.mount)?;
            c.text("filesystems.fs_type", &f.fs_type)?;
            c.text("filesystems.device", &f.device)?;
            c.len("filesystems.used_kib", &f.used_kib)?;
            c.len("filesystems.available_kib", &f.available_kib)?;
            c.percent("filesystems.used_pct_x100", &f.used_pct_x100)?;
            if let Some(i) = &f.inodes_used_pct_x100 {
                c.percent("filesystems.inodes_used_pct_x100", i)?;
            }
        }
        c.count("disks", self.disks.len(), bounds::MAX_ITEMS)?;
        for d in &self.disks {
            c.text("disks.device", &d.device)?;
            c.non_negative("disks.read_bytes_per_s", &d.read_bytes_per_s)?;
            c.non_negative("disks.write_bytes_per_s", &d.write_bytes_per_s)?;
            c.non_negative("disks.reads_per_s_x100", &d.reads_per_s_x100)?;
            c.non_negative("disks.writes_per_s_x100", &d.writes_per_s_x100)?;
            c.percent("disks.busy_pct_x100", &d.busy_pct_x100)?;
        }
        c.count("network", self.network.len(), bounds::MAX_ITEMS)?;
        for n in &self.network {
            c.text("network.interface", &n.interface)?;
            c.non_negative("network.rx_bytes_per_s", &n.rx_bytes_per_s)?;
            c.non_negative("network.tx_bytes_per_s", &n.tx_bytes_per_s)?;
            c.len("network.rx_errors", &n.rx_errors)?;
            c.len("network.tx_errors", &n.tx_errors)?;
        }
        c.count("temperatures", self.temperatures.len(), bounds::MAX_ITEMS)?;
        for t in &self.temperatures {
            c.text("temperatures.sensor", &t.sensor)?;
            c.celsius("temperatures.celsius_x100", &t.celsius_x100)?;
            if let Some(crit) = t.critical_celsius
                && !(crit.is_finite() && (-100.0..=250.0).contains(&crit))
            {
                return Err(BatchInvalid::OutOfRange {
                    field: "temperatures.critical_celsius",
                    value: crit,
                });
            }
        }
        if let Some(u) = &self.uptime_s {
            c.len("uptime_s", u)?;
        }
        self.validate_observations(&c)
    }

    /// Findings, events and collector statuses: counts, text lengths, and times no further
    /// from the server's clock than samples may be (a long offline spool is fine).
    fn validate_observations(&self, c: &Check) -> Result<(), BatchInvalid> {
        use super::findings::limits;
        c.count("findings", self.findings.len(), limits::MAX_FINDINGS)?;
        c.count("events", self.events.len(), limits::MAX_EVENTS)?;
        c.count("collectors", self.collectors.len(), limits::MAX_COLLECTORS)?;
        let text = |field: &'static str, s: &str| c.text(field, s);
        let opt = |field: &'static str, s: &Option<String>| {
            s.as_deref().map_or(Ok(()), |s| c.text(field, s))
        };
        for f in &self.findings {
            text("findings.subject", f.subject())?;
            text("findings.state", f.state())?;
            match f {
                Finding::Service(s) => {
                    opt("findings.sub_state", &s.sub_state)?;
                    text("findings.via", &s.via)?;
                }
                Finding::Backup(b) => {
                    text("findings.source", &b.source)?;
                    opt("findings.message", &b.message)?;
                }
                Finding::Certificate(x) => {
                    text("findings.source", &x.source)?;
                    opt("findings.subject", &x.subject)?;
                    opt("findings.issuer", &x.issuer)?;
                    opt("findings.error", &x.error)?;
                }
                Finding::Antivirus(a) => {
                    c.count("findings.threats", a.threats.len(), limits::MAX_THREATS)?;
                    for t in &a.threats {
                        text("findings.threats.name", &t.name)?;
                        text("findings.threats.path", &t.path)?;
                    }
                }
                Finding::Updates(u) => {
                    c.count(
                        "findings.sample",
                        u.sample.len(),
                        limits::MAX_SAMPLE_PACKAGES,
                    )?;
                    for p in &u.sample {
                        text("findings.sample", p)?;
                    }
                }
                Finding::Account(_) => {}
                Finding::Smart(s) => opt("findings.model", &s.model)?,
            }
        }
        for e in &self.events {
            text("events.subject", &e.subject)?;
            text("events.source", &e.source)?;
            if e.last_ms < e.first_ms || e.count == 0 {
                return Err(BatchInvalid::EventSpan {
                    kind: e.kind.as_str(),
                });
            }
        }
        for s in &self.collectors {
            text("collectors.collector", &s.collector)?;
            opt("collectors.detail", &s.detail)?;
        }
        Ok(())
    }
}

/// A compact summary of a batch, for logs and the demo's read-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSummary {
    pub samples: usize,
    /// Metric families present ("cpu", "filesystems", …).
    pub metrics: Vec<String>,
}

impl TelemetryBatch {
    pub fn summary(&self) -> BatchSummary {
        let present = [
            ("cpu", self.cpu.is_some()),
            ("load", self.load.is_some()),
            ("memory", self.memory.is_some()),
            ("filesystems", !self.filesystems.is_empty()),
            ("disks", !self.disks.is_empty()),
            ("network", !self.network.is_empty()),
            ("temperatures", !self.temperatures.is_empty()),
            ("uptime", self.uptime_s.is_some()),
            ("findings", !self.findings.is_empty()),
            ("events", !self.events.is_empty()),
            ("collectors", !self.collectors.is_empty()),
        ];
        BatchSummary {
            samples: self.len(),
            metrics: present
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| (*n).to_owned())
                .collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

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

    pub(crate) fn agent(now_ms: i64) -> AgentInfo {
        AgentInfo {
            version: "0.1.0".into(),
            hostname: "srv-files-01".into(),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-18-amd64".into(),
            arch: "x86_64".into(),
            boot_time: now_ms / 1000 - 86_400,
        }
    }

    pub(crate) fn batch(now_ms: i64, n: usize) -> TelemetryBatch {
        let rows: Vec<Sample> = (0..n)
            .map(|i| sample(now_ms - (n - i) as i64 * 1_000))
            .collect();
        TelemetryBatch::from_samples(agent(now_ms), SpoolReport::default(), &rows)
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
        assert_eq!(back.row(59), Some(sample(NOW - 1_000)));
    }

    #[test]
    fn a_metric_missing_from_some_samples_is_null_there() {
        let mut rows = vec![sample(NOW - 2_000), sample(NOW - 1_000)];
        rows[0].filesystems.clear();
        rows[1].network[0].interface = "wlan0".into();
        let b = TelemetryBatch::from_samples(agent(NOW), SpoolReport::default(), &rows);
        assert_eq!(b.validate(NOW), Ok(()));
        assert_eq!(b.filesystems[0].used_pct_x100, vec![None, Some(6_100)]);
        assert_eq!(b.network.len(), 2);
        assert_eq!(b.network[1].rx_bytes_per_s, vec![None, Some(12_000)]);
        assert_eq!(b.rows(), rows);
    }

    #[test]
    fn refuses_each_broken_bound() {
        let mut b = batch(NOW, 2);
        b.schema = 2;
        assert_eq!(b.validate(NOW), Err(BatchInvalid::UnsupportedSchema(2)));

        let mut b = batch(NOW, 2);
        b.offsets_ms.clear();
        assert_eq!(b.validate(NOW), Err(BatchInvalid::NoSamples));

        let mut b = batch(NOW, 2);
        b.cpu.as_mut().expect("cpu").total_pct_x100[1] = Some(12_000);
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::OutOfRange {
                field: "cpu.total_pct_x100",
                ..
            })
        ));

        let mut b = batch(NOW, 2);
        b.temperatures[0].celsius_x100[0] = Some(-30_000);
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::OutOfRange { .. })
        ));

        let mut b = batch(NOW, 2);
        b.disks[0].busy_pct_x100.pop();
        assert_eq!(
            b.validate(NOW),
            Err(BatchInvalid::SeriesLength {
                field: "disks.busy_pct_x100",
                found: 1,
                samples: 2
            })
        );

        let mut b = batch(NOW, 2);
        b.start_ms = NOW + 10 * 60_000;
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::SampleTime { index: 0, .. })
        ));

        let mut b = batch(NOW, 2);
        b.offsets_ms = vec![1_000, 0];
        assert_eq!(b.validate(NOW), Err(BatchInvalid::OutOfOrder { index: 1 }));

        let mut b = batch(NOW, 1);
        b.agent.hostname = "h".repeat(600);
        assert!(matches!(
            b.validate(NOW),
            Err(BatchInvalid::TextTooLong { .. })
        ));

        let mut b = batch(NOW, 1);
        b.network = vec![b.network[0].clone(); 300];
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

    fn arb_row() -> impl Strategy<Value = Sample> {
        (
            proptest::option::of((0u32..10_000, proptest::collection::vec(0u32..10_000, 0..3))),
            proptest::option::of((0u64..1 << 30).prop_map(|k| k * 1024)),
            proptest::collection::vec((0usize..3, 0u32..10_000), 0..3),
            proptest::option::of(0u64..1 << 30),
        )
            .prop_map(|(cpu, mem, fs, up)| {
                let mut s = sample(0);
                s.cpu = cpu.map(|(t, cores)| CpuSample {
                    total_pct: f64::from(t) / 100.0,
                    per_core_pct: cores.into_iter().map(|c| f64::from(c) / 100.0).collect(),
                    iowait_pct: 0.0,
                });
                s.memory = mem.map(|avail| MemorySample {
                    available_bytes: avail,
                    ..sample(0).memory.expect("memory")
                });
                let mut mounts: Vec<(usize, u32)> = fs;
                mounts.sort_by_key(|m| m.0);
                mounts.dedup_by_key(|m| m.0);
                s.filesystems = mounts
                    .into_iter()
                    .map(|(m, pct)| FilesystemSample {
                        mount: ["/", "/home", "/var"][m].into(),
                        used_pct: f64::from(pct) / 100.0,
                        ..sample(0).filesystems[0].clone()
                    })
                    .collect();
                s.uptime_s = up;
                s
            })
    }

    proptest! {
        #[test]
        fn columns_give_back_the_rows(rows in proptest::collection::vec(arb_row(), 1..20)) {
            // Core counts are a property of the machine: keep them the same in every row.
            let cores = rows.iter().filter_map(|r| r.cpu.as_ref()).map(|c| c.per_core_pct.len()).max().unwrap_or(0);
            let mut rows = rows;
            for (i, r) in rows.iter_mut().enumerate() {
                r.ts = NOW - 60_000 + i as i64 * 1000;
                if let Some(c) = r.cpu.as_mut() {
                    c.per_core_pct.resize(cores, 1.0);
                }
            }
            let b = TelemetryBatch::from_samples(agent(NOW), SpoolReport::default(), &rows);
            prop_assert_eq!(b.validate(NOW), Ok(()));
            let json = serde_json::to_vec(&b).expect("json");
            let back: TelemetryBatch = serde_json::from_slice(&json).expect("parses");
            let mut got = back.rows();
            // Filesystems come back in order of first appearance; compare as sets per row.
            for (g, r) in got.iter_mut().zip(&rows) {
                g.filesystems.sort_by(|a, b| a.mount.cmp(&b.mount));
                let mut want = r.filesystems.clone();
                want.sort_by(|a, b| a.mount.cmp(&b.mount));
                prop_assert_eq!(&g.filesystems, &want);
            }
            prop_assert_eq!(got.len(), rows.len());
            for (g, r) in got.iter().zip(&rows) {
                prop_assert_eq!(g.ts, r.ts);
                prop_assert_eq!(&g.cpu, &r.cpu);
                prop_assert_eq!(&g.memory, &r.memory);
                prop_assert_eq!(g.uptime_s, r.uptime_s);
            }
        }
    }
}
