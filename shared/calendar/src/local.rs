//! Local (civil) dates and times, and [`LocalCalendar`]: turning them into UTC instants in one
//! IANA time zone and back.
//!
//! Precision is the minute. That is lossless for every boundary a person writes ("06:00",
//! "22:30"): for a minute-aligned boundary `b`, `t < b` exactly when `floor_minute(t) < b`.

use std::fmt;
use std::str::FromStr;

use jiff::tz::{AmbiguousOffset, Offset, TimeZone, TimeZoneDatabase};
use jiff::{Timestamp, civil};
use serde::{Deserialize, Serialize};

/// A text is not a local date, time or date-time in the accepted format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a {what} (expected {expected})")]
pub struct LocalValueInvalid {
    what: &'static str,
    expected: &'static str,
    input: String,
}

/// An IANA time-zone name that the bundled database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown IANA time zone {0:?}")]
pub struct UnknownTimeZone(pub String);

/// A day of the week; `"monday"` … `"sunday"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    pub(crate) fn from_jiff(w: civil::Weekday) -> Self {
        match w {
            civil::Weekday::Monday => Self::Monday,
            civil::Weekday::Tuesday => Self::Tuesday,
            civil::Weekday::Wednesday => Self::Wednesday,
            civil::Weekday::Thursday => Self::Thursday,
            civil::Weekday::Friday => Self::Friday,
            civil::Weekday::Saturday => Self::Saturday,
            civil::Weekday::Sunday => Self::Sunday,
        }
    }
}

/// A calendar date (proleptic Gregorian), years 1 to 9998; `"YYYY-MM-DD"` on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalDate(civil::Date);

impl LocalDate {
    const WHAT: &'static str = "local date";
    const FORMAT: &'static str = "YYYY-MM-DD, a real day, year 1 to 9998";

    /// The date, if it exists (`2026-02-30` does not).
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, LocalValueInvalid> {
        let invalid = || LocalValueInvalid {
            what: Self::WHAT,
            expected: Self::FORMAT,
            input: format!("{year:04}-{month:02}-{day:02}"),
        };
        let (Ok(y), Ok(m), Ok(d)) = (i16::try_from(year), i8::try_from(month), i8::try_from(day))
        else {
            return Err(invalid());
        };
        if !(1..=9998).contains(&y) {
            return Err(invalid());
        }
        civil::Date::new(y, m, d).map(Self).map_err(|_| invalid())
    }

    pub fn year(self) -> u16 {
        self.0.year().unsigned_abs()
    }

    pub fn month(self) -> u8 {
        self.0.month().unsigned_abs()
    }

    pub fn day(self) -> u8 {
        self.0.day().unsigned_abs()
    }

    pub fn weekday(self) -> Weekday {
        Weekday::from_jiff(self.0.weekday())
    }

    /// This date at `time`.
    pub fn at(self, time: LocalTime) -> LocalDateTime {
        LocalDateTime { date: self, time }
    }

    pub(crate) fn civil(self) -> civil::Date {
        self.0
    }

    /// Only for dates jiff produced from a timestamp; years outside 1..=9998 are clamped.
    pub(crate) fn from_civil(d: civil::Date) -> Self {
        let clamped = if d.year() < 1 {
            civil::Date::constant(1, 1, 1)
        } else if d.year() > 9998 {
            civil::Date::constant(9998, 12, 31)
        } else {
            d
        };
        Self(clamped)
    }
}

impl fmt::Display for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.year(),
            self.month(),
            self.day()
        )
    }
}

impl fmt::Debug for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalDate({self})")
    }
}

/// Digits only, exactly `len` of them.
fn number(s: &str, len: usize) -> Option<u16> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl FromStr for LocalDate {
    type Err = LocalValueInvalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || LocalValueInvalid {
            what: Self::WHAT,
            expected: Self::FORMAT,
            input: s.to_owned(),
        };
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let (Some(y), Some(m), Some(d)) = (number(y, 4), number(m, 2), number(d, 2)) else {
            return Err(invalid());
        };
        let (Ok(m), Ok(d)) = (u8::try_from(m), u8::try_from(d)) else {
            return Err(invalid());
        };
        Self::new(y, m, d).map_err(|_| invalid())
    }
}

impl TryFrom<String> for LocalDate {
    type Error = LocalValueInvalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<LocalDate> for String {
    fn from(d: LocalDate) -> Self {
        d.to_string()
    }
}

/// A time of day to the minute, `00:00` to `23:59`; `"HH:MM"` on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalTime {
    hour: u8,
    minute: u8,
}

