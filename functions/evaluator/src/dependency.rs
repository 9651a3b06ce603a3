//! Device dependencies in the evaluator and the silence sweeper (the rules are in
//! `vigie_domain::dependency`):
//! - the sweep plans its late devices parents first and suppresses the "device down" of a child
//!   whose parent is down or overdue, holds one whose parent went silent at about the same time,
//!   and releases a suppressed one that outlived its parent's outage;
//! - a batch's events are suppressed while the device's parent is down, and so is the
//!   "resolved" of a suppressed alert (its opening was never announced);
//! - when a parent's "device down" resolves, its children are looked at again after a grace
//!   period, so the ones still silent are raised individually.
//!
//! Suppressed events are committed like any other (alert record, history), attached to the
//! parent's alert, and taken out of the outbox without being published. Costs: a sweep reads
//! one more item per late device (its parent link), plus each parent outside the sweep; a batch
//! reads the parent link only when it produced events. A quiet device pays nothing.

use std::collections::{HashMap, HashSet};

use tracing::info;
use vigie_domain::alert::{AlertEvent, AlertEventKind, derived_id};
use vigie_domain::dependency::{LateDevice, ParentView, RELEASE_GRACE_MS, SweepAction, plan_sweep};
use vigie_domain::device::{Device, DeviceStatus};
use vigie_domain::ids::{DeviceId, TenantId};
use vigie_domain::ports::{
    AlertPublisher, CommitOutcome, DeviceEvaluationState, DeviceRegistry, EvaluationStore,
    HeartbeatEntry, StateChange, StoreError, Versioned,
};
use vigie_domain::rules::RuleState;

use crate::silence::{HEARTBEAT_RULE, heartbeat_event, heartbeat_rule, silence_severity};

/// The "device down" alert id of a device.
pub fn down_alert_id(tenant: &TenantId, device: &DeviceId) -> String {
    derived_id(
        "al",
        &[tenant.as_str(), device.as_str(), HEARTBEAT_RULE, ""],
    )
}

fn down_state(state: &DeviceEvaluationState) -> Option<Versioned> {
    state
        .states
        .get(&(heartbeat_rule(), String::new()))
        .copied()
}

/// What one sweep did with its late devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub raised: usize,
    pub suppressed: usize,
    pub held: usize,
    pub released: usize,
}

/// A late device of a sweep, its "device down" state, and what to do with it.
pub type PlannedDevice = (Device, Option<Versioned>, SweepAction);

/// Reads the late devices among `entries` (active, due by `now`), their "device down" states
/// and parent links, and the parents outside the sweep; plans them parents first.
pub async fn plan_late<R, S>(
    devices: &R,
    store: &S,
    entries: &[HeartbeatEntry],
    now: i64,
) -> Result<Vec<PlannedDevice>, StoreError>
where
    R: DeviceRegistry,
    S: EvaluationStore,
{
    let mut late = Vec::new();
    let mut known: HashMap<DeviceId, (Device, Option<Versioned>)> = HashMap::new();
    for entry in entries {
        if known.contains_key(&entry.device) {
            continue;
        }
        let Some(device) = devices.device(&entry.device).await? else {
            continue;
        };
        if device.status != DeviceStatus::Active || device.placement.tenant != entry.tenant {
            continue;
        }
        let due_ms = device.last_seen_ms + i64::from(device.config.heartbeat_s) * 1000;
        if due_ms > now {
            continue;
        }
        let tenant = &device.placement.tenant;
        let current = down_state(&store.load(tenant, &device.id).await?);
        let parent = store.parent_of(tenant, &device.id).await?;
        late.push(LateDevice {
            id: device.id.clone(),
            parent,
            last_seen_ms: device.last_seen_ms,
            due_ms,
            down_open: current.is_some_and(|v| v.state.firing.is_some()),
            suppressed: current.is_some_and(|v| v.state.suppressed),
        });
        known.insert(device.id.clone(), (device, current));
    }
    // Parents that are not late themselves (or not yet found late).
    let mut outside: HashMap<DeviceId, ParentView> = HashMap::new();
    for d in &late {
        let Some(p) = &d.parent else { continue };
        if known.contains_key(p) || outside.contains_key(p) {
            continue;
        }
        let Some(parent) = devices.device(p).await? else {
            continue;
        };
        let Some((child, _)) = known.get(&d.id) else {
            continue;
        };
        if parent.placement.tenant != child.placement.tenant {
            continue;
        }
        let state = down_state(&store.load(&parent.placement.tenant, p).await?);
        outside.insert(
            p.clone(),
            ParentView {
                last_seen_ms: parent.last_seen_ms,
                due_ms: parent.last_seen_ms + i64::from(parent.config.heartbeat_s) * 1000,
                down_open: state.is_some_and(|v| v.state.firing.is_some()),
            },
        );
    }
    Ok(plan_sweep(&late, &outside, now)
        .into_iter()
        .filter_map(|(id, action)| known.remove(&id).map(|(d, c)| (d, c, action)))
        .collect())
}

