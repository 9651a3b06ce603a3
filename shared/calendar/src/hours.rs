//! Business hours: when a tenant, a client company or a site is "open" (supervised, staffed),
//! in its own time zone, with public holidays and one-day exceptions.
//!
//! A day's hours are, in order of precedence: the day's [`DayException`] if there is one
//! (it replaces everything, a holiday included, so "open 08:00–12:00 on 14 July" is written
//! once), else nothing on a [`Holiday`], else the weekly [`OpenHours`] of its weekday. Each
//! span is read as wall-clock times with the crate's rules (see the crate documentation): a
//! boundary inside a spring gap is the end of the gap, a repeated one its first occurrence.
//! Touching or overlapping spans form one open period, also across midnight
//! (`22:00–24:00` then `00:00–06:00` the next day is one night).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use jiff::{ToSpan, civil};
use serde::{Deserialize, Serialize};
use vigie_domain::policy::Scope;

use crate::ids::CalendarId;
use crate::local::{
    LocalCalendar, LocalDate, LocalTime, LocalValueInvalid, UnknownTimeZone, Weekday,
};

/// The end of an open span: `"HH:MM"`, or `"24:00"` for the end of the day (midnight of the
/// next day), so a span can reach midnight without an off-by-one minute.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndTime {
    /// Minutes since midnight, 0 to 1440.
    minutes: u16,
}

impl EndTime {
    pub const END_OF_DAY: Self = Self { minutes: 24 * 60 };

    /// Minutes since midnight (1440 for `24:00`).
    pub fn minutes_of_day(self) -> u16 {
        self.minutes
    }

    /// The instant this end stands for on local date `d`.
    pub(crate) fn on(self, cal: &LocalCalendar, d: civil::Date) -> i64 {
        if self.minutes >= 24 * 60 {
            cal.start_on(days_after(d, 1), LocalTime::MIDNIGHT)
        } else {
            let t = LocalTime::new((self.minutes / 60) as u8, (self.minutes % 60) as u8)
                .unwrap_or(LocalTime::MIDNIGHT);
            cal.start_on(d, t)
        }
    }
}

impl From<LocalTime> for EndTime {
    fn from(t: LocalTime) -> Self {
        Self {
            minutes: t.minutes_of_day(),
        }
    }
}

impl fmt::Display for EndTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

impl fmt::Debug for EndTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndTime({self})")
    }
}

impl FromStr for EndTime {
    type Err = LocalValueInvalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "24:00" {
            return Ok(Self::END_OF_DAY);
        }
        s.parse::<LocalTime>().map(Self::from)
    }
}

impl TryFrom<String> for EndTime {
    type Error = LocalValueInvalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<EndTime> for String {
    fn from(t: EndTime) -> Self {
        t.to_string()
    }
}

/// Weekly opening hours: `start` to `end` on each of `days`. `end` is after `start` on the
/// same day (`"24:00"` for midnight); a night across midnight is two entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenHours {
    pub days: Vec<Weekday>,
    pub start: LocalTime,
    pub end: EndTime,
}

/// One span of a [`DayException`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSpan {
    pub start: LocalTime,
    pub end: EndTime,
}

/// A public holiday: closed all day (unless a [`DayException`] of the same date says
/// otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    pub date: LocalDate,
    pub name: String,
}

/// A day whose hours differ from the week's: `hours` replace that day's weekly hours (empty:
/// closed all day), also on a holiday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayException {
    pub date: LocalDate,
    #[serde(default)]
    pub hours: Vec<OpenSpan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// When a tenant, a client company or a site is open, in its own time zone. Stored as a JSON
/// document; see the module documentation for how a day's hours are decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessCalendar {
    pub id: CalendarId,
    /// A person's label ("Supervision contract", "Lyon office hours").
    pub name: String,
    /// The IANA zone the hours are read in.
    pub time_zone: String,
    /// Whose hours these are: the whole tenant, a client company or a site.
    pub scope: Scope,
    pub weekly: Vec<OpenHours>,
    #[serde(default)]
    pub holidays: Vec<Holiday>,
    #[serde(default)]
    pub exceptions: Vec<DayException>,
}

