//! The evaluator: consumes the intake queue (SQS FIFO, grouped by device), evaluates each
//! batch against the device's effective policy, commits rule-state changes, alert records and
//! alert events in one conditional transaction, then publishes the events to the alerts topic.
//!
//! Exactly-once in effect:
//! - rule states are versioned; a commit succeeds only if every state it changes is still at
//!   the version read, so two evaluators on the same batch cannot both open an alert: the loser
//!   re-reads, finds the samples already evaluated, and does nothing;
//! - samples at or before a state's last evaluated sample are ignored, so a redelivered or late
//!   batch cannot move a state backwards;
//! - events go to an outbox in the same transaction and are published afterwards; a crash in
//!   between leaves them in the outbox, published at the device's next batch (or redelivery);
//!   event ids are derived from the transition, so a consumer seeing one twice drops it.
//!
//! A quiet device costs one query per batch and no write.

pub mod dependency;
pub mod flapping;
pub mod maintenance;
pub mod silence;
pub mod usage_close;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Instrument as _, error, info, info_span, warn};
use vigie_calendar::MaintenanceWindow;
use vigie_domain::alert::{AlertEvent, AlertEventKind, Severity, derived_id};
use vigie_domain::clock::Clock;
use vigie_domain::envelope::{BatchEnvelope, IntakeMessage};
use vigie_domain::ids::TenantId;
use vigie_domain::policy::{EffectivePolicy, Policy, RuleTransition};
use vigie_domain::ports::{
    AlertPublisher, CommitOutcome, EvaluationStore, IntakeSource, PolicyStore, StateChange,
    StoreError, WindowStore,
};
use vigie_domain::rules::RuleState;
use vigie_edge::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

/// How long a tenant's policies are cached in a warm function (near-real-time updates).
pub const POLICY_TTL: Duration = Duration::from_secs(30);

/// How old an outbox entry must be before another evaluator publishes it: its own evaluator
/// publishes within milliseconds, so an older entry was left by one that stopped.
pub const OUTBOX_GRACE_MS: i64 = 30_000;

/// Commits retried on a conflict before the message is handed back to the queue.
const COMMIT_ATTEMPTS: usize = 4;

/// Why a message was not processed.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// Worth retrying: the message goes back to the queue (and, after the redrive limit, to the
    /// dead-letter queue).
    #[error("retryable: {0}")]
    Retryable(#[from] StoreError),
    #[error("concurrent evaluators kept conflicting on this device")]
    Contended,
}

/// What one batch produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    pub events: Vec<AlertEvent>,
    pub states_written: usize,
    pub checks: usize,
}

/// The evaluator over its ports.
pub struct Evaluator<P, S, A, I, C> {
    policies: P,
    store: S,
    publisher: A,
    intake: I,
    clock: C,
    policy_ttl: Duration,
    cache: Mutex<HashMap<TenantId, CachedPolicies>>,
}

/// A tenant's policies and maintenance windows, and when they were read.
type TenantRules = (Arc<Vec<Policy>>, Arc<Vec<MaintenanceWindow>>);

type CachedPolicies = (Instant, Arc<Vec<Policy>>, Arc<Vec<MaintenanceWindow>>);

