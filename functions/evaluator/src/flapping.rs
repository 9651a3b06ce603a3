//! Flapping in the evaluator (the rules are in `vigie_domain::flapping`): a batch's transition
//! events pass through each (rule, subject)'s flap state, kept in its rule state. The transition
//! that makes a rule flapping is announced as `flapping`; the next ones are committed to the
//! state but not announced; once the rule has been stable for the settle period — judged at the
//! device's batches, on sample time — one event tells how it ended: `resolved`, or `settled`
//! (still open at its severity).
//!
//! The heartbeat rule is left alone (a device that keeps dropping off is the dependency map's
//! and the sweeper's business). A quiet device costs nothing more: the flap state only changes
//! with a transition or at the end of an episode.

use std::collections::HashMap;

use vigie_domain::alert::{AlertEvent, AlertEventKind, Severity, derived_id};
use vigie_domain::envelope::BatchEnvelope;
use vigie_domain::flapping::{FlapPolicy, FlapVerdict, Settled};
use vigie_domain::policy::{EffectivePolicy, RuleId, StateKey};
use vigie_domain::ports::{DeviceEvaluationState, StateChange};

use crate::silence::HEARTBEAT_RULE;

/// Passes `events` through the flap states of their rules and ends the episodes that settled
/// by the batch's last sample. Updates `changes` with the flap states.
pub fn apply(
    policy: &FlapPolicy,
    envelope: &BatchEnvelope,
    effective: &EffectivePolicy,
    stored: &DeviceEvaluationState,
    events: &mut Vec<AlertEvent>,
    changes: &mut Vec<StateChange>,
) {
    // Each change starts from the stored flap state, whatever the rule kind did with it.
    for change in changes.iter_mut() {
        if let Some(before) = stored.states.get(&change.key)
            && change.state.flap.is_empty()
        {
            change.state.flap = before.state.flap;
        }
    }
    let index: HashMap<StateKey, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.clone(), i))
        .collect();
    events.retain_mut(|e| {
        if e.rule_id == HEARTBEAT_RULE {
            return true;
        }
        let Some(&i) = RuleId::parse(&e.rule_id)
            .ok()
            .and_then(|rule| index.get(&(rule, e.subject.clone())))
        else {
            return true;
        };
        let level = (e.kind != AlertEventKind::Resolved).then_some(e.severity);
        match changes[i]
            .state
            .flap
            .on_transition(policy, e.at_ms, level, e.value)
        {
            FlapVerdict::Announce => true,
            FlapVerdict::StartsFlapping => {
                e.kind = AlertEventKind::Flapping;
                e.event_id = event_id(&e.alert_id, e.at_ms, e.kind, e.severity);
                true
            }
            FlapVerdict::Quiet => false,
        }
    });
    // Episodes that settled: judged on the batch's last sample time.
    let Some(now) = envelope
        .batch
        .sample_time(envelope.batch.len().saturating_sub(1))
    else {
        return;
    };
    let mut keys: Vec<&StateKey> = stored
        .states
        .iter()
        .filter(|(_, v)| v.state.flap.is_flapping())
        .map(|(k, _)| k)
        .collect();
    keys.extend(
        changes
            .iter()
            .filter(|c| c.state.flap.is_flapping())
            .map(|c| &c.key),
    );
    keys.sort();
    keys.dedup();
    let keys: Vec<StateKey> = keys.into_iter().cloned().collect();
    for key in keys {
        let i = match index.get(&key) {
            Some(&i) => i,
            None => {
                let Some(v) = stored.states.get(&key) else {
                    continue;
                };
                changes.push(StateChange {
                    key: key.clone(),
                    state: v.state,
                    read_version: Some(v.version),
                });
                changes.len() - 1
            }
        };
        let firing = changes[i].state.firing;
        let since = changes[i].state.firing_since_ms;
        match changes[i].state.flap.settle(policy, now, firing) {
            Some(end) => {
                if let Some(e) = settled_event(envelope, effective, &key, end, since) {
                    events.push(e);
                }
            }
            None if !index.contains_key(&key) => {
                // Not settled and nothing else changed: no write.
                changes.pop();
            }
            None => {}
        }
    }
}

fn event_id(alert_id: &str, at_ms: i64, kind: AlertEventKind, severity: Severity) -> String {
    derived_id(
        "evt",
        &[
            alert_id,
            &at_ms.to_string(),
            kind.as_str(),
            severity.as_str(),
        ],
    )
}

/// The event ending an episode: `resolved` when the rule no longer fires, else `settled`.
fn settled_event(
    envelope: &BatchEnvelope,
    effective: &EffectivePolicy,
    (rule_id, subject): &StateKey,
    end: Settled,
    firing_since_ms: Option<i64>,
) -> Option<AlertEvent> {
    let (rule, _) = effective.rules.iter().find(|(r, _)| &r.id == rule_id)?;
    let (kind, severity, previous) = match end.firing {
        None => {
            let was = end.peak.unwrap_or(Severity::Warning);
            (AlertEventKind::Resolved, was, Some(was))
        }
        Some(s) => (AlertEventKind::Settled, s, end.peak.filter(|p| *p != s)),
    };
    // A threshold rule tells its metric and line; other kinds their kind's name.
    let (metric, threshold) = match &rule.check {
        vigie_domain::checks::Check::Threshold(c) => {
            let line = c
                .threshold
                .level(severity)
                .or(c.threshold.warning)
                .or(c.threshold.critical)
                .map_or(0.0, |l| l.threshold);
            (c.metric.as_str().to_owned(), line)
        }
        other => (other.kind().to_owned(), 0.0),
    };
    let alert_id = derived_id(
        "al",
        &[
            envelope.tenant_id.as_str(),
            envelope.device_id.as_str(),
            rule.id.as_str(),
            subject,
        ],
    );
    Some(AlertEvent {
        event_id: event_id(&alert_id, end.at_ms, kind, severity),
        kind,
        alert_id,
        tenant_id: envelope.tenant_id.clone(),
        client_id: envelope.client_id.clone(),
        site_id: envelope.site_id.clone(),
        device_id: envelope.device_id.clone(),
        device_name: envelope.batch.agent.hostname.clone(),
        rule_id: rule.id.to_string(),
        family: rule.family,
        subject: subject.clone(),
        metric,
        severity,
        previous_severity: previous,
        value: end.value,
        threshold,
        at_ms: end.at_ms,
        opened_ms: firing_since_ms.unwrap_or(end.since_ms),
        maintenance: None,
        detail: None,
    })
}