/// Why a business calendar is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarInvalid {
    #[error("the calendar needs a name")]
    EmptyName,
    #[error("a name is at most {max} characters", max = BusinessCalendar::MAX_NAME_CHARS)]
    NameTooLong,
    #[error(transparent)]
    UnknownTimeZone(#[from] UnknownTimeZone),
    #[error("a calendar belongs to the tenant, a client company or a site, not a {0}")]
    ScopeNotAllowed(&'static str),
    #[error("weekly hours need at least one weekday")]
    NoWeekdays,
    #[error(
        "hours end ({end}) at or before they start ({start}); a night across midnight is two spans, ending at 24:00 and starting at 00:00"
    )]
    EndNotAfterStart { start: LocalTime, end: EndTime },
    #[error("at most {max} {what}", max = BusinessCalendar::MAX_ENTRIES)]
    TooMany { what: &'static str },
    #[error("{date} is listed twice as a {what}")]
    DuplicateDate { date: LocalDate, what: &'static str },
    #[error("the holiday on {0} needs a name of 1 to 200 characters")]
    BadHolidayName(LocalDate),
    #[error("an exception's note is at most 500 characters")]
    NoteTooLong,
}

impl CalendarInvalid {
    /// The stable error code the API sends.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyName | Self::NameTooLong => "bad_name",
            Self::UnknownTimeZone(_) => "unknown_time_zone",
            Self::ScopeNotAllowed(_) => "bad_scope",
            Self::TooMany { .. } => "too_many",
            _ => "bad_calendar",
        }
    }
}

/// Checks weekly-style hours (shared by calendars and on-call layers).
pub(crate) fn check_hours(hours: &[OpenHours]) -> Result<(), CalendarInvalid> {
    if hours.len() > BusinessCalendar::MAX_ENTRIES {
        return Err(CalendarInvalid::TooMany {
            what: "weekly hours",
        });
    }
    for h in hours {
        if h.days.is_empty() {
            return Err(CalendarInvalid::NoWeekdays);
        }
        check_span(h.start, h.end)?;
    }
    Ok(())
}

fn check_span(start: LocalTime, end: EndTime) -> Result<(), CalendarInvalid> {
    if end.minutes_of_day() <= start.minutes_of_day() {
        return Err(CalendarInvalid::EndNotAfterStart { start, end });
    }
    Ok(())
}

impl BusinessCalendar {
    pub const MAX_NAME_CHARS: usize = 200;
    /// Most weekly entries, holidays or exceptions a calendar holds (each).
    pub const MAX_ENTRIES: usize = 1_000;
    /// How far [`Self::next_open`] and [`Self::next_close`] look ahead.
    pub const HORIZON_DAYS: i32 = 400;
    /// Most intervals [`Self::open_intervals`] returns.
    pub const MAX_INTERVALS: usize = 10_000;

