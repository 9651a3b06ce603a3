//! Maintenance windows applied to alert transitions: the evaluator's (and the silence
//! sweeper's) one decision point.
//!
//! # Semantics
//!
//! A window is *open for an event* when it is active (`vigie-calendar`'s `is_active`) at the
//! event's instant — the sample's time for a batch, the sweep's time for "device down" — and
//! its scope covers the device (tenant, client company, site, device or tag) and its
//! `Suppress` covers the alert's family. An `alerts` window beats a `notifications` one.
//!
//! Every alert is in one of three holds, kept as a `HELD#<alert>` item beside the device's
//! rule states (the latest event of the alert, the template of the announcement it is owed):
//! - **none**: not firing, or firing and announced;
//! - **hidden**: began inside an `alerts` window; Vigie knows (the rule state advanced, the
//!   alert record says `suppressed` with the window), nobody was told;
//! - **unannounced**: opened inside a `notifications` window; the alert is open and visible
//!   in the API, every channel's delivery says `suppressed_maintenance`.
//!
//! For each transition (in time order), then once more at the batch's last sample time:
//! 1. **Raise once when the window ends.** A hidden alert whose `alerts` window is no longer
//!    open, or an unannounced one with no window open, is announced now: an `opened` event with
//!    `opened_ms` = the real start and the note `raised_after_window`. If a `notifications`
//!    window is open instead, a hidden alert becomes unannounced (opened, not sent). The event
//!    id is derived from (alert, real start, effect), and the commit is conditioned on the rule
//!    state's version: a redelivered batch, or a second evaluator, cannot raise it twice.
//! 2. **The transition itself** (see [`effect`]): an opening inside an `alerts` window is
//!    hidden, inside a `notifications` window unannounced; changes of a held alert keep its
//!    hold, and its resolution inside the window ends the hold silently — no stale "resolved"
//!    flood when the window ends. An alert announced before the window keeps its state: its
//!    severity changes inside a window are recorded but not sent (`quiet`), and its resolution
//!    **is sent** — it was announced, so its end must be too.
//!
//! A quiet batch reads no more than before: windows come with the policies (same cache), holds
//! with the rule states (same query).

use std::collections::BTreeMap;

use vigie_calendar::MaintenanceWindow;
use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, derived_id};
use vigie_domain::device::Device;
use vigie_domain::envelope::BatchEnvelope;
use vigie_domain::ids::{ClientId, DeviceId, SiteId};
use vigie_domain::maintenance::{MaintenanceEffect, MaintenanceNote};
use vigie_domain::policy::RuleId;
use vigie_domain::ports::{DeviceEvaluationState, StateChange};

/// The device an event is about, as window scopes see it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub device: &'a DeviceId,
    pub client: &'a ClientId,
    pub site: &'a SiteId,
    pub tags: &'a BTreeMap<String, String>,
}

impl<'a> Target<'a> {
    pub fn of_envelope(e: &'a BatchEnvelope) -> Self {
        Self {
            device: &e.device_id,
            client: &e.client_id,
            site: &e.site_id,
            tags: &e.tags,
        }
    }

    pub fn of_device(d: &'a Device) -> Self {
        Self {
            device: &d.id,
            client: &d.placement.client,
            site: &d.placement.site,
            tags: &d.tags,
        }
    }
}

/// What is silenced for one alert family at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// No window silences it.
    Open,
    /// Alerts are raised, nobody is notified.
    Notifications,
    /// No alert is raised.
    Alerts,
}

/// The window behind a [`Silence`]: its id and the end of its current occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWindow {
    pub id: String,
    pub end_ms: i64,
}

/// What the tenant's windows silence for `family` on `target` at `at_ms`, and which window
/// (an `alerts` window first, then the one ending last).
pub fn silence(
    windows: &[MaintenanceWindow],
    target: Target<'_>,
    family: AlertFamily,
    at_ms: i64,
) -> (Silence, Option<OpenWindow>) {
    let mut best: Option<(Silence, OpenWindow)> = None;
    for w in windows {
        if !w
            .scope
            .covers(target.device, target.client, target.site, target.tags)
        {
            continue;
        }
        let level = if w.suppress.silences_alert(family) {
            Silence::Alerts
        } else if w.suppress.silences_notification(family) {
            Silence::Notifications
        } else {
            continue;
        };
        let Some(end_ms) = w
            .occurrences(at_ms, at_ms.saturating_add(1))
            .iter()
            .filter(|(s, e)| *s <= at_ms && at_ms < *e)
            .map(|(_, e)| *e)
            .max()
        else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((l, o)) => {
                (level == Silence::Alerts && *l != Silence::Alerts)
                    || (level == *l && end_ms > o.end_ms)
            }
        };
        if better {
            best = Some((
                level,
                OpenWindow {
                    id: w.id.to_string(),
                    end_ms,
                },
            ));
        }
    }
    match best {
        Some((l, w)) => (l, Some(w)),
        None => (Silence::Open, None),
    }
}

