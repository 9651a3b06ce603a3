//! Usage metering: what each tenant and client company consumed, per UTC day and month.
//!
//! Counting happens as work happens, never by scanning: a device counts its own batches and
//! bytes of the current day on its record (in the update that records the batch), and hands the
//! finished day to the per-(tenant, client, day) usage item once, when its day changes or the
//! daily close job finds it silent (see [`plan_batch`]). Alerts opened and notifications sent are
//! added to the usage item in the transaction that makes them happen, so each counts once.
//!
//! A month closes once the daily close job has run for its last day, plus a grace day
//! ([`Month::closes_on`]); its summary is then written once and never changes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::TenantId;
use crate::notification::ChannelKind;

const DAY_MS: i64 = 86_400_000;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

/// A UTC calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u8,
}

/// Why a day or month is not `YYYY-MM-DD` / `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid {1} (expected {2})")]
pub struct PeriodInvalid(String, &'static str, &'static str);

/// Days since the epoch of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Day {
    /// The UTC day of a Unix time in milliseconds.
    pub fn of_ms(ms: i64) -> Self {
        Self(ms.div_euclid(DAY_MS))
    }

    /// Parses `YYYY-MM-DD` (years 1970 to 9999).
    pub fn parse(s: &str) -> Result<Self, PeriodInvalid> {
        let bad = || PeriodInvalid(s.to_owned(), "day", "YYYY-MM-DD");
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let y = digits(&s[0..4]).ok_or_else(bad)?;
        let m = digits(&s[5..7]).ok_or_else(bad)?;
        let d = digits(&s[8..10]).ok_or_else(bad)?;
        if y < 1970 || !(1..=12).contains(&m) || d < 1 {
            return Err(bad());
        }
        let month = Month {
            year: y as i32,
            month: m as u8,
        };
        if d > i64::from(month.len_days()) {
            return Err(bad());
        }
        Ok(Self(days_from_civil(y, m, d)))
    }

    /// Midnight UTC starting the day, Unix ms.
    pub fn start_ms(self) -> i64 {
        self.0 * DAY_MS
    }

    pub fn month(self) -> Month {
        let (y, m, _) = civil_from_days(self.0);
        Month {
            year: y as i32,
            month: m,
        }
    }

    /// The day `n` days later (earlier when negative).
    pub fn plus(self, n: i64) -> Self {
        Self(self.0 + n)
    }

    pub fn next(self) -> Self {
        self.plus(1)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl Month {
    /// Parses `YYYY-MM` (years 1970 to 9999).
    pub fn parse(s: &str) -> Result<Self, PeriodInvalid> {
        let bad = || PeriodInvalid(s.to_owned(), "month", "YYYY-MM");
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(bad());
        }
        let y = digits(&s[0..4]).ok_or_else(bad)?;
        let m = digits(&s[5..7]).ok_or_else(bad)?;
        if y < 1970 || !(1..=12).contains(&m) {
            return Err(bad());
        }
        Ok(Self {
            year: y as i32,
            month: m as u8,
        })
    }

    /// The month of a Unix time in milliseconds (UTC).
    pub fn of_ms(ms: i64) -> Self {
        Day::of_ms(ms).month()
    }

    pub fn first_day(self) -> Day {
        Day(days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            1,
        ))
    }

    pub fn last_day(self) -> Day {
        self.next().first_day().plus(-1)
    }

    pub fn len_days(self) -> u8 {
        match self.month {
            2 if self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The first day on which the month may close: the daily close job flushes the month's
    /// last day on the day after it, and one more day passes as grace.
    pub fn closes_on(self) -> Day {
        self.last_day().plus(2)
    }

    pub fn contains(self, day: Day) -> bool {
        day.month() == self
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(Day);
string_serde!(Month);

/// A row's period: one day or one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Day(Day),
    Month(Month),
}

impl Period {
    pub fn parse(s: &str) -> Result<Self, PeriodInvalid> {
        if s.len() == 7 {
            Month::parse(s).map(Self::Month)
        } else {
            Day::parse(s).map(Self::Day)
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Day(d) => d.fmt(f),
            Self::Month(m) => m.fmt(f),
        }
    }
}
string_serde!(Period);

/// The kind of channel a notification went out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    Webhook,
    Slack,
    Teams,
    Email,
}

impl ChannelType {
    pub fn of(kind: &ChannelKind) -> Self {
        match kind {
            ChannelKind::Webhook { .. } => Self::Webhook,
            ChannelKind::Slack { .. } => Self::Slack,
            ChannelKind::Teams { .. } => Self::Teams,
            ChannelKind::Email { .. } => Self::Email,
        }
    }
}

/// What was consumed in one period. Field names are the usage item's attributes and the CSV
/// columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounters {
    /// Accepted telemetry batches.
    pub batches: u64,
    /// Their bytes as received (compressed).
    pub bytes: u64,
    /// Devices that sent at least one batch, counted once per device and day.
    pub device_days: u64,
    pub alerts_opened: u64,
    pub notifications_webhook: u64,
    pub notifications_slack: u64,
    pub notifications_teams: u64,
    pub notifications_email: u64,
}

