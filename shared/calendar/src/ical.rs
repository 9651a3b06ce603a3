//! Public holidays from iCalendar text (RFC 5545), as governments and calendar services
//! publish them: only what a holiday list needs, read strictly.
//!
//! Read: folded lines (a line starting with a space or a tab continues the previous one),
//! `VEVENT`s inside a `VCALENDAR` whose `DTSTART` is a date (`DTSTART;VALUE=DATE:20261225`
//! or `DTSTART:20261225`), an optional `DTEND` (exclusive: a three-day event is three
//! holidays) or `DURATION` in days or weeks, `SUMMARY` as the name (with `\,` `\;` `\n` `\\`
//! unescaped) and `RRULE:FREQ=YEARLY` (with `INTERVAL`, `COUNT`, `UNTIL`, one `BYMONTH`, one
//! `BYMONTHDAY` or one `BYDAY` such as `-1MO` for "last Monday"). Events with a time of day
//! are meetings, not holidays: skipped without error. Other components (`VTIMEZONE`,
//! `VALARM`, `VTODO`) are skipped. Anything malformed is refused with its line number, so a
//! person can fix the file rather than guess what was imported.

use std::collections::BTreeMap;

use jiff::civil;

use crate::hours::Holiday;
use crate::local::LocalDate;

/// Largest text accepted.
pub const MAX_ICAL_BYTES: usize = 1 << 20;
/// Most holidays one import yields.
pub const MAX_HOLIDAYS: usize = 1_000;
/// How many years an open-ended yearly rule is expanded for by [`parse_ical_holidays`].
pub const OPEN_ENDED_YEARS: u16 = 5;
/// Days generated (before merging same dates) beyond which the text is refused.
const MAX_GENERATED_DAYS: usize = 100_000;

/// Why an iCalendar text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcalInvalid {
    #[error("the iCalendar text is larger than {MAX_ICAL_BYTES} bytes")]
    TooLarge,
    #[error("not an iCalendar file: no BEGIN:VCALENDAR")]
    NotICalendar,
    #[error("more than {MAX_HOLIDAYS} holidays")]
    TooMany,
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
}

impl IcalInvalid {
    /// The stable error code the API sends.
    pub fn code(&self) -> &'static str {
        "bad_ical"
    }
}

fn malformed(line: usize, message: impl Into<String>) -> IcalInvalid {
    IcalInvalid::Malformed {
        line,
        message: message.into(),
    }
}

/// The holidays of an iCalendar text, one per date (the first event of a date names it), in
/// date order. Open-ended yearly rules are expanded for [`OPEN_ENDED_YEARS`] years after their
/// `DTSTART`'s year.
pub fn parse_ical_holidays(text: &str) -> Result<Vec<Holiday>, IcalInvalid> {
    parse(text, Years::FromStart)
}

/// [`parse_ical_holidays`], with yearly rules expanded only within `first_year..=last_year`
/// (an import keeps the years that matter now, not those after a rule's first year). Dated
/// events that do not repeat are kept whatever their year.
pub fn parse_ical_holidays_between(
    text: &str,
    first_year: u16,
    last_year: u16,
) -> Result<Vec<Holiday>, IcalInvalid> {
    parse(text, Years::Between(first_year, last_year))
}

#[derive(Debug, Clone, Copy)]
enum Years {
    FromStart,
    Between(u16, u16),
}

/// One unfolded content line: `NAME;PARAM=x:value`.
struct ContentLine {
    line: usize,
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl ContentLine {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn unfold(text: &str) -> Result<Vec<(usize, String)>, IcalInvalid> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            match lines.last_mut() {
                Some((_, last)) => last.push_str(rest),
                None => {
                    return Err(malformed(
                        i + 1,
                        "a continuation line with nothing before it",
                    ));
                }
            }
        } else if !raw.is_empty() {
            lines.push((i + 1, raw.to_owned()));
        }
    }
    Ok(lines)
}