    /// Checks everything serde cannot.
    pub fn validate(&self) -> Result<(), CalendarInvalid> {
        if self.name.trim().is_empty() {
            return Err(CalendarInvalid::EmptyName);
        }
        if self.name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(CalendarInvalid::NameTooLong);
        }
        LocalCalendar::new(&self.time_zone)?;
        match self.scope {
            Scope::Tenant | Scope::Client { .. } | Scope::Site { .. } => {}
            Scope::Tag { .. } => return Err(CalendarInvalid::ScopeNotAllowed("tag")),
            Scope::Device { .. } => return Err(CalendarInvalid::ScopeNotAllowed("device")),
        }
        check_hours(&self.weekly)?;
        if self.holidays.len() > Self::MAX_ENTRIES {
            return Err(CalendarInvalid::TooMany { what: "holidays" });
        }
        if self.exceptions.len() > Self::MAX_ENTRIES {
            return Err(CalendarInvalid::TooMany { what: "exceptions" });
        }
        let mut seen = BTreeSet::new();
        for h in &self.holidays {
            let name = h.name.trim();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(CalendarInvalid::BadHolidayName(h.date));
            }
            if !seen.insert(h.date) {
                return Err(CalendarInvalid::DuplicateDate {
                    date: h.date,
                    what: "holiday",
                });
            }
        }
        let mut seen = BTreeSet::new();
        for x in &self.exceptions {
            if !seen.insert(x.date) {
                return Err(CalendarInvalid::DuplicateDate {
                    date: x.date,
                    what: "exception",
                });
            }
            if x.hours.len() > 24 {
                return Err(CalendarInvalid::TooMany {
                    what: "spans in one exception",
                });
            }
            if x.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
                return Err(CalendarInvalid::NoteTooLong);
            }
            for s in &x.hours {
                check_span(s.start, s.end)?;
            }
        }
        Ok(())
    }

    /// The calendar's zone (UTC for an unknown zone: validate first).
    pub fn local_calendar(&self) -> LocalCalendar {
        LocalCalendar::new(&self.time_zone).unwrap_or_else(|_| LocalCalendar::utc())
    }

    /// Whether the calendar is open at `at_ms`.
    pub fn is_open(&self, at_ms: i64) -> bool {
        let days = DayRules::new(self);
        let cal = self.local_calendar();
        let today = cal.civil_date(at_ms);
        periods(&cal, &days, days_before(today, 1), today)
            .take_while(|p| p.0 <= at_ms)
            .any(|(s, e)| s <= at_ms && at_ms < e)
    }

    /// The first instant at or after `at_ms` when the calendar is open: `at_ms` itself when
    /// open; `None` when it does not open within [`Self::HORIZON_DAYS`].
    pub fn next_open(&self, at_ms: i64) -> Option<i64> {
        let days = DayRules::new(self);
        let cal = self.local_calendar();
        let today = cal.civil_date(at_ms);
        periods(
            &cal,
            &days,
            days_before(today, 1),
            days_after(today, Self::HORIZON_DAYS),
        )
        .find(|p| p.1 > at_ms)
        .map(|(s, _)| s.max(at_ms))
    }

    /// The first instant at or after `at_ms` when the calendar is closed: `at_ms` itself when
    /// closed, else the end of the open period (touching spans count as one); `None` when it
    /// stays open for [`Self::HORIZON_DAYS`].
    pub fn next_close(&self, at_ms: i64) -> Option<i64> {
        let days = DayRules::new(self);
        let cal = self.local_calendar();
        let today = cal.civil_date(at_ms);
        let mut walk = periods(
            &cal,
            &days,
            days_before(today, 1),
            days_after(today, Self::HORIZON_DAYS),
        );
        while let Some((s, e)) = walk.next() {
            if e <= at_ms {
                continue;
            }
            if s > at_ms {
                return Some(at_ms);
            }
            // Open now: its end is known unless the walk stopped at the horizon.
            return (!walk.cut).then_some(e);
        }
        Some(at_ms)
    }

    /// The open periods overlapping `[from_ms, to_ms)`, clipped to it, in order, touching
    /// spans merged; at most [`Self::MAX_INTERVALS`].
    pub fn open_intervals(&self, from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
        if from_ms >= to_ms {
            return Vec::new();
        }
        let days = DayRules::new(self);
        let cal = self.local_calendar();
        let first = days_before(cal.civil_date(from_ms), 1);
        periods(&cal, &days, first, cal.civil_date(to_ms))
            .filter(|&(s, e)| s < to_ms && e > from_ms)
            .map(|(s, e)| (s.max(from_ms), e.min(to_ms)))
            .take(Self::MAX_INTERVALS)
            .collect()
    }

    /// Wall-clock `at` on the local date `days_later` days after the local date of `after_ms`
    /// (`days_later = 0`: today if `at` is still ahead, else tomorrow); with
    /// `open_days_only`, moved forward to the first day on which the calendar has any open
    /// hours (not a holiday, not a closed exception, not a closed weekday), looking at most
    /// [`Self::HORIZON_DAYS`] ahead. `at` is read with the crate's rules: in a spring gap it
    /// is the end of the gap, when repeated its first occurrence.
    pub fn at_local_time(
        &self,
        after_ms: i64,
        at: LocalTime,
        days_later: u32,
        open_days_only: bool,
    ) -> i64 {
        let cal = self.local_calendar();
        let mut d = target_date(&cal, after_ms, at, days_later);
        if open_days_only {
            let days = DayRules::new(self);
            for _ in 0..Self::HORIZON_DAYS {
                if !days.spans(d).is_empty() {
                    break;
                }
                d = days_after(d, 1);
            }
        }
        cal.start_on(d, at)
    }

    /// Whether the calendar has any open hours on local date `d` (the day's rules, whatever
    /// the clocks do).
    pub fn has_hours_on(&self, d: LocalDate) -> bool {
        !DayRules::new(self).spans(d.civil()).is_empty()
    }
}

/// The local date [`BusinessCalendar::at_local_time`] starts from.
fn target_date(cal: &LocalCalendar, after_ms: i64, at: LocalTime, days_later: u32) -> civil::Date {
    let today = cal.civil_date(after_ms);
    if days_later == 0 {
        if cal.start_on(today, at) > after_ms {
            today
        } else {
            days_after(today, 1)
        }
    } else {
        days_after(today, i32::try_from(days_later).unwrap_or(i32::MAX))
    }
}

