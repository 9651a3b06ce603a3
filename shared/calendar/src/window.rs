//! Maintenance windows: when a tenant's scope is under planned work, and what that silences.

use std::fmt;

use jiff::{ToSpan, civil};
use serde::{Deserialize, Serialize};
use vigie_domain::alert::AlertFamily;
use vigie_domain::ids::{IdError, TenantId};
use vigie_domain::policy::Scope;

use crate::local::UnknownTimeZone;
use crate::local::{Disambiguation, LocalCalendar, LocalDate, LocalDateTime, LocalTime, Weekday};

const MINUTE_MS: i64 = 60_000;

/// A maintenance window's id inside a tenant. Same alphabet as the domain's ids: it becomes
/// part of storage keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WindowId(String);

impl WindowId {
    /// Parses and validates a window id (`a-z`, `0-9`, `-`, `_`, at most 64 characters).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        // The domain's validator, reached through an id type with the same rules.
        TenantId::parse(s).map_err(|e| match e {
            IdError::Empty { .. } => IdError::Empty { kind: "window id" },
            IdError::TooLong { max, .. } => IdError::TooLong {
                kind: "window id",
                max,
            },
            IdError::BadCharacter { .. } => IdError::BadCharacter { kind: "window id" },
        })?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WindowId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<WindowId> for String {
    fn from(w: WindowId) -> Self {
        w.0
    }
}

impl fmt::Display for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WindowId({})", self.0)
    }
}

/// A period of planned work on part of a tenant's fleet, in the tenant's (or the site's) local
/// time, during which some alerting is silenced. Stored as a JSON document; see the crate
/// documentation for how local times map to instants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub id: WindowId,
    pub tenant: TenantId,
    /// A person's label ("Patch Tuesday", "Router swap at Lyon").
    pub name: String,
    /// The devices it covers: the whole tenant, a tag (`role=server`), a client company, a
    /// site or one device.
    pub scope: Scope,
    /// The IANA zone the schedule's local times are read in ("Europe/Paris").
    pub time_zone: String,
    pub schedule: Schedule,
    pub suppress: Suppress,
}

/// When a window is open, in local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Schedule {
    /// One period, from `start` (inclusive) to `end` (exclusive), both wall-clock times.
    Once {
        start: LocalDateTime,
        end: LocalDateTime,
    },
    /// A period of `duration_minutes` of real time, starting at `start_time` on each day the
    /// `rule` picks, from `from_date` through `until_date` (both inclusive; none = for ever).
    Recurring {
        rule: Recurrence,
        start_time: LocalTime,
        duration_minutes: u32,
        from_date: LocalDate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_date: Option<LocalDate>,
    },
}

/// Which days a recurring window starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "repeat", rename_all = "snake_case")]
pub enum Recurrence {
    /// Every day.
    Daily,
    /// On these weekdays.
    Weekly { days: Vec<Weekday> },
    /// On this day of every month, 1 to 31; a month shorter than that uses its last day (31 →
    /// 30 April, 28 or 29 February).
    Monthly { day_of_month: u8 },
    /// On the nth (or last) given weekday of every month ("last Sunday").
    MonthlyNth { nth: Nth, weekday: Weekday },
}

/// Which of a month's weekdays: `"first"` … `"fourth"`, or `"last"` (the fourth or the fifth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

/// What an open window silences, for the devices in its scope.
///
/// - `alerts`: rules raise no new alert (the planned reboot is not an outage). Implies no
///   notification either, since there is nothing to notify.
/// - `notifications`: alerts are still raised and kept in the history, but nobody is notified
///   and escalation timers do not run; people see them when they look.
/// - `families`: only these alert families are silenced; empty means every family.
///
/// At least one of `alerts` and `notifications` must be set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppress {
    pub notifications: bool,
    pub alerts: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<AlertFamily>,
}

impl Suppress {
    /// Whether the window concerns alerts of this family at all.
    pub fn covers(&self, family: AlertFamily) -> bool {
        self.families.is_empty() || self.families.contains(&family)
    }

    /// Whether an alert of this family is not to be raised while the window is open.
    pub fn silences_alert(&self, family: AlertFamily) -> bool {
        self.alerts && self.covers(family)
    }

    /// Whether an alert of this family is not to be notified (nor escalated) while the window
    /// is open.
    pub fn silences_notification(&self, family: AlertFamily) -> bool {
        (self.alerts || self.notifications) && self.covers(family)
    }
}

/// Why a maintenance window is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowInvalid {
    #[error("the window needs a name")]
    EmptyName,
    #[error("a window's name is at most {max} characters", max = MaintenanceWindow::MAX_NAME_CHARS)]
    NameTooLong,
    #[error(transparent)]
    UnknownTimeZone(#[from] UnknownTimeZone),
    #[error("a tag scope needs a key and a value")]
    EmptyTag,
    #[error("the window ends ({end}) at or before it starts ({start})")]
    EndNotAfterStart {
        start: LocalDateTime,
        end: LocalDateTime,
    },
    #[error("the window must last at least one minute")]
    ZeroDuration,
    #[error("a window lasts at most 7 days ({max} minutes), not {minutes}", max = MaintenanceWindow::MAX_DURATION_MINUTES)]
    TooLong { minutes: i64 },
    #[error("a weekly window needs at least one weekday")]
    NoWeekdays,
    #[error("day of month {0} is not between 1 and 31")]
    DayOfMonthOutOfRange(u8),
    #[error("the window's last date ({until}) is before its first ({from})")]
    UntilBeforeFrom { from: LocalDate, until: LocalDate },
    #[error("the window silences nothing: set alerts, notifications or both")]
    SuppressesNothing,
}

