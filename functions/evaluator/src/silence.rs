//! Device silence: a scheduled sweep raises "device down" for devices whose heartbeat slot has
//! passed. It reads only the slots that passed since its last run, so its cost grows with the
//! number of late devices, not with the fleet. The alert resolves at the device's next batch
//! (see [`crate::Evaluator::evaluate`]).
//!
//! Maintenance windows apply here as in the evaluator ([`crate::maintenance`]): a device
//! silent inside a window that silences `device_down` (a planned reboot) is recorded as down
//! but not raised, and its heartbeat entry is put back in the slot of the window's end, so the
//! sweep that follows the end raises it once — with the real start — if it is still silent.

use std::collections::HashMap;
use tracing::{info, warn};
use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity, derived_id};
use vigie_domain::clock::Clock;
use vigie_domain::device::{Device, HEARTBEAT_SLOT_MS};
use vigie_domain::policy::RuleId;

use vigie_calendar::MaintenanceWindow;
use vigie_domain::ids::TenantId;
use vigie_domain::ports::{
    AlertPublisher, CommitOutcome, DeviceRegistry, EvaluationStore, HeartbeatEntry, HeartbeatIndex,
    StateChange, StoreError, WindowStore,
};

use crate::maintenance;
use vigie_domain::rules::RuleState;

/// The built-in rule behind "device down".
pub const HEARTBEAT_RULE: &str = "heartbeat";

/// How far back a first sweep looks.
const FIRST_SWEEP_LOOKBACK_MS: i64 = 60 * 60_000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub slots: i64,
    pub checked: usize,
    /// Alerts announced: raised, or released from behind a parent that came back.
    pub raised: usize,
    /// Opened behind a parent's alert, not announced (see [`crate::dependency`]).
    pub suppressed: usize,
    /// Left for a later sweep: their parent went silent at about the same time.
    pub held: usize,
}

pub fn heartbeat_rule() -> RuleId {
    // A literal that satisfies the id rules.
    RuleId::parse(HEARTBEAT_RULE)
        .unwrap_or_else(|_| unreachable!("\"heartbeat\" is a valid rule id"))
}

/// Severity of a silent device: critical for servers, warning for workstations and others
/// tagged as such (`role=workstation`), critical otherwise.
pub fn silence_severity(device: &Device) -> Severity {
    match device.tags.get("role").map(String::as_str) {
        Some("workstation") | Some("laptop") => Severity::Warning,
        _ => Severity::Critical,
    }
}

/// The event of a heartbeat transition.
pub fn heartbeat_event(
    device: &Device,
    kind: AlertEventKind,
    severity: Severity,
    at_ms: i64,
    opened_ms: i64,
) -> AlertEvent {
    let p = &device.placement;
    let alert_id = derived_id(
        "al",
        &[p.tenant.as_str(), device.id.as_str(), HEARTBEAT_RULE, ""],
    );
    let event_id = derived_id(
        "evt",
        &[
            &alert_id,
            &at_ms.to_string(),
            kind.as_str(),
            severity.as_str(),
        ],
    );
    AlertEvent {
        event_id,
        kind,
        alert_id,
        tenant_id: p.tenant.clone(),
        client_id: p.client.clone(),
        site_id: p.site.clone(),
        device_id: device.id.clone(),
        device_name: device.hostname.clone(),
        rule_id: HEARTBEAT_RULE.into(),
        family: AlertFamily::DeviceDown,
        subject: String::new(),
        metric: "silence_s".into(),
        severity,
        previous_severity: (kind == AlertEventKind::Resolved).then_some(severity),
        value: ((at_ms - device.last_seen_ms).max(0) / 1000) as f64,
        threshold: f64::from(device.config.heartbeat_s),
        at_ms,
        opened_ms,
        maintenance: None,
        detail: None,
    }
}

/// The sweeper over its ports.
pub struct SilenceSweeper<R, S, A, H, C> {
    devices: R,
    store: S,
    publisher: A,
    index: H,
    clock: C,
}