/// Where an alert stands with maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    None,
    Hidden,
    Unannounced,
}

impl Hold {
    fn of(held: Option<&AlertEvent>) -> Self {
        match held.and_then(AlertEvent::maintenance_effect) {
            Some(MaintenanceEffect::Hidden) => Self::Hidden,
            Some(MaintenanceEffect::Unannounced) => Self::Unannounced,
            _ => Self::None,
        }
    }

    /// The hold after an event with `effect` of `kind`.
    fn after(self, kind: AlertEventKind, effect: Option<MaintenanceEffect>) -> Self {
        match effect {
            Some(MaintenanceEffect::Hidden) if kind != AlertEventKind::Resolved => Self::Hidden,
            Some(MaintenanceEffect::Unannounced) if kind != AlertEventKind::Resolved => {
                Self::Unannounced
            }
            Some(
                MaintenanceEffect::Hidden
                | MaintenanceEffect::Unannounced
                | MaintenanceEffect::RaisedAfterWindow,
            ) => Self::None,
            _ => self,
        }
    }
}

/// Step 1: whether a held alert is announced (or opened unannounced) now, given what is
/// silenced now. `Some(effect)` is the effect of the `opened` event to emit.
pub fn catch_up(hold: Hold, now: Silence) -> Option<MaintenanceEffect> {
    match (hold, now) {
        (Hold::Hidden, Silence::Open) | (Hold::Unannounced, Silence::Open) => {
            Some(MaintenanceEffect::RaisedAfterWindow)
        }
        (Hold::Hidden, Silence::Notifications) => Some(MaintenanceEffect::Unannounced),
        _ => None,
    }
}

/// Step 2: the effect on a transition of `kind`, given the alert's hold (after step 1) and
/// what is silenced at the transition's instant. `None`: published and sent as usual.
pub fn effect(hold: Hold, now: Silence, kind: AlertEventKind) -> Option<MaintenanceEffect> {
    use AlertEventKind::{Opened, Resolved};
    match hold {
        Hold::Hidden => Some(MaintenanceEffect::Hidden),
        Hold::Unannounced => Some(MaintenanceEffect::Unannounced),
        Hold::None => match (kind, now) {
            (_, Silence::Open) => None,
            (Opened, Silence::Alerts) => Some(MaintenanceEffect::Hidden),
            (Opened, Silence::Notifications) => Some(MaintenanceEffect::Unannounced),
            // It was announced: its end is sent whatever the window says.
            (Resolved, _) => None,
            (_, _) => Some(MaintenanceEffect::Quiet),
        },
    }
}

/// What the pure decision says for one transition: the catch-up announcement first (if any),
/// then the transition's own effect. The table tests read this.
pub fn decide(
    hold: Hold,
    now: Silence,
    kind: AlertEventKind,
) -> (Option<MaintenanceEffect>, Option<MaintenanceEffect>) {
    let first = catch_up(hold, now);
    let hold = match first {
        Some(e) => hold.after(AlertEventKind::Opened, Some(e)),
        None => hold,
    };
    (first, effect(hold, now, kind))
}

/// The `opened` event announcing a held alert at `at_ms`, from its held template.
fn announcement(
    template: &AlertEvent,
    effect: MaintenanceEffect,
    severity: vigie_domain::alert::Severity,
    at_ms: i64,
    window: Option<&OpenWindow>,
) -> AlertEvent {
    let note = match (effect, window) {
        (MaintenanceEffect::Unannounced, Some(w)) => MaintenanceNote {
            effect,
            window_id: w.id.clone(),
            window_end_ms: w.end_ms,
        },
        // Raised after the window it began in: name that window.
        _ => MaintenanceNote {
            effect,
            window_id: template
                .maintenance
                .as_ref()
                .map(|n| n.window_id.clone())
                .unwrap_or_default(),
            window_end_ms: template.maintenance.as_ref().map_or(at_ms, |n| n.window_end_ms),
        },
    };
    AlertEvent {
        event_id: derived_id(
            "evt",
            &[
                &template.alert_id,
                &template.opened_ms.to_string(),
                "maintenance",
                effect.as_str(),
            ],
        ),
        kind: AlertEventKind::Opened,
        severity,
        previous_severity: None,
        at_ms,
        maintenance: Some(note),
        ..template.clone()
    }
}