impl MaintenanceWindow {
    /// Longest window: a week. Longer silences are policy changes, not maintenance.
    pub const MAX_DURATION_MINUTES: u32 = 7 * 24 * 60;
    pub const MAX_NAME_CHARS: usize = 200;
    /// Most intervals [`Self::occurrences`] returns for one query.
    pub const MAX_OCCURRENCES: usize = 10_000;

    /// Checks everything serde cannot: the zone exists, the period is sensible, something is
    /// silenced.
    pub fn validate(&self) -> Result<(), WindowInvalid> {
        if self.name.trim().is_empty() {
            return Err(WindowInvalid::EmptyName);
        }
        if self.name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(WindowInvalid::NameTooLong);
        }
        let cal = LocalCalendar::new(&self.time_zone)?;
        if let Scope::Tag { key, value } = &self.scope
            && (key.is_empty() || value.is_empty())
        {
            return Err(WindowInvalid::EmptyTag);
        }
        if !self.suppress.alerts && !self.suppress.notifications {
            return Err(WindowInvalid::SuppressesNothing);
        }
        let max = i64::from(Self::MAX_DURATION_MINUTES);
        match &self.schedule {
            Schedule::Once { start, end } => {
                let (s, e) = once_interval(&cal, *start, *end);
                if e <= s {
                    return Err(WindowInvalid::EndNotAfterStart {
                        start: *start,
                        end: *end,
                    });
                }
                let minutes = (e - s + MINUTE_MS - 1) / MINUTE_MS;
                if minutes > max {
                    return Err(WindowInvalid::TooLong { minutes });
                }
            }
            Schedule::Recurring {
                rule,
                duration_minutes,
                from_date,
                until_date,
                ..
            } => {
                if *duration_minutes == 0 {
                    return Err(WindowInvalid::ZeroDuration);
                }
                if i64::from(*duration_minutes) > max {
                    return Err(WindowInvalid::TooLong {
                        minutes: i64::from(*duration_minutes),
                    });
                }
                match rule {
                    Recurrence::Weekly { days } if days.is_empty() => {
                        return Err(WindowInvalid::NoWeekdays);
                    }
                    Recurrence::Monthly { day_of_month } if !(1..=31).contains(day_of_month) => {
                        return Err(WindowInvalid::DayOfMonthOutOfRange(*day_of_month));
                    }
                    _ => {}
                }
                if let Some(until) = until_date
                    && until < from_date
                {
                    return Err(WindowInvalid::UntilBeforeFrom {
                        from: *from_date,
                        until: *until,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the window is open at `at_ms` (Unix ms): some occurrence has
    /// `start <= at_ms < end`. A window whose zone is unknown is never open (validate first).
    pub fn is_active(&self, at_ms: i64) -> bool {
        !self.occurrences(at_ms, at_ms.saturating_add(1)).is_empty()
    }

    /// The occurrences (UTC ms, start inclusive, end exclusive) that overlap
    /// `[from_ms, to_ms)`, in start order; an occurrence that began before `from_ms` or ends
    /// after `to_ms` is returned whole. Occurrences are not merged: a window longer than its
    /// repeat period yields overlapping intervals. At most [`Self::MAX_OCCURRENCES`].
    pub fn occurrences(&self, from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
        let Ok(cal) = LocalCalendar::new(&self.time_zone) else {
            return Vec::new();
        };
        if from_ms >= to_ms {
            return Vec::new();
        }
        let overlaps = |&(s, e): &(i64, i64)| s < to_ms && e > from_ms;
        match &self.schedule {
            Schedule::Once { start, end } => {
                let once = once_interval(&cal, *start, *end);
                if overlaps(&once) && once.0 < once.1 {
                    vec![once]
                } else {
                    Vec::new()
                }
            }
            Schedule::Recurring { .. } => {
                // An occurrence overlapping `from_ms` started at most 7 days earlier, so on a
                // local date at most 8 days before (one spare day for zones that skipped one).
                let first = days_before(cal.civil_date(from_ms), 8);
                // A start on local date `d` is at or after `d`'s wall-clock start time, so an
                // occurrence starting before `to_ms` is on its local date or earlier.
                Starts::new(self, &cal, first, cal.civil_date(to_ms))
                    .filter(|o| o.0 < to_ms && overlaps(o))
                    .take(Self::MAX_OCCURRENCES)
                    .collect()
            }
        }
    }

    /// The next instant strictly after `after_ms` at which [`Self::is_active`] changes: the
    /// start of the next period of activity, or the end of the current one. Overlapping or
    /// touching occurrences form one period, so this is a real change of state, never a
    /// boundary hidden inside another occurrence. `None` when the window never changes again
    /// (it is over), or not within [`Self::CHANGE_HORIZON_DAYS`] (a window whose occurrences
    /// overlap back to back).
    pub fn next_change(&self, after_ms: i64) -> Option<i64> {
        let cal = LocalCalendar::new(&self.time_zone).ok()?;
        let change = |(s, e): (i64, i64)| {
            if s > after_ms {
                Some(s)
            } else if e > after_ms {
                Some(e)
            } else {
                None
            }
        };
        match &self.schedule {
            Schedule::Once { start, end } => {
                let (s, e) = once_interval(&cal, *start, *end);
                if s < e { change((s, e)) } else { None }
            }
            Schedule::Recurring { .. } => {
                let today = cal.civil_date(after_ms);
                let horizon = days_after(today, Self::CHANGE_HORIZON_DAYS);
                let mut starts = Starts::new(self, &cal, days_before(today, 8), horizon);
                let mut period: Option<(i64, i64)> = None;
                for (s, e) in starts.by_ref() {
                    period = match period {
                        Some((ps, pe)) if s <= pe => Some((ps, pe.max(e))),
                        Some(p) => {
                            if let Some(c) = change(p) {
                                return Some(c);
                            }
                            Some((s, e))
                        }
                        None => Some((s, e)),
                    };
                }
                let (ps, pe) = period?;
                if ps > after_ms {
                    Some(ps)
                } else if starts.reached_until {
                    change((ps, pe))
                } else {
                    // Still open at the horizon: its end is beyond what we looked at.
                    None
                }
            }
        }
    }

    /// How far ahead [`Self::next_change`] looks.
    pub const CHANGE_HORIZON_DAYS: i32 = 400;
}

/// A one-off window's instants: both ends read as window starts are (first instant after a
/// gap, first occurrence of a repeated time).
fn once_interval(cal: &LocalCalendar, start: LocalDateTime, end: LocalDateTime) -> (i64, i64) {
    (
        cal.to_utc(start, Disambiguation::Earlier),
        cal.to_utc(end, Disambiguation::Earlier),
    )
}

fn days_before(d: civil::Date, n: i32) -> civil::Date {
    d.checked_sub(n.days()).unwrap_or(civil::Date::MIN)
}

fn days_after(d: civil::Date, n: i32) -> civil::Date {
    d.checked_add(n.days()).unwrap_or(civil::Date::MAX)
}

/// Whether a recurring window starts on `d`.
fn starts_on(rule: &Recurrence, d: civil::Date) -> bool {
    let weekday = Weekday::from_jiff(d.weekday());
    match rule {
        Recurrence::Daily => true,
        Recurrence::Weekly { days } => days.contains(&weekday),
        Recurrence::Monthly { day_of_month } => {
            let wanted = i8::try_from(*day_of_month).unwrap_or(i8::MAX);
            d.day() == wanted.min(d.days_in_month())
        }
        Recurrence::MonthlyNth { nth, weekday: w } => {
            let week = (d.day() - 1) / 7; // 0 for days 1–7, 1 for 8–14, …
            *w == weekday
                && match nth {
                    Nth::First => week == 0,
                    Nth::Second => week == 1,
                    Nth::Third => week == 2,
                    Nth::Fourth => week == 3,
                    Nth::Last => d.day() + 7 > d.days_in_month(),
                }
        }
    }
}

/// A recurring window's occurrences in start order, for start dates from `from` through
/// `stop` (and within the window's own dates). Starts never go backwards: the local-to-instant
/// reading is monotonic (a time in a gap → the gap's end, a repeated time → its first).
struct Starts<'a> {
    cal: &'a LocalCalendar,
    rule: &'a Recurrence,
    start_time: LocalTime,
    duration_ms: i64,
    next: civil::Date,
    until: civil::Date,
    stop: civil::Date,
    /// Whether the walk went past the window's last date (rather than stopping at `stop`).
    reached_until: bool,
    done: bool,
}

impl<'a> Starts<'a> {
    fn new(
        window: &'a MaintenanceWindow,
        cal: &'a LocalCalendar,
        from: civil::Date,
        stop: civil::Date,
    ) -> Self {
        match &window.schedule {
            Schedule::Recurring {
                rule,
                start_time,
                duration_minutes,
                from_date,
                until_date,
            } => Self {
                cal,
                rule,
                start_time: *start_time,
                duration_ms: i64::from(*duration_minutes) * MINUTE_MS,
                next: from.max(from_date.civil()),
                until: until_date.map_or(civil::Date::MAX, |u| u.civil()),
                stop,
                reached_until: false,
                done: false,
            },
            // Only recurring windows are walked; a one-off yields nothing here.
            Schedule::Once { .. } => Self {
                cal,
                rule: &Recurrence::Daily,
                start_time: LocalTime::MIDNIGHT,
                duration_ms: 0,
                next: civil::Date::MAX,
                until: civil::Date::MIN,
                stop: civil::Date::MIN,
                reached_until: true,
                done: true,
            },
        }
    }
}

impl Iterator for Starts<'_> {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let d = self.next;
            if d > self.until {
                self.reached_until = true;
                self.done = true;
                break;
            }
            if d > self.stop {
                self.done = true;
                break;
            }
            match d.tomorrow() {
                Ok(t) => self.next = t,
                Err(_) => self.done = true,
            }
            if starts_on(self.rule, d) {
                let s = self.cal.start_on(d, self.start_time);
                return Some((s, s.saturating_add(self.duration_ms)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>()
            .expect("timestamp")
            .as_millisecond()
    }

    fn iso(ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .expect("ms")
            .strftime("%Y-%m-%dT%H:%MZ")
            .to_string()
    }

    fn date(s: &str) -> LocalDate {
        s.parse().expect("date")
    }

    fn time(s: &str) -> LocalTime {
        s.parse().expect("time")
    }

    fn window(zone: &str, schedule: Schedule) -> MaintenanceWindow {
        MaintenanceWindow {
            id: WindowId::parse("mw-1").expect("id"),
            tenant: TenantId::parse("acme").expect("tenant"),
            name: "Nightly patching".into(),
            scope: Scope::Tenant,
            time_zone: zone.into(),
            schedule,
            suppress: Suppress {
                notifications: true,
                alerts: false,
                families: Vec::new(),
            },
        }
    }

    fn recurring(zone: &str, rule: Recurrence, start: &str, minutes: u32) -> MaintenanceWindow {
        let w = window(
            zone,
            Schedule::Recurring {
                rule,
                start_time: time(start),
                duration_minutes: minutes,
                from_date: date("2025-01-01"),
                until_date: None,
            },
        );
        assert_eq!(w.validate(), Ok(()));
        w
    }

    fn once(zone: &str, start: &str, end: &str) -> MaintenanceWindow {
        window(
            zone,
            Schedule::Once {
                start: start.parse().expect("start"),
                end: end.parse().expect("end"),
            },
        )
    }

    /// The occurrences starting on one UTC-or-local day, as ISO text, for readable tables.
    fn starting_within(w: &MaintenanceWindow, from: &str, to: &str) -> Vec<(String, String)> {
        let (from, to) = (utc(from), utc(to));
        w.occurrences(from, to)
            .into_iter()
            .filter(|&(s, _)| s >= from)
            .map(|(s, e)| (iso(s), iso(e)))
            .collect()
    }

    #[test]
    fn daily_four_hour_windows_across_the_2026_changes() {
        // Daily 01:00 local for 240 minutes of real time. Columns: zone, start of the 13 hours
        // searched (UTC), the one occurrence expected to start in them (UTC).
        let table = [
            // Paris, spring forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z).
            (
                "Europe/Paris",
                "2026-03-28T00:00Z",
                "2026-03-28T00:00Z",
                "2026-03-28T04:00Z",
            ),
            (
                "Europe/Paris",
                "2026-03-29T00:00Z",
                "2026-03-29T00:00Z",
                "2026-03-29T04:00Z",
            ),
            (
                "Europe/Paris",
                "2026-03-29T12:00Z",
                "2026-03-29T23:00Z",
                "2026-03-30T03:00Z",
            ),
            // Paris, fall back 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
            (
                "Europe/Paris",
                "2026-10-24T12:00Z",
                "2026-10-24T23:00Z",
                "2026-10-25T03:00Z",
            ),
            (
                "Europe/Paris",
                "2026-10-25T12:00Z",
                "2026-10-26T00:00Z",
                "2026-10-26T04:00Z",
            ),
            // New York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z).
            (
                "America/New_York",
                "2026-03-08T00:00Z",
                "2026-03-08T06:00Z",
                "2026-03-08T10:00Z",
            ),
            (
                "America/New_York",
                "2026-03-09T00:00Z",
                "2026-03-09T05:00Z",
                "2026-03-09T09:00Z",
            ),
            // New York, fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:00 happens
            // twice; the window starts at the first, on EDT.
            (
                "America/New_York",
                "2026-11-01T00:00Z",
                "2026-11-01T05:00Z",
                "2026-11-01T09:00Z",
            ),
            (
                "America/New_York",
                "2026-11-02T00:00Z",
                "2026-11-02T06:00Z",
                "2026-11-02T10:00Z",
            ),
        ];
        for (zone, from, start, end) in table {
            let w = recurring(zone, Recurrence::Daily, "01:00", 240);
            let to = iso(utc(from) + 13 * HOUR);
            assert_eq!(
                starting_within(&w, from, &to),
                vec![(start.to_owned(), end.to_owned())],
                "{zone} from {from}"
            );
            // Four real hours every time, whatever the wall clock shows at the end.
            assert_eq!(utc(end) - utc(start), 4 * HOUR);
        }
        // The wall-clock ends on the change days: 06:00 in spring, 04:00 in autumn.
        let paris = LocalCalendar::new("Europe/Paris").expect("zone");
        assert_eq!(paris.to_local(utc("2026-03-29T04:00Z")).1, time("06:00"));
        assert_eq!(paris.to_local(utc("2026-10-25T03:00Z")).1, time("04:00"));
    }

    #[test]
    fn a_start_in_the_spring_gap_opens_when_the_clocks_jump() {
        for (zone, day, start, end) in [
            (
                "Europe/Paris",
                "2026-03-29T00:00Z",
                "2026-03-29T01:00Z",
                "2026-03-29T02:00Z",
            ),
            (
                "America/New_York",
                "2026-03-08T00:00Z",
                "2026-03-08T07:00Z",
                "2026-03-08T08:00Z",
            ),
        ] {
            let w = recurring(zone, Recurrence::Daily, "02:30", 60);
            let to = iso(utc(day) + DAY);
            let got = starting_within(&w, day, &to);
            assert_eq!(got, vec![(start.to_owned(), end.to_owned())], "{zone}");
            let cal = LocalCalendar::new(zone).expect("zone");
            assert_eq!(cal.to_local(utc(start)).1, time("03:00"), "{zone}");
        }
        // The day after, 02:30 exists again: an ordinary start.
        let w = recurring("Europe/Paris", Recurrence::Daily, "02:30", 60);
        assert_eq!(
            starting_within(&w, "2026-03-30T00:00Z", "2026-03-31T00:00Z"),
            vec![(
                "2026-03-30T00:30Z".to_owned(),
                "2026-03-30T01:30Z".to_owned()
            )]
        );
    }

    #[test]
    fn a_start_in_the_repeated_hour_opens_at_its_first_occurrence() {
        for (zone, start_time, day, start, end) in [
            (
                "Europe/Paris",
                "02:30",
                "2026-10-25T00:00Z",
                "2026-10-25T00:30Z",
                "2026-10-25T01:30Z",
            ),
            (
                "America/New_York",
                "01:30",
                "2026-11-01T00:00Z",
                "2026-11-01T05:30Z",
                "2026-11-01T06:30Z",
            ),
        ] {
            let w = recurring(zone, Recurrence::Daily, start_time, 60);
            let to = iso(utc(day) + DAY);
            assert_eq!(
                starting_within(&w, day, &to),
                vec![(start.to_owned(), end.to_owned())],
                "{zone}"
            );
            // Open during the first pass through the local hour, closed during the second.
            assert!(w.is_active(utc(start)));
            assert!(!w.is_active(utc(start) + HOUR));
        }
    }

    #[test]
    fn a_weekly_window_on_the_change_day() {
        let sundays = Recurrence::Weekly {
            days: vec![Weekday::Sunday],
        };
        let w = recurring("Europe/Paris", sundays, "02:30", 120);
        let got = starting_within(&w, "2026-03-20T00:00Z", "2026-04-06T00:00Z");
        let want = [
            ("2026-03-22T01:30Z", "2026-03-22T03:30Z"), // 02:30 CET
            ("2026-03-29T01:00Z", "2026-03-29T03:00Z"), // 02:30 does not exist: 03:00 CEST
            ("2026-04-05T00:30Z", "2026-04-05T02:30Z"), // 02:30 CEST
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(s, e)| ((*s).into(), (*e).into()))
            .collect();
        assert_eq!(got, want);

        let ny = Recurrence::Weekly {
            days: vec![Weekday::Sunday],
        };
        let w = recurring("America/New_York", ny, "00:00", 240);
        let got = starting_within(&w, "2026-10-31T12:00Z", "2026-11-02T00:00Z");
        // Midnight EDT, then 4 real hours: 03:00 EST on the wall clock.
        assert_eq!(
            got,
            vec![("2026-11-01T04:00Z".into(), "2026-11-01T08:00Z".into())]
        );
    }

    #[test]
    fn last_sunday_of_the_month_is_the_eu_change_day_in_march_and_october() {
        let rule = Recurrence::MonthlyNth {
            nth: Nth::Last,
            weekday: Weekday::Sunday,
        };
        let w = recurring("Europe/Paris", rule, "02:30", 60);
        let year = w.occurrences(utc("2026-01-01T00:00Z"), utc("2027-01-01T00:00Z"));
        let cal = LocalCalendar::new("Europe/Paris").expect("zone");
        let days: Vec<String> = year
            .iter()
            .map(|&(s, _)| cal.to_local(s).0.to_string())
            .collect();
        assert_eq!(
            days,
            [
                "2026-01-25",
                "2026-02-22",
                "2026-03-29",
                "2026-04-26",
                "2026-05-31",
                "2026-06-28",
                "2026-07-26",
                "2026-08-30",
                "2026-09-27",
                "2026-10-25",
                "2026-11-29",
                "2026-12-27",
            ]
        );
        assert_eq!(iso(year[2].0), "2026-03-29T01:00Z"); // the gap: opens at 03:00 CEST
        assert_eq!(iso(year[9].0), "2026-10-25T00:30Z"); // the fold: first 02:30, CEST
        assert!(year.iter().all(|&(s, e)| e - s == HOUR));
    }

    #[test]
    fn monthly_days_clamp_and_nth_weekdays_pick_the_right_week() {
        let w = recurring("UTC", Recurrence::Monthly { day_of_month: 31 }, "22:00", 60);
        let cal = LocalCalendar::new("UTC").expect("zone");
        let days: Vec<String> = w
            .occurrences(utc("2028-01-01T00:00Z"), utc("2028-05-01T00:00Z"))
            .iter()
            .map(|&(s, _)| cal.to_local(s).0.to_string())
            .collect();
        assert_eq!(
            days,
            ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30"]
        );

        let patch_tuesday = Recurrence::MonthlyNth {
            nth: Nth::Second,
            weekday: Weekday::Tuesday,
        };
        let w = recurring("America/New_York", patch_tuesday, "20:00", 180);
        let cal = LocalCalendar::new("America/New_York").expect("zone");
        let days: Vec<String> = w
            .occurrences(utc("2026-01-01T00:00Z"), utc("2026-04-01T00:00Z"))
            .iter()
            .map(|&(s, _)| cal.to_local(s).0.to_string())
            .collect();
        assert_eq!(days, ["2026-01-13", "2026-02-10", "2026-03-10"]);
    }

    #[test]
    fn is_active_at_the_boundaries_end_exclusive() {
        let w = recurring("Europe/Paris", Recurrence::Daily, "01:00", 240);
        for (start, end) in [
            ("2026-03-29T00:00Z", "2026-03-29T04:00Z"),
            ("2026-10-24T23:00Z", "2026-10-25T03:00Z"),
        ] {
            let (s, e) = (utc(start), utc(end));
            assert!(!w.is_active(s - 1), "just before {start}");
            assert!(w.is_active(s), "at {start}");
            assert!(w.is_active(s + 1), "just after {start}");
            assert!(w.is_active(e - 1), "just before {end}");
            assert!(!w.is_active(e), "at {end}");
            assert!(!w.is_active(e + 1), "after {end}");
        }
        let ny = recurring("America/New_York", Recurrence::Daily, "01:00", 240);
        assert!(!ny.is_active(utc("2026-11-01T04:59:59.999Z")));
        assert!(ny.is_active(utc("2026-11-01T05:00Z")));
        assert!(ny.is_active(utc("2026-11-01T08:59:59.999Z")));
        assert!(!ny.is_active(utc("2026-11-01T09:00Z")));
    }

    #[test]
    fn next_change_chains_through_a_week() {
        let w = recurring("Europe/Paris", Recurrence::Daily, "01:00", 240);
        let mut at = utc("2026-03-27T12:00Z");
        let mut changes = Vec::new();
        for _ in 0..14 {
            let next = w.next_change(at).expect("daily windows always change");
            assert!(next > at);
            assert_ne!(w.is_active(next), w.is_active(next - 1), "{}", iso(next));
            changes.push(iso(next));
            at = next;
        }
        assert_eq!(
            changes,
            [
                "2026-03-28T00:00Z",
                "2026-03-28T04:00Z", // CET
                "2026-03-29T00:00Z",
                "2026-03-29T04:00Z", // the change night
                "2026-03-29T23:00Z",
                "2026-03-30T03:00Z", // CEST from here
                "2026-03-30T23:00Z",
                "2026-03-31T03:00Z",
                "2026-03-31T23:00Z",
                "2026-04-01T03:00Z",
                "2026-04-01T23:00Z",
                "2026-04-02T03:00Z",
                "2026-04-02T23:00Z",
                "2026-04-03T03:00Z",
            ]
        );
        // From inside a window, the next change is its end.
        assert_eq!(
            w.next_change(utc("2026-03-29T02:00Z")),
            Some(utc("2026-03-29T04:00Z"))
        );
        // At its exact start the window is already open: next is the end.
        assert_eq!(
            w.next_change(utc("2026-03-29T00:00Z")),
            Some(utc("2026-03-29T04:00Z"))
        );
    }

    #[test]
    fn next_change_sees_overlapping_occurrences_as_one_period() {
        // Every day at 00:00 for 36 hours: occurrences overlap, so the window is open from
        // the first start to the last end without a change in between.
        let mut w = recurring("UTC", Recurrence::Daily, "00:00", 36 * 60);
        w.schedule = Schedule::Recurring {
            rule: Recurrence::Daily,
            start_time: time("00:00"),
            duration_minutes: 36 * 60,
            from_date: date("2026-06-01"),
            until_date: Some(date("2026-06-03")),
        };
        assert_eq!(w.validate(), Ok(()));
        assert_eq!(
            w.next_change(utc("2026-05-01T00:00Z")),
            Some(utc("2026-06-01T00:00Z"))
        );
        assert_eq!(
            w.next_change(utc("2026-06-01T00:00Z")),
            Some(utc("2026-06-04T12:00Z"))
        );
        assert_eq!(w.next_change(utc("2026-06-04T12:00Z")), None);
        assert_eq!(
            w.occurrences(utc("2026-06-01T00:00Z"), utc("2026-06-02T01:00Z"))
                .len(),
            2
        );

        // Touching occurrences (24 h every day) are one period too.
        w.schedule = Schedule::Recurring {
            rule: Recurrence::Daily,
            start_time: time("00:00"),
            duration_minutes: 24 * 60,
            from_date: date("2026-06-01"),
            until_date: Some(date("2026-06-03")),
        };
        assert_eq!(
            w.next_change(utc("2026-06-01T00:00Z")),
            Some(utc("2026-06-04T00:00Z"))
        );
        // For ever: no end within the horizon.
        let always = recurring("UTC", Recurrence::Daily, "00:00", 24 * 60);
        assert_eq!(always.next_change(utc("2026-06-01T12:00Z")), None);
    }

    #[test]
    fn a_daily_24_hour_window_has_a_hole_on_the_autumn_night() {
        // Real-time durations: the 25-hour local day of 2026-10-25 leaves its last hour
        // uncovered; the 23-hour spring day overlaps the next occurrence by an hour.
        let w = recurring("Europe/Paris", Recurrence::Daily, "00:00", 24 * 60);
        assert!(w.is_active(utc("2026-10-25T21:59Z")));
        assert!(!w.is_active(utc("2026-10-25T22:00Z"))); // 23:00 CET
        assert!(w.is_active(utc("2026-10-25T23:00Z"))); // 00:00 CET, the next day
        assert_eq!(
            w.next_change(utc("2026-10-25T12:00Z")),
            Some(utc("2026-10-25T22:00Z"))
        );
        assert_eq!(
            w.next_change(utc("2026-10-25T22:00Z")),
            Some(utc("2026-10-25T23:00Z"))
        );
        let spring = w.occurrences(utc("2026-03-29T22:30Z"), utc("2026-03-29T22:30:00.001Z"));
        assert_eq!(spring.len(), 2); // 03-29 00:00 CET + 24 h overlaps 03-30 00:00 CEST
        assert!(w.is_active(utc("2026-03-29T22:30Z")));
    }

    #[test]
    fn occurrences_over_a_month() {
        let w = recurring("Europe/Paris", Recurrence::Daily, "01:00", 240);
        let (from, to) = (utc("2026-02-28T23:00Z"), utc("2026-03-31T22:00Z")); // March, Paris
        let march = w.occurrences(from, to);
        assert_eq!(march.len(), 31);
        assert!(march.windows(2).all(|p| p[0].0 < p[1].0));
        assert!(march.iter().all(|&(s, e)| e - s == 4 * HOUR));

        let mwf = Recurrence::Weekly {
            days: vec![Weekday::Monday, Weekday::Wednesday, Weekday::Friday],
        };
        let w = recurring("Europe/Paris", mwf, "21:00", 90);
        assert_eq!(w.occurrences(from, to).len(), 5 + 4 + 4);

        // Only what overlaps the range, returned whole; an empty or inverted range is empty.
        let w = recurring("Europe/Paris", Recurrence::Daily, "01:00", 240);
        let inside = utc("2026-03-10T01:00Z");
        assert_eq!(
            w.occurrences(inside, inside + 1),
            vec![(utc("2026-03-10T00:00Z"), utc("2026-03-10T04:00Z"))]
        );
        assert!(w.occurrences(inside, inside).is_empty());
        assert!(w.occurrences(inside, inside - DAY).is_empty());
    }

    #[test]
    fn the_window_keeps_to_its_dates() {
        let mut w = recurring("Europe/Paris", Recurrence::Daily, "01:00", 60);
        w.schedule = Schedule::Recurring {
            rule: Recurrence::Daily,
            start_time: time("01:00"),
            duration_minutes: 60,
            from_date: date("2026-03-28"),
            until_date: Some(date("2026-03-30")),
        };
        let all = w.occurrences(utc("2026-01-01T00:00Z"), utc("2027-01-01T00:00Z"));
        assert_eq!(all.len(), 3);
        assert_eq!(
            w.next_change(utc("2026-01-01T00:00Z")),
            Some(utc("2026-03-28T00:00Z"))
        );
        assert_eq!(
            w.next_change(utc("2026-03-29T23:30Z")),
            Some(utc("2026-03-30T00:00Z"))
        );
        assert_eq!(w.next_change(utc("2026-03-30T00:00Z")), None);
        assert!(!w.is_active(utc("2026-03-31T00:30Z")));
    }

    #[test]
    fn one_off_windows() {
        // Both ends are wall-clock times: 01:30 CET to 04:00 CEST is 1 h 30 of real time.
        let w = once("Europe/Paris", "2026-03-29T01:30", "2026-03-29T04:00");
        assert_eq!(w.validate(), Ok(()));
        let (s, e) = (utc("2026-03-29T00:30Z"), utc("2026-03-29T02:00Z"));
        assert_eq!(w.occurrences(0, i64::MAX), vec![(s, e)]);
        assert!(!w.is_active(s - 1) && w.is_active(s) && w.is_active(e - 1) && !w.is_active(e));
        assert_eq!(w.next_change(0), Some(s));
        assert_eq!(w.next_change(s), Some(e));
        assert_eq!(w.next_change(e), None);

        // Across the autumn change: 01:00 CEST to 03:00 CET is three real hours.
        let w = once("Europe/Paris", "2026-10-25T01:00", "2026-10-25T03:00");
        assert_eq!(
            w.occurrences(0, i64::MAX),
            vec![(utc("2026-10-24T23:00Z"), utc("2026-10-25T02:00Z"))]
        );

        // An end inside the gap is the end of the gap.
        let w = once("America/New_York", "2026-03-08T00:00", "2026-03-08T02:30");
        assert_eq!(
            w.occurrences(0, i64::MAX),
            vec![(utc("2026-03-08T05:00Z"), utc("2026-03-08T07:00Z"))]
        );
    }

    #[test]
    fn invalid_windows_are_refused() {
        let good = recurring("Europe/Paris", Recurrence::Daily, "01:00", 60);
        let with_schedule = |schedule| MaintenanceWindow {
            schedule,
            ..good.clone()
        };
        let every = |rule, minutes, until: Option<&str>| {
            with_schedule(Schedule::Recurring {
                rule,
                start_time: time("01:00"),
                duration_minutes: minutes,
                from_date: date("2026-01-01"),
                until_date: until.map(date),
            })
        };
        type Expect = fn(&WindowInvalid) -> bool;
        let cases: Vec<(MaintenanceWindow, Expect)> = vec![
            (
                MaintenanceWindow {
                    time_zone: "Europe/Lutece".into(),
                    ..good.clone()
                },
                |e| matches!(e, WindowInvalid::UnknownTimeZone(_)),
            ),
            (
                MaintenanceWindow {
                    name: "  ".into(),
                    ..good.clone()
                },
                |e| *e == WindowInvalid::EmptyName,
            ),
            (
                MaintenanceWindow {
                    name: "x".repeat(201),
                    ..good.clone()
                },
                |e| *e == WindowInvalid::NameTooLong,
            ),
            (
                MaintenanceWindow {
                    scope: Scope::Tag {
                        key: "role".into(),
                        value: String::new(),
                    },
                    ..good.clone()
                },
                |e| *e == WindowInvalid::EmptyTag,
            ),
            (
                MaintenanceWindow {
                    suppress: Suppress {
                        notifications: false,
                        alerts: false,
                        families: vec![],
                    },
                    ..good.clone()
                },
                |e| *e == WindowInvalid::SuppressesNothing,
            ),
            (
                once("Europe/Paris", "2026-05-01T10:00", "2026-05-01T09:00"),
                |e| matches!(e, WindowInvalid::EndNotAfterStart { .. }),
            ),
            (
                once("Europe/Paris", "2026-05-01T10:00", "2026-05-01T10:00"),
                |e| matches!(e, WindowInvalid::EndNotAfterStart { .. }),
            ),
            // 02:00 to 02:59 on the spring day are both the end of the gap: nothing between.
            (
                once("Europe/Paris", "2026-03-29T02:10", "2026-03-29T02:50"),
                |e| matches!(e, WindowInvalid::EndNotAfterStart { .. }),
            ),
            (
                once("Europe/Paris", "2026-05-01T10:00", "2026-05-08T10:01"),
                |e| {
                    *e == WindowInvalid::TooLong {
                        minutes: 7 * 24 * 60 + 1,
                    }
                },
            ),
            (every(Recurrence::Daily, 0, None), |e| {
                *e == WindowInvalid::ZeroDuration
            }),
            (every(Recurrence::Daily, 7 * 24 * 60 + 1, None), |e| {
                matches!(e, WindowInvalid::TooLong { .. })
            }),
            (every(Recurrence::Weekly { days: vec![] }, 60, None), |e| {
                *e == WindowInvalid::NoWeekdays
            }),
            (
                every(Recurrence::Monthly { day_of_month: 0 }, 60, None),
                |e| *e == WindowInvalid::DayOfMonthOutOfRange(0),
            ),
            (
                every(Recurrence::Monthly { day_of_month: 32 }, 60, None),
                |e| *e == WindowInvalid::DayOfMonthOutOfRange(32),
            ),
            (every(Recurrence::Daily, 60, Some("2025-12-31")), |e| {
                matches!(e, WindowInvalid::UntilBeforeFrom { .. })
            }),
        ];
        for (w, expected) in cases {
            let err = w.validate().expect_err("should be refused");
            assert!(expected(&err), "{err:?} for {:?}", w.schedule);
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(
            every(Recurrence::Daily, 7 * 24 * 60, Some("2026-01-01")).validate(),
            Ok(())
        );
        // An unknown zone is never open, even before validation.
        let lost = MaintenanceWindow {
            time_zone: "Nowhere/Land".into(),
            ..good
        };
        assert!(!lost.is_active(utc("2026-03-10T00:30Z")));
        assert_eq!(lost.next_change(0), None);
    }

    #[test]
    fn json_document_round_trips_and_parses_at_the_edge() {
        let json = r#"{
            "id": "patch-tuesday",
            "tenant": "acme",
            "name": "Patch Tuesday",
            "scope": {"level": "tag", "key": "role", "value": "server"},
            "time_zone": "America/New_York",
            "schedule": {
                "type": "recurring",
                "rule": {"repeat": "monthly_nth", "nth": "second", "weekday": "tuesday"},
                "start_time": "20:00",
                "duration_minutes": 180,
                "from_date": "2026-01-01"
            },
            "suppress": {"notifications": true, "alerts": false, "families": ["device_down"]}
        }"#;
        let w: MaintenanceWindow = serde_json::from_str(json).expect("parses");
        assert_eq!(w.validate(), Ok(()));
        assert!(w.suppress.silences_notification(AlertFamily::DeviceDown));
        assert!(!w.suppress.silences_notification(AlertFamily::Malware));
        assert!(!w.suppress.silences_alert(AlertFamily::DeviceDown));
        let back: MaintenanceWindow =
            serde_json::from_str(&serde_json::to_string(&w).expect("json")).expect("back");
        assert_eq!(back, w);

        let once = r#"{"type": "once", "start": "2026-03-29T02:30", "end": "2026-03-29T05:00"}"#;
        assert!(serde_json::from_str::<Schedule>(once).is_ok());
        for bad in [
            r#"{"type": "once", "start": "2026-03-29 02:30", "end": "2026-03-29T05:00"}"#,
            r#"{"type": "recurring", "rule": {"repeat": "hourly"}, "start_time": "01:00", "duration_minutes": 5, "from_date": "2026-01-01"}"#,
            r#"{"type": "recurring", "rule": {"repeat": "daily"}, "start_time": "1:00", "duration_minutes": 5, "from_date": "2026-01-01"}"#,
        ] {
            assert!(serde_json::from_str::<Schedule>(bad).is_err(), "{bad}");
        }
        assert!(WindowId::parse("Bad#Id").is_err());
    }

    #[test]
    fn empty_families_silence_everything() {
        let all = Suppress {
            notifications: false,
            alerts: true,
            families: vec![],
        };
        for f in AlertFamily::ALL {
            assert!(all.silences_alert(f) && all.silences_notification(f));
        }
    }

    fn arb_window() -> impl Strategy<Value = MaintenanceWindow> {
        let zone = prop::sample::select(vec![
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe", // a 30-minute change
            "Asia/Kolkata",
            "UTC",
        ]);
        let weekday = prop::sample::select(vec![
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ]);
        let nth = prop::sample::select(vec![
            Nth::First,
            Nth::Second,
            Nth::Third,
            Nth::Fourth,
            Nth::Last,
        ]);
        let rule = prop_oneof![
            Just(Recurrence::Daily),
            prop::collection::vec(weekday.clone(), 1..4)
                .prop_map(|days| Recurrence::Weekly { days }),
            (1u8..=31).prop_map(|day_of_month| Recurrence::Monthly { day_of_month }),
            (nth, weekday).prop_map(|(nth, weekday)| Recurrence::MonthlyNth { nth, weekday }),
        ];
        let minutes = prop_oneof![
            1u32..=600,
            Just(24 * 60), // occurrences that touch
            Just(MaintenanceWindow::MAX_DURATION_MINUTES),
            1u32..=MaintenanceWindow::MAX_DURATION_MINUTES,
        ];
        (
            zone,
            rule,
            0u8..24,
            0u8..60,
            minutes,
            0i32..700,
            prop::option::of(0i32..400),
        )
            .prop_map(|(zone, rule, h, m, minutes, from, len)| {
                let from_date = days_after(civil::date(2025, 6, 1), from);
                let until_date = len.map(|l| LocalDate::from_civil(days_after(from_date, l)));
                window(
                    zone,
                    Schedule::Recurring {
                        rule,
                        start_time: LocalTime::new(h, m).expect("time"),
                        duration_minutes: minutes,
                        from_date: LocalDate::from_civil(from_date),
                        until_date,
                    },
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn is_active_agrees_with_occurrences_and_next_change(
            w in arb_window(),
            t in utc("2025-05-01T00:00Z")..utc("2028-01-01T00:00Z"),
        ) {
            prop_assert_eq!(w.validate(), Ok(()));
            let around = w.occurrences(t - 8 * DAY, t + 8 * DAY);
            let member = around.iter().any(|&(s, e)| s <= t && t < e);
            let active = w.is_active(t);
            prop_assert_eq!(active, member);
            prop_assert!(around.windows(2).all(|p| p[0].0 <= p[1].0));

            match w.next_change(t) {
                Some(c) => {
                    prop_assert!(c > t);
                    prop_assert_ne!(w.is_active(c), w.is_active(c - 1));
                    // No change in between: the state at t holds until c.
                    for x in [t + 1, t + (c - t) / 2, c - 1] {
                        prop_assert_eq!(w.is_active(x), active, "at {}", iso(x));
                    }
                }
                None => {
                    for x in [t + 1, t + HOUR, t + 10 * DAY, t + 40 * DAY] {
                        prop_assert_eq!(w.is_active(x), active, "at {}", iso(x));
                    }
                }
            }
        }
    }
}