impl LocalCalendar {
    /// Wall-clock `at` on the local date `days_later` days after the local date of
    /// `after_ms` (`days_later = 0`: today if `at` is still ahead, else tomorrow). "Tomorrow at
    /// 09:00" stays 09:00 on the wall clock across a change of offset.
    pub fn at_local_time(&self, after_ms: i64, at: LocalTime, days_later: u32) -> i64 {
        self.start_on(target_date(self, after_ms, at, days_later), at)
    }
}

/// A calendar's per-day rules, indexed once per query.
struct DayRules<'a> {
    weekly: &'a [OpenHours],
    holidays: BTreeSet<civil::Date>,
    exceptions: BTreeMap<civil::Date, &'a [OpenSpan]>,
}

impl<'a> DayRules<'a> {
    fn new(c: &'a BusinessCalendar) -> Self {
        Self {
            weekly: &c.weekly,
            holidays: c.holidays.iter().map(|h| h.date.civil()).collect(),
            exceptions: c
                .exceptions
                .iter()
                .map(|x| (x.date.civil(), x.hours.as_slice()))
                .collect(),
        }
    }

    /// The day's spans as wall-clock times.
    fn spans(&self, d: civil::Date) -> Vec<(LocalTime, EndTime)> {
        if let Some(spans) = self.exceptions.get(&d) {
            return spans.iter().map(|s| (s.start, s.end)).collect();
        }
        if self.holidays.contains(&d) {
            return Vec::new();
        }
        weekly_spans(self.weekly, d)
    }
}

/// The weekly hours of `d`'s weekday.
pub(crate) fn weekly_spans(weekly: &[OpenHours], d: civil::Date) -> Vec<(LocalTime, EndTime)> {
    let weekday = Weekday::from_jiff(d.weekday());
    weekly
        .iter()
        .filter(|h| h.days.contains(&weekday))
        .map(|h| (h.start, h.end))
        .collect()
}

/// The instants of a day's spans, empty ones (inside a spring gap) left out.
pub(crate) fn instants(
    cal: &LocalCalendar,
    d: civil::Date,
    spans: &[(LocalTime, EndTime)],
) -> Vec<(i64, i64)> {
    spans
        .iter()
        .map(|&(s, e)| (cal.start_on(d, s), e.on(cal, d)))
        .filter(|(s, e)| s < e)
        .collect()
}

fn periods<'c>(
    cal: &'c LocalCalendar,
    days: &'c DayRules<'c>,
    first: civil::Date,
    last: civil::Date,
) -> Periods<impl FnMut(civil::Date) -> Vec<(i64, i64)> + 'c> {
    Periods::new(first, last, move |d| instants(cal, d, &days.spans(d)))
}

/// Merged open periods over the local dates `first..=last`, in order. A day's spans start at or
/// after its midnight and end at the latest at the next one, and local-to-instant reading is
/// monotonic, so merging day by day sees every overlap.
pub(crate) struct Periods<F> {
    spans: F,
    day: Option<civil::Date>,
    last: civil::Date,
    pending: Option<(i64, i64)>,
    queue: VecDeque<(i64, i64)>,
    /// Set when the period just returned was still open at `last` (its true end may be later).
    pub(crate) cut: bool,
}

impl<F: FnMut(civil::Date) -> Vec<(i64, i64)>> Periods<F> {
    pub(crate) fn new(first: civil::Date, last: civil::Date, spans: F) -> Self {
        Self {
            spans,
            day: Some(first),
            last,
            pending: None,
            queue: VecDeque::new(),
            cut: false,
        }
    }
}

impl<F: FnMut(civil::Date) -> Vec<(i64, i64)>> Iterator for Periods<F> {
    type Item = (i64, i64);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(span) = self.queue.pop_front() {
                match self.pending {
                    Some((ps, pe)) if span.0 <= pe => self.pending = Some((ps, pe.max(span.1))),
                    Some(p) => {
                        self.pending = Some(span);
                        return Some(p);
                    }
                    None => self.pending = Some(span),
                }
                continue;
            }
            match self.day {
                Some(d) if d <= self.last => {
                    let mut spans = (self.spans)(d);
                    spans.sort_unstable();
                    self.queue.extend(spans);
                    self.day = d.tomorrow().ok();
                }
                _ => {
                    self.cut = self.pending.is_some();
                    return self.pending.take();
                }
            }
        }
    }
}