impl UsageCounters {
    /// Names of the counters, in the export's column order.
    pub const FIELDS: [&'static str; 8] = [
        "batches",
        "bytes",
        "device_days",
        "alerts_opened",
        "notifications_webhook",
        "notifications_slack",
        "notifications_teams",
        "notifications_email",
    ];

    /// The counters in [`Self::FIELDS`] order.
    pub fn values(&self) -> [u64; 8] {
        [
            self.batches,
            self.bytes,
            self.device_days,
            self.alerts_opened,
            self.notifications_webhook,
            self.notifications_slack,
            self.notifications_teams,
            self.notifications_email,
        ]
    }

    /// The counters from values in [`Self::FIELDS`] order.
    pub fn from_values(v: [u64; 8]) -> Self {
        Self {
            batches: v[0],
            bytes: v[1],
            device_days: v[2],
            alerts_opened: v[3],
            notifications_webhook: v[4],
            notifications_slack: v[5],
            notifications_teams: v[6],
            notifications_email: v[7],
        }
    }

    /// `(attribute, value)` of every counter that is not zero (what an `ADD` needs).
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        Self::FIELDS
            .into_iter()
            .zip(self.values())
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    pub fn add(&mut self, other: &Self) {
        let mut v = self.values();
        for (a, b) in v.iter_mut().zip(other.values()) {
            *a = a.saturating_add(b);
        }
        *self = Self::from_values(v);
    }

    pub fn is_zero(&self) -> bool {
        self.values().iter().all(|v| *v == 0)
    }

    /// One notification sent on a channel of `channel` type.
    pub fn notification(channel: ChannelType) -> Self {
        let mut c = Self::default();
        match channel {
            ChannelType::Webhook => c.notifications_webhook = 1,
            ChannelType::Slack => c.notifications_slack = 1,
            ChannelType::Teams => c.notifications_teams = 1,
            ChannelType::Email => c.notifications_email = 1,
        }
        c
    }
}

/// The client column of a tenant's total row.
pub const ALL_CLIENTS: &str = "*";

/// Usage of one client company (or, with client [`ALL_CLIENTS`], the whole tenant) in one
/// period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub tenant: TenantId,
    pub client: String,
    pub period: Period,
    #[serde(flatten)]
    pub counters: UsageCounters,
}

/// Rows per client for each period of `rows`' periods mapped by `period_of`, summed, with a
/// tenant total row (client `*`) per period. Sorted by period, then client (`*` first).
fn grouped(rows: &[UsageRow], period_of: impl Fn(Period) -> Period) -> Vec<UsageRow> {
    use std::collections::BTreeMap;
    let mut sums: BTreeMap<(TenantId, Period, String), UsageCounters> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.client != ALL_CLIENTS) {
        let period = period_of(r.period);
        sums.entry((r.tenant.clone(), period, r.client.clone()))
            .or_default()
            .add(&r.counters);
        sums.entry((r.tenant.clone(), period, ALL_CLIENTS.to_owned()))
            .or_default()
            .add(&r.counters);
    }
    sums.into_iter()
        .map(|((tenant, period, client), counters)| UsageRow {
            tenant,
            client,
            period,
            counters,
        })
        .collect()
}

/// Per-client rows with a tenant total (client `*`) per period; input total rows are ignored
/// and recomputed, so totals always equal the sum of the clients.
pub fn with_totals(rows: &[UsageRow]) -> Vec<UsageRow> {
    grouped(rows, |p| p)
}