impl<R, S, A, H, C> SilenceSweeper<R, S, A, H, C>
where
    R: DeviceRegistry + WindowStore,
    S: EvaluationStore,
    A: AlertPublisher,
    H: HeartbeatIndex,
    C: Clock,
{
    pub fn new(devices: R, store: S, publisher: A, index: H, clock: C) -> Self {
        Self {
            devices,
            store,
            publisher,
            index,
            clock,
        }
    }

    /// Reads every slot that passed since the last sweep and raises the late devices.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let now = self.clock.now_ms();
        let upto = now - now.rem_euclid(HEARTBEAT_SLOT_MS);
        let cursor = self.index.cursor().await?;
        let from = if cursor == 0 {
            upto - FIRST_SWEEP_LOOKBACK_MS
        } else {
            cursor
        };
        if from >= upto {
            return Ok(SweepReport::default());
        }
        let entries = self.index.due(from, upto).await?;
        let mut report = SweepReport {
            slots: (upto - from) / HEARTBEAT_SLOT_MS,
            checked: entries.len(),
            ..SweepReport::default()
        };
        // Windows of the tenants met in this sweep, read once each.
        let mut windows: HashMap<TenantId, Vec<MaintenanceWindow>> = HashMap::new();
        // Parents first; children behind a down parent are suppressed, held or released
        // (see `crate::dependency`); the others are raised under the maintenance windows.
        let plan = crate::dependency::plan_late(&self.devices, &self.store, &entries, now).await?;
        for (device, current, action) in plan {
            use crate::dependency::{Acted, act};
            match act(&self.store, &self.publisher, &device, current, action, now).await? {
                Acted::Raise => {
                    let tenant = &device.placement.tenant;
                    if !windows.contains_key(tenant) {
                        let w = self.devices.windows(tenant).await?;
                        windows.insert(tenant.clone(), w);
                    }
                    let tenant_windows = windows.get(tenant).map_or(&[][..], Vec::as_slice);
                    if self.raise(&device, tenant_windows, now).await? {
                        report.raised += 1;
                    }
                }
                Acted::Suppressed => report.suppressed += 1,
                Acted::Held => report.held += 1,
                Acted::Released => report.raised += 1,
                Acted::Nothing => {}
            }
        }
        for entry in &entries {
            self.index.remove(entry).await?;
        }
        if !self.index.advance(cursor, upto).await? {
            warn!("another sweeper moved the cursor; its work and ours overlap harmlessly");
        }
        if report.checked > 0 {
            info!(
                slots = report.slots,
                checked = report.checked,
                raised = report.raised,
                suppressed = report.suppressed,
                held = report.held,
                "silence sweep"
            );
        }
        Ok(report)
    }

    /// Opens "device down" unless it is open already, under the tenant's maintenance windows;
    /// announces a "device down" a window held back once the window is over. True when this
    /// call told someone.
    async fn raise(
        &self,
        device: &Device,
        windows: &[MaintenanceWindow],
        now: i64,
    ) -> Result<bool, StoreError> {
        let p = &device.placement;
        let key = (heartbeat_rule(), String::new());
        let stored = self.store.load(&p.tenant, &device.id).await?;
        let current = stored.states.get(&key);
        let target = maintenance::Target::of_device(device);
        if current.is_some_and(|v| v.state.firing.is_some()) {
            // Open already; if a window holds it back, it may be due now.
            let (mut events, mut changes) = (Vec::new(), Vec::new());
            maintenance::apply(
                windows,
                target,
                &stored,
                &mut events,
                &mut changes,
                Some(now),
            );
            let held = stored
                .held
                .values()
                .any(|e| e.rule_id == HEARTBEAT_RULE && maintenance::held_until(e).is_some());
            let window_end = (held && events.is_empty())
                .then(|| maintenance::silence(windows, target, AlertFamily::DeviceDown, now).1)
                .flatten()
                .map(|w| w.end_ms);
            return self
                .commit_held(device, &events, &changes, window_end, now)
                .await;
        }
        let severity = silence_severity(device);
        let state = RuleState {
            firing: Some(severity),
            firing_since_ms: Some(now),
            last_ms: device.last_seen_ms,
            ..RuleState::default()
        };
        let event = heartbeat_event(device, AlertEventKind::Opened, severity, now, now);
        let change = StateChange {
            key,
            state,
            read_version: current.map(|v| v.version),
        };
        let (mut events, mut changes) = (vec![event], vec![change]);
        maintenance::apply(
            windows,
            target,
            &stored,
            &mut events,
            &mut changes,
            Some(now),
        );
        self.commit_held(device, &events, &changes, None, now).await
    }

    /// Commits the heartbeat's events, publishes what is to be published, and — when a window
    /// holds "device down" back (`window_end` when nothing changed) — asks to look at the
    /// device again when it ends.
    async fn commit_held(
        &self,
        device: &Device,
        events: &[AlertEvent],
        changes: &[StateChange],
        window_end: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let p = &device.placement;
        if !changes.is_empty() {
            match self
                .store
                .commit(&p.tenant, &device.id, changes, events, now)
                .await?
            {
                CommitOutcome::Conflict => return Ok(false),
                CommitOutcome::Committed => {}
            }
        }
        let mut told = false;
        for event in events {
            info!(
                event = "alert_transition",
                tenant_id = %p.tenant,
                device_id = %device.id,
                alert_id = %event.alert_id,
                kind = event.kind.as_str(),
                maintenance = event.maintenance_effect().map(|m| m.as_str()),
                "device down"
            );
            if maintenance::published(event) {
                self.publisher.publish(event).await?;
                self.store
                    .published(&p.tenant, &device.id, &event.event_id)
                    .await?;
                told = true;
            }
        }
        // Still held (new, or its window goes on): come back when the window ends.
        let still_held = events
            .iter()
            .filter_map(maintenance::held_until)
            .chain(window_end)
            .max();
        if let Some(end) = still_held {
            let slot = end.max(now) - end.max(now).rem_euclid(HEARTBEAT_SLOT_MS);
            self.index
                .schedule(&HeartbeatEntry {
                    slot_ms: slot,
                    tenant: p.tenant.clone(),
                    device: device.id.clone(),
                })
                .await?;
        }
        Ok(told)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Mutex;

    use vigie_domain::clock::ManualClock;
    use vigie_domain::device::DeviceStatus;
    use vigie_domain::device::{Device, heartbeat_slot};
    use vigie_domain::enrollment::Placement;
    use vigie_domain::ids::{ClientId, DeviceId, EnrollmentTokenId, SiteId, TenantId};
    use vigie_domain::ports::{DeviceEvaluationState, HeartbeatEntry, SequenceOutcome, Versioned};
    use vigie_domain::protocol::AgentConfig;
    use vigie_domain::signing::DeviceSigningKey;

    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    static KEY: std::sync::OnceLock<vigie_domain::signing::DevicePublicKey> =
        std::sync::OnceLock::new();

    #[derive(Default)]
    struct Fleet {
        devices: HashMap<DeviceId, Device>,
        slots: Mutex<BTreeMap<i64, Vec<HeartbeatEntry>>>,
        states: Mutex<HashMap<DeviceId, Versioned>>,
        published: Mutex<Vec<AlertEvent>>,
        cursor: Mutex<i64>,
        read: Mutex<usize>,
    }

    impl DeviceRegistry for &Fleet {
        async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
            *self.read.lock().expect("lock") += 1;
            Ok(self.devices.get(id).cloned())
        }
        async fn record_batch(
            &self,
            _: &Device,
            _: u64,
            _: u64,
            _: i64,
        ) -> Result<SequenceOutcome, StoreError> {
            Ok(SequenceOutcome::Recorded)
        }
    }

    impl WindowStore for &Fleet {
        async fn windows<W: serde::de::DeserializeOwned + Send>(
            &self,
            _: &TenantId,
        ) -> Result<Vec<W>, StoreError> {
            Ok(Vec::new())
        }
    }

    impl EvaluationStore for &Fleet {
        async fn load(
            &self,
            _: &TenantId,
            device: &DeviceId,
        ) -> Result<DeviceEvaluationState, StoreError> {
            let mut s = DeviceEvaluationState::default();
            if let Some(v) = self.states.lock().expect("lock").get(device) {
                s.states.insert((heartbeat_rule(), String::new()), *v);
            }
            Ok(s)
        }
        async fn commit(
            &self,
            _: &TenantId,
            device: &DeviceId,
            changes: &[StateChange],
            _: &[AlertEvent],
            _: i64,
        ) -> Result<CommitOutcome, StoreError> {
            let mut states = self.states.lock().expect("lock");
            let current = states.get(device).map(|v| v.version);
            if current != changes[0].read_version {
                return Ok(CommitOutcome::Conflict);
            }
            states.insert(
                device.clone(),
                Versioned {
                    state: changes[0].state,
                    version: current.unwrap_or(0) + 1,
                },
            );
            Ok(CommitOutcome::Committed)
        }
        async fn published(&self, _: &TenantId, _: &DeviceId, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    impl AlertPublisher for &Fleet {
        async fn publish(&self, event: &AlertEvent) -> Result<(), StoreError> {
            self.published.lock().expect("lock").push(event.clone());
            Ok(())
        }
    }

    impl HeartbeatIndex for &Fleet {
        async fn due(&self, from: i64, to: i64) -> Result<Vec<HeartbeatEntry>, StoreError> {
            Ok(self
                .slots
                .lock()
                .expect("lock")
                .range(from..to)
                .flat_map(|(_, e)| e.clone())
                .collect())
        }
        async fn remove(&self, entry: &HeartbeatEntry) -> Result<(), StoreError> {
            if let Some(v) = self.slots.lock().expect("lock").get_mut(&entry.slot_ms) {
                v.retain(|e| e != entry);
            }
            Ok(())
        }
        async fn schedule(&self, entry: &HeartbeatEntry) -> Result<(), StoreError> {
            let mut slots = self.slots.lock().expect("lock");
            let slot = slots.entry(entry.slot_ms).or_default();
            if !slot.contains(entry) {
                slot.push(entry.clone());
            }
            Ok(())
        }
        async fn cursor(&self) -> Result<i64, StoreError> {
            Ok(*self.cursor.lock().expect("lock"))
        }
        async fn advance(&self, from: i64, to: i64) -> Result<bool, StoreError> {
            let mut c = self.cursor.lock().expect("lock");
            if *c != from {
                return Ok(false);
            }
            *c = to;
            Ok(true)
        }
    }

    fn device(n: usize, last_seen_ms: i64, role: &str) -> Device {
        let mut tags = BTreeMap::new();
        tags.insert("role".to_owned(), role.to_owned());
        Device {
            id: DeviceId::parse(&format!("dev-{n}")).expect("id"),
            placement: Placement {
                tenant: TenantId::parse("msp").expect("id"),
                client: ClientId::parse("acme").expect("id"),
                site: SiteId::parse("hq").expect("id"),
            },
            public_key: *KEY.get_or_init(|| DeviceSigningKey::from_bytes(&[7; 32]).public_key()),
            status: DeviceStatus::Active,
            hostname: format!("host-{n}"),
            os: "Linux".into(),
            agent_version: "0.1.0".into(),
            enrolled_ms: 0,
            enrolled_with: EnrollmentTokenId::parse("et-x").expect("id"),
            last_seq: 1,
            last_seen_ms,
            config: AgentConfig::default(),
            tags,
            rate_window_ms: 0,
            rate_count: 0,
            heartbeat_slot_ms: heartbeat_slot(last_seen_ms, 300),
            usage: Default::default(),
            collectors: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_sweep_reads_only_late_devices_and_raises_each_once() {
        // 10,000 devices that sent within the last minute, and three silent for ten minutes.
        let mut fleet = Fleet::default();
        let mut all: Vec<Device> = (0..10_000)
            .map(|n| device(n, NOW - (n as i64 % 60) * 1000, "server"))
            .collect();
        all.push(device(10_000, NOW - 600_000, "server"));
        all.push(device(10_001, NOW - 600_000, "workstation"));
        all.push(device(10_002, NOW - 700_000, "server"));
        for d in all {
            let entry = HeartbeatEntry {
                slot_ms: d.heartbeat_slot_ms,
                tenant: d.placement.tenant.clone(),
                device: d.id.clone(),
            };
            fleet
                .slots
                .get_mut()
                .expect("lock")
                .entry(d.heartbeat_slot_ms)
                .or_default()
                .push(entry);
            fleet.devices.insert(d.id.clone(), d);
        }
        *fleet.cursor.get_mut().expect("lock") = NOW - 15 * 60_000;
        let fleet = &fleet;
        let sweeper = SilenceSweeper::new(fleet, fleet, fleet, fleet, ManualClock::at(NOW));
        let report = sweeper.sweep().await.expect("sweeps");
        assert_eq!((report.checked, report.raised), (3, 3), "{report:?}");
        assert_eq!(
            *fleet.read.lock().expect("lock"),
            3,
            "only the late devices were read"
        );
        let severities: Vec<Severity> = fleet
            .published
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e.severity)
            .collect();
        assert_eq!(
            severities
                .iter()
                .filter(|s| **s == Severity::Warning)
                .count(),
            1,
            "the workstation is a warning"
        );
        // A second sweep finds nothing new and raises nothing twice.
        let again = sweeper.sweep().await.expect("sweeps");
        assert_eq!((again.checked, again.raised), (0, 0));
        assert_eq!(fleet.published.lock().expect("lock").len(), 3);
    }
}
