//! Memory and swap from `/proc/meminfo`.

use vigie_domain::telemetry::MemorySample;

use super::percent;

/// Parses `/proc/meminfo`; `None` without a positive `MemTotal`.
pub(super) fn parse_meminfo(text: &str) -> Option<MemorySample> {
    let bytes = |key: &str| {
        text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let kib: u64 = value.split_whitespace().next()?.parse().ok()?;
            (name == key).then_some(kib.saturating_mul(1024))
        })
    };
    let total = bytes("MemTotal").filter(|&t| t > 0)?;
    // Kernels before 3.14 have no MemAvailable: approximate it the way `free` did.
    let available = bytes("MemAvailable")
        .unwrap_or_else(|| {
            let parts = ["MemFree", "Buffers", "Cached"].map(|k| bytes(k).unwrap_or(0));
            parts.iter().fold(0, |sum: u64, &p| sum.saturating_add(p))
        })
        .min(total);
    let swap_total_bytes = bytes("SwapTotal").unwrap_or(0);
    let swap_free = bytes("SwapFree").unwrap_or(0);
    Some(MemorySample {
        total_bytes: total,
        available_bytes: available,
        used_pct: percent((total - available) as f64, total as f64),
        swap_total_bytes,
        swap_used_bytes: swap_total_bytes.saturating_sub(swap_free),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_swap() {
        let text = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n\
            MemAvailable:    4096000 kB\nBuffers:          200000 kB\nCached:          3000000 kB\n\
            SwapCached:            0 kB\nSwapTotal:       2048000 kB\nSwapFree:        1024000 kB\n\
            HugePages_Total:       0\n";
        let m = parse_meminfo(text).expect("memory");
        assert_eq!(
            (m.total_bytes, m.available_bytes),
            (16_384_000 * 1024, 4_096_000 * 1024)
        );
        assert_eq!(m.used_pct, 75.0);
        assert_eq!(
            (m.swap_total_bytes, m.swap_used_bytes),
            (2_048_000 * 1024, 1_024_000 * 1024)
        );
    }

    #[test]
    fn old_kernels_and_broken_files() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 350 kB\n";
        let m = parse_meminfo(old).expect("memory");
        assert_eq!((m.available_bytes, m.used_pct), (500 * 1024, 50.0));
        assert_eq!((m.swap_total_bytes, m.swap_used_bytes), (0, 0));
        assert_eq!(parse_meminfo("MemTotal: 0 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }
}