/// What [`act`] did, or left to the sweeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acted {
    /// The sweeper's own business: raise it (or look at its open alert) as without a parent.
    Raise,
    Suppressed,
    Held,
    Released,
    Nothing,
}

/// Carries out the dependency actions of a planned device.
pub async fn act<S, A>(
    store: &S,
    publisher: &A,
    device: &Device,
    current: Option<Versioned>,
    action: SweepAction,
    now: i64,
) -> Result<Acted, StoreError>
where
    S: EvaluationStore,
    A: AlertPublisher,
{
    let tenant = &device.placement.tenant;
    Ok(match action {
        SweepAction::Raise => Acted::Raise,
        // Open already and not suppressed: the sweeper may still have to announce it (a
        // maintenance window that held it back has ended).
        SweepAction::Skip if !current.is_some_and(|v| v.state.suppressed) => Acted::Raise,
        SweepAction::Skip => Acted::Nothing,
        SweepAction::Suppress { parent } => {
            let parent_alert = down_alert_id(tenant, &parent);
            if open_down(store, publisher, device, current, now, Some(&parent_alert)).await? {
                Acted::Suppressed
            } else {
                Acted::Nothing
            }
        }
        SweepAction::Hold { until_ms } => {
            store.recheck(tenant, &device.id, until_ms).await?;
            Acted::Held
        }
        SweepAction::Release => match current {
            Some(current) if release(store, publisher, device, current, now).await? => {
                Acted::Released
            }
            _ => Acted::Nothing,
        },
    })
}

/// [`plan_late`] and [`act`], raising the others without maintenance windows (the sweeper
/// raises them under its windows instead).
pub async fn sweep_late<R, S, A>(
    devices: &R,
    store: &S,
    publisher: &A,
    entries: &[HeartbeatEntry],
    now: i64,
) -> Result<SweepCounts, StoreError>
where
    R: DeviceRegistry,
    S: EvaluationStore,
    A: AlertPublisher,
{
    let mut counts = SweepCounts::default();
    for (device, current, action) in plan_late(devices, store, entries, now).await? {
        match act(store, publisher, &device, current, action, now).await? {
            Acted::Raise => {
                if open_down(store, publisher, &device, current, now, None).await? {
                    counts.raised += 1;
                }
            }
            Acted::Suppressed => counts.suppressed += 1,
            Acted::Held => counts.held += 1,
            Acted::Released => counts.released += 1,
            Acted::Nothing => {}
        }
    }
    Ok(counts)
}

/// Opens "device down" unless it is open already; suppressed behind `suppressed_by` (the
/// parent's alert) when given. True when this call opened it.
async fn open_down<S, A>(
    store: &S,
    publisher: &A,
    device: &Device,
    current: Option<Versioned>,
    now: i64,
    suppressed_by: Option<&str>,
) -> Result<bool, StoreError>
where
    S: EvaluationStore,
    A: AlertPublisher,
{
    if current.is_some_and(|v| v.state.firing.is_some()) {
        return Ok(false);
    }
    let p = &device.placement;
    let severity = silence_severity(device);
    let state = RuleState {
        firing: Some(severity),
        firing_since_ms: Some(now),
        last_ms: device.last_seen_ms,
        suppressed: suppressed_by.is_some(),
        ..RuleState::default()
    };
    let event = heartbeat_event(device, AlertEventKind::Opened, severity, now, now);
    let change = StateChange {
        key: (heartbeat_rule(), String::new()),
        state,
        read_version: current.map(|v| v.version),
    };
    let outcome = store
        .commit(
            &p.tenant,
            &device.id,
            &[change],
            std::slice::from_ref(&event),
            now,
        )
        .await?;
    if outcome == CommitOutcome::Conflict {
        return Ok(false);
    }
    info!(
        event = "alert_transition",
        tenant_id = %p.tenant,
        device_id = %device.id,
        alert_id = %event.alert_id,
        kind = "opened",
        suppressed_by = suppressed_by.unwrap_or(""),
        "device down"
    );
    match suppressed_by {
        Some(parent_alert) => store.attach_suppressed(parent_alert, &event).await?,
        None => publisher.publish(&event).await?,
    }
    store
        .published(&p.tenant, &device.id, &event.event_id)
        .await?;
    Ok(true)
}