/// Splits `s` at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn content_line(line: usize, text: &str) -> Result<ContentLine, IcalInvalid> {
    let mut quoted = false;
    let colon = text.char_indices().find_map(|(i, c)| {
        if c == '"' {
            quoted = !quoted;
        }
        (c == ':' && !quoted).then_some(i)
    });
    let Some(colon) = colon else {
        return Err(malformed(line, "a content line needs NAME:value"));
    };
    let (head, value) = (&text[..colon], &text[colon + 1..]);
    let mut parts = split_unquoted(head, ';').into_iter();
    let name = parts.next().unwrap_or_default();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(malformed(line, format!("{name:?} is not a property name")));
    }
    let params = parts
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_ascii_uppercase(), v.trim_matches('"').to_owned()))
                .ok_or_else(|| malformed(line, format!("parameter {p:?} needs NAME=value")))
        })
        .collect::<Result<_, _>>()?;
    Ok(ContentLine {
        line,
        name: name.to_ascii_uppercase(),
        params,
        value: value.to_owned(),
    })
}

/// The properties of one `VEVENT` that matter here.
#[derive(Default)]
struct Event {
    begin: usize,
    dtstart: Option<ContentLine>,
    dtend: Option<ContentLine>,
    duration: Option<ContentLine>,
    summary: Option<String>,
    rrule: Option<ContentLine>,
}

fn parse(text: &str, years: Years) -> Result<Vec<Holiday>, IcalInvalid> {
    if text.len() > MAX_ICAL_BYTES {
        return Err(IcalInvalid::TooLarge);
    }
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut seen_calendar = false;
    let mut event: Option<Event> = None;
    let mut out = Collected::default();
    for (line, raw) in unfold(text)? {
        let cl = content_line(line, &raw)?;
        match cl.name.as_str() {
            "BEGIN" => {
                let component = cl.value.trim().to_ascii_uppercase();
                if stack.is_empty() && component != "VCALENDAR" {
                    return Err(malformed(line, "content before BEGIN:VCALENDAR"));
                }
                if component == "VCALENDAR" {
                    if !stack.is_empty() {
                        return Err(malformed(line, "a VCALENDAR inside another component"));
                    }
                    seen_calendar = true;
                }
                if component == "VEVENT" && stack.len() == 1 {
                    event = Some(Event {
                        begin: line,
                        ..Event::default()
                    });
                }
                stack.push((component, line));
            }
            "END" => {
                let component = cl.value.trim().to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == component => {}
                    Some((open, at)) => {
                        return Err(malformed(
                            line,
                            format!("END:{component} does not close BEGIN:{open} of line {at}"),
                        ));
                    }
                    None => return Err(malformed(line, format!("END:{component} without BEGIN"))),
                }
                if component == "VEVENT"
                    && stack.len() == 1
                    && let Some(e) = event.take()
                {
                    expand(e, years, &mut out)?;
                }
            }
            _ if stack.is_empty() => {
                return Err(malformed(line, "content outside BEGIN:VCALENDAR"));
            }
            _ => {
                // Only the properties of a top-level event matter (not those of its alarms).
                if let Some(e) = event.as_mut().filter(|_| stack.len() == 2) {
                    match cl.name.as_str() {
                        "DTSTART" => e.dtstart = Some(cl),
                        "DTEND" => e.dtend = Some(cl),
                        "DURATION" => e.duration = Some(cl),
                        "SUMMARY" => e.summary = Some(unescape(&cl.value)),
                        "RRULE" => e.rrule = Some(cl),
                        _ => {}
                    }
                }
            }
        }
    }
    if let Some((open, at)) = stack.last() {
        return Err(malformed(*at, format!("BEGIN:{open} is never closed")));
    }
    if !seen_calendar {
        return Err(IcalInvalid::NotICalendar);
    }
    Ok(out
        .by_date
        .into_iter()
        .map(|(date, name)| Holiday {
            date: LocalDate::from_civil(date),
            name,
        })
        .collect())
}

/// Holidays so far, one per date.
#[derive(Default)]
struct Collected {
    by_date: BTreeMap<civil::Date, String>,
    generated: usize,
}

