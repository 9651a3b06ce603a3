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
            window_end_ms: template
                .maintenance
                .as_ref()
                .map_or(at_ms, |n| n.window_end_ms),
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

#[cfg(test)]
mod tests {
    use vigie_calendar::{LocalDate, LocalTime, Recurrence, Schedule, Suppress, Weekday, WindowId};
    use vigie_domain::alert::Severity;
    use vigie_domain::fixtures::event;
    use vigie_domain::ids::TenantId;
    use vigie_domain::policy::Scope;
    use vigie_domain::ports::Versioned;
    use vigie_domain::rules::RuleState;

    use super::*;
    use AlertEventKind::{Opened, Resolved, SeverityLowered, SeverityRaised};
    use MaintenanceEffect::{Hidden, Quiet, RaisedAfterWindow, Unannounced};

    const HOUR: i64 = 3_600_000;

    fn utc(s: &str) -> i64 {
        // "2026-03-29T00:30Z" without a time library: days from the civil date.
        let (date, time) = s.trim_end_matches('Z').split_once('T').expect("T");
        let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("n")).collect();
        let t: Vec<i64> = time.split(':').map(|x| x.parse().expect("n")).collect();
        let (y, m) = if d[1] <= 2 {
            (d[0] - 1, d[1] + 9)
        } else {
            (d[0], d[1] - 3)
        };
        let era_day = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + d[2] - 1;
        let days = era_day - 719_468;
        let secs = t.get(2).copied().unwrap_or(0);
        ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + secs * 1000
    }

    #[test]
    fn the_decision_table() {
        use Hold as H;
        use Silence::{Alerts as A, Notifications as N, Open as O};
        // (hold before, silenced at the transition's instant, transition) →
        // (announcement emitted first, effect on the transition)
        let table = [
            // No window: as if maintenance did not exist.
            (H::None, O, Opened, None, None),
            (H::None, O, SeverityRaised, None, None),
            (H::None, O, Resolved, None, None),
            // Opened inside a window.
            (H::None, A, Opened, None, Some(Hidden)),
            (H::None, N, Opened, None, Some(Unannounced)),
            // Announced before the window: changes quiet, the end is sent.
            (H::None, A, SeverityRaised, None, Some(Quiet)),
            (H::None, N, SeverityLowered, None, Some(Quiet)),
            (H::None, A, Resolved, None, None),
            (H::None, N, Resolved, None, None),
            // Hidden, the window still open: everything stays hidden, the end too.
            (H::Hidden, A, SeverityRaised, None, Some(Hidden)),
            (H::Hidden, A, Resolved, None, Some(Hidden)),
            // Hidden, the window over at this transition: raised once, then the transition.
            (H::Hidden, O, SeverityRaised, Some(RaisedAfterWindow), None),
            (H::Hidden, O, Resolved, Some(RaisedAfterWindow), None),
            // Hidden, a notifications window follows: opened but not sent, still owed.
            (
                H::Hidden,
                N,
                SeverityLowered,
                Some(Unannounced),
                Some(Unannounced),
            ),
            // Unannounced: recorded, not sent, while a window is open; its end inside the
            // window is not sent either (never announced).
            (H::Unannounced, N, SeverityRaised, None, Some(Unannounced)),
            (H::Unannounced, A, SeverityRaised, None, Some(Unannounced)),
            (H::Unannounced, N, Resolved, None, Some(Unannounced)),
            (H::Unannounced, O, Resolved, Some(RaisedAfterWindow), None),
        ];
        for (hold, now, kind, first, then) in table {
            assert_eq!(
                decide(hold, now, kind),
                (first, then),
                "{hold:?} {now:?} {kind:?}"
            );
        }
        // The holds an effect leaves.
        assert_eq!(Hold::None.after(Opened, Some(Hidden)), Hold::Hidden);
        assert_eq!(Hold::Hidden.after(Resolved, Some(Hidden)), Hold::None);
        assert_eq!(
            Hold::Hidden.after(Opened, Some(RaisedAfterWindow)),
            Hold::None
        );
        assert_eq!(Hold::None.after(SeverityRaised, Some(Quiet)), Hold::None);
    }

    fn weekly(
        zone: &str,
        day: Weekday,
        start: &str,
        minutes: u32,
        alerts: bool,
    ) -> MaintenanceWindow {
        let w = MaintenanceWindow {
            id: WindowId::parse("sunday-patching").expect("id"),
            tenant: TenantId::parse("acme-msp").expect("id"),
            name: "Sunday patching".into(),
            scope: Scope::Tenant,
            time_zone: zone.into(),
            schedule: Schedule::Recurring {
                rule: Recurrence::Weekly { days: vec![day] },
                start_time: start.parse::<LocalTime>().expect("time"),
                duration_minutes: minutes,
                from_date: "2026-01-01".parse::<LocalDate>().expect("date"),
                until_date: None,
            },
            suppress: Suppress {
                notifications: !alerts,
                alerts,
                families: vec![],
            },
        };
        assert_eq!(w.validate(), Ok(()));
        w
    }

    /// Device state and holds as the store would keep them after committing `events`.
    struct Device {
        stored: DeviceEvaluationState,
    }

    impl Device {
        fn new() -> Self {
            Self {
                stored: DeviceEvaluationState::default(),
            }
        }

        fn key() -> vigie_domain::policy::StateKey {
            let e = event(Opened);
            (RuleId::parse(&e.rule_id).expect("rule"), e.subject)
        }

        /// One evaluation: the engine's `events` (with their state), windows applied, then
        /// "committed". Returns what was committed.
        fn evaluate(
            &mut self,
            windows: &[MaintenanceWindow],
            mut events: Vec<AlertEvent>,
            firing: Option<Severity>,
            end_ms: i64,
        ) -> Vec<AlertEvent> {
            let e0 = event(Opened);
            let target = Target {
                device: &e0.device_id,
                client: &e0.client_id,
                site: &e0.site_id,
                tags: &BTreeMap::new(),
            };
            let before = self.stored.states.get(&Self::key()).copied();
            let mut changes = Vec::new();
            if !events.is_empty() {
                changes.push(StateChange {
                    key: Self::key(),
                    state: RuleState {
                        firing,
                        firing_since_ms: firing.map(|_| e0.opened_ms),
                        last_ms: end_ms,
                        ..RuleState::default()
                    },
                    read_version: before.map(|v| v.version),
                });
            }
            apply(
                windows,
                target,
                &self.stored,
                &mut events,
                &mut changes,
                Some(end_ms),
            );
            for c in &changes {
                assert_eq!(c.read_version, before.map(|v| v.version), "conditioned");
                self.stored.states.insert(
                    c.key.clone(),
                    Versioned {
                        state: c.state,
                        version: c.read_version.unwrap_or(0) + 1,
                    },
                );
            }
            for e in &events {
                match Hold::None.after(e.kind, e.maintenance_effect()) {
                    Hold::None
                        if e.maintenance_effect()
                            .is_some_and(|m| m == RaisedAfterWindow || e.kind == Resolved) =>
                    {
                        self.stored.held.remove(&e.alert_id);
                    }
                    Hold::None => {}
                    _ => {
                        self.stored.held.insert(e.alert_id.clone(), e.clone());
                    }
                }
            }
            events
        }
    }

    fn at(kind: AlertEventKind, at_ms: i64, opened_ms: i64) -> AlertEvent {
        let mut e = event(kind);
        e.at_ms = at_ms;
        e.opened_ms = opened_ms;
        e.event_id = derived_id("evt", &[&e.alert_id, &at_ms.to_string(), kind.as_str()]);
        e
    }

    fn effects(events: &[AlertEvent]) -> Vec<(AlertEventKind, Option<MaintenanceEffect>, i64)> {
        events
            .iter()
            .map(|e| (e.kind, e.maintenance_effect(), e.at_ms))
            .collect()
    }

    #[test]
    fn weekly_windows_across_the_2026_dst_changes_raise_at_the_right_utc_instants() {
        // A Sunday 01:00 window of 4 h (real time) in each zone. Each row: the zone, the
        // window's UTC start and end that Sunday.
        let rows = [
            // Paris, the Sunday before spring forward (CET, UTC+1).
            ("Europe/Paris", "2026-03-22T00:00Z", "2026-03-22T04:00Z"),
            // 03-29: 01:00 is still CET; the clocks jump at 02:00 but the window lasts 4 h.
            ("Europe/Paris", "2026-03-29T00:00Z", "2026-03-29T04:00Z"),
            // The Sunday after (CEST, UTC+2): Sunday 01:00 local is Saturday 23:00 UTC.
            ("Europe/Paris", "2026-04-04T23:00Z", "2026-04-05T03:00Z"),
            // 10-25: 01:00 is CEST (the clocks go back at 03:00).
            ("Europe/Paris", "2026-10-24T23:00Z", "2026-10-25T03:00Z"),
            ("Europe/Paris", "2026-11-01T00:00Z", "2026-11-01T04:00Z"),
            // New York: EST (UTC−5) until 03-08 02:00, then EDT (UTC−4) until 11-01 02:00.
            ("America/New_York", "2026-03-01T06:00Z", "2026-03-01T10:00Z"),
            ("America/New_York", "2026-03-08T06:00Z", "2026-03-08T10:00Z"),
            ("America/New_York", "2026-03-15T05:00Z", "2026-03-15T09:00Z"),
            // 11-01 01:00 happens twice: the first (EDT) is the start.
            ("America/New_York", "2026-11-01T05:00Z", "2026-11-01T09:00Z"),
            ("America/New_York", "2026-11-08T06:00Z", "2026-11-08T10:00Z"),
        ];
        for (zone, start, end) in rows {
            let (start, end) = (utc(start), utc(end));
            let w = weekly(zone, Weekday::Sunday, "01:00", 240, true);
            let windows = [w];
            let e0 = event(Opened);
            let tags = BTreeMap::new();
            let target = Target {
                device: &e0.device_id,
                client: &e0.client_id,
                site: &e0.site_id,
                tags: &tags,
            };
            let s = |t| silence(&windows, target, AlertFamily::Resources, t).0;
            assert_eq!(s(start - 1), Silence::Open, "{zone} just before {start}");
            assert_eq!(s(start), Silence::Alerts, "{zone} at {start}");
            assert_eq!(s(end - 1), Silence::Alerts, "{zone} just before {end}");
            assert_eq!(s(end), Silence::Open, "{zone} at {end}");
            let (_, open) = silence(&windows, target, AlertFamily::Resources, start + HOUR);
            assert_eq!(open.map(|w| w.end_ms), Some(end));

            // A problem from 30 min into the window, still there at its end.
            let began = start + HOUR / 2;
            let mut device = Device::new();
            let first = device.evaluate(
                &windows,
                vec![at(Opened, began, began)],
                Some(Severity::Warning),
                began,
            );
            assert_eq!(effects(&first), vec![(Opened, Some(Hidden), began)]);
            // Quiet batches inside the window: nothing; the last one a millisecond before.
            for t in [began + 60_000, end - 1] {
                assert!(
                    device.evaluate(&windows, vec![], None, t).is_empty(),
                    "{zone} {t}"
                );
            }
            // The first batch at the end raises it, once, with the real start.
            let mut redelivered = Device {
                stored: device.stored.clone(),
            };
            let raised = device.evaluate(&windows, vec![], None, end);
            assert_eq!(
                effects(&raised),
                vec![(Opened, Some(RaisedAfterWindow), end)]
            );
            assert_eq!(raised[0].opened_ms, began);
            assert_eq!(raised[0].severity, Severity::Warning);
            let note = raised[0].maintenance.as_ref().expect("note");
            assert_eq!(
                (note.window_id.as_str(), note.window_end_ms),
                ("sunday-patching", end)
            );
            // Another evaluator on the same stored state computes the same event (same id);
            // the version condition lets one commit.
            assert_eq!(redelivered.evaluate(&windows, vec![], None, end), raised);
            assert!(
                device
                    .evaluate(&windows, vec![], None, end + 60_000)
                    .is_empty()
            );
            assert!(device.stored.held.is_empty());
        }
    }

    #[test]
    fn a_problem_inside_the_window_leaves_nothing_and_an_announced_one_still_ends() {
        let windows = [weekly("Europe/Paris", Weekday::Sunday, "01:00", 240, true)];
        let (start, end) = (utc("2026-03-29T00:00Z"), utc("2026-03-29T04:00Z"));
        let began = start + HOUR;
        let mut device = Device::new();
        let opened = device.evaluate(
            &windows,
            vec![at(Opened, began, began)],
            Some(Severity::Warning),
            began,
        );
        assert_eq!(effects(&opened), vec![(Opened, Some(Hidden), began)]);
        let gone = device.evaluate(
            &windows,
            vec![at(Resolved, began + HOUR, began)],
            None,
            began + HOUR,
        );
        assert_eq!(effects(&gone), vec![(Resolved, Some(Hidden), began + HOUR)]);
        assert!(gone.iter().all(|e| !published(e)), "nothing published");
        assert!(
            device
                .evaluate(&windows, vec![], None, end + HOUR)
                .is_empty(),
            "no flood"
        );

        // Announced before the window: its resolution inside is published.
        let before = start - HOUR;
        let mut device = Device::new();
        let opened = device.evaluate(
            &windows,
            vec![at(Opened, before, before)],
            Some(Severity::Warning),
            before,
        );
        assert_eq!(effects(&opened), vec![(Opened, None, before)]);
        let ended = device.evaluate(&windows, vec![at(Resolved, began, before)], None, began);
        assert_eq!(effects(&ended), vec![(Resolved, None, began)]);
        assert!(published(&ended[0]));

        // Resolved in the batch that crosses the end: raised once, then resolved.
        let mut device = Device::new();
        device.evaluate(
            &windows,
            vec![at(Opened, began, began)],
            Some(Severity::Warning),
            began,
        );
        let crossing = device.evaluate(
            &windows,
            vec![at(Resolved, end + 1000, began)],
            None,
            end + 1000,
        );
        assert_eq!(
            effects(&crossing),
            vec![
                (Opened, Some(RaisedAfterWindow), end + 1000),
                (Resolved, None, end + 1000)
            ]
        );
        assert_eq!(crossing[0].opened_ms, began);
    }

    #[test]
    fn notifications_windows_open_the_alert_and_announce_it_once_at_the_end() {
        let windows = [weekly(
            "America/New_York",
            Weekday::Sunday,
            "01:00",
            240,
            false,
        )];
        let (start, end) = (utc("2026-11-01T05:00Z"), utc("2026-11-01T09:00Z"));
        let began = start + HOUR;
        let mut device = Device::new();
        let opened = device.evaluate(
            &windows,
            vec![at(Opened, began, began)],
            Some(Severity::Critical),
            began,
        );
        assert_eq!(effects(&opened), vec![(Opened, Some(Unannounced), began)]);
        assert!(published(&opened[0]), "open and visible");
        let quiet = device.evaluate(&windows, vec![], None, end - 1);
        assert!(quiet.is_empty());
        let announced = device.evaluate(&windows, vec![], None, end);
        assert_eq!(
            effects(&announced),
            vec![(Opened, Some(RaisedAfterWindow), end)]
        );
        assert_ne!(announced[0].event_id, opened[0].event_id);
        assert_eq!(announced[0].severity, Severity::Critical);
        assert!(
            device
                .evaluate(&windows, vec![], None, end + HOUR)
                .is_empty()
        );
    }

    #[test]
    fn scopes_and_families_choose_the_windows() {
        let mut w = weekly("UTC", Weekday::Sunday, "00:00", 60, true);
        w.suppress.families = vec![AlertFamily::DeviceDown];
        let mut tagged = weekly("UTC", Weekday::Sunday, "00:00", 120, false);
        tagged.scope = Scope::Tag {
            key: "role".into(),
            value: "server".into(),
        };
        let windows = [w, tagged];
        let e = event(Opened);
        let untagged = BTreeMap::new();
        let mut server = BTreeMap::new();
        server.insert("role".to_owned(), "server".to_owned());
        let t = utc("2026-03-01T00:30Z");
        let target = |tags| Target {
            device: &e.device_id,
            client: &e.client_id,
            site: &e.site_id,
            tags,
        };
        let level = |tags, family| silence(&windows, target(tags), family, t).0;
        assert_eq!(level(&untagged, AlertFamily::DeviceDown), Silence::Alerts);
        assert_eq!(level(&untagged, AlertFamily::Resources), Silence::Open);
        let (s, open) = silence(&windows, target(&server), AlertFamily::Resources, t);
        let end = open.map(|o| o.end_ms);
        assert_eq!(
            (s, end),
            (Silence::Notifications, Some(utc("2026-03-01T02:00Z")))
        );
        // Alerts beat notifications.
        assert_eq!(level(&server, AlertFamily::DeviceDown), Silence::Alerts);
        // Another device's window does not apply.
        let mut other = weekly("UTC", Weekday::Sunday, "00:00", 60, true);
        other.scope = Scope::Device {
            device: vigie_domain::ids::DeviceId::parse("dev-other").expect("id"),
        };
        let others = [other];
        let s = silence(&others, target(&server), AlertFamily::Resources, t).0;
        assert_eq!(s, Silence::Open);
    }
}