impl<P, S, A, I, C> Evaluator<P, S, A, I, C>
where
    P: PolicyStore + WindowStore,
    S: EvaluationStore,
    A: AlertPublisher,
    I: IntakeSource,
    C: Clock,
{
    pub fn new(policies: P, store: S, publisher: A, intake: I, clock: C) -> Self {
        Self {
            policies,
            store,
            publisher,
            intake,
            clock,
            policy_ttl: POLICY_TTL,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// How long policies stay cached (default [`POLICY_TTL`]).
    pub fn with_policy_ttl(mut self, ttl: Duration) -> Self {
        self.policy_ttl = ttl;
        self
    }

    /// Forgets cached policies (after a policy change in the same process).
    pub fn invalidate_policies(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }

    /// The tenant's policies and maintenance windows, cached together.
    async fn policies_of(&self, tenant: &TenantId) -> Result<TenantRules, StoreError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, p, w)) = cache.get(tenant)
            && at.elapsed() < self.policy_ttl
        {
            return Ok((Arc::clone(p), Arc::clone(w)));
        }
        let fresh = Arc::new(self.policies.policies(tenant).await?);
        let windows = Arc::new(self.policies.windows(tenant).await?);
        if let Ok(mut cache) = self.cache.lock() {
            let entry = (Instant::now(), Arc::clone(&fresh), Arc::clone(&windows));
            cache.insert(tenant.clone(), entry);
        }
        Ok((fresh, windows))
    }

    /// Handles one SQS event the way a Lambda event source mapping delivers it, reporting
    /// partial batch failures. On a FIFO queue, once a message fails, the ones after it are
    /// handed back too, so a device's batches are never evaluated out of order.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        let mut failed = false;
        for record in event.records {
            if failed {
                failures.push(BatchItemFailure {
                    item_identifier: record.message_id,
                });
                continue;
            }
            let span = info_span!(
                "intake_message",
                message_id = %record.message_id,
                tenant_id = record.attribute("tenant_id").unwrap_or(""),
                device_id = record.attribute("device_id").unwrap_or(""),
                seq = record.attribute("seq").unwrap_or(""),
            );
            let result = self
                .handle_body(&record.body)
                .instrument(span.clone())
                .await;
            let _enter = span.enter();
            if let Err(e) = result {
                error!(error = %e, "message not processed; handed back to the queue");
                failures.push(BatchItemFailure {
                    item_identifier: record.message_id,
                });
                failed = true;
            }
        }
        SqsBatchResponse {
            batch_item_failures: failures,
        }
    }

    async fn handle_body(&self, body: &str) -> Result<(), EvaluateError> {
        let message: IntakeMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => {
                // Poison: it will never parse. Park it with the reason instead of retrying.
                let reason = format!("intake message does not parse: {e}");
                warn!(reason = %reason, "poison message sent to the dead-letter queue");
                self.intake.dead_letter(body, &reason).await?;
                return Ok(());
            }
        };
        let envelope = self.intake.resolve(message).await?;
        self.evaluate(&envelope).await.map(|_| ())
    }

    /// Evaluates one batch, commits, publishes.
    pub async fn evaluate(&self, envelope: &BatchEnvelope) -> Result<BatchOutcome, EvaluateError> {
        let tenant = &envelope.tenant_id;
        let device = &envelope.device_id;
        let (policies, windows) = self.policies_of(tenant).await?;
        let effective = EffectivePolicy::for_device(
            policies.iter(),
            device,
            &envelope.client_id,
            &envelope.site_id,
            &envelope.tags,
        );
        for _ in 0..COMMIT_ATTEMPTS {
            let stored = self.store.load(tenant, device).await?;
            // Leftovers of an evaluator that stopped between commit and publish go out first.
            let now = self.clock.now_ms();
            for pending in stored
                .outbox
                .iter()
                .filter(|p| now - p.committed_ms > OUTBOX_GRACE_MS)
            {
                warn!(event_id = %pending.event.event_id, "publishing an abandoned outbox event");
                self.publish(tenant, &pending.event).await?;
            }
            let states: HashMap<_, _> = stored
                .states
                .iter()
                .map(|(k, v)| (k.clone(), v.state))
                .collect();
            let evaluation = effective.evaluate(&envelope.batch, &states);
            let events: Vec<AlertEvent> = evaluation
                .transitions
                .iter()
                .filter_map(|t| {
                    let before = stored
                        .states
                        .get(&(t.rule.clone(), t.subject.clone()))
                        .map(|v| v.state);
                    alert_event(envelope, t, before.unwrap_or_default())
                })
                .collect();
            let mut events = events;
            let mut changes: Vec<StateChange> = evaluation
                .changed
                .iter()
                .map(|(key, state)| StateChange {
                    key: key.clone(),
                    state: *state,
                    read_version: stored.states.get(key).map(|v| v.version),
                })
                .collect();
            // A device that was down is back: its batch resolves "device down".
            let heartbeat = (silence::heartbeat_rule(), String::new());
            if let Some(down) = stored
                .states
                .get(&heartbeat)
                .filter(|v| v.state.firing.is_some())
                && let Some(at) = envelope
                    .batch
                    .sample_time(0)
                    .filter(|t| *t > down.state.last_ms)
            {
                events.push(back_up_event(envelope, down.state, at));
                changes.push(StateChange {
                    key: heartbeat,
                    state: RuleState {
                        last_ms: at,
                        ..RuleState::default()
                    },
                    read_version: Some(down.version),
                });
            }
            let flap_policy = vigie_domain::flapping::FlapPolicy::default();
            flapping::apply(
                &flap_policy,
                envelope,
                &effective,
                &stored,
                &mut events,
                &mut changes,
            );
            let last_sample = envelope
                .batch
                .sample_time(envelope.batch.len().wrapping_sub(1));
            let target = maintenance::Target::of_envelope(envelope);
            maintenance::apply(
                &windows,
                target,
                &stored,
                &mut events,
                &mut changes,
                last_sample,
            );
            if changes.is_empty() {
                return Ok(BatchOutcome {
                    events,
                    states_written: 0,
                    checks: evaluation.checks,
                });
            }
            let suppression =
                dependency::Suppression::find(&self.store, tenant, device, &stored, &events)
                    .await?;
            match self
                .store
                .commit(tenant, device, &changes, &events, self.clock.now_ms())
                .await?
            {
                CommitOutcome::Conflict => {
                    warn!(tenant_id = %tenant, device_id = %device, "rule state changed concurrently; evaluating again");
                    continue;
                }
                CommitOutcome::Committed => {
                    for event in &events {
                        info!(
                            event = "alert_transition",
                            tenant_id = %tenant,
                            device_id = %device,
                            alert_id = %event.alert_id,
                            event_id = %event.event_id,
                            kind = event.kind.as_str(),
                            severity = event.severity.as_str(),
                            "alert {}",
                            event.kind.as_str()
                        );
                        if maintenance::published(event) {
                            dependency::deliver(&self.store, &self.publisher, &suppression, event)
                                .await?;
                        }
                    }
                    dependency::after_commit(&self.store, tenant, device, &events, now).await?;
                    return Ok(BatchOutcome {
                        events,
                        states_written: changes.len(),
                        checks: evaluation.checks,
                    });
                }
            }
        }
        Err(EvaluateError::Contended)
    }

    async fn publish(&self, tenant: &TenantId, event: &AlertEvent) -> Result<(), StoreError> {
        self.publisher.publish(event).await?;
        self.store
            .published(tenant, &event.device_id, &event.event_id)
            .await
    }
}

