//! CPU time from `/proc/stat` and the load average from `/proc/loadavg`.

use vigie_domain::telemetry::{CpuSample, LoadAverage, bounds};

use super::percent;

/// Cumulative clock ticks of one `cpu` line, reduced to what busy and iowait need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CpuTimes {
    total: u64,
    idle: u64,
    iowait: u64,
}

/// The aggregate `cpu` line and one `cpuN` line per online core.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CpuCounters {
    all: CpuTimes,
    cores: Vec<(u32, CpuTimes)>,
}

/// Parses `/proc/stat`; `None` without an aggregate `cpu` line.
pub(super) fn parse_stat(text: &str) -> Option<CpuCounters> {
    let mut all = None;
    let mut cores = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let Some(id) = name.strip_prefix("cpu") else {
            continue;
        };
        let Some(times) = parse_times(rest) else {
            continue;
        };
        match id {
            "" => all = Some(times),
            _ => cores.extend(id.parse().ok().map(|id: u32| (id, times))),
        }
    }
    Some(CpuCounters { all: all?, cores })
}

/// `user nice system idle iowait irq softirq steal [guest guest_nice]`; guest time is already
/// counted in user time, so only the first eight fields make up the total.
fn parse_times(fields: &str) -> Option<CpuTimes> {
    let ticks: Vec<u64> = fields
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some(CpuTimes {
        total: ticks
            .iter()
            .take(8)
            .fold(0, |sum, &t| sum.saturating_add(t)),
        idle: *ticks.get(3)?,
        iowait: ticks.get(4).copied().unwrap_or(0),
    })
}

/// Busy and iowait percentages between two readings.
pub(super) fn usage(before: &CpuCounters, after: &CpuCounters) -> CpuSample {
    let per_core_pct = after
        .cores
        .iter()
        .filter_map(|(id, now)| {
            let (_, then) = before.cores.iter().find(|(i, _)| i == id)?;
            Some(busy(then, now).0)
        })
        .take(bounds::MAX_CORES)
        .collect();
    let (total_pct, iowait_pct) = busy(&before.all, &after.all);
    CpuSample {
        total_pct,
        per_core_pct,
        iowait_pct,
    }
}

/// `(busy %, iowait %)` where busy = total − idle − iowait. Counters that went backwards
/// (iowait does on some kernels) count as zero.
fn busy(then: &CpuTimes, now: &CpuTimes) -> (f64, f64) {
    let total = now.total.saturating_sub(then.total);
    let idle = now.idle.saturating_sub(then.idle);
    let iowait = now.iowait.saturating_sub(then.iowait);
    let busy = total.saturating_sub(idle).saturating_sub(iowait);
    (
        percent(busy as f64, total as f64),
        percent(iowait as f64, total as f64),
    )
}

/// The `btime` line of `/proc/stat`: boot time in Unix seconds.
pub(super) fn parse_boot_time(text: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// `/proc/loadavg`: `0.52 0.58 0.59 1/467 12345`.
pub(super) fn parse_loadavg(text: &str) -> Option<LoadAverage> {
    let mut fields = text.split_whitespace();
    let mut next = || {
        fields
            .next()?
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    Some(LoadAverage {
        one: next()?,
        five: next()?,
        fifteen: next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "cpu  100 0 100 700 100 0 0 0 50 0\n\
        cpu0 50 0 50 350 50 0 0 0 0 0\n\
        cpu1 50 0 50 350 50 0 0 0 0 0\n\
        intr 12345 0 0\nctxt 99\nbtime 1716800000\nprocs_running 2\n";
    const AFTER: &str = "cpu  200 0 200 1300 300 0 0 0 90 0\n\
        cpu0 150 0 150 350 50 0 0 0 0 0\n\
        cpu1 50 0 50 950 250 0 0 0 0 0\n\
        btime 1716800000\n";

    #[test]
    fn busy_and_iowait_come_from_deltas() {
        let (before, after) = (parse_stat(BEFORE), parse_stat(AFTER));
        let usage = usage(&before.expect("before"), &after.expect("after"));
        // 1000 ticks elapsed: 200 busy, 200 iowait, 600 idle; guest time is not counted twice.
        assert_eq!((usage.total_pct, usage.iowait_pct), (20.0, 20.0));
        assert_eq!(usage.per_core_pct, vec![100.0, 0.0]);
    }

    #[test]
    fn an_interval_without_ticks_or_with_counters_going_back_is_zero() {
        let stat = parse_stat(BEFORE).expect("stat");
        assert_eq!(usage(&stat, &stat).total_pct, 0.0);
        let backwards = parse_stat("cpu 10 0 10 10 0 0 0 0\n").expect("stat");
        let usage = usage(&stat, &backwards);
        assert_eq!((usage.total_pct, usage.iowait_pct), (0.0, 0.0));
        assert!(usage.per_core_pct.is_empty());
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        assert_eq!(parse_stat("intr 1 2\n"), None);
        assert_eq!(parse_stat(""), None);
        let stat = parse_stat("cpu 1 2 3 4\ncpu0 x y\ncpuX 1 2 3 4\n").expect("stat");
        assert!(stat.cores.is_empty());
        assert_eq!(
            stat.all,
            CpuTimes {
                total: 10,
                idle: 4,
                iowait: 0
            }
        );
        assert_eq!(parse_boot_time(BEFORE), Some(1_716_800_000));
        assert_eq!(parse_boot_time("cpu 1 2 3 4\n"), None);
    }

    #[test]
    fn load_average() {
        let load = parse_loadavg("0.52 1.58 12.00 1/467 12345\n").expect("load");
        assert_eq!((load.one, load.five, load.fifteen), (0.52, 1.58, 12.0));
        assert_eq!(parse_loadavg("0.52 nan"), None);
        assert_eq!(parse_loadavg(""), None);
    }
}