/// Announces a suppressed "device down" that outlived its parent's outage.
async fn release<S, A>(
    store: &S,
    publisher: &A,
    device: &Device,
    current: Versioned,
    now: i64,
) -> Result<bool, StoreError>
where
    S: EvaluationStore,
    A: AlertPublisher,
{
    let p = &device.placement;
    let severity = current
        .state
        .firing
        .unwrap_or_else(|| silence_severity(device));
    let opened = current.state.firing_since_ms.unwrap_or(now);
    let event = heartbeat_event(device, AlertEventKind::Opened, severity, now, opened);
    let change = StateChange {
        key: (heartbeat_rule(), String::new()),
        state: RuleState {
            suppressed: false,
            ..current.state
        },
        read_version: Some(current.version),
    };
    let outcome = store
        .commit(
            &p.tenant,
            &device.id,
            &[change],
            std::slice::from_ref(&event),
            now,
        )
        .await?;
    if outcome == CommitOutcome::Conflict {
        return Ok(false);
    }
    info!(tenant_id = %p.tenant, device_id = %device.id, alert_id = %event.alert_id, "suppressed device down released: its parent is back");
    publisher.publish(&event).await?;
    store
        .published(&p.tenant, &device.id, &event.event_id)
        .await?;
    Ok(true)
}

/// Which of a batch's events are suppressed, and behind which parent alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suppression {
    /// Event id → the parent alert it is attached to ("" when it has none: the resolution of
    /// a suppressed alert).
    events: HashMap<String, String>,
}

impl Suppression {
    /// Finds the suppressed events among `events` of `device` (whose evaluation state is
    /// `stored`). Reads nothing when there are no events.
    pub async fn find<S: EvaluationStore>(
        store: &S,
        tenant: &TenantId,
        device: &DeviceId,
        stored: &DeviceEvaluationState,
        events: &[AlertEvent],
    ) -> Result<Self, StoreError> {
        let mut out = Self::default();
        if events.is_empty() {
            return Ok(out);
        }
        // The end of a suppressed "device down" was never worth a notification either.
        if down_state(stored).is_some_and(|v| v.state.suppressed) {
            for e in events
                .iter()
                .filter(|e| e.rule_id == HEARTBEAT_RULE && e.kind == AlertEventKind::Resolved)
            {
                out.events.insert(e.event_id.clone(), String::new());
            }
        }
        if let Some(parent) = store.parent_of(tenant, device).await? {
            let parent_down = down_state(&store.load(tenant, &parent).await?)
                .is_some_and(|v| v.state.firing.is_some());
            if parent_down {
                let parent_alert = down_alert_id(tenant, &parent);
                for e in events.iter().filter(|e| {
                    !(e.rule_id == HEARTBEAT_RULE && e.kind == AlertEventKind::Resolved)
                }) {
                    out.events.insert(e.event_id.clone(), parent_alert.clone());
                }
            }
        }
        Ok(out)
    }

