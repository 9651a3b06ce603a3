//! Linux collectors: read `/proc`, `/sys` and `/etc/os-release` and produce the domain's
//! telemetry.
//!
//! Each file format has a pure parser tested with fixture text; [`Collector`] keeps the
//! previous counters so CPU, disk and network figures are rates over the sampling interval.
//! A missing file or an unparsable line skips that item: nothing here panics on what the
//! machine says, and every value fits the bounds of `TelemetryBatch::validate`.

mod cpu;
mod disks;
mod filesystems;
mod memory;
mod network;
mod sensors;
mod system;

use std::path::{Path, PathBuf};
use std::time::Instant;

use vigie_domain::telemetry::{AgentInfo, Sample, bounds};

/// Samples the machine; remembers the last counters so the next sample can compute rates.
pub struct Collector {
    machine: Machine,
    previous: Counters,
}

impl Collector {
    /// Reads from the real machine (`/proc`, `/sys`, `/etc/os-release`).
    pub fn new() -> Self {
        Self::with_root("/")
    }

    /// Same, but rooted at another directory containing `proc/`, `sys/`, `etc/` (fixture trees
    /// in tests, or the host's root mounted into a container).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let machine = Machine { root: root.into() };
        let previous = Counters::read(&machine, Instant::now());
        Self { machine, previous }
    }

    /// Takes one sample; rates are computed against the previous call (or construction).
    /// `now_ms` is the sample timestamp in Unix milliseconds.
    pub fn sample(&mut self, now_ms: i64) -> Sample {
        self.sample_at(now_ms, Instant::now())
    }

    /// [`Collector::sample`] with the measuring instant passed in, so tests control elapsed time.
    fn sample_at(&mut self, now_ms: i64, at: Instant) -> Sample {
        let m = &self.machine;
        let current = Counters::read(m, at);
        let secs = at.saturating_duration_since(self.previous.at).as_secs_f64();
        let link_speed = |interface: &str| network::link_speed(m, interface);
        let sample = Sample {
            ts: now_ms,
            cpu: match (&self.previous.cpu, &current.cpu) {
                (Some(before), Some(after)) => Some(cpu::usage(before, after)),
                _ => None,
            },
            load: m
                .read("proc/loadavg")
                .as_deref()
                .and_then(cpu::parse_loadavg),
            memory: m
                .read("proc/meminfo")
                .as_deref()
                .and_then(memory::parse_meminfo),
            filesystems: filesystems::collect(m),
            disks: disks::rates(&self.previous.disks, &current.disks, secs),
            network: network::rates(&self.previous.network, &current.network, secs, link_speed),
            temperatures: sensors::collect(m),
            uptime_s: m
                .read("proc/uptime")
                .as_deref()
                .and_then(system::parse_uptime),
        };
        self.previous = current;
        sample
    }

    /// Hostname, OS pretty name, kernel release, architecture and boot time.
    pub fn agent_info(&self, agent_version: &str) -> AgentInfo {
        system::agent_info(&self.machine, agent_version)
    }
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

/// The machine being observed: a root directory holding `proc/`, `sys/` and `etc/`.
struct Machine {
    root: PathBuf,
}

impl Machine {
    /// `relative` is a path below the root, written without a leading `/`.
    fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }

    fn read(&self, relative: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.path(relative)).ok()
    }

    /// The numbers `N` of the entries named `<prefix>N<suffix>` in a directory, in numeric
    /// order (`hwmon2` before `hwmon10`).
    fn numbered(&self, dir: &str, prefix: &str, suffix: &str) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(self.path(dir)) else {
            return Vec::new();
        };
        let mut found: Vec<u32> = entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_prefix(prefix)?
                    .strip_suffix(suffix)?
                    .parse()
                    .ok()
            })
            .collect();
        found.sort_unstable();
        found
    }
}

/// The cumulative counters that rates are computed from, and when they were read.
struct Counters {
    at: Instant,
    cpu: Option<cpu::CpuCounters>,
    disks: Vec<disks::DiskCounters>,
    network: Vec<network::InterfaceCounters>,
}