impl Collected {
    fn add(&mut self, date: civil::Date, name: &str) -> Result<(), IcalInvalid> {
        self.generated += 1;
        if self.generated > MAX_GENERATED_DAYS {
            return Err(IcalInvalid::TooMany);
        }
        self.by_date.entry(date).or_insert_with(|| name.to_owned());
        if self.by_date.len() > MAX_HOLIDAYS {
            return Err(IcalInvalid::TooMany);
        }
        Ok(())
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A `DATE` value (`YYYYMMDD`), `None` for a `DATE-TIME` (`YYYYMMDDTHHMMSS[Z]`).
fn date_value(cl: &ContentLine) -> Result<Option<civil::Date>, IcalInvalid> {
    let v = cl.value.trim();
    let is_date = cl
        .param("VALUE")
        .is_some_and(|t| t.eq_ignore_ascii_case("DATE"));
    if v.contains('T') && !is_date {
        return Ok(None);
    }
    parse_date(v).map(Some).ok_or_else(|| {
        malformed(
            cl.line,
            format!("{} {v:?} is not a date (YYYYMMDD)", cl.name),
        )
    })
}

fn parse_date(v: &str) -> Option<civil::Date> {
    if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (
        v[..4].parse().ok()?,
        v[4..6].parse().ok()?,
        v[6..].parse().ok()?,
    );
    LocalDate::new(y, m, d).ok().map(LocalDate::civil)
}

/// `P3D`, `P1W` → days.
fn duration_days(cl: &ContentLine) -> Result<i32, IcalInvalid> {
    let v = cl.value.trim();
    let bad = || {
        malformed(
            cl.line,
            format!("DURATION {v:?} is not a whole number of days or weeks (P3D, P1W)"),
        )
    };
    let body = v.strip_prefix('P').ok_or_else(bad)?;
    let (n, unit) = body.split_at(body.len().saturating_sub(1));
    let n: i32 = n.parse().map_err(|_| bad())?;
    match unit {
        "D" => Ok(n),
        "W" => n.checked_mul(7).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn expand(e: Event, years: Years, out: &mut Collected) -> Result<(), IcalInvalid> {
    let Some(dtstart) = &e.dtstart else {
        return Err(malformed(e.begin, "an event without DTSTART"));
    };
    let Some(start) = date_value(dtstart)? else {
        // A meeting, not a holiday.
        return Ok(());
    };
    let days = match (&e.dtend, &e.duration) {
        (Some(end), _) => {
            let Some(end_date) = date_value(end)? else {
                return Err(malformed(
                    end.line,
                    "DTEND has a time but DTSTART is a date",
                ));
            };
            let days = start.until(end_date).map(|s| s.get_days()).unwrap_or(0);
            if days < 0 {
                return Err(malformed(end.line, "DTEND is before DTSTART"));
            }
            days.max(1)
        }
        (None, Some(d)) => duration_days(d)?.max(1),
        (None, None) => 1,
    };
    if days > 366 {
        return Err(malformed(
            e.begin,
            "an event longer than a year is not a holiday",
        ));
    }
    let name: String = e
        .summary
        .as_deref()
        .map(|s| s.replace('\n', " ").trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Holiday".to_owned())
        .chars()
        .take(200)
        .collect();
    let firsts = match &e.rrule {
        None => vec![start],
        Some(rule) => yearly(rule, start, years)?,
    };
    for first in firsts {
        let mut d = first;
        for _ in 0..days {
            out.add(d, &name)?;
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
    }
    Ok(())
}

/// The first days of a yearly rule's occurrences (DTSTART is always the first).
fn yearly(
    rule: &ContentLine,
    start: civil::Date,
    years: Years,
) -> Result<Vec<civil::Date>, IcalInvalid> {
    let bad = |m: String| malformed(rule.line, m);
    let mut freq = None;
    let (mut interval, mut count, mut until) = (1i16, None, None);
    let (mut by_month, mut by_month_day, mut by_day) = (None, None, None);
    for part in rule.value.trim().split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("RRULE part {part:?} needs NAME=value")))?;
        let number = |v: &str| {
            v.parse::<i16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("RRULE {k}={v} is not a positive number")))
        };
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.to_ascii_uppercase()),
            "INTERVAL" => interval = number(v)?,
            "COUNT" => count = Some(number(v)?),
            "UNTIL" => {
                until = Some(
                    v.get(..8)
                        .and_then(parse_date)
                        .ok_or_else(|| bad(format!("RRULE UNTIL={v} is not a date")))?,
                );
            }
            "BYMONTH" => {
                by_month = Some(
                    number(v)
                        .ok()
                        .filter(|m| *m <= 12)
                        .ok_or_else(|| bad(format!("RRULE BYMONTH={v}: one month, 1 to 12")))?,
                );
            }
            "BYMONTHDAY" => {
                by_month_day = Some(
                    number(v)
                        .ok()
                        .filter(|d| *d <= 31)
                        .ok_or_else(|| bad(format!("RRULE BYMONTHDAY={v}: one day, 1 to 31")))?,
                );
            }
            "BYDAY" => {
                by_day = Some(nth_weekday(v).ok_or_else(|| {
                    bad(format!(
                        "RRULE BYDAY={v}: one weekday with its rank (4TH, -1MO)"
                    ))
                })?)
            }
            "WKST" => {}
            other => return Err(bad(format!("RRULE part {other} is not supported here"))),
        }
    }
    match freq.as_deref() {
        Some("YEARLY") => {}
        Some(f) => {
            return Err(bad(format!(
                "only yearly repeats make holidays (FREQ=YEARLY), not FREQ={f}"
            )));
        }
        None => return Err(bad("RRULE needs FREQ".to_owned())),
    }
    let open_ended = count.is_none() && until.is_none();
    let (first_year, last_year) = match years {
        Years::FromStart => (
            i16::MIN,
            start.year().saturating_add(if open_ended {
                OPEN_ENDED_YEARS as i16
            } else {
                100
            }),
        ),
        Years::Between(a, b) => (
            i16::try_from(a).unwrap_or(i16::MAX),
            i16::try_from(b).unwrap_or(i16::MAX),
        ),
    };
    let last_year = last_year.min(start.year().saturating_add(100)).min(9998);
    let mut dates = Vec::new();
    let mut made = 0i16;
    let mut year = start.year();
    while year <= last_year {
        let month = by_month.map_or(start.month(), |m| m as i8);
        let date = match by_day {
            Some((nth, weekday)) => nth_of_month(year, month, nth, weekday),
            None => {
                let day = by_month_day.map_or(start.day(), |d| d as i8);
                civil::Date::new(year, month, day).ok()
            }
        };
        let date = if year == start.year() {
            Some(start)
        } else {
            date
        };
        if let Some(d) = date.filter(|d| *d >= start) {
            if until.is_some_and(|u| d > u) || count.is_some_and(|c| made >= c) {
                break;
            }
            made += 1;
            if year >= first_year {
                dates.push(d);
            }
        }
        year = year.saturating_add(interval);
        if year == i16::MAX {
            break;
        }
    }
    Ok(dates)
}