pub(crate) fn days_before(d: civil::Date, n: i32) -> civil::Date {
    d.checked_sub(n.days()).unwrap_or(civil::Date::MIN)
}

pub(crate) fn days_after(d: civil::Date, n: i32) -> civil::Date {
    d.checked_add(n.days()).unwrap_or(civil::Date::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vigie_domain::ids::ClientId;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>()
            .expect("timestamp")
            .as_millisecond()
    }

    fn time(s: &str) -> LocalTime {
        s.parse().expect("time")
    }

    fn date(s: &str) -> LocalDate {
        s.parse().expect("date")
    }

    fn hours(days: &[Weekday], start: &str, end: &str) -> OpenHours {
        OpenHours {
            days: days.to_vec(),
            start: time(start),
            end: end.parse().expect("end"),
        }
    }

    const MON_SAT: &[Weekday] = &[
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
    ];
    const ALL: &[Weekday] = &[
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// The MISSION's supervision contract: sites watched 06:00–22:00 Monday to Saturday.
    fn supervision(zone: &str) -> BusinessCalendar {
        BusinessCalendar {
            id: CalendarId::parse("supervision").expect("id"),
            name: "Supervision contract".into(),
            time_zone: zone.into(),
            scope: Scope::Client {
                client: ClientId::parse("acme").expect("client"),
            },
            weekly: vec![hours(MON_SAT, "06:00", "22:00")],
            holidays: vec![],
            exceptions: vec![],
        }
    }

    #[test]
    fn the_supervision_contract_with_a_holiday_and_an_exception() {
        let mut c = supervision("Europe/Paris");
        c.holidays = vec![
            Holiday {
                date: date("2026-05-01"),
                name: "Fête du Travail".into(),
            },
            Holiday {
                date: date("2026-07-14"),
                name: "Fête nationale".into(),
            },
        ];
        c.exceptions = vec![
            DayException {
                date: date("2026-12-24"),
                hours: vec![OpenSpan {
                    start: time("06:00"),
                    end: "12:00".parse().expect("end"),
                }],
                note: Some("Christmas Eve: mornings only".into()),
            },
            // Over a holiday: the exception wins.
            DayException {
                date: date("2026-07-14"),
                hours: vec![OpenSpan {
                    start: time("08:00"),
                    end: "12:00".parse().expect("end"),
                }],
                note: None,
            },
            DayException {
                date: date("2026-06-13"),
                hours: vec![],
                note: Some("office move".into()),
            },
        ];
        assert_eq!(c.validate(), Ok(()));
        // An ordinary Tuesday in summer (CEST, UTC+2).
        assert!(!c.is_open(utc("2026-06-02T03:59:59Z")));
        assert!(c.is_open(utc("2026-06-02T04:00Z")));
        assert!(c.is_open(utc("2026-06-02T19:59:59Z")));
        assert!(!c.is_open(utc("2026-06-02T20:00Z")));
        // Sunday closed; Friday 1 May is a holiday: from Thursday night to Saturday 06:00.
        assert!(!c.is_open(utc("2026-06-07T10:00Z")));
        assert_eq!(
            c.next_open(utc("2026-04-30T20:00Z")),
            Some(utc("2026-05-02T04:00Z"))
        );
        assert_eq!(
            c.next_close(utc("2026-04-30T12:00Z")),
            Some(utc("2026-04-30T20:00Z"))
        );
        // 14 July: 08:00–12:00 only.
        assert!(!c.is_open(utc("2026-07-14T05:00Z")));
        assert!(c.is_open(utc("2026-07-14T06:00Z")));
        assert_eq!(
            c.next_close(utc("2026-07-14T06:00Z")),
            Some(utc("2026-07-14T10:00Z"))
        );
        // Christmas Eve (CET, UTC+1): 06:00–12:00; Christmas Day is an ordinary Friday here.
        assert_eq!(
            c.open_intervals(utc("2026-12-24T00:00Z"), utc("2026-12-26T00:00Z")),
            vec![
                (utc("2026-12-24T05:00Z"), utc("2026-12-24T11:00Z")),
                (utc("2026-12-25T05:00Z"), utc("2026-12-25T21:00Z")),
            ]
        );
        // A Saturday closed by exception.
        assert!(!c.is_open(utc("2026-06-13T10:00Z")));
        assert!(!c.has_hours_on(date("2026-06-13")));
        assert!(c.has_hours_on(date("2026-07-14")));
        // A closed moment is its own next close; an open one its own next open.
        let t = utc("2026-06-07T10:00Z");
        assert_eq!(c.next_close(t), Some(t));
        let t = utc("2026-06-02T10:00Z");
        assert_eq!(c.next_open(t), Some(t));
    }

    /// Daylight-saving golden tests: a business-hours wait that crosses the change lands at
    /// the right wall-clock time.
    #[test]
    fn business_hours_across_the_paris_changes() {
        let c = supervision("Europe/Paris");
        // Spring: closed Saturday 28 March 22:00 CET; Sunday 29 the clocks go forward;
        // Monday 30 at 06:00 CEST is 04:00 UTC (it was 05:00 UTC a week before).
        let saturday_close = utc("2026-03-28T21:00Z");
        assert_eq!(c.next_close(utc("2026-03-28T12:00Z")), Some(saturday_close));
        assert_eq!(c.next_open(saturday_close), Some(utc("2026-03-30T04:00Z")));
        assert_eq!(
            c.next_open(utc("2026-03-21T21:00Z")),
            Some(utc("2026-03-23T05:00Z"))
        );
        // "Tomorrow at 09:00 on an open day" from Saturday afternoon: Monday 09:00 CEST.
        let t = c.at_local_time(utc("2026-03-28T14:00Z"), time("09:00"), 1, true);
        assert_eq!(t, utc("2026-03-30T07:00Z"));
        // Without open days: Sunday 09:00, already summer time.
        let t = c.at_local_time(utc("2026-03-28T14:00Z"), time("09:00"), 1, false);
        assert_eq!(t, utc("2026-03-29T07:00Z"));
        // 02:30 does not exist that night: the first instant after the gap (03:00 CEST).
        let t = c.at_local_time(utc("2026-03-28T14:00Z"), time("02:30"), 1, false);
        assert_eq!(t, utc("2026-03-29T01:00Z"));

        // Autumn: closed Saturday 24 October 22:00 CEST (20:00 UTC); Monday 26 at 06:00 CET
        // is 05:00 UTC.
        assert_eq!(
            c.next_close(utc("2026-10-24T12:00Z")),
            Some(utc("2026-10-24T20:00Z"))
        );
        assert_eq!(
            c.next_open(utc("2026-10-24T20:00Z")),
            Some(utc("2026-10-26T05:00Z"))
        );
        let t = c.at_local_time(utc("2026-10-24T14:00Z"), time("09:00"), 1, true);
        assert_eq!(t, utc("2026-10-26T08:00Z"));
        // 02:30 happens twice on 25 October: the first one (still CEST).
        let t = c.at_local_time(utc("2026-10-24T14:00Z"), time("02:30"), 1, false);
        assert_eq!(t, utc("2026-10-25T00:30Z"));
    }

    #[test]
    fn business_hours_across_the_new_york_changes() {
        let c = supervision("America/New_York");
        // Spring: Saturday 7 March closes at 22:00 EST (03:00 UTC Sunday); Monday 9 opens at
        // 06:00 EDT (10:00 UTC).
        assert_eq!(
            c.next_close(utc("2026-03-07T15:00Z")),
            Some(utc("2026-03-08T03:00Z"))
        );
        assert_eq!(
            c.next_open(utc("2026-03-08T03:00Z")),
            Some(utc("2026-03-09T10:00Z"))
        );
        let t = c.at_local_time(utc("2026-03-07T20:00Z"), time("09:00"), 1, true);
        assert_eq!(t, utc("2026-03-09T13:00Z"));
        let t = c.at_local_time(utc("2026-03-07T20:00Z"), time("09:00"), 1, false);
        assert_eq!(t, utc("2026-03-08T13:00Z"));
        // Autumn: Saturday 31 October closes at 22:00 EDT (02:00 UTC); Monday 2 November opens
        // at 06:00 EST (11:00 UTC).
        assert_eq!(
            c.next_open(utc("2026-11-01T02:00Z")),
            Some(utc("2026-11-02T11:00Z"))
        );
        let t = c.at_local_time(utc("2026-10-31T20:00Z"), time("09:00"), 1, true);
        assert_eq!(t, utc("2026-11-02T14:00Z"));
        // 01:30 happens twice on 1 November: the first (EDT, 05:30 UTC).
        let t = c.at_local_time(utc("2026-10-31T20:00Z"), time("01:30"), 1, false);
        assert_eq!(t, utc("2026-11-01T05:30Z"));
    }

    #[test]
    fn at_local_time_today_or_tomorrow() {
        let paris = LocalCalendar::new("Europe/Paris").expect("zone");
        // 08:00 CEST: 09:00 is still ahead today.
        assert_eq!(
            paris.at_local_time(utc("2026-06-02T06:00Z"), time("09:00"), 0),
            utc("2026-06-02T07:00Z")
        );
        // Exactly 09:00: not ahead any more, so tomorrow.
        assert_eq!(
            paris.at_local_time(utc("2026-06-02T07:00Z"), time("09:00"), 0),
            utc("2026-06-03T07:00Z")
        );
        assert_eq!(
            paris.at_local_time(utc("2026-06-02T06:00Z"), time("09:00"), 7),
            utc("2026-06-09T07:00Z")
        );
        // The calendar version with open days skips the holiday and the Sunday.
        let mut c = supervision("Europe/Paris");
        c.holidays.push(Holiday {
            date: date("2026-06-08"),
            name: "x".into(),
        });
        assert_eq!(
            c.at_local_time(utc("2026-06-06T10:00Z"), time("09:00"), 0, true),
            utc("2026-06-09T07:00Z")
        );
    }

    #[test]
    fn nights_across_midnight_are_one_period() {
        let mut c = supervision("Europe/Paris");
        c.weekly = vec![
            hours(ALL, "22:00", "24:00"),
            hours(ALL, "00:00", "06:00"),
            hours(&[Weekday::Saturday, Weekday::Sunday], "06:00", "22:00"),
        ];
        assert_eq!(c.validate(), Ok(()));
        // Monday 1 June 22:00 CEST to Tuesday 06:00.
        assert_eq!(
            c.next_close(utc("2026-06-01T21:00Z")),
            Some(utc("2026-06-02T04:00Z"))
        );
        // Friday night runs into the weekend and through to Monday 06:00.
        assert_eq!(
            c.next_close(utc("2026-06-05T21:00Z")),
            Some(utc("2026-06-08T04:00Z"))
        );
        // Always open: no close within the horizon.
        c.weekly = vec![hours(ALL, "00:00", "24:00")];
        assert_eq!(c.next_close(utc("2026-06-05T21:00Z")), None);
        assert!(c.is_open(utc("2026-10-25T01:30Z")));
        // Never open: no next open.
        c.weekly = vec![];
        assert_eq!(c.next_open(utc("2026-06-05T21:00Z")), None);
        assert!(c.open_intervals(0, utc("2027-01-01T00:00Z")).is_empty());
    }

    #[test]
    fn invalid_calendars_are_refused() {
        let good = supervision("Europe/Paris");
        let cases: Vec<(BusinessCalendar, &str)> = vec![
            (
                BusinessCalendar {
                    name: " ".into(),
                    ..good.clone()
                },
                "bad_name",
            ),
            (
                BusinessCalendar {
                    time_zone: "Mars/Olympus".into(),
                    ..good.clone()
                },
                "unknown_time_zone",
            ),
            (
                BusinessCalendar {
                    scope: Scope::Tag {
                        key: "role".into(),
                        value: "server".into(),
                    },
                    ..good.clone()
                },
                "bad_scope",
            ),
            (
                BusinessCalendar {
                    weekly: vec![hours(&[], "06:00", "22:00")],
                    ..good.clone()
                },
                "bad_calendar",
            ),
            (
                BusinessCalendar {
                    weekly: vec![hours(MON_SAT, "22:00", "06:00")],
                    ..good.clone()
                },
                "bad_calendar",
            ),
            (
                BusinessCalendar {
                    holidays: vec![
                        Holiday {
                            date: date("2026-05-01"),
                            name: "a".into(),
                        },
                        Holiday {
                            date: date("2026-05-01"),
                            name: "b".into(),
                        },
                    ],
                    ..good.clone()
                },
                "bad_calendar",
            ),
            (
                BusinessCalendar {
                    exceptions: vec![DayException {
                        date: date("2026-05-01"),
                        hours: vec![OpenSpan {
                            start: time("10:00"),
                            end: "10:00".parse().expect("end"),
                        }],
                        note: None,
                    }],
                    ..good.clone()
                },
                "bad_calendar",
            ),
        ];
        for (c, code) in cases {
            let err = c.validate().expect_err("refused");
            assert_eq!(err.code(), code, "{err}");
        }
        assert!("24:01".parse::<EndTime>().is_err());
        assert!("00:00".parse::<EndTime>().is_ok());
    }

    #[test]
    fn json_document_refuses_unknown_fields() {
        let json = r#"{
            "id": "supervision", "name": "Supervision", "time_zone": "Europe/Paris",
            "scope": {"level": "site", "client": "acme", "site": "lyon"},
            "weekly": [{"days": ["monday", "saturday"], "start": "06:00", "end": "24:00"}],
            "holidays": [{"date": "2026-12-25", "name": "Noël"}],
            "exceptions": [{"date": "2026-12-24", "hours": [{"start": "06:00", "end": "12:00"}]}]
        }"#;
        let c: BusinessCalendar = serde_json::from_str(json).expect("parses");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.weekly[0].end, EndTime::END_OF_DAY);
        let back: BusinessCalendar =
            serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("back");
        assert_eq!(back, c);
        let extra = json.replacen("\"weekly\"", "\"colour\": 1, \"weekly\"", 1);
        assert!(serde_json::from_str::<BusinessCalendar>(&extra).is_err());
        let extra = json.replacen(
            "\"start\": \"06:00\", \"end\": \"24:00\"",
            "\"start\": \"06:00\", \"end\": \"24:00\", \"x\": 1",
            1,
        );
        assert!(serde_json::from_str::<BusinessCalendar>(&extra).is_err());
    }

    fn arb_calendar() -> impl Strategy<Value = BusinessCalendar> {
        let zone = prop::sample::select(vec![
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
            "UTC",
        ]);
        let span = (0u16..1440, 1u16..=720).prop_map(|(s, len)| {
            let end = (s + len).min(1440);
            let s = s.min(end - 1);
            (
                LocalTime::new((s / 60) as u8, (s % 60) as u8).expect("time"),
                EndTime { minutes: end },
            )
        });
        let weekly = prop::collection::vec(
            (prop::sample::subsequence(ALL.to_vec(), 1..=7), span.clone()),
            0..4,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(days, (start, end))| OpenHours { days, start, end })
                .collect::<Vec<_>>()
        });
        let holidays = prop::collection::btree_set(0i32..60, 0..5);
        let exceptions = prop::collection::btree_map(
            0i32..60,
            prop::collection::vec(span.prop_map(|(start, end)| OpenSpan { start, end }), 0..2),
            0..4,
        );
        (zone, weekly, holidays, exceptions).prop_map(|(zone, weekly, hol, exc)| {
            let base = civil::date(2026, 3, 1);
            let d = |n: i32| LocalDate::from_civil(days_after(base, n));
            BusinessCalendar {
                weekly,
                holidays: hol
                    .into_iter()
                    .map(|n| Holiday {
                        date: d(n),
                        name: "h".into(),
                    })
                    .collect(),
                exceptions: exc
                    .into_iter()
                    .map(|(n, hours)| DayException {
                        date: d(n),
                        hours,
                        note: None,
                    })
                    .collect(),
                ..supervision(zone)
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn open_close_and_intervals_agree(
            c in arb_calendar(),
            t in utc("2026-03-01T00:00Z")..utc("2026-05-01T00:00Z"),
        ) {
            prop_assert_eq!(c.validate(), Ok(()));
            let open = c.is_open(t);
            let around = c.open_intervals(t - 3 * DAY, t + 3 * DAY);
            prop_assert_eq!(open, around.iter().any(|&(s, e)| s <= t && t < e));
            prop_assert!(around.windows(2).all(|p| p[0].1 < p[1].0), "merged and ordered");
            if let Some(o) = c.next_open(t) {
                prop_assert!(o >= t && c.is_open(o));
                prop_assert_eq!(o == t, open);
                if o > t {
                    prop_assert!(!c.is_open(o - 1) && !c.is_open(t + (o - t) / 2));
                }
            }
            if let Some(x) = c.next_close(t) {
                prop_assert!(x >= t && !c.is_open(x));
                prop_assert_eq!(x == t, !open);
                if x > t {
                    prop_assert!(c.is_open(x - 1) && c.is_open(t + (x - t) / 2));
                }
            }
        }
    }
}
