//! Device silence: a scheduled sweep raises "device down" for devices whose heartbeat slot has
//! passed. It reads only the slots that passed since its last run, so its cost grows with the
//! number of late devices, not with the fleet. The alert resolves at the device's next batch
//! (see [`crate::Evaluator::evaluate`]).

use tracing::{info, warn};
use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity, derived_id};
use vigie_domain::clock::Clock;
use vigie_domain::device::{Device, DeviceStatus, HEARTBEAT_SLOT_MS};
use vigie_domain::policy::RuleId;
use vigie_domain::ports::{
    AlertPublisher, CommitOutcome, DeviceRegistry, EvaluationStore, HeartbeatIndex, StateChange,
    StoreError,
};
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
    pub raised: usize,
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
    R: DeviceRegistry,
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
            raised: 0,
        };
        for entry in &entries {
            if let Some(device) = self.devices.device(&entry.device).await? {
                let due = device.last_seen_ms + i64::from(device.config.heartbeat_s) * 1000;
                if device.status == DeviceStatus::Active
                    && due <= now
                    && self.raise(&device, now).await?
                {
                    report.raised += 1;
                }
            }
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
                "silence sweep"
            );
        }
        Ok(report)
    }

    /// Opens "device down" unless it is open already. True when this call opened it.
    async fn raise(&self, device: &Device, now: i64) -> Result<bool, StoreError> {
        let p = &device.placement;
        let key = (heartbeat_rule(), String::new());
        let stored = self.store.load(&p.tenant, &device.id).await?;
        let current = stored.states.get(&key);
        if current.is_some_and(|v| v.state.firing.is_some()) {
            return Ok(false);
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
        match self
            .store
            .commit(
                &p.tenant,
                &device.id,
                &[change],
                std::slice::from_ref(&event),
                now,
            )
            .await?
        {
            CommitOutcome::Conflict => Ok(false),
            CommitOutcome::Committed => {
                info!(
                    event = "alert_transition",
                    tenant_id = %p.tenant,
                    device_id = %device.id,
                    alert_id = %event.alert_id,
                    kind = "opened",
                    "device down"
                );
                self.publisher.publish(&event).await?;
                self.store
                    .published(&p.tenant, &device.id, &event.event_id)
                    .await?;
                Ok(true)
            }
        }
    }
}