/// `4TH`, `-1MO`, `+2SU` (a bare `MO` is refused: "every Monday" is not a holiday).
fn nth_weekday(v: &str) -> Option<(i8, civil::Weekday)> {
    let (rank, day) = v.split_at(v.len().checked_sub(2)?);
    let weekday = match day.to_ascii_uppercase().as_str() {
        "MO" => civil::Weekday::Monday,
        "TU" => civil::Weekday::Tuesday,
        "WE" => civil::Weekday::Wednesday,
        "TH" => civil::Weekday::Thursday,
        "FR" => civil::Weekday::Friday,
        "SA" => civil::Weekday::Saturday,
        "SU" => civil::Weekday::Sunday,
        _ => return None,
    };
    let rank: i8 = rank.trim_start_matches('+').parse().ok()?;
    ((1..=5).contains(&rank.abs())).then_some((rank, weekday))
}

/// The `nth` (negative: from the end) `weekday` of a month, if it exists.
fn nth_of_month(year: i16, month: i8, nth: i8, weekday: civil::Weekday) -> Option<civil::Date> {
    let first = civil::Date::new(year, month, 1).ok()?;
    let last = first.last_of_month();
    let d = if nth > 0 {
        let offset = (weekday.to_monday_zero_offset() - first.weekday().to_monday_zero_offset())
            .rem_euclid(7);
        first.day() + offset + 7 * (nth - 1)
    } else {
        let offset = (last.weekday().to_monday_zero_offset() - weekday.to_monday_zero_offset())
            .rem_euclid(7);
        last.day() - offset - 7 * (-nth - 1)
    };
    (1..=last.day())
        .contains(&d)
        .then(|| civil::Date::new(year, month, d).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRENCH: &str = include_str!("../fixtures/jours-feries-fr.ics");

    fn dates(h: &[Holiday]) -> Vec<String> {
        h.iter().map(|h| h.date.to_string()).collect()
    }

    fn name_on<'a>(h: &'a [Holiday], date: &str) -> Option<&'a str> {
        h.iter()
            .find(|h| h.date.to_string() == date)
            .map(|h| h.name.as_str())
    }

    #[test]
    fn french_public_holidays() {
        let h = parse_ical_holidays(FRENCH).expect("parses");
        // Fixed holidays repeat yearly from 2026 for five more years; the movable ones are
        // listed for 2026 and 2027; the staff meeting (a timed event) is not a holiday.
        let in_2026: Vec<String> = dates(&h)
            .into_iter()
            .filter(|d| d.starts_with("2026-"))
            .collect();
        assert_eq!(
            in_2026,
            [
                "2026-01-01",
                "2026-04-06",
                "2026-05-01",
                "2026-05-08",
                "2026-05-14",
                "2026-05-25",
                "2026-07-14",
                "2026-08-15",
                "2026-11-01",
                "2026-11-11",
                "2026-12-25"
            ]
        );
        assert_eq!(name_on(&h, "2026-07-14"), Some("Fête nationale"));
        assert_eq!(name_on(&h, "2027-03-29"), Some("Lundi de Pâques"));
        // Folded and escaped.
        assert_eq!(
            name_on(&h, "2026-05-08"),
            Some("Victoire 1945 (fin de la Seconde Guerre mondiale; armistice, Europe)")
        );
        assert_eq!(name_on(&h, "2031-12-25"), Some("Noël"));
        assert_eq!(name_on(&h, "2032-12-25"), None);
        assert_eq!(h.len(), 8 * 6 + 3 * 2);
        assert!(h.windows(2).all(|p| p[0].date < p[1].date));
        // CRLF line ends (as RFC 5545 has them) read the same.
        let crlf = FRENCH.replace('\n', "\r\n");
        assert_eq!(parse_ical_holidays(&crlf), Ok(h));
    }

    #[test]
    fn an_import_window_keeps_the_years_that_matter() {
        let h = parse_ical_holidays_between(FRENCH, 2027, 2028).expect("parses");
        assert_eq!(name_on(&h, "2028-11-11"), Some("Armistice 1918"));
        assert_eq!(name_on(&h, "2029-11-11"), None);
        assert_eq!(name_on(&h, "2026-11-11"), None);
        // Listed (not repeating) events are kept whatever their year.
        assert_eq!(name_on(&h, "2026-04-06"), Some("Lundi de Pâques"));
    }

    fn wrap(events: &str) -> String {
        format!("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{events}END:VCALENDAR\n")
    }

    #[test]
    fn multi_day_events_rules_and_durations() {
        let text = wrap(
            "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\nDTEND;VALUE=DATE:20261227\nSUMMARY:Fermeture\\, Noël\nEND:VEVENT\n\
             BEGIN:VEVENT\nDTSTART:20260525\nRRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO;COUNT=3\nSUMMARY:Memorial Day\nEND:VEVENT\n\
             BEGIN:VEVENT\nDTSTART;VALUE=DATE:20261126\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;UNTIL=20281231T000000Z\nSUMMARY:Thanksgiving\nEND:VEVENT\n\
             BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260803\nDURATION:P1W\nSUMMARY:Congés\nBEGIN:VALARM\nACTION:DISPLAY\nDTSTART:20260802\nEND:VALARM\nEND:VEVENT\n",
        );
        let h = parse_ical_holidays(&text).expect("parses");
        assert_eq!(name_on(&h, "2026-12-24"), Some("Fermeture, Noël"));
        assert_eq!(name_on(&h, "2026-12-26"), Some("Fermeture, Noël"));
        assert_eq!(name_on(&h, "2026-12-27"), None);
        for d in ["2026-05-25", "2027-05-31", "2028-05-29"] {
            assert_eq!(name_on(&h, d), Some("Memorial Day"), "{d}");
        }
        assert_eq!(name_on(&h, "2029-05-28"), None);
        for d in ["2026-11-26", "2027-11-25", "2028-11-23"] {
            assert_eq!(name_on(&h, d), Some("Thanksgiving"), "{d}");
        }
        assert_eq!(h.iter().filter(|x| x.name == "Congés").count(), 7);
        assert_eq!(h.len(), 3 + 3 + 3 + 7);
    }

    #[test]
    fn malformed_texts_are_refused_with_their_line() {
        let cases = [
            ("", IcalInvalid::NotICalendar),
            ("hello", malformed(1, "")),
            (" folded", malformed(1, "")),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261301\nEND:VEVENT\nEND:VCALENDAR",
                malformed(3, ""),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR",
                malformed(2, ""),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nEND:VCALENDAR",
                malformed(4, ""),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nEND:VEVENT\n",
                malformed(1, ""),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nRRULE:FREQ=WEEKLY\nEND:VEVENT\nEND:VCALENDAR",
                malformed(4, ""),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nDTEND:20251231\nEND:VEVENT\nEND:VCALENDAR",
                malformed(4, ""),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nDURATION:PT1H\nEND:VEVENT\nEND:VCALENDAR",
                malformed(4, ""),
            ),
            (
                "BEGIN:VCALENDAR\nno colon here\nEND:VCALENDAR",
                malformed(2, ""),
            ),
        ];
        for (text, expected) in cases {
            let err = parse_ical_holidays(text).expect_err(text);
            match (&err, &expected) {
                (
                    IcalInvalid::Malformed { line, .. },
                    IcalInvalid::Malformed { line: want, .. },
                ) => {
                    assert_eq!(line, want, "{text}: {err}");
                }
                _ => assert_eq!(err, expected, "{text}"),
            }
            assert_eq!(err.code(), "bad_ical");
        }
        assert_eq!(
            parse_ical_holidays(&"x".repeat(MAX_ICAL_BYTES + 1)),
            Err(IcalInvalid::TooLarge)
        );
        // A timed event alone is no holiday and no error.
        let timed = wrap(
            "BEGIN:VEVENT\nDTSTART;TZID=Europe/Paris:20260115T100000\nSUMMARY:Réunion\nEND:VEVENT\n",
        );
        assert_eq!(parse_ical_holidays(&timed), Ok(vec![]));
    }

    #[test]
    fn too_many_holidays_are_refused() {
        let text = wrap(
            "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nDTEND;VALUE=DATE:20261231\nEND:VEVENT\n\
             BEGIN:VEVENT\nDTSTART;VALUE=DATE:20270101\nDTEND;VALUE=DATE:20271231\nEND:VEVENT\n\
             BEGIN:VEVENT\nDTSTART;VALUE=DATE:20280101\nDTEND;VALUE=DATE:20281231\nEND:VEVENT\n",
        );
        assert_eq!(parse_ical_holidays(&text), Err(IcalInvalid::TooMany));
    }
}