impl Counters {
    fn read(m: &Machine, at: Instant) -> Self {
        Self {
            at,
            cpu: m.read("proc/stat").as_deref().and_then(cpu::parse_stat),
            disks: disks::read(m),
            network: m
                .read("proc/net/dev")
                .as_deref()
                .map(network::parse_net_dev)
                .unwrap_or_default(),
        }
    }
}

/// `part` as a share of `whole`, in 0..=100 (0 when `whole` is 0).
fn percent(part: f64, whole: f64) -> f64 {
    let pct = part / whole * 100.0;
    if whole > 0.0 && pct.is_finite() {
        pct.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// A counter delta per second (0 when no time elapsed).
fn per_second(delta: u64, secs: f64) -> f64 {
    if secs > 0.0 { delta as f64 / secs } else { 0.0 }
}

/// Whether a text fits the schema's free-text bound.
fn fits(text: &str) -> bool {
    text.chars().count() <= bounds::MAX_TEXT
}

/// A text cut to the schema's free-text bound.
fn clip(text: &str) -> String {
    text.chars().take(bounds::MAX_TEXT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use vigie_domain::telemetry::{SpoolReport, TelemetryBatch};

    /// A fresh, uniquely named directory under the system temp dir.
    pub(super) fn scratch_dir(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "vigie-collect-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        fs::write(path, text).expect("write fixture");
    }

    fn write_counters(root: &Path, cpu: [u64; 4], disk: [u64; 5], net: [u64; 2]) {
        let [user, system, idle, iowait] = cpu;
        write(
            root,
            "proc/stat",
            &format!(
                "cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\n\
                 cpu0 {user} 0 {system} {idle} {iowait} 0 0 0 0 0\n\
                 intr 1 2 3\nbtime 1700000000\n"
            ),
        );
        let [reads, read_sectors, writes, write_sectors, ticks] = disk;
        write(
            root,
            "proc/diskstats",
            &format!(
                "   8       0 sda {reads} 0 {read_sectors} 10 {writes} 0 {write_sectors} 20 0 {ticks} 30 0 0 0 0\n\
                    8       1 sda1 {reads} 0 {read_sectors} 10 {writes} 0 {write_sectors} 20 0 {ticks} 30 0 0 0 0\n"
            ),
        );
        let [rx, tx] = net;
        write(
            root,
            "proc/net/dev",
            &format!(
                "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
                 lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n\
                 eth0: {rx} 10 2 0 0 0 0 0 {tx} 5 1 0 0 0 0 0\n"
            ),
        );
    }

    #[test]
    fn a_fixture_tree_gives_rates_over_the_interval() {
        let root = scratch_dir("tree");
        write_counters(
            &root,
            [100, 100, 800, 0],
            [10, 100, 10, 100, 0],
            [1_000, 500],
        );
        for (path, text) in [
            ("proc/loadavg", "0.50 0.40 0.30 1/100 42\n"),
            ("proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n"),
            ("proc/uptime", "3600.25 7000.00\n"),
            ("proc/sys/kernel/hostname", "fixture-host\n"),
            ("proc/sys/kernel/osrelease", "6.1.0-test\n"),
            (
                "etc/os-release",
                "NAME=Debian\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n",
            ),
            ("sys/class/net/eth0/speed", "1000\n"),
            ("sys/class/hwmon/hwmon0/name", "coretemp\n"),
            ("sys/class/hwmon/hwmon0/temp1_input", "48000\n"),
            ("sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n"),
            ("sys/class/hwmon/hwmon0/temp1_crit", "100000\n"),
            ("sys/class/thermal/thermal_zone0/type", "x86_pkg_temp\n"),
            ("sys/class/thermal/thermal_zone0/temp", "47500\n"),
            ("sys/block/sda/size", "1000\n"),
            ("data/.keep", ""),
            (
                "proc/self/mountinfo",
                "22 1 0:21 / /proc rw - proc proc rw\n30 1 8:1 / /data rw - ext4 /dev/sda1 rw\n",
            ),
        ] {
            write(&root, path, text);
        }

        let mut collector = Collector::with_root(&root);
        let t0 = collector.previous.at;
        let first = collector.sample_at(1_000, t0 + Duration::from_secs(1));
        assert_eq!(first.cpu.as_ref().map(|c| c.total_pct), Some(0.0));
        assert_eq!(first.disks[0].read_bytes_per_s, 0.0);

        // Ten seconds later: 1000 more jiffies (250 busy, 100 iowait), 20 MiB read, 4 s busy.
        write_counters(
            &root,
            [200, 250, 1_450, 100],
            [30, 41_060, 15, 100, 4_000],
            [11_000, 2_500],
        );
        let second = collector.sample_at(11_000, t0 + Duration::from_secs(11));
        let cpu = second.cpu.as_ref().expect("cpu");
        assert_eq!((cpu.total_pct, cpu.iowait_pct), (25.0, 10.0));
        assert_eq!(cpu.per_core_pct, vec![25.0]);
        assert_eq!(second.disks.len(), 1, "partitions are not disks");
        let sda = &second.disks[0];
        assert_eq!(sda.device, "sda");
        assert_eq!((sda.read_bytes_per_s, sda.reads_per_s), (2_097_152.0, 2.0));
        assert_eq!(
            (sda.write_bytes_per_s, sda.writes_per_s, sda.busy_pct),
            (0.0, 0.5, 40.0)
        );
        let eth0 = &second.network[0];
        assert_eq!(second.network.len(), 1, "loopback is skipped");
        assert_eq!((eth0.rx_bytes_per_s, eth0.tx_bytes_per_s), (1_000.0, 200.0));
        assert_eq!(
            (eth0.rx_errors, eth0.tx_errors, eth0.link_speed_mbps),
            (2, 1, Some(1000))
        );
        assert_eq!(second.memory.as_ref().map(|m| m.used_pct), Some(75.0));
        assert_eq!(second.load.as_ref().map(|l| l.five), Some(0.4));
        assert_eq!(second.uptime_s, Some(3600));
        let mounts: Vec<_> = second
            .filesystems
            .iter()
            .map(|f| f.mount.as_str())
            .collect();
        assert_eq!(mounts, ["/data"]);
        let sensors: Vec<_> = second
            .temperatures
            .iter()
            .map(|t| t.sensor.as_str())
            .collect();
        assert_eq!(
            sensors,
            ["coretemp/Package id 0", "thermal_zone0/x86_pkg_temp"]
        );
        assert_eq!(second.temperatures[0].critical_celsius, Some(100.0));

        let info = collector.agent_info("1.2.3");
        assert_eq!(info.hostname, "fixture-host");
        assert_eq!(info.os, "Debian GNU/Linux 12");
        assert_eq!(
            (info.kernel.as_str(), info.boot_time),
            ("6.1.0-test", 1_700_000_000)
        );
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn an_empty_root_gives_an_empty_but_valid_sample() {
        let root = scratch_dir("empty");
        let mut collector = Collector::with_root(&root);
        let sample = collector.sample(5);
        assert_eq!(sample.ts, 5);
        assert!(sample.cpu.is_none() && sample.memory.is_none() && sample.filesystems.is_empty());
        assert_eq!(collector.agent_info("1").os, "Linux");
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn the_real_machine_gives_a_valid_batch() {
        let mut collector = Collector::new();
        std::thread::sleep(Duration::from_millis(200));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let sample = collector.sample(now);
        assert!(sample.cpu.is_some(), "cpu");
        assert!(sample.memory.is_some(), "memory");
        assert!(!sample.filesystems.is_empty(), "at least one filesystem");
        let batch = TelemetryBatch::from_samples(
            collector.agent_info(env!("CARGO_PKG_VERSION")),
            SpoolReport::default(),
            &[sample],
        );
        assert_eq!(batch.validate(now), Ok(()), "{batch:#?}");
        assert!(batch.agent.boot_time > 0 && !batch.agent.hostname.is_empty());
    }
}
