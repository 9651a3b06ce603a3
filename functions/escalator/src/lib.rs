//! The escalator: runs each alert's escalation (see `vigie_domain::escalation`).
//!
//! Inputs, all at least once and in any order:
//! - **alert transitions** from the tenant's alerts topic (the escalate queue's subscription
//!   takes `opened`, `severity_raised` and `resolved`): an opening starts the matching
//!   policy's escalation on the episode, a resolution stops it;
//! - **wake-ups**: when the next step is due within SQS's 15-minute delay limit, a delayed
//!   message on the escalate queue carries the escalation's generation; it runs the step on
//!   time, or does nothing if the escalation has moved on since (acknowledged, resolved, or
//!   run by the sweeper);
//! - **the sweep** (every minute): asks the timer index for episodes due now and runs them —
//!   waits longer than 15 minutes, and anything a lost wake-up or a crash left behind;
//! - **the audit** (every 10 minutes): counts escalations due more than
//!   [`OVERDUE_AFTER_MS`] ago, which a working sweep never leaves, and runs them again.
//!
//! Exactly once in effect: a step runs inside one conditional write of the episode (version
//! read → version + 1) that also puts its notices in the episode's outbox; only the writer that
//! wins hands them to the notifier, and a notice handed over twice (a crash before the outbox
//! was cleared) is delivered once, because the notifier claims per notice and recipient. An
//! acknowledgement is a write on the same item, so it lands either before the step (the step
//! sees it and does nothing) or after (the step ran, once).

pub mod resolver;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{Instrument as _, error, info, info_span, warn};
use vigie_aws::alert_work::{DueEpisode, DynamoAlertWork};
use vigie_aws::devices::DynamoDevices;
use vigie_aws::escalations::{
    DynamoEscalations, EscalationQueue, MAX_DELAY_S, WakeUp, WakeUpMessage,
};
use vigie_domain::alert::{AlertEvent, AlertEventKind};
use vigie_domain::clock::Clock;
use vigie_domain::escalation::{
    AlertFacts, Escalation, EscalationPolicy, People, Resolver, choose,
};
use vigie_domain::ids::TenantId;
use vigie_domain::maintenance::MaintenanceEffect;
use vigie_domain::ports::{DeadLetters, StoreError};
use vigie_domain::workflow::{AlertWork, Stamp};
use vigie_edge::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

/// An escalation due longer ago than this is overdue: the sweep runs every minute.
pub const OVERDUE_AFTER_MS: i64 = 5 * 60_000;
/// How long a tenant's policies stay cached in a warm function.
pub const POLICY_TTL: Duration = Duration::from_secs(30);
/// Most episodes one sweep runs (the rest wait for the next minute).
pub const SWEEP_BUDGET: usize = 2_000;
/// Conflicting writes retried before leaving the episode to the next sweep.
const ATTEMPTS: usize = 5;
/// Who resolves an episode when a resolve step runs.
pub const POLICY_ACTOR: &str = "escalation policy";

/// Loads what a policy's steps need (calendars, schedules, groups).
pub trait RosterSource: Send + Sync {
    type Roster: Resolver + Send + Sync;
    fn load(
        &self,
        tenant: &TenantId,
        policy: &EscalationPolicy,
    ) -> impl Future<Output = Result<Self::Roster, StoreError>> + Send;
}

/// What one run of an episode did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fired {
    pub steps: usize,
    pub notices: usize,
    pub conflicts: usize,
    /// The wake-up's generation no longer matched: nothing done.
    pub stale: bool,
}

/// What a sweep or an audit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Episodes the index gave as due (for the audit: overdue).
    pub due: usize,
    pub steps: usize,
    pub notices: usize,
    pub conflicts: usize,
    pub failed: usize,
    pub elapsed_ms: u64,
}

/// A tenant's escalation policies and when they were read.
type CachedPolicies = (Instant, Arc<Vec<EscalationPolicy>>);

pub struct Escalator<R, K> {
    work: DynamoAlertWork,
    escalations: DynamoEscalations,
    queue: EscalationQueue,
    devices: DynamoDevices,
    users: vigie_aws::users::DynamoUsers,
    dead_letters: Box<dyn DeadLettersDyn>,
    rosters: R,
    clock: K,
    policies: Mutex<HashMap<TenantId, CachedPolicies>>,
}

/// Object-safe dead-letter sending.
pub trait DeadLettersDyn: Send + Sync {
    fn send<'a>(
        &'a self,
        body: &'a str,
        reason: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;
}

impl<T: DeadLetters> DeadLettersDyn for T {
    fn send<'a>(
        &'a self,
        body: &'a str,
        reason: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
        Box::pin(self.dead_letter(body, reason))
    }
}

