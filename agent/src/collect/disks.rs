//! Block device throughput from `/proc/diskstats`, whole disks only.

use vigie_domain::telemetry::{DiskIoSample, bounds};

use super::{Machine, clip, per_second, percent};

/// `/proc/diskstats` counts in 512-byte sectors whatever the device's own sector size.
const SECTOR_BYTES: u64 = 512;

/// Devices that are not disks: loop files, RAM disks, compressed swap.
const NOT_DISKS: &[&str] = &["loop", "ram", "zram"];

/// The cumulative counters of one device.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DiskCounters {
    name: String,
    reads: u64,
    sectors_read: u64,
    writes: u64,
    sectors_written: u64,
    io_ticks_ms: u64,
}

/// Parses `/proc/diskstats`:
/// `major minor name reads merged sectors ms writes merged sectors ms in_flight io_ticks …`.
pub(super) fn parse_diskstats(text: &str) -> Vec<DiskCounters> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
            Some(DiskCounters {
                name: (*fields.get(2)?).to_owned(),
                reads: number(3)?,
                sectors_read: number(5)?,
                writes: number(7)?,
                sectors_written: number(9)?,
                io_ticks_ms: number(12)?,
            })
        })
        .collect()
}

/// Whether a device is a whole disk worth reporting. `/sys/block` lists whole disks (not
/// partitions) when it is readable; without it, a name that extends another device's name
/// with digits (`sda1`, `nvme0n1p2`) is taken for a partition.
fn is_disk(disk: &DiskCounters, all: &[DiskCounters], sys_block: &[String]) -> bool {
    let name = disk.name.as_str();
    let whole = if sys_block.is_empty() {
        !all.iter().any(|other| {
            let rest = name.strip_prefix(other.name.as_str()).unwrap_or_default();
            let digits = rest.strip_prefix('p').unwrap_or(rest);
            !rest.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
    } else {
        sys_block.iter().any(|d| d == name)
    };
    // A device that never did any I/O (unused nbd, floppy) is noise.
    whole
        && !NOT_DISKS.iter().any(|p| name.starts_with(p))
        && disk.reads.saturating_add(disk.writes) > 0
}

/// Counters of the machine's whole disks.
pub(super) fn read(m: &Machine) -> Vec<DiskCounters> {
    let Some(text) = m.read("proc/diskstats") else {
        return Vec::new();
    };
    let all = parse_diskstats(&text);
    let sys_block: Vec<String> = std::fs::read_dir(m.path("sys/block"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    all.iter()
        .filter(|d| is_disk(d, &all, &sys_block))
        .take(bounds::MAX_ITEMS)
        .cloned()
        .collect()
}

/// Rates between two readings `secs` apart. A disk seen for the first time, or whose counters
/// went back (it was replaced), reports zero until the next sample.
pub(super) fn rates(
    before: &[DiskCounters],
    after: &[DiskCounters],
    secs: f64,
) -> Vec<DiskIoSample> {
    after
        .iter()
        .map(|now| {
            let then = before.iter().find(|d| d.name == now.name).unwrap_or(now);
            let delta = |f: fn(&DiskCounters) -> u64| f(now).saturating_sub(f(then));
            DiskIoSample {
                device: clip(&now.name),
                read_bytes_per_s: per_second(
                    delta(|d| d.sectors_read).saturating_mul(SECTOR_BYTES),
                    secs,
                ),
                write_bytes_per_s: per_second(
                    delta(|d| d.sectors_written).saturating_mul(SECTOR_BYTES),
                    secs,
                ),
                reads_per_s: per_second(delta(|d| d.reads), secs),
                writes_per_s: per_second(delta(|d| d.writes), secs),
                busy_pct: percent(delta(|d| d.io_ticks_ms) as f64, secs * 1000.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISKSTATS: &str = "\
   7       0 loop0 120 0 2000 10 0 0 0 0 0 40 10 0 0 0 0
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0
 253       0 zram0 10 0 80 0 20 0 160 0 0 5 5 0 0 0 0 0 0
   8       0 sda 1000 50 80000 900 500 20 40000 800 0 1200 1700 0 0 0 0
   8       1 sda1 990 50 79000 890 500 20 40000 800 0 1190 1690 0 0 0 0
 259       0 nvme0n1 4000 0 320000 100 2000 0 160000 200 0 300 300 0 0 0 0 10 2
 259       1 nvme0n1p1 4000 0 320000 100 2000 0 160000 200 0 300 300 0 0 0 0 10 2
 254       0 dm-0 300 0 2400 10 100 0 800 5 0 20 15 0 0 0 0
  43       0 nbd0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8      16 sdb short line
";

    fn names(disks: &[DiskCounters]) -> Vec<&str> {
        disks.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn parses_counters_and_skips_short_lines() {
        let all = parse_diskstats(DISKSTATS);
        assert_eq!(all.len(), 9);
        let sda = &all[3];
        assert_eq!(
            (sda.reads, sda.sectors_read, sda.writes),
            (1000, 80000, 500)
        );
        assert_eq!((sda.sectors_written, sda.io_ticks_ms), (40000, 1200));
    }

    #[test]
    fn whole_disks_by_name_or_by_sys_block() {
        let all = parse_diskstats(DISKSTATS);
        let whole = |sys_block: &[String]| -> Vec<DiskCounters> {
            all.iter()
                .filter(|d| is_disk(d, &all, sys_block))
                .cloned()
                .collect()
        };
        assert_eq!(names(&whole(&[])), ["sda", "nvme0n1", "dm-0"]);
        let sys_block = ["loop0", "sda", "dm-0", "nbd0"].map(String::from);
        assert_eq!(names(&whole(&sys_block)), ["sda", "dm-0"]);
    }

    #[test]
    fn rates_over_the_interval() {
        let before = parse_diskstats("8 0 sda 100 0 1000 0 50 0 2000 0 0 100 0\n");
        let after = parse_diskstats(
            "8 0 sda 300 0 5096 0 150 0 2000 0 0 2100 0\n8 16 sdb 9 0 9 0 9 0 9 0 0 9 0\n",
        );
        let out = rates(&before, &after, 4.0);
        let sda = &out[0];
        assert_eq!(
            (sda.read_bytes_per_s, sda.write_bytes_per_s),
            (524_288.0, 0.0)
        );
        assert_eq!(
            (sda.reads_per_s, sda.writes_per_s, sda.busy_pct),
            (50.0, 25.0, 50.0)
        );
        assert_eq!((out[1].device.as_str(), out[1].reads_per_s), ("sdb", 0.0));
        assert_eq!(rates(&after, &before, 4.0)[0].reads_per_s, 0.0);
        assert_eq!(rates(&before, &after, 0.0)[0].busy_pct, 0.0);
    }
}