    /// The parent alert `event` is attached to, when it is suppressed.
    pub fn of(&self, event: &AlertEvent) -> Option<&str> {
        self.events.get(&event.event_id).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Takes a committed event out of the outbox: published, or attached to its parent's alert.
pub async fn deliver<S, A>(
    store: &S,
    publisher: &A,
    suppression: &Suppression,
    event: &AlertEvent,
) -> Result<(), StoreError>
where
    S: EvaluationStore,
    A: AlertPublisher,
{
    match suppression.of(event) {
        None => publisher.publish(event).await?,
        Some("") => {}
        Some(parent_alert) => store.attach_suppressed(parent_alert, event).await?,
    }
    store
        .published(&event.tenant_id, &event.device_id, &event.event_id)
        .await
}

/// After a commit: when this device's "device down" resolved, its children are looked at
/// again once the grace period has passed.
pub async fn after_commit<S: EvaluationStore>(
    store: &S,
    tenant: &TenantId,
    device: &DeviceId,
    events: &[AlertEvent],
    now: i64,
) -> Result<(), StoreError> {
    let back_up = events
        .iter()
        .any(|e| e.rule_id == HEARTBEAT_RULE && e.kind == AlertEventKind::Resolved);
    if !back_up {
        return Ok(());
    }
    let children: HashSet<DeviceId> = store
        .children_of(tenant, device)
        .await?
        .into_iter()
        .collect();
    for child in &children {
        store.recheck(tenant, child, now + RELEASE_GRACE_MS).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use vigie_domain::enrollment::Placement;
    use vigie_domain::ids::{ClientId, EnrollmentTokenId, SiteId};
    use vigie_domain::ports::SequenceOutcome;
    use vigie_domain::protocol::AgentConfig;
    use vigie_domain::signing::DeviceSigningKey;

    use super::*;

    const NOW: i64 = 1_790_000_000_000;
    const HEARTBEAT_MS: i64 = 300_000;

    /// Devices, their "device down" states, parent links, and what left.
    #[derive(Default)]
    struct Site {
        devices: Mutex<HashMap<DeviceId, Device>>,
        parents: HashMap<DeviceId, DeviceId>,
        states: Mutex<HashMap<DeviceId, Versioned>>,
        published: Mutex<Vec<AlertEvent>>,
        attached: Mutex<Vec<(String, String)>>,
        rechecks: Mutex<Vec<(DeviceId, i64)>>,
    }

    impl DeviceRegistry for &Site {
        async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
            Ok(self.devices.lock().expect("lock").get(id).cloned())
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

    impl EvaluationStore for &Site {
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
            let version = current.unwrap_or(0) + 1;
            states.insert(
                device.clone(),
                Versioned {
                    state: changes[0].state,
                    version,
                },
            );
            Ok(CommitOutcome::Committed)
        }
        async fn published(&self, _: &TenantId, _: &DeviceId, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn parent_of(
            &self,
            _: &TenantId,
            device: &DeviceId,
        ) -> Result<Option<DeviceId>, StoreError> {
            Ok(self.parents.get(device).cloned())
        }
        async fn children_of(
            &self,
            _: &TenantId,
            device: &DeviceId,
        ) -> Result<Vec<DeviceId>, StoreError> {
            Ok(self
                .parents
                .iter()
                .filter(|(_, p)| *p == device)
                .map(|(c, _)| c.clone())
                .collect())
        }
        async fn attach_suppressed(
            &self,
            parent_alert_id: &str,
            child: &AlertEvent,
        ) -> Result<(), StoreError> {
            self.attached
                .lock()
                .expect("lock")
                .push((parent_alert_id.to_owned(), child.device_id.to_string()));
            Ok(())
        }
        async fn recheck(
            &self,
            _: &TenantId,
            device: &DeviceId,
            at_ms: i64,
        ) -> Result<(), StoreError> {
            self.rechecks
                .lock()
                .expect("lock")
                .push((device.clone(), at_ms));
            Ok(())
        }
    }

    impl AlertPublisher for &Site {
        async fn publish(&self, event: &AlertEvent) -> Result<(), StoreError> {
            self.published.lock().expect("lock").push(event.clone());
            Ok(())
        }
    }

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("id")
    }

    fn device(name: &str, last_seen_ms: i64) -> Device {
        Device {
            id: id(name),
            placement: Placement {
                tenant: TenantId::parse("msp").expect("id"),
                client: ClientId::parse("acme").expect("id"),
                site: SiteId::parse("hq").expect("id"),
            },
            public_key: DeviceSigningKey::from_bytes(&[7; 32]).public_key(),
            status: DeviceStatus::Active,
            hostname: name.into(),
            os: "Linux".into(),
            agent_version: "0.1.0".into(),
            enrolled_ms: 0,
            enrolled_with: EnrollmentTokenId::parse("et-x").expect("id"),
            last_seq: 1,
            last_seen_ms,
            config: AgentConfig {
                heartbeat_s: (HEARTBEAT_MS / 1000) as u32,
                ..AgentConfig::default()
            },
            tags: BTreeMap::new(),
            rate_window_ms: 0,
            rate_count: 0,
            heartbeat_slot_ms: 0,
            usage: Default::default(),
            collectors: Vec::new(),
        }
    }

    fn entries(names: &[&str]) -> Vec<HeartbeatEntry> {
        names
            .iter()
            .map(|n| HeartbeatEntry {
                slot_ms: 0,
                tenant: TenantId::parse("msp").expect("id"),
                device: id(n),
            })
            .collect()
    }

    fn site(devices: &[(&str, i64)], parents: &[(&str, &str)]) -> Site {
        Site {
            devices: Mutex::new(
                devices
                    .iter()
                    .map(|(n, seen)| (id(n), device(n, *seen)))
                    .collect(),
            ),
            parents: parents.iter().map(|(c, p)| (id(c), id(p))).collect(),
            ..Site::default()
        }
    }

    #[tokio::test]
    async fn children_wait_behind_their_router_and_come_out_if_still_down_after_it() {
        let s = site(
            &[
                ("router", NOW - 400_000),
                ("pc-1", NOW - 410_000),
                ("pc-2", NOW - 420_000),
            ],
            &[("pc-1", "router"), ("pc-2", "router")],
        );
        let s = &s;
        let tenant = TenantId::parse("msp").expect("id");
        let counts = sweep_late(&s, &s, &s, &entries(&["pc-2", "pc-1", "router"]), NOW)
            .await
            .expect("sweeps");
        assert_eq!((counts.raised, counts.suppressed), (1, 2));
        let published = s.published.lock().expect("lock").clone();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].device_id, id("router"));
        let router_alert = down_alert_id(&tenant, &id("router"));
        assert_eq!(
            s.attached
                .lock()
                .expect("lock")
                .iter()
                .filter(|(p, _)| *p == router_alert)
                .count(),
            2
        );

        // The router is back (its batch resolved its alert): the children are looked at
        // again after the grace period.
        let back = NOW + 60_000;
        s.states.lock().expect("lock").remove(&id("router"));
        s.devices
            .lock()
            .expect("lock")
            .insert(id("router"), device("router", back));
        let resolved = heartbeat_event(
            &device("router", back),
            AlertEventKind::Resolved,
            vigie_domain::alert::Severity::Critical,
            back,
            NOW,
        );
        after_commit(&s, &tenant, &id("router"), &[resolved], back)
            .await
            .expect("rechecks");
        let mut rechecks = s.rechecks.lock().expect("lock").clone();
        rechecks.sort();
        assert_eq!(
            rechecks,
            vec![
                (id("pc-1"), back + RELEASE_GRACE_MS),
                (id("pc-2"), back + RELEASE_GRACE_MS)
            ]
        );
        // pc-1 came back meanwhile (its batch resolved it, quietly); pc-2 did not.
        s.states.lock().expect("lock").remove(&id("pc-1"));
        s.devices
            .lock()
            .expect("lock")
            .insert(id("pc-1"), device("pc-1", back + 30_000));
        let later = back + RELEASE_GRACE_MS + 10_000;
        let counts = sweep_late(&s, &s, &s, &entries(&["pc-1", "pc-2"]), later)
            .await
            .expect("sweeps");
        assert_eq!(
            (counts.released, counts.raised, counts.suppressed),
            (1, 0, 0)
        );
        let published = s.published.lock().expect("lock").clone();
        assert_eq!(published.len(), 2);
        assert_eq!(
            (
                published[1].device_id.as_str(),
                published[1].kind,
                published[1].opened_ms
            ),
            ("pc-2", AlertEventKind::Opened, NOW),
            "raised on its own, open since it went down"
        );
        assert!(!s.states.lock().expect("lock")[&id("pc-2")].state.suppressed);
        // Another sweep changes nothing.
        let again = sweep_late(&s, &s, &s, &entries(&["pc-2"]), later + 10_000)
            .await
            .expect("sweeps");
        assert_eq!(again, SweepCounts::default());
    }

    #[tokio::test]
    async fn a_child_silent_with_its_parent_is_held_until_the_parent_is_due() {
        // The child's slot passed; its router, heard 20 s later, is not due yet.
        let s = site(
            &[("router", NOW - 290_000), ("pc-1", NOW - 310_000)],
            &[("pc-1", "router")],
        );
        let s = &s;
        let counts = sweep_late(&s, &s, &s, &entries(&["pc-1"]), NOW)
            .await
            .expect("sweeps");
        assert_eq!(counts.held, 1);
        assert!(s.published.lock().expect("lock").is_empty());
        assert_eq!(
            s.rechecks.lock().expect("lock").clone(),
            vec![(id("pc-1"), NOW - 290_000 + HEARTBEAT_MS)]
        );
        // At the router's due time both are late: one notification, the router's.
        let at = NOW + 20_000;
        let counts = sweep_late(&s, &s, &s, &entries(&["pc-1", "router"]), at)
            .await
            .expect("sweeps");
        assert_eq!((counts.raised, counts.suppressed), (1, 1));
        let published = s.published.lock().expect("lock").clone();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].device_id, id("router"));
    }
}