impl LocalTime {
    const WHAT: &'static str = "local time";
    const FORMAT: &'static str = "HH:MM, 00:00 to 23:59";

    pub const MIDNIGHT: Self = Self { hour: 0, minute: 0 };

    pub fn new(hour: u8, minute: u8) -> Result<Self, LocalValueInvalid> {
        if hour < 24 && minute < 60 {
            Ok(Self { hour, minute })
        } else {
            Err(LocalValueInvalid {
                what: Self::WHAT,
                expected: Self::FORMAT,
                input: format!("{hour:02}:{minute:02}"),
            })
        }
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn minute(self) -> u8 {
        self.minute
    }

    /// Minutes since midnight.
    pub fn minutes_of_day(self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl fmt::Debug for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalTime({self})")
    }
}

impl FromStr for LocalTime {
    type Err = LocalValueInvalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || LocalValueInvalid {
            what: Self::WHAT,
            expected: Self::FORMAT,
            input: s.to_owned(),
        };
        let (h, m) = s.split_once(':').ok_or_else(invalid)?;
        let (Some(h), Some(m)) = (number(h, 2), number(m, 2)) else {
            return Err(invalid());
        };
        let (Ok(h), Ok(m)) = (u8::try_from(h), u8::try_from(m)) else {
            return Err(invalid());
        };
        Self::new(h, m).map_err(|_| invalid())
    }
}

impl TryFrom<String> for LocalTime {
    type Error = LocalValueInvalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<LocalTime> for String {
    fn from(t: LocalTime) -> Self {
        t.to_string()
    }
}

/// A date and a time of day on a wall clock, in no particular zone;
/// `"YYYY-MM-DDTHH:MM"` on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalDateTime {
    pub date: LocalDate,
    pub time: LocalTime,
}

impl LocalDateTime {
    pub fn new(date: LocalDate, time: LocalTime) -> Self {
        Self { date, time }
    }

    fn civil(self) -> civil::DateTime {
        // Both parts were validated when built, so `at` cannot be out of range.
        self.date.civil().at(
            i8::try_from(self.time.hour).unwrap_or(0),
            i8::try_from(self.time.minute).unwrap_or(0),
            0,
            0,
        )
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{}", self.date, self.time)
    }
}

impl fmt::Debug for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalDateTime({self})")
    }
}

impl FromStr for LocalDateTime {
    type Err = LocalValueInvalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || LocalValueInvalid {
            what: "local date-time",
            expected: "YYYY-MM-DDTHH:MM",
            input: s.to_owned(),
        };
        let (d, t) = s.split_once('T').ok_or_else(invalid)?;
        Ok(Self {
            date: d.parse().map_err(|_| invalid())?,
            time: t.parse().map_err(|_| invalid())?,
        })
    }
}

impl TryFrom<String> for LocalDateTime {
    type Error = LocalValueInvalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<LocalDateTime> for String {
    fn from(t: LocalDateTime) -> Self {
        t.to_string()
    }
}

/// Which instant a local time that occurs twice (clocks set back) stands for.
///
/// A local time that does not occur at all (clocks set forward, inside the gap) has no
/// instant of its own: either choice gives the first instant after the gap, when the wall
/// clock shows the end of the gap (02:30 on a day Paris jumps from 02:00 to 03:00 → the
/// instant the clocks show 03:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disambiguation {
    /// The first occurrence, still on the earlier (summer) offset.
    Earlier,
    /// The second occurrence, on the later (winter) offset.
    Later,
}

/// One IANA time zone from the bundled database, for conversions between wall-clock time and
/// UTC instants (Unix milliseconds). The host's time-zone files are never read.
#[derive(Debug, Clone)]
pub struct LocalCalendar {
    zone: TimeZone,
}

fn saturating_ms(ts: Result<Timestamp, jiff::Error>, fallback: Timestamp) -> i64 {
    ts.unwrap_or(fallback).as_millisecond()
}

impl LocalCalendar {
    /// The calendar of an IANA zone (`"Europe/Paris"`, `"America/New_York"`, `"UTC"`); the
    /// name is matched without regard to ASCII case.
    pub fn new(zone: &str) -> Result<Self, UnknownTimeZone> {
        TimeZoneDatabase::bundled()
            .get(zone)
            .map(|zone| Self { zone })
            .map_err(|_| UnknownTimeZone(zone.to_owned()))
    }