/// Day rows summed into their months, per client, with tenant totals.
pub fn by_month(rows: &[UsageRow]) -> Vec<UsageRow> {
    grouped(rows, |p| match p {
        Period::Day(d) => Period::Month(d.month()),
        m => m,
    })
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 11] = [
    "tenant",
    "client",
    "period",
    "batches",
    "bytes",
    "device_days",
    "alerts_opened",
    "notifications_webhook",
    "notifications_slack",
    "notifications_teams",
    "notifications_email",
];

/// One CSV field as RFC 4180 wants it: quoted (with inner quotes doubled) when it holds a comma,
/// a quote, CR or LF.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        std::borrow::Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn csv_line(out: &mut String, fields: impl IntoIterator<Item = String>) {
    let line: Vec<String> = fields
        .into_iter()
        .map(|f| csv_field(&f).into_owned())
        .collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// The rows as CSV (RFC 4180): a header, then one line per row, columns in [`CSV_HEADER`]
/// order, CRLF line ends, UTF-8.
pub fn to_csv(rows: &[UsageRow]) -> String {
    let mut out = String::new();
    csv_line(&mut out, CSV_HEADER.iter().map(|h| (*h).to_owned()));
    for r in rows {
        let head = [
            r.tenant.as_str().to_owned(),
            r.client.clone(),
            r.period.to_string(),
        ];
        csv_line(
            &mut out,
            head.into_iter()
                .chain(r.counters.values().iter().map(u64::to_string)),
        );
    }
    out
}

/// Splits RFC 4180 text into records of fields (the reader for [`to_csv`]'s output; used by
/// tests and by clients of the export in Rust).
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, CsvInvalid> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut started = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            '"' => return Err(CsvInvalid::StrayQuote),
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                started = false;
                continue;
            }
            '\r' | '\n' => return Err(CsvInvalid::BareLineBreak),
            c => field.push(c),
        }
        started = true;
    }
    if quoted {
        return Err(CsvInvalid::UnclosedQuote);
    }
    if started {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// Why a text is not RFC 4180.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvInvalid {
    #[error("a quote inside an unquoted field")]
    StrayQuote,
    #[error("a line break that is not CRLF outside quotes")]
    BareLineBreak,
    #[error("a quoted field is not closed")]
    UnclosedQuote,
}

/// A device's counting day: what it sent since the start of `day` and has not yet handed to the
/// usage items. Kept on the device record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceUsage {
    /// The day being counted (`None`: never sent).
    pub day: Option<Day>,
    /// Batches and bytes of that day; zero once handed over (nothing to flush, no open entry).
    pub batches: u64,
    pub bytes: u64,
}

/// What recording one batch does to a device's counting day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchUsage {
    /// The day is open already: add the batch to it (a plain conditional update).
    Add { day: Day },
    /// Start counting `day` with this batch and list the device as open on `day`; first hand
    /// over `flush` (the finished day) when there is one. Conditioned on the device's counting
    /// day still being `previous` with `previous_batches` batches.
    Open {
        day: Day,
        previous: Option<Day>,
        previous_batches: u64,
        flush: Option<FinishedDay>,
    },
}

/// A finished counting day to add to the usage item (once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedDay {
    pub day: Day,
    pub batches: u64,
    pub bytes: u64,
}

impl FinishedDay {
    /// What it adds to the usage item: its batches, bytes and one device-day.
    pub fn counters(&self) -> UsageCounters {
        UsageCounters {
            batches: self.batches,
            bytes: self.bytes,
            device_days: 1,
            ..UsageCounters::default()
        }
    }
}

impl DeviceUsage {
    /// The counting day a batch received at `now_ms` goes to: today, or the device's counting
    /// day if that is later (a request whose clock was read before midnight, handled after the
    /// close job moved the device on, counts in the new day rather than reopening a flushed
    /// one).
    pub fn day_for(&self, now_ms: i64) -> Day {
        let today = Day::of_ms(now_ms);
        self.day.map_or(today, |d| d.max(today))
    }

    /// The day still to hand over, if any.
    pub fn unflushed(&self) -> Option<FinishedDay> {
        match self.day {
            Some(day) if self.batches > 0 => Some(FinishedDay {
                day,
                batches: self.batches,
                bytes: self.bytes,
            }),
            _ => None,
        }
    }
}

