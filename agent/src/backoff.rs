//! Exponential backoff with full jitter: after the n-th failure in a row, wait a uniformly
//! random time in `[0, min(cap, base · 2ⁿ⁻¹)]`. A fleet that lost its server all at once does
//! not come back all at once.

use std::time::Duration;

use crate::random::random_u64;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Default for Backoff {
    /// 1 s base, 5 min cap.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// Failures in a row since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts from the base again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The longest wait after the next failure.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Records a failure; returns how long to wait before trying again.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_from(random_u64())
    }

    /// [`Backoff::next_delay`] with the random number given (tests).
    pub fn next_delay_from(&mut self, random: u64) -> Duration {
        let ceiling_ms = u64::try_from(self.ceiling().as_millis()).unwrap_or(u64::MAX);
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(random % ceiling_ms.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            ceilings.push(b.ceiling().as_secs());
            // The largest random number gives the ceiling itself.
            let d = b.next_delay_from(u64::MAX);
            assert!(d <= Duration::from_secs(300));
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        for _ in 0..100 {
            b.next_delay_from(u64::MAX);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(300));
        b.reset();
        assert_eq!((b.failures(), b.ceiling()), (0, Duration::from_secs(1)));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.next_delay_from(0);
        }
        // Ceiling now 16 s: delays span [0, 16 s].
        let ceiling = b.ceiling();
        assert_eq!(b.clone().next_delay_from(0), Duration::ZERO);
        assert_eq!(b.clone().next_delay_from(16_000), ceiling);
        assert_eq!(b.clone().next_delay_from(16_001), Duration::ZERO);
        let spread: std::collections::BTreeSet<_> =
            (0..50).map(|_| b.clone().next_delay()).collect();
        assert!(spread.len() > 40, "jitter should vary: {spread:?}");
    }
}