    /// Coordinated Universal Time.
    pub fn utc() -> Self {
        Self {
            zone: TimeZone::UTC,
        }
    }

    /// The wall clock at an instant with the zone's offset then, to the minute:
    /// `2026-03-29T03:00+02:00`. What a person in the zone reads, and unambiguous.
    pub fn local_text(&self, ms: i64) -> String {
        let zoned = timestamp(ms).to_zoned(self.zone.clone());
        let offset = zoned.offset().seconds() / 60;
        let sign = if offset < 0 { '-' } else { '+' };
        let (d, t, _) = self.to_local(ms);
        format!(
            "{d}T{t}{sign}{:02}:{:02}",
            offset.abs() / 60,
            offset.abs() % 60
        )
    }

    /// The zone's canonical IANA name.
    pub fn zone_name(&self) -> &str {
        self.zone.iana_name().unwrap_or("UTC")
    }

    /// The instant (Unix ms) a wall-clock time stands for; see [`Disambiguation`] for times
    /// that occur twice or not at all.
    pub fn to_utc(&self, at: LocalDateTime, disambiguation: Disambiguation) -> i64 {
        let dt = at.civil();
        let with = |offset: Offset, fallback| saturating_ms(offset.to_timestamp(dt), fallback);
        match self.zone.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => with(offset, Timestamp::MAX),
            AmbiguousOffset::Gap { before, after } => {
                // Read with the later offset, the time falls before the transition; the
                // transition that follows is the first instant after the gap.
                let before_gap = offset_instant(after, dt);
                match before_gap.and_then(|t| self.zone.following(t).next()) {
                    Some(transition) => transition.timestamp().as_millisecond(),
                    None => with(before, Timestamp::MAX),
                }
            }
            AmbiguousOffset::Fold { before, after } => match disambiguation {
                Disambiguation::Earlier => with(before, Timestamp::MAX),
                Disambiguation::Later => with(after, Timestamp::MAX),
            },
        }
    }

    /// The wall-clock date, time (truncated to the minute) and weekday at an instant.
    pub fn to_local(&self, ms: i64) -> (LocalDate, LocalTime, Weekday) {
        let dt = self.zone.to_datetime(timestamp(ms));
        let date = LocalDate::from_civil(dt.date());
        let time = LocalTime {
            hour: dt.hour().unsigned_abs(),
            minute: dt.minute().unsigned_abs(),
        };
        (date, time, date.weekday())
    }

    /// The local date at an instant, as jiff sees it (no year clamping).
    pub(crate) fn civil_date(&self, ms: i64) -> civil::Date {
        self.zone.to_datetime(timestamp(ms)).date()
    }

    /// [`Self::to_utc`] for a jiff date, used by schedules that walk the calendar.
    pub(crate) fn start_on(&self, date: civil::Date, time: LocalTime) -> i64 {
        let at = LocalDateTime {
            date: LocalDate(date),
            time,
        };
        self.to_utc(at, Disambiguation::Earlier)
    }
}

/// An instant written as Unix milliseconds (`1774746000000`) or as an RFC 3339 date-time
/// with an offset (`2026-03-29T03:00:00+02:00`, `2026-03-29T01:00:00Z`).
pub fn parse_instant(s: &str) -> Result<i64, LocalValueInvalid> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    s.parse::<Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| LocalValueInvalid {
            what: "instant",
            expected: "Unix milliseconds or RFC 3339 with an offset",
            input: s.chars().take(64).collect(),
        })
}

fn offset_instant(offset: Offset, dt: civil::DateTime) -> Option<Timestamp> {
    offset.to_timestamp(dt).ok()
}