/// Applies the tenant's windows to a batch's (or a sweep's) events, in place: stamps each
/// with its maintenance effect, inserts the announcements owed, and adds a state change
/// (same state, version-conditioned) for any key whose announcement has no other change, so
/// the commit makes it happen once. `end_ms`: the batch's last sample time (or the sweep's
/// time), where held alerts are looked at once more.
pub fn apply(
    windows: &[MaintenanceWindow],
    target: Target<'_>,
    stored: &DeviceEvaluationState,
    events: &mut Vec<AlertEvent>,
    changes: &mut Vec<StateChange>,
    end_ms: Option<i64>,
) {
    if windows.is_empty() && stored.held.is_empty() {
        return;
    }
    let mut held: BTreeMap<String, AlertEvent> = stored
        .held
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = Vec::with_capacity(events.len());
    for mut e in events.drain(..) {
        let (now, window) = silence(windows, target, e.family, e.at_ms);
        let template = held.get(&e.alert_id);
        let mut hold = Hold::of(template);
        if let (Some(first), Some(t)) = (catch_up(hold, now), template) {
            let severity = e.previous_severity.unwrap_or(t.severity);
            let a = announcement(t, first, severity, e.at_ms, window.as_ref());
            hold = hold.after(AlertEventKind::Opened, Some(first));
            out.push(a);
        }
        let eff = effect(hold, now, e.kind);
        if let Some(eff) = eff {
            let (window_id, window_end_ms) = match (&window, template) {
                (Some(w), _) => (w.id.clone(), w.end_ms),
                (None, Some(t)) => t
                    .maintenance
                    .as_ref()
                    .map_or((String::new(), e.at_ms), |n| {
                        (n.window_id.clone(), n.window_end_ms)
                    }),
                (None, None) => (String::new(), e.at_ms),
            };
            if e.kind != AlertEventKind::Opened && template.is_some() {
                // A held alert's changes keep the real start.
                e.opened_ms = template.map_or(e.opened_ms, |t| t.opened_ms);
            }
            e.maintenance = Some(MaintenanceNote {
                effect: eff,
                window_id,
                window_end_ms,
            });
        }
        match hold.after(e.kind, eff) {
            Hold::None => {
                held.remove(&e.alert_id);
            }
            _ => {
                held.insert(e.alert_id.clone(), e.clone());
            }
        }
        out.push(e);
    }
    // Held alerts with no transition in this batch: has their window ended?
    if let Some(end) = end_ms {
        let touched: Vec<String> = out.iter().map(|e| e.alert_id.clone()).collect();
        for (alert_id, t) in &held {
            if touched.contains(alert_id) {
                continue;
            }
            let Ok(rule) = RuleId::parse(&t.rule_id) else {
                continue;
            };
            let key = (rule, t.subject.clone());
            let firing = changes
                .iter()
                .find(|c| c.key == key)
                .map(|c| c.state)
                .or_else(|| stored.states.get(&key).map(|v| v.state))
                .and_then(|s| s.firing);
            let Some(severity) = firing else {
                continue;
            };
            let (now, window) = silence(windows, target, t.family, end);
            let Some(first) = catch_up(Hold::of(Some(t)), now) else {
                continue;
            };
            out.push(announcement(t, first, severity, end, window.as_ref()));
            if !changes.iter().any(|c| c.key == key)
                && let Some(v) = stored.states.get(&key)
            {
                changes.push(StateChange {
                    key,
                    state: v.state,
                    read_version: Some(v.version),
                });
            }
        }
    }
    *events = out;
}

/// Whether an event goes to the alerts topic (a hidden one is only recorded).
pub fn published(event: &AlertEvent) -> bool {
    event.maintenance_effect().is_none_or(|m| m.published())
}

/// When the window holding `event` back ends, if it holds it back (for the sweeper, which
/// must look at a silent device again then).
pub fn held_until(event: &AlertEvent) -> Option<i64> {
    match &event.maintenance {
        Some(n)
            if matches!(
                n.effect,
                MaintenanceEffect::Hidden | MaintenanceEffect::Unannounced
            ) && event.kind != AlertEventKind::Resolved =>
        {
            Some(n.window_end_ms)
        }
        _ => None,
    }
}
