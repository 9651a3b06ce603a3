//! The daily usage close: hands over the counting days of devices that went silent (a device
//! hands its own finished day over with its next batch; a silent one keeps it until this job),
//! then closes the months whose grace has passed.
//!
//! It reads only the open-day lists of the days that ended (one query per day looked back),
//! never the fleet. Every step is conditional, so running it twice, or while devices send,
//! counts nothing twice.

use tracing::info;
use vigie_domain::clock::Clock;
use vigie_domain::ports::{FlushOutcome, StoreError, UsageLedger};
use vigie_domain::usage::Day;

/// How many ended days each run looks back at: a job that did not run for this long leaves
/// older days to be handed over by the devices' next batches.
pub const LOOKBACK_DAYS: i64 = 35;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Device-days handed over by this run.
    pub flushed: usize,
    /// Open entries found already handed over (by the device's next batch, or a concurrent run).
    pub already_flushed: usize,
    /// Month summaries written by this run.
    pub months_closed: usize,
}

/// The close job over its ports.
pub struct UsageClose<L, C> {
    ledger: L,
    clock: C,
}

impl<L, C> UsageClose<L, C>
where
    L: UsageLedger,
    C: Clock,
{
    pub fn new(ledger: L, clock: C) -> Self {
        Self { ledger, clock }
    }

    /// One run: every open day before today, then every month whose close day has come.
    /// A month closes only in a run where every earlier day was handed over without error.
    pub async fn run(&self) -> Result<CloseReport, StoreError> {
        let now = self.clock.now_ms();
        let today = Day::of_ms(now);
        let mut report = CloseReport::default();
        for back in (1..=LOOKBACK_DAYS).rev() {
            let day = today.plus(-back);
            for entry in self.ledger.open_days(day).await? {
                match self.ledger.flush(&entry, today).await? {
                    FlushOutcome::Flushed => report.flushed += 1,
                    FlushOutcome::AlreadyFlushed => report.already_flushed += 1,
                }
            }
        }
        let previous = today.month().previous();
        for month in [previous.previous(), previous] {
            if today < month.closes_on() {
                continue;
            }
            for tenant in self.ledger.tenants_in(month).await? {
                if self.ledger.close_month(&tenant, month, now).await? {
                    info!(event = "usage_month_closed", tenant_id = %tenant, month = %month, "usage month closed");
                    report.months_closed += 1;
                }
            }
        }
        if report.flushed + report.months_closed > 0 {
            info!(
                flushed = report.flushed,
                already_flushed = report.already_flushed,
                months_closed = report.months_closed,
                "usage close"
            );
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    use vigie_domain::clock::ManualClock;
    use vigie_domain::ids::{DeviceId, TenantId};
    use vigie_domain::ports::OpenUsageDay;
    use vigie_domain::usage::{DeviceUsage, Month};

    use super::*;

    /// Devices' counting days, open lists and closed months in memory.
    #[derive(Default)]
    struct Ledger {
        devices: Mutex<BTreeMap<String, DeviceUsage>>,
        open: Mutex<BTreeMap<Day, BTreeSet<String>>>,
        handed: Mutex<Vec<(Day, u64)>>,
        closed: Mutex<BTreeMap<Month, u64>>,
    }

    fn tenant() -> TenantId {
        TenantId::parse("msp").expect("id")
    }

    impl UsageLedger for &Ledger {
        async fn open_days(&self, day: Day) -> Result<Vec<OpenUsageDay>, StoreError> {
            Ok(self
                .open
                .lock()
                .expect("lock")
                .get(&day)
                .into_iter()
                .flatten()
                .map(|d| OpenUsageDay {
                    day,
                    tenant: tenant(),
                    device: DeviceId::parse(d).expect("id"),
                })
                .collect())
        }
        async fn flush(&self, e: &OpenUsageDay, today: Day) -> Result<FlushOutcome, StoreError> {
            let mut devices = self.devices.lock().expect("lock");
            let usage = devices.get_mut(e.device.as_str()).expect("known");
            self.open
                .lock()
                .expect("lock")
                .entry(e.day)
                .or_default()
                .remove(e.device.as_str());
            match usage.unflushed() {
                Some(f) if f.day == e.day => {
                    self.handed.lock().expect("lock").push((f.day, f.batches));
                    *usage = DeviceUsage {
                        day: Some(today),
                        batches: 0,
                        bytes: 0,
                    };
                    Ok(FlushOutcome::Flushed)
                }
                _ => Ok(FlushOutcome::AlreadyFlushed),
            }
        }
        async fn tenants_in(&self, m: Month) -> Result<Vec<TenantId>, StoreError> {
            let handed = self.handed.lock().expect("lock");
            Ok(if handed.iter().any(|(d, _)| m.contains(*d)) {
                vec![tenant()]
            } else {
                Vec::new()
            })
        }
        async fn close_month(&self, _: &TenantId, m: Month, _: i64) -> Result<bool, StoreError> {
            let total = self
                .handed
                .lock()
                .expect("lock")
                .iter()
                .filter(|(d, _)| m.contains(*d))
                .map(|(_, b)| b)
                .sum();
            let mut closed = self.closed.lock().expect("lock");
            if closed.contains_key(&m) {
                return Ok(false);
            }
            closed.insert(m, total);
            Ok(true)
        }
    }

    fn day(s: &str) -> Day {
        Day::parse(s).expect("day")
    }

    #[tokio::test]
    async fn silent_devices_are_flushed_once_and_months_close_after_their_grace() {
        let ledger = Ledger::default();
        for (device, d, batches) in [("dev-a", "2025-03-31", 5), ("dev-b", "2025-03-30", 2)] {
            ledger.devices.lock().expect("lock").insert(
                device.into(),
                DeviceUsage {
                    day: Some(day(d)),
                    batches,
                    bytes: batches * 10,
                },
            );
            ledger
                .open
                .lock()
                .expect("lock")
                .entry(day(d))
                .or_default()
                .insert(device.into());
        }
        let clock = ManualClock::at(day("2025-04-01").start_ms() + 300_000);
        let job = UsageClose::new(&ledger, clock);
        let first = job.run().await.expect("runs");
        assert_eq!((first.flushed, first.months_closed), (2, 0), "{first:?}");
        // Twice on the same day: nothing more.
        let again = job.run().await.expect("runs");
        assert_eq!((again.flushed, again.months_closed), (0, 0));
        assert_eq!(ledger.handed.lock().expect("lock").len(), 2);
        // March closes on April 2nd, once.
        job.clock.set_ms(day("2025-04-02").start_ms() + 300_000);
        assert_eq!(job.run().await.expect("runs").months_closed, 1);
        assert_eq!(job.run().await.expect("runs").months_closed, 0);
        assert_eq!(
            ledger
                .closed
                .lock()
                .expect("lock")
                .get(&Month::parse("2025-03").expect("m")),
            Some(&7)
        );
    }
}