/// The instant at `ms`, clamped into the range jiff represents (about ±9999 years).
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let ms = ms.clamp(
        Timestamp::MIN.as_millisecond() + 1,
        Timestamp::MAX.as_millisecond() - 1,
    );
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> LocalDateTime {
        s.parse().expect("local date-time")
    }

    fn utc(s: &str) -> i64 {
        s.parse::<Timestamp>().expect("timestamp").as_millisecond()
    }

    fn cal(zone: &str) -> LocalCalendar {
        LocalCalendar::new(zone).expect("zone")
    }

    #[test]
    fn parses_and_prints_strictly() {
        assert_eq!(dt("2026-03-29T02:30").to_string(), "2026-03-29T02:30");
        for bad in [
            "2026-3-29T02:30",
            "2026-03-29 02:30",
            "2026-02-30T00:00",
            "2026-03-29T24:00",
            "2026-03-29T02:60",
            "2026-03-29T02:30:00",
            "0000-01-01T00:00",
            "+2026-03-29T02:30",
            "",
        ] {
            assert!(bad.parse::<LocalDateTime>().is_err(), "{bad} accepted");
        }
        assert!("2028-02-29".parse::<LocalDate>().is_ok());
        assert!("2026-02-29".parse::<LocalDate>().is_err());
        assert!("7:00".parse::<LocalTime>().is_err());
        let json = serde_json::to_string(&dt("2026-10-25T02:30")).expect("json");
        assert_eq!(json, "\"2026-10-25T02:30\"");
        assert!(serde_json::from_str::<LocalTime>("\"25:00\"").is_err());
        assert_eq!(
            serde_json::from_str::<Weekday>("\"sunday\"").expect("weekday"),
            Weekday::Sunday
        );
    }

    #[test]
    fn unknown_zones_are_refused_and_names_are_canonical() {
        assert!(LocalCalendar::new("Europe/Lutece").is_err());
        assert!(LocalCalendar::new("").is_err());
        assert_eq!(cal("europe/paris").zone_name(), "Europe/Paris");
    }

    #[test]
    fn ordinary_times_convert_both_ways() {
        let paris = cal("Europe/Paris");
        let at = paris.to_utc(dt("2026-07-14T10:15"), Disambiguation::Earlier);
        assert_eq!(at, utc("2026-07-14T08:15:00Z"));
        let (d, t, w) = paris.to_local(at + 59_999);
        assert_eq!(
            (d.to_string(), t.to_string(), w),
            ("2026-07-14".into(), "10:15".into(), Weekday::Tuesday)
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_is_the_end_of_the_gap() {
        let paris = cal("Europe/Paris");
        for d in [Disambiguation::Earlier, Disambiguation::Later] {
            for local in ["2026-03-29T02:00", "2026-03-29T02:30", "2026-03-29T02:59"] {
                assert_eq!(
                    paris.to_utc(dt(local), d),
                    utc("2026-03-29T01:00:00Z"),
                    "{local}"
                );
            }
        }
        let ny = cal("America/New_York");
        assert_eq!(
            ny.to_utc(dt("2026-03-08T02:30"), Disambiguation::Earlier),
            utc("2026-03-08T07:00:00Z")
        );
        let (_, t, _) = paris.to_local(utc("2026-03-29T01:00:00Z"));
        assert_eq!(t.to_string(), "03:00");
    }

    #[test]
    fn a_repeated_time_is_either_occurrence() {
        let paris = cal("Europe/Paris");
        let at = dt("2026-10-25T02:30");
        assert_eq!(
            paris.to_utc(at, Disambiguation::Earlier),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            paris.to_utc(at, Disambiguation::Later),
            utc("2026-10-25T01:30:00Z")
        );
        let ny = cal("America/New_York");
        let at = dt("2026-11-01T01:30");
        assert_eq!(
            ny.to_utc(at, Disambiguation::Earlier),
            utc("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            ny.to_utc(at, Disambiguation::Later),
            utc("2026-11-01T06:30:00Z")
        );
    }

    #[test]
    fn instants_parse_and_local_text_shows_the_offset() {
        assert_eq!(parse_instant("1774746000000"), Ok(1_774_746_000_000));
        assert_eq!(
            parse_instant("2026-03-29T03:00:00+02:00"),
            Ok(utc("2026-03-29T01:00:00Z"))
        );
        assert!(parse_instant("2026-03-29T03:00").is_err());
        assert!(parse_instant("tomorrow").is_err());
        let paris = cal("Europe/Paris");
        assert_eq!(
            paris.local_text(utc("2026-03-29T01:00:00Z")),
            "2026-03-29T03:00+02:00"
        );
        assert_eq!(
            paris.local_text(utc("2026-03-29T00:59:00Z")),
            "2026-03-29T01:59+01:00"
        );
        assert_eq!(
            cal("America/New_York").local_text(utc("2026-11-01T06:30:00Z")),
            "2026-11-01T01:30-05:00"
        );
        assert_eq!(LocalCalendar::utc().local_text(0), "1970-01-01T00:00+00:00");
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let paris = cal("Europe/Paris");
        let _ = paris.to_local(i64::MIN);
        let _ = paris.to_local(i64::MAX);
        let far = dt("9998-12-31T23:59");
        assert!(paris.to_utc(far, Disambiguation::Later) > 0);
    }
}