impl<R: RosterSource, K: Clock> Escalator<R, K> {
    pub fn new(ports: &vigie_aws::adapters::AwsPorts, rosters: R, clock: K) -> Self {
        Self {
            work: ports.alert_work(),
            escalations: ports.escalations(),
            queue: ports.escalation_queue(),
            devices: ports.devices(),
            users: ports.users(),
            dead_letters: Box::new(ports.escalate_queue()),
            rosters,
            clock,
            policies: Mutex::new(HashMap::new()),
        }
    }

    async fn policies_of(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<Vec<EscalationPolicy>>, StoreError> {
        if let Ok(cache) = self.policies.lock()
            && let Some((at, p)) = cache.get(tenant)
            && at.elapsed() < POLICY_TTL
        {
            return Ok(Arc::clone(p));
        }
        let fresh = Arc::new(self.escalations.policies(tenant).await?);
        if let Ok(mut cache) = self.policies.lock() {
            cache.insert(tenant.clone(), (Instant::now(), Arc::clone(&fresh)));
        }
        Ok(fresh)
    }

    /// Handles one SQS batch of the escalate queue; reports the messages to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        for record in event.records {
            let span = info_span!("escalate", message_id = %record.message_id);
            let retry = async {
                let result = if let Ok(m) = serde_json::from_str::<WakeUpMessage>(&record.body) {
                    self.wake(&m.escalation_wake_up).await.map(|_| ())
                } else {
                    match serde_json::from_str::<AlertEvent>(&record.body) {
                        Ok(e) => self.on_event(&e).await,
                        Err(e) => {
                            let reason = format!("neither an alert event nor a wake-up: {e}");
                            warn!(reason = %reason, "poison message sent to the dead-letter queue");
                            return self.dead_letters.send(&record.body, &reason).await.is_err();
                        }
                    }
                };
                match result {
                    Ok(()) => false,
                    Err(e) => {
                        error!(error = %e, "escalation message failed; retrying later");
                        true
                    }
                }
            }
            .instrument(span)
            .await;
            if retry {
                failures.push(BatchItemFailure {
                    item_identifier: record.message_id,
                });
            }
        }
        SqsBatchResponse {
            batch_item_failures: failures,
        }
    }

    /// An alert transition: start, raise or stop the episode's escalation.
    pub async fn on_event(&self, e: &AlertEvent) -> Result<(), StoreError> {
        if matches!(
            e.maintenance_effect(),
            Some(
                MaintenanceEffect::Hidden
                    | MaintenanceEffect::Unannounced
                    | MaintenanceEffect::Quiet
            )
        ) {
            // Not announced: nobody is to be chased for it (the announcement after the
            // window comes as its own `opened` event and starts the escalation then).
            return Ok(());
        }
        match e.kind {
            AlertEventKind::Opened | AlertEventKind::SeverityRaised => self.start(e).await,
            AlertEventKind::Resolved => {
                let now = self.clock.now_ms();
                self.change(&e.tenant_id, &e.alert_id, e.opened_ms, |w| {
                    let Some(esc) = &mut w.escalation else {
                        return false;
                    };
                    let before = esc.generation;
                    esc.stop("alert_resolved", now, "the alert resolved".to_owned());
                    esc.generation != before
                })
                .await
            }
            _ => Ok(()),
        }
    }

    /// Starts the first applicable policy's escalation on the event's episode (once: an
    /// episode that has one keeps it; a raise updates the severity it climbs from).
    async fn start(&self, e: &AlertEvent) -> Result<(), StoreError> {
        let policies = self.policies_of(&e.tenant_id).await?;
        if policies.is_empty() {
            return Ok(());
        }
        let mut facts = AlertFacts {
            tenant_id: e.tenant_id.clone(),
            alert_id: e.alert_id.clone(),
            opened_ms: e.opened_ms,
            client_id: e.client_id.clone(),
            site_id: e.site_id.clone(),
            device_id: e.device_id.clone(),
            device_name: e.device_name.clone(),
            family: e.family,
            severity: e.severity,
            subject: e.subject.clone(),
            detail: e.detail.clone(),
            role: None,
        };
        if policies.iter().any(|p| p.applies.needs_role()) {
            facts.role = self
                .devices
                .get(&e.tenant_id, &e.device_id)
                .await?
                .and_then(|d| d.tags.get("role").cloned());
        }
        let Some(policy) = choose(policies.iter(), &facts) else {
            return Ok(());
        };
        let roster = self.rosters.load(&e.tenant_id, policy).await?;
        for _ in 0..ATTEMPTS {
            let (mut work, version) = self
                .work
                .work(&e.tenant_id, &e.alert_id, e.opened_ms)
                .await?;
            if work.resolved.is_some() {
                return Ok(());
            }
            let now = self.clock.now_ms();
            match &mut work.escalation {
                Some(esc) => {
                    if esc.facts.severity >= facts.severity {
                        return Ok(());
                    }
                    esc.generation += 1;
                    esc.facts.severity = facts.severity;
                }
                None => {
                    let mut esc = Escalation::start(policy, facts.clone(), now, &roster);
                    if let Some(ack) = &work.acknowledged {
                        // Acknowledged before the escalation began: it starts acknowledged.
                        esc.acknowledged(&ack.by, now);
                    }
                    work.escalation = Some(esc);
                }
            }
            if self
                .work
                .save(&e.tenant_id, &e.alert_id, e.opened_ms, &work, version)
                .await?
            {
                info!(tenant_id = %e.tenant_id, alert_id = %e.alert_id, policy_id = %policy.policy_id, "escalation started");
                // The first step is usually due now: run it without waiting for a sweep.
                self.fire(
                    &e.tenant_id,
                    &e.alert_id,
                    e.opened_ms,
                    None,
                    Some((work, version + 1)),
                )
                .await?;
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "the alert episode kept changing; retrying".into(),
        ))
    }

    /// Read-modify-write of an episode; `change` says whether it changed anything.
    async fn change(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        opened_ms: i64,
        change: impl Fn(&mut AlertWork) -> bool,
    ) -> Result<(), StoreError> {
        for _ in 0..ATTEMPTS {
            let (mut work, version) = self.work.work(tenant, alert_id, opened_ms).await?;
            if version == 0 || !change(&mut work) {
                return Ok(());
            }
            if self
                .work
                .save(tenant, alert_id, opened_ms, &work, version)
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "the alert episode kept changing; retrying".into(),
        ))
    }

    /// A wake-up: runs the episode if its escalation is still at the wake-up's generation.
    pub async fn wake(&self, w: &WakeUp) -> Result<Fired, StoreError> {
        self.fire(
            &w.tenant_id,
            &w.alert_id,
            w.opened_ms,
            Some(w.generation),
            None,
        )
        .await
    }

    /// Runs whatever is due on one episode; hands notices over; schedules the next wake-up.
    /// `expected`: a wake-up's generation (nothing happens if the escalation moved on);
    /// `read`: the episode as already read (from the timer index), to save a read.
    pub async fn fire(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        opened_ms: i64,
        expected: Option<u64>,
        mut read: Option<(AlertWork, u64)>,
    ) -> Result<Fired, StoreError> {
        let mut fired = Fired::default();
        for _ in 0..ATTEMPTS {
            let (mut work, version) = match read.take() {
                Some(r) => r,
                None => self.work.work(tenant, alert_id, opened_ms).await?,
            };
            let Some(esc) = work.escalation.as_mut() else {
                return Ok(fired);
            };
            if let Some(g) = expected
                && esc.generation != g
                && esc.outbox.is_empty()
            {
                fired.stale = true;
                return Ok(fired);
            }
            let now = self.clock.now_ms();
            if esc.outbox.is_empty() {
                if esc.due_ms.is_none_or(|d| d > now) {
                    // Nothing due (an early or repeated wake-up): no roster reads.
                    return Ok(fired);
                }
                let before = esc.generation;
                let assignee = work.assignee.clone();
                let policy = esc.policy.clone();
                let roster = self.rosters.load(tenant, &policy).await?;
                let esc = work.escalation.as_mut().expect("checked above");
                let out = esc.run_due(
                    now,
                    &People {
                        assignee: assignee.as_deref(),
                    },
                    &roster,
                );
                if esc.generation == before {
                    return Ok(fired);
                }
                self.address_users(tenant, esc).await?;
                if out.ack_lapsed {
                    work.acknowledged = None;
                }
                if out.resolve && work.resolved.is_none() {
                    work.resolved = Some(Stamp {
                        by: POLICY_ACTOR.to_owned(),
                        at_ms: now,
                    });
                }
                if !self
                    .work
                    .save(tenant, alert_id, opened_ms, &work, version)
                    .await?
                {
                    fired.conflicts += 1;
                    continue;
                }
                fired.steps += out.steps_run;
                return self
                    .hand_over(tenant, alert_id, opened_ms, work, version + 1, fired)
                    .await;
            }
            // Notices left in the outbox by a writer that stopped: hand them over again.
            return self
                .hand_over(tenant, alert_id, opened_ms, work, version, fired)
                .await;
        }
        Ok(fired)
    }

    /// Fills in the e-mail address on record of each user a new notice names (looked up when
    /// the step runs, like who is on call).
    async fn address_users(
        &self,
        tenant: &TenantId,
        esc: &mut Escalation,
    ) -> Result<(), StoreError> {
        let mut known: HashMap<String, Option<String>> = HashMap::new();
        for notice in &mut esc.outbox {
            for (user_id, address) in notice.users_mut() {
                if address.is_some() {
                    continue;
                }
                if !known.contains_key(user_id) {
                    let email = self
                        .users
                        .tenant_user(tenant, user_id)
                        .await?
                        .filter(|u| u.removed_ms.is_none())
                        .and_then(|u| u.email);
                    known.insert(user_id.to_owned(), email);
                }
                *address = known.get(user_id).cloned().flatten();
            }
        }
        Ok(())
    }

    /// Sends the outbox's notices, clears it (conditionally: if someone changed the episode
    /// meanwhile, the next run sends them again, and the notifier delivers them once), and
    /// schedules a wake-up for a step due within 15 minutes.
    async fn hand_over(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        opened_ms: i64,
        mut work: AlertWork,
        version: u64,
        mut fired: Fired,
    ) -> Result<Fired, StoreError> {
        let Some(esc) = work.escalation.as_mut() else {
            return Ok(fired);
        };
        if !esc.outbox.is_empty() {
            self.queue.send_notices(&esc.outbox).await?;
            fired.notices += esc.outbox.len();
            esc.outbox.clear();
            if !self
                .work
                .save(tenant, alert_id, opened_ms, &work, version)
                .await?
            {
                fired.conflicts += 1;
                return Ok(fired);
            }
        }
        let Some(esc) = work.escalation.as_ref() else {
            return Ok(fired);
        };
        if let Some(due) = esc.due_ms {
            let delay_s = (due - self.clock.now_ms() + 999) / 1000;
            if delay_s <= MAX_DELAY_S {
                let wake = WakeUp {
                    tenant_id: tenant.clone(),
                    alert_id: alert_id.to_owned(),
                    opened_ms,
                    generation: esc.generation,
                };
                if let Err(e) = self.queue.wake_up(&wake, delay_s.max(0)).await {
                    // The sweep runs it instead, within a minute of its time.
                    warn!(error = %e, "wake-up not scheduled; the sweep will run the step");
                }
            }
        }
        Ok(fired)
    }

    /// Runs every episode the timer index gives as due now.
    pub async fn sweep(&self) -> Result<SweepReport, StoreError> {
        let started = Instant::now();
        let now = self.clock.now_ms();
        let due = self.work.due_timers(now, SWEEP_BUDGET).await?;
        let mut report = self.run_all(due, None).await;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        info!(
            event = "escalation_sweep",
            due = report.due,
            steps = report.steps,
            notices = report.notices,
            conflicts = report.conflicts,
            failed = report.failed,
            elapsed_ms = report.elapsed_ms,
            "escalation sweep"
        );
        Ok(report)
    }

    /// Finds escalations overdue by more than [`OVERDUE_AFTER_MS`], writes the finding into
    /// their trace, and runs them. `due` in the report is how many it found: a working
    /// sweep leaves none.
    pub async fn audit(&self) -> Result<SweepReport, StoreError> {
        let started = Instant::now();
        let now = self.clock.now_ms();
        let overdue = self
            .work
            .due_timers(now - OVERDUE_AFTER_MS, SWEEP_BUDGET)
            .await?;
        let mut report = self.run_all(overdue, Some(now)).await;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        if report.due > 0 {
            error!(
                event = "escalation_audit",
                overdue = report.due,
                "escalations were overdue; rescheduled"
            );
        } else {
            info!(
                event = "escalation_audit",
                overdue = 0,
                "no escalation overdue"
            );
        }
        Ok(report)
    }

    async fn run_all(&self, due: Vec<DueEpisode>, audit_at: Option<i64>) -> SweepReport {
        let mut report = SweepReport {
            due: due.len(),
            ..SweepReport::default()
        };
        for mut ep in due {
            if let Some(now) = audit_at
                && let Some(esc) = ep.work.escalation.as_mut()
            {
                esc.rescheduled(now, now - ep.due_ms);
                match self
                    .work
                    .save(&ep.tenant, &ep.alert_id, ep.opened_ms, &ep.work, ep.version)
                    .await
                {
                    Ok(true) => ep.version += 1,
                    Ok(false) => {
                        report.conflicts += 1;
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, alert_id = %ep.alert_id, "overdue escalation not rescheduled");
                        report.failed += 1;
                        continue;
                    }
                }
            }
            match self
                .fire(
                    &ep.tenant,
                    &ep.alert_id,
                    ep.opened_ms,
                    None,
                    Some((ep.work, ep.version)),
                )
                .await
            {
                Ok(f) => {
                    report.steps += f.steps;
                    report.notices += f.notices;
                    report.conflicts += f.conflicts;
                }
                Err(e) => {
                    warn!(error = %e, alert_id = %ep.alert_id, "escalation step failed; the next sweep retries");
                    report.failed += 1;
                }
            }
        }
        report
    }
}