/// The event of one transition; `before` is the state the transition started from.
fn alert_event(
    envelope: &BatchEnvelope,
    t: &RuleTransition,
    before: RuleState,
) -> Option<AlertEvent> {
    let kind = match AlertEventKind::of(t.transition.from, t.transition.to) {
        Some(kind) => kind,
        None if t.reminder => AlertEventKind::Reminder,
        None => return None,
    };
    let severity = t
        .transition
        .to
        .or(t.transition.from)
        .unwrap_or(Severity::Info);
    let alert_id = derived_id(
        "al",
        &[
            envelope.tenant_id.as_str(),
            envelope.device_id.as_str(),
            t.rule.as_str(),
            &t.subject,
        ],
    );
    // The alert's opening time: this transition's for an open, else the state's.
    let opened_ms = match kind {
        AlertEventKind::Opened => t.transition.at_ms,
        _ => before.firing_since_ms.unwrap_or(t.transition.at_ms),
    };
    let event_id = derived_id(
        "evt",
        &[
            &alert_id,
            &t.transition.at_ms.to_string(),
            kind.as_str(),
            severity.as_str(),
        ],
    );
    Some(AlertEvent {
        event_id,
        kind,
        alert_id,
        tenant_id: envelope.tenant_id.clone(),
        client_id: envelope.client_id.clone(),
        site_id: envelope.site_id.clone(),
        device_id: envelope.device_id.clone(),
        device_name: envelope.batch.agent.hostname.clone(),
        rule_id: t.rule.to_string(),
        family: t.family,
        subject: t.subject.clone(),
        metric: t.metric.clone(),
        severity,
        previous_severity: t.transition.from.filter(|_| kind != AlertEventKind::Opened),
        value: t.transition.value,
        threshold: t.threshold,
        at_ms: t.transition.at_ms,
        opened_ms,
        maintenance: None,
        detail: t.detail.clone(),
    })
}

/// The "resolved" event of a device that was down and sent a batch again.
fn back_up_event(envelope: &BatchEnvelope, down: RuleState, at_ms: i64) -> AlertEvent {
    let severity = down.firing.unwrap_or(Severity::Critical);
    let alert_id = derived_id(
        "al",
        &[
            envelope.tenant_id.as_str(),
            envelope.device_id.as_str(),
            silence::HEARTBEAT_RULE,
            "",
        ],
    );
    let kind = AlertEventKind::Resolved;
    AlertEvent {
        event_id: derived_id(
            "evt",
            &[
                &alert_id,
                &at_ms.to_string(),
                kind.as_str(),
                severity.as_str(),
            ],
        ),
        kind,
        alert_id,
        tenant_id: envelope.tenant_id.clone(),
        client_id: envelope.client_id.clone(),
        site_id: envelope.site_id.clone(),
        device_id: envelope.device_id.clone(),
        device_name: envelope.batch.agent.hostname.clone(),
        rule_id: silence::HEARTBEAT_RULE.into(),
        family: vigie_domain::alert::AlertFamily::DeviceDown,
        subject: String::new(),
        metric: "silence_s".into(),
        severity,
        previous_severity: Some(severity),
        value: ((at_ms - down.last_ms).max(0) / 1000) as f64,
        threshold: 0.0,
        at_ms,
        opened_ms: down.firing_since_ms.unwrap_or(at_ms),
        maintenance: None,
        detail: None,
    }
}