/// How a batch received at `now_ms` is counted on a device whose counting day is `usage`.
pub fn plan_batch(usage: &DeviceUsage, now_ms: i64) -> BatchUsage {
    let day = usage.day_for(now_ms);
    if usage.day == Some(day) && usage.batches > 0 {
        BatchUsage::Add { day }
    } else {
        BatchUsage::Open {
            day,
            previous: usage.day,
            previous_batches: usage.batches,
            flush: usage.unflushed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant() -> TenantId {
        TenantId::parse("msp").expect("id")
    }

    fn row(client: &str, period: &str, batches: u64) -> UsageRow {
        UsageRow {
            tenant: tenant(),
            client: client.into(),
            period: Period::parse(period).expect("period"),
            counters: UsageCounters {
                batches,
                bytes: batches * 100,
                device_days: 1,
                ..UsageCounters::default()
            },
        }
    }

    #[test]
    fn days_and_months_in_utc() {
        // 2024-02-29T23:59:59.999Z and one millisecond later.
        let ms = 1_709_251_199_999;
        assert_eq!(Day::of_ms(ms).to_string(), "2024-02-29");
        assert_eq!(Day::of_ms(ms + 1).to_string(), "2024-03-01");
        assert_eq!(Day::of_ms(0).to_string(), "1970-01-01");
        assert_eq!(Day::of_ms(-1).to_string(), "1969-12-31");
        let feb = Month::parse("2024-02").expect("month");
        assert_eq!(feb.len_days(), 29);
        assert_eq!(feb.first_day().to_string(), "2024-02-01");
        assert_eq!(feb.last_day().to_string(), "2024-02-29");
        assert_eq!(feb.closes_on().to_string(), "2024-03-02");
        assert_eq!(Month::parse("2023-02").expect("m").len_days(), 28);
        assert_eq!(Month::parse("1900-02").ok(), None, "before 1970");
        assert_eq!(Month::parse("2100-02").expect("m").len_days(), 28);
        assert_eq!(Month::parse("2000-02").expect("m").len_days(), 29);
        let dec = Month::parse("2025-12").expect("m");
        assert_eq!(dec.next().to_string(), "2026-01");
        assert_eq!(dec.next().previous(), dec);
        assert_eq!(dec.closes_on().to_string(), "2026-01-02");
        assert_eq!(
            Day::parse("2024-02-29").expect("d").start_ms(),
            ms + 1 - DAY_MS
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "2024-01-00",
            "20240101",
            "2024-01-01x",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad}");
        }
        assert!(Month::parse("2024-00").is_err());
    }

    proptest! {
        #[test]
        fn day_text_round_trips(n in 0i64..2_900_000) {
            let d = Day(n);
            let text = d.to_string();
            prop_assert_eq!(Day::parse(&text), Ok(d));
            prop_assert!(d.month().contains(d));
            prop_assert_eq!(Day::of_ms(d.start_ms() + DAY_MS - 1), d);
            prop_assert_eq!(d.month().first_day() <= d && d <= d.month().last_day(), true);
        }

        /// Splitting counts across days and clients, in any grouping, does not change the
        /// month's totals; the tenant total is the sum of the clients.
        #[test]
        fn split_and_merge_keep_totals(
            parts in proptest::collection::vec((0usize..3, 1u8..=28, 0u64..1000, 0u64..5), 0..40),
        ) {
            let clients = ["acme", "globex", "initech"];
            let rows: Vec<UsageRow> = parts
                .iter()
                .map(|(c, d, b, a)| UsageRow {
                    tenant: tenant(),
                    client: clients[*c].into(),
                    period: Period::Day(Day::parse(&format!("2025-03-{d:02}")).expect("day")),
                    counters: UsageCounters { batches: *b, bytes: b * 7, alerts_opened: *a, ..UsageCounters::default() },
                })
                .collect();
            let mut direct = UsageCounters::default();
            for r in &rows {
                direct.add(&r.counters);
            }
            let months = by_month(&rows);
            let total = months.iter().find(|r| r.client == ALL_CLIENTS);
            let sum_clients = months.iter().filter(|r| r.client != ALL_CLIENTS).fold(
                UsageCounters::default(),
                |mut acc, r| { acc.add(&r.counters); acc },
            );
            if rows.is_empty() {
                prop_assert!(months.is_empty());
            } else {
                prop_assert_eq!(total.map(|r| r.counters), Some(direct));
                prop_assert_eq!(sum_clients, direct);
            }
            // Months of days = months of (days with totals): totals are recomputed, not doubled.
            prop_assert_eq!(by_month(&with_totals(&rows)), months.clone());
            prop_assert_eq!(by_month(&months), months);
        }

        /// Any text, quoted by [`csv_field`], reads back as itself.
        #[test]
        fn csv_fields_round_trip(fields in proptest::collection::vec(".*", 1..6)) {
            let mut text = String::new();
            csv_line(&mut text, fields.clone());
            let parsed = parse_csv(&text).expect("valid csv");
            prop_assert_eq!(parsed, vec![fields]);
        }
    }

    #[test]
    fn tricky_fields_are_quoted() {
        assert_eq!(csv_field("acme"), "acme");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("a\r\nb"), "\"a\r\nb\"");
        assert_eq!(csv_field("a\nb"), "\"a\nb\"");
        assert_eq!(csv_field("Café"), "Café");
    }

    #[test]
    fn csv_has_a_stable_header_crlf_and_round_trips() {
        let rows = with_totals(&[row("globex", "2025-03-01", 2), row("acme", "2025-03-01", 3)]);
        let csv = to_csv(&rows);
        let expected = "tenant,client,period,batches,bytes,device_days,alerts_opened,\
notifications_webhook,notifications_slack,notifications_teams,notifications_email\r\n\
msp,*,2025-03-01,5,500,2,0,0,0,0,0\r\n\
msp,acme,2025-03-01,3,300,1,0,0,0,0,0\r\n\
msp,globex,2025-03-01,2,200,1,0,0,0,0,0\r\n";
        assert_eq!(csv, expected);
        let parsed = parse_csv(&csv).expect("valid");
        assert_eq!(parsed.len(), 4);
        assert!(parsed.iter().all(|r| r.len() == CSV_HEADER.len()));
        // The JSON form carries the same columns.
        let json = serde_json::to_value(&rows[0]).expect("json");
        assert_eq!(json["client"], "*");
        assert_eq!(json["period"], "2025-03-01");
        assert_eq!(json["batches"], 5);
        let back: UsageRow = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, rows[0]);
    }

    #[test]
    fn totals_are_the_sum_of_the_clients() {
        let rows = by_month(&[
            row("acme", "2025-03-01", 3),
            row("acme", "2025-03-31", 4),
            row("globex", "2025-03-02", 2),
            row("globex", "2025-04-01", 9),
            // A stale total row is ignored, not added.
            row(ALL_CLIENTS, "2025-03-01", 1000),
        ]);
        let get = |client: &str, month: &str| {
            rows.iter()
                .find(|r| r.client == client && r.period.to_string() == month)
                .map(|r| (r.counters.batches, r.counters.device_days))
        };
        assert_eq!(get("acme", "2025-03"), Some((7, 2)));
        assert_eq!(get("globex", "2025-03"), Some((2, 1)));
        assert_eq!(get(ALL_CLIENTS, "2025-03"), Some((9, 3)));
        assert_eq!(get(ALL_CLIENTS, "2025-04"), Some((9, 1)));
    }

    #[test]
    fn a_batch_adds_to_its_open_day_or_opens_the_next() {
        let d = Day::parse("2025-03-31").expect("day");
        let noon = d.start_ms() + 12 * 3_600_000;
        // First batch ever: open today, nothing to hand over.
        assert_eq!(
            plan_batch(&DeviceUsage::default(), noon),
            BatchUsage::Open {
                day: d,
                previous: None,
                previous_batches: 0,
                flush: None
            }
        );
        let open = DeviceUsage {
            day: Some(d),
            batches: 4,
            bytes: 4000,
        };
        assert_eq!(plan_batch(&open, noon), BatchUsage::Add { day: d });
        // The next day: hand over the finished one.
        assert_eq!(
            plan_batch(&open, noon + DAY_MS),
            BatchUsage::Open {
                day: d.next(),
                previous: Some(d),
                previous_batches: 4,
                flush: Some(FinishedDay {
                    day: d,
                    batches: 4,
                    bytes: 4000
                })
            }
        );
        // Flushed by the close job (counting day moved to the next day, zero counts): a late
        // request from before midnight counts in the new day, nothing is handed over again.
        let closed = DeviceUsage {
            day: Some(d.next()),
            batches: 0,
            bytes: 0,
        };
        assert_eq!(
            plan_batch(&closed, noon),
            BatchUsage::Open {
                day: d.next(),
                previous: Some(d.next()),
                previous_batches: 0,
                flush: None
            }
        );
        assert_eq!(open.unflushed().map(|f| f.counters().device_days), Some(1));
    }
}
