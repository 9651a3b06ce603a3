//! On-call schedules: who answers at any instant, past or future.
//!
//! A schedule stacks [`Layer`]s; each rotates its participants on a [`Rotation`] from its
//! first hand-off. **Layering rule**: at an instant, an [`Override`] covering it wins (the
//! last one listed when several do); otherwise the topmost layer (the last listed) that has
//! someone on call then: a layer has nobody before its first hand-off, nor outside its
//! `active` hours, and the layers below show through. So "a weekday day layer over a 24/7
//! base layer" needs no gaps written anywhere.
//!
//! Daily and weekly hand-offs happen at the first hand-off's **wall-clock** time in the
//! schedule's zone: a daily 09:00 hand-off stays at 09:00 across a change of offset (that
//! shift lasts 23 or 25 hours), read with the crate's rules (a time in a spring gap is the
//! end of the gap, a repeated time its first occurrence). A custom rotation counts **elapsed**
//! hours: a 12-hour rotation is 12 real hours on the night the clocks change, and its
//! hand-offs move on the wall clock.

use std::collections::BTreeSet;

use jiff::civil;
use serde::{Deserialize, Serialize};

use crate::hours::{
    CalendarInvalid, EndTime, OpenHours, Periods, check_hours, days_after, days_before, instants,
    weekly_spans,
};
use crate::ids::{OverrideId, ScheduleId};
use crate::local::{Disambiguation, LocalCalendar, LocalDateTime, LocalTime, UnknownTimeZone};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How a layer hands over from one participant to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RotationWire")]
pub enum Rotation {
    /// Every day at the first hand-off's wall-clock time.
    Daily,
    /// Every seven days at the first hand-off's wall-clock time.
    Weekly,
    /// Every `hours` hours of elapsed time.
    Custom { hours: u32 },
}

/// A rotation as sent, checked field by field: serde's internally tagged enums accept unknown
/// fields next to unit variants (`{"type": "daily", "hours": 3}`), which would hide a mistake.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationWire {
    #[serde(rename = "type")]
    kind: RotationKind,
    #[serde(default)]
    hours: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RotationKind {
    Daily,
    Weekly,
    Custom,
}

/// A rotation's fields do not fit its type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RotationInvalid(&'static str);

impl TryFrom<RotationWire> for Rotation {
    type Error = RotationInvalid;
    fn try_from(w: RotationWire) -> Result<Self, Self::Error> {
        match (w.kind, w.hours) {
            (RotationKind::Daily, None) => Ok(Self::Daily),
            (RotationKind::Weekly, None) => Ok(Self::Weekly),
            (RotationKind::Custom, Some(hours)) => Ok(Self::Custom { hours }),
            (RotationKind::Custom, None) => Err(RotationInvalid("a custom rotation needs hours")),
            (_, Some(_)) => Err(RotationInvalid(
                "only a custom rotation has hours (daily and weekly hand over at the start's time)",
            )),
        }
    }
}

/// One rotation of people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub name: String,
    /// User ids (`usr-…`) or contact names, in rotation order.
    pub participants: Vec<String>,
    pub rotation: Rotation,
    /// The first hand-off (to the first participant), wall clock in the schedule's zone.
    pub start: LocalDateTime,
    /// Weekly hours the layer covers (nights and weekends, say); empty: always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<OpenHours>,
}

/// Someone on call instead of the layers, for a period (a swapped shift, a day off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    pub id: String,
    pub user: String,
    pub start_ms: i64,
    pub end_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An on-call schedule. Stored as a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallSchedule {
    pub id: ScheduleId,
    pub name: String,
    /// The IANA zone hand-offs and active hours are read in.
    pub time_zone: String,
    /// Bottom first: later layers sit on top.
    pub layers: Vec<Layer>,
    #[serde(default)]
    pub overrides: Vec<Override>,
}

/// Who is on call at an instant, and from when to when that answer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnCallAt {
    pub user: String,
    /// The layer it comes from; `None` for an override.
    pub layer: Option<String>,
    pub override_id: Option<String>,
    /// When the answer last changed, at most [`OnCallSchedule::SEARCH_DAYS`] back.
    pub since_ms: i64,
    /// When it next changes, at most [`OnCallSchedule::SEARCH_DAYS`] ahead.
    pub until_ms: i64,
}

/// One stretch of one person on call, `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub user: String,
    pub layer: Option<String>,
    pub override_id: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Why an on-call schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleInvalid {
    #[error("the schedule needs a name")]
    EmptyName,
    #[error("a name is at most 200 characters")]
    NameTooLong,
    #[error(transparent)]
    UnknownTimeZone(#[from] UnknownTimeZone),
    #[error("a schedule has 1 to {max} layers", max = OnCallSchedule::MAX_LAYERS)]
    LayerCount,
    #[error("layer names are 1 to 200 characters and distinct; {0:?} is not")]
    BadLayerName(String),
    #[error("layer {0:?} needs 1 to {max} participants", max = OnCallSchedule::MAX_PARTICIPANTS)]
    ParticipantCount(String),
    #[error("layer {0:?} has an empty or over-long (200 characters) participant")]
    BadParticipant(String),
    #[error("layer {0:?}: a custom rotation hands over every 1 to {max} hours", max = OnCallSchedule::MAX_CUSTOM_HOURS)]
    CustomHours(String),
    #[error("layer {layer:?}: {reason}")]
    ActiveHours {
        layer: String,
        reason: CalendarInvalid,
    },
    #[error("at most {max} overrides", max = OnCallSchedule::MAX_OVERRIDES)]
    TooManyOverrides,
    #[error("override {0:?}: its id is 1 to 64 of a-z, 0-9, - and _, and distinct")]
    BadOverrideId(String),
    #[error("override {0:?} needs a user (1 to 200 characters)")]
    BadOverrideUser(String),
    #[error("override {0:?} ends at or before it starts")]
    OverrideEndNotAfterStart(String),
    #[error("override {0:?} lasts more than {max} days", max = OnCallSchedule::MAX_OVERRIDE_DAYS)]
    OverrideTooLong(String),
    #[error("override {0:?}: its note is at most 500 characters")]
    OverrideNoteTooLong(String),
}

impl ScheduleInvalid {
    /// The stable error code the API sends.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyName | Self::NameTooLong => "bad_name",
            Self::UnknownTimeZone(_) => "unknown_time_zone",
            Self::TooManyOverrides
            | Self::BadOverrideId(_)
            | Self::BadOverrideUser(_)
            | Self::OverrideEndNotAfterStart(_)
            | Self::OverrideTooLong(_)
            | Self::OverrideNoteTooLong(_) => "bad_override",
            _ => "bad_schedule",
        }
    }
}

/// Who a source (an override or a layer) puts on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who<'a> {
    Override { id: &'a str, user: &'a str },
    Layer { layer: &'a str, user: &'a str },
}

/// An answer at an instant and an interval around it over which no source changes
/// (conservative: the answer may well hold beyond it).
struct Answer<'a> {
    who: Option<Who<'a>>,
    lo: i64,
    hi: i64,
}

impl OnCallSchedule {
    pub const MAX_LAYERS: usize = 10;
    pub const MAX_PARTICIPANTS: usize = 50;
    pub const MAX_CUSTOM_HOURS: u32 = 90 * 24;
    pub const MAX_OVERRIDES: usize = 500;
    pub const MAX_OVERRIDE_DAYS: i64 = 90;
    /// How far [`Self::on_call_at`] looks back and ahead for the answer's changes.
    pub const SEARCH_DAYS: i64 = 35;
    /// Most shifts [`Self::shifts`] returns.
    pub const MAX_SHIFTS: usize = 2_000;

    /// Checks everything serde cannot.
    pub fn validate(&self) -> Result<(), ScheduleInvalid> {
        if self.name.trim().is_empty() {
            return Err(ScheduleInvalid::EmptyName);
        }
        if self.name.chars().count() > 200 {
            return Err(ScheduleInvalid::NameTooLong);
        }
        LocalCalendar::new(&self.time_zone)?;
        if self.layers.is_empty() || self.layers.len() > Self::MAX_LAYERS {
            return Err(ScheduleInvalid::LayerCount);
        }
        let mut names = BTreeSet::new();
        for layer in &self.layers {
            let name = layer.name.trim();
            if name.is_empty() || name.chars().count() > 200 || !names.insert(name) {
                return Err(ScheduleInvalid::BadLayerName(layer.name.clone()));
            }
            if layer.participants.is_empty() || layer.participants.len() > Self::MAX_PARTICIPANTS {
                return Err(ScheduleInvalid::ParticipantCount(layer.name.clone()));
            }
            if layer
                .participants
                .iter()
                .any(|p| p.trim().is_empty() || p.chars().count() > 200)
            {
                return Err(ScheduleInvalid::BadParticipant(layer.name.clone()));
            }
            if let Rotation::Custom { hours } = layer.rotation
                && !(1..=Self::MAX_CUSTOM_HOURS).contains(&hours)
            {
                return Err(ScheduleInvalid::CustomHours(layer.name.clone()));
            }
            check_hours(&layer.active).map_err(|reason| ScheduleInvalid::ActiveHours {
                layer: layer.name.clone(),
                reason,
            })?;
        }
        if self.overrides.len() > Self::MAX_OVERRIDES {
            return Err(ScheduleInvalid::TooManyOverrides);
        }
        let mut ids = BTreeSet::new();
        for o in &self.overrides {
            validate_override(o)?;
            if !ids.insert(o.id.as_str()) {
                return Err(ScheduleInvalid::BadOverrideId(o.id.clone()));
            }
        }
        Ok(())
    }

    /// Who is on call at `at_ms`, with `since_ms`/`until_ms` the instants the answer last
    /// changed and next changes (the same person from another layer, or through an override,
    /// is a change), looked for at most [`Self::SEARCH_DAYS`] away; `None` when nobody is.
    pub fn on_call_at(&self, at_ms: i64) -> Option<OnCallAt> {
        let cal = LocalCalendar::new(&self.time_zone).ok()?;
        let now = self.answer(&cal, at_ms);
        let who = now.who?;
        let window = Self::SEARCH_DAYS * DAY_MS;
        let (floor, ceiling) = (at_ms.saturating_sub(window), at_ms.saturating_add(window));
        let mut until = now.hi;
        while until < ceiling {
            let next = self.answer(&cal, until);
            if next.who != Some(who) {
                break;
            }
            until = next.hi;
        }
        let mut since = now.lo;
        while since > floor {
            let before = self.answer(&cal, since - 1);
            if before.who != Some(who) {
                break;
            }
            since = before.lo;
        }
        let (user, layer, override_id) = who.parts();
        Some(OnCallAt {
            user,
            layer,
            override_id,
            since_ms: since.max(floor),
            until_ms: until.min(ceiling),
        })
    }

    /// Who is on call over `[from_ms, to_ms)`, clipped to it, consecutive stretches of the same
    /// answer merged, periods with nobody left out; at most [`Self::MAX_SHIFTS`].
    pub fn shifts(&self, from_ms: i64, to_ms: i64) -> Vec<Shift> {
        let Ok(cal) = LocalCalendar::new(&self.time_zone) else {
            return Vec::new();
        };
        let mut out: Vec<Shift> = Vec::new();
        let mut last: Option<Who<'_>> = None;
        let mut t = from_ms;
        while t < to_ms {
            let a = self.answer(&cal, t);
            let end = a.hi.min(to_ms);
            match a.who {
                Some(who) if last == Some(who) => {
                    if let Some(s) = out.last_mut() {
                        s.end_ms = end;
                    }
                }
                Some(who) => {
                    if out.len() == Self::MAX_SHIFTS {
                        break;
                    }
                    let (user, layer, override_id) = who.parts();
                    out.push(Shift {
                        user,
                        layer,
                        override_id,
                        start_ms: t,
                        end_ms: end,
                    });
                }
                None => {}
            }
            last = a.who;
            t = end;
        }
        out
    }

    /// The answer at `t` and an interval around it in which no source changes.
    fn answer<'a>(&'a self, cal: &LocalCalendar, t: i64) -> Answer<'a> {
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        let mut who = None;
        for o in &self.overrides {
            if o.start_ms <= t && t < o.end_ms {
                who = Some(Who::Override {
                    id: &o.id,
                    user: &o.user,
                });
                lo = lo.max(o.start_ms);
                hi = hi.min(o.end_ms);
            } else if t < o.start_ms {
                hi = hi.min(o.start_ms);
            } else {
                lo = lo.max(o.end_ms);
            }
        }
        // Under an override the layers do not matter; under a layer that answers, neither do
        // the layers below it.
        if who.is_none() {
            for layer in self.layers.iter().rev() {
                let (user, l, h) = layer_at(layer, cal, t);
                lo = lo.max(l);
                hi = hi.min(h);
                if let Some(user) = user {
                    who = Some(Who::Layer {
                        layer: &layer.name,
                        user,
                    });
                    break;
                }
            }
        }
        Answer {
            who,
            lo: lo.min(t),
            hi: if hi > t { hi } else { t.saturating_add(1) },
        }
    }
}

impl Who<'_> {
    fn parts(self) -> (String, Option<String>, Option<String>) {
        match self {
            Who::Override { id, user } => (user.to_owned(), None, Some(id.to_owned())),
            Who::Layer { layer, user } => (user.to_owned(), Some(layer.to_owned()), None),
        }
    }
}

/// Checks one override on its own (the API checks a new one before adding it).
pub fn validate_override(o: &Override) -> Result<(), ScheduleInvalid> {
    if OverrideId::parse(&o.id).is_err() {
        return Err(ScheduleInvalid::BadOverrideId(o.id.clone()));
    }
    if o.user.trim().is_empty() || o.user.chars().count() > 200 {
        return Err(ScheduleInvalid::BadOverrideUser(o.id.clone()));
    }
    if o.end_ms <= o.start_ms {
        return Err(ScheduleInvalid::OverrideEndNotAfterStart(o.id.clone()));
    }
    if o.end_ms - o.start_ms > OnCallSchedule::MAX_OVERRIDE_DAYS * DAY_MS {
        return Err(ScheduleInvalid::OverrideTooLong(o.id.clone()));
    }
    if o.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ScheduleInvalid::OverrideNoteTooLong(o.id.clone()));
    }
    Ok(())
}

/// A layer's participant at `t` (if any) and an interval around `t` in which that holds.
fn layer_at<'a>(layer: &'a Layer, cal: &LocalCalendar, t: i64) -> (Option<&'a str>, i64, i64) {
    let first = cal.to_utc(layer.start, Disambiguation::Earlier);
    if t < first || layer.participants.is_empty() {
        return (None, i64::MIN, first);
    }
    let (k, mut lo, mut hi) = shift_at(layer, cal, first, t);
    let n = layer.participants.len() as i64;
    let user = layer.participants[k.rem_euclid(n) as usize].as_str();
    if layer.active.is_empty() {
        return (Some(user), lo, hi);
    }
    let (active, l, h) = weekly_state(cal, &layer.active, t);
    lo = lo.max(l);
    hi = hi.min(h);
    (active.then_some(user), lo, hi)
}

/// The rotation's shift holding `t` (≥ the first hand-off): its number and `[start, end)`.
fn shift_at(layer: &Layer, cal: &LocalCalendar, first: i64, t: i64) -> (i64, i64, i64) {
    let period_days = match layer.rotation {
        Rotation::Custom { hours } => {
            let len = i64::from(hours.max(1)) * HOUR_MS;
            let k = (t - first) / len;
            let start = first + k * len;
            return (k, start, start.saturating_add(len));
        }
        Rotation::Daily => 1,
        Rotation::Weekly => 7,
    };
    let day0 = layer.start.date.civil();
    let time = layer.start.time;
    let hand_off = |k: i64| {
        let days = i32::try_from(k * period_days).unwrap_or(i32::MAX);
        cal.start_on(days_after(day0, days), time)
    };
    let elapsed_days = day0
        .until(cal.civil_date(t))
        .map(|s| i64::from(s.get_days()))
        .unwrap_or(0);
    let mut k = elapsed_days.div_euclid(period_days).max(0);
    let mut start = hand_off(k);
    if start > t && k > 0 {
        k -= 1;
        start = hand_off(k);
    }
    (k, start, hand_off(k + 1))
}

/// Whether weekly `hours` cover `t`, and an interval around `t` over which that holds.
fn weekly_state(cal: &LocalCalendar, hours: &[OpenHours], t: i64) -> (bool, i64, i64) {
    let today = cal.civil_date(t);
    let (first, last) = (days_before(today, 2), days_after(today, 2));
    let mut lo = cal.start_on(first, LocalTime::MIDNIGHT);
    let hi = EndTime::END_OF_DAY.on(cal, last);
    for (s, e) in Periods::new(first, last, |d: civil::Date| {
        instants(cal, d, &weekly_spans(hours, d))
    }) {
        if s <= t && t < e {
            return (true, s, e);
        }
        if t < s {
            return (false, lo, s);
        }
        lo = e;
    }
    (false, lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::Weekday;
    use proptest::prelude::*;

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>()
            .expect("timestamp")
            .as_millisecond()
    }

    fn layer(name: &str, people: &[&str], rotation: Rotation, start: &str) -> Layer {
        Layer {
            name: name.into(),
            participants: people.iter().map(|p| (*p).to_owned()).collect(),
            rotation,
            start: start.parse().expect("start"),
            active: vec![],
        }
    }

    fn schedule(zone: &str, layers: Vec<Layer>) -> OnCallSchedule {
        OnCallSchedule {
            id: ScheduleId::parse("night").expect("id"),
            name: "Night and weekend on-call".into(),
            time_zone: zone.into(),
            layers,
            overrides: vec![],
        }
    }

    fn who(s: &OnCallSchedule, at: &str) -> (String, i64, i64) {
        let a = s.on_call_at(utc(at)).expect("someone on call");
        (a.user, a.since_ms, a.until_ms)
    }

    /// Daylight-saving golden tests: a daily 09:00 hand-off stays at 09:00 local.
    #[test]
    fn daily_hand_offs_keep_their_wall_clock_time_in_paris() {
        let s = schedule(
            "Europe/Paris",
            vec![layer(
                "primary",
                &["alice", "bob", "carol"],
                Rotation::Daily,
                "2026-03-27T09:00",
            )],
        );
        assert_eq!(s.validate(), Ok(()));
        // 27 (CET) alice, 28 (CET) bob: a 23-hour shift up to Sunday 09:00 CEST = 07:00 UTC.
        assert_eq!(
            who(&s, "2026-03-29T06:59Z"),
            (
                "bob".into(),
                utc("2026-03-28T08:00Z"),
                utc("2026-03-29T07:00Z")
            )
        );
        assert_eq!(
            who(&s, "2026-03-29T07:00Z"),
            (
                "carol".into(),
                utc("2026-03-29T07:00Z"),
                utc("2026-03-30T07:00Z")
            )
        );
        assert_eq!(who(&s, "2026-03-30T07:00Z").0, "alice");
        // Before the first hand-off nobody is on call.
        assert_eq!(s.on_call_at(utc("2026-03-27T07:59Z")), None);
        // Autumn: 09:00 CEST on Saturday 24 October, 09:00 CET on Sunday 25 (a 25-hour shift).
        let a = s.on_call_at(utc("2026-10-24T12:00Z")).expect("on call");
        assert_eq!(
            (a.since_ms, a.until_ms),
            (utc("2026-10-24T07:00Z"), utc("2026-10-25T08:00Z"))
        );
        assert_eq!(a.layer.as_deref(), Some("primary"));
    }

    #[test]
    fn weekly_hand_offs_keep_their_wall_clock_time_in_paris() {
        let s = schedule(
            "Europe/Paris",
            vec![layer(
                "primary",
                &["alice", "bob"],
                Rotation::Weekly,
                "2026-10-19T09:00",
            )],
        );
        // Monday 19 October 09:00 CEST (07:00 UTC) to Monday 26 09:00 CET (08:00 UTC).
        assert_eq!(
            who(&s, "2026-10-25T12:00Z"),
            (
                "alice".into(),
                utc("2026-10-19T07:00Z"),
                utc("2026-10-26T08:00Z")
            )
        );
        assert_eq!(who(&s, "2026-10-26T08:00Z").0, "bob");
        // Spring: Monday 23 March 09:00 CET (08:00 UTC) → Monday 30 March 09:00 CEST (07:00 UTC).
        let s = schedule(
            "Europe/Paris",
            vec![layer(
                "primary",
                &["alice", "bob"],
                Rotation::Weekly,
                "2026-03-23T09:00",
            )],
        );
        assert_eq!(
            who(&s, "2026-03-29T12:00Z"),
            (
                "alice".into(),
                utc("2026-03-23T08:00Z"),
                utc("2026-03-30T07:00Z")
            )
        );
    }

    #[test]
    fn hand_offs_across_the_new_york_changes() {
        let daily = schedule(
            "America/New_York",
            vec![layer(
                "primary",
                &["alice", "bob"],
                Rotation::Daily,
                "2026-03-01T09:00",
            )],
        );
        // 09:00 EST on 7 March is 14:00 UTC; 09:00 EDT on 8 March is 13:00 UTC.
        let (_, since, until) = who(&daily, "2026-03-07T20:00Z");
        assert_eq!(
            (since, until),
            (utc("2026-03-07T14:00Z"), utc("2026-03-08T13:00Z"))
        );
        // 09:00 EDT on 31 October is 13:00 UTC; 09:00 EST on 1 November is 14:00 UTC.
        let (_, since, until) = who(&daily, "2026-10-31T20:00Z");
        assert_eq!(
            (since, until),
            (utc("2026-10-31T13:00Z"), utc("2026-11-01T14:00Z"))
        );
        let weekly = schedule(
            "America/New_York",
            vec![layer(
                "primary",
                &["alice", "bob"],
                Rotation::Weekly,
                "2026-03-02T09:00",
            )],
        );
        // Monday 2 March 09:00 EST → Monday 9 March 09:00 EDT (13:00 UTC).
        assert_eq!(
            who(&weekly, "2026-03-08T12:00Z"),
            (
                "alice".into(),
                utc("2026-03-02T14:00Z"),
                utc("2026-03-09T13:00Z")
            )
        );
        // Monday 26 October 09:00 EDT → Monday 2 November 09:00 EST (14:00 UTC).
        assert_eq!(
            who(&weekly, "2026-11-01T12:00Z").2,
            utc("2026-11-02T14:00Z")
        );
    }

    #[test]
    fn a_custom_rotation_counts_elapsed_hours_across_the_changes() {
        // 21:00 CET on 28 March, every 12 hours: the next hand-off is 12 real hours later,
        // 10:00 CEST on the wall clock.
        let s = schedule(
            "Europe/Paris",
            vec![layer(
                "twelve",
                &["alice", "bob"],
                Rotation::Custom { hours: 12 },
                "2026-03-28T21:00",
            )],
        );
        assert_eq!(
            who(&s, "2026-03-29T01:30Z"),
            (
                "alice".into(),
                utc("2026-03-28T20:00Z"),
                utc("2026-03-29T08:00Z")
            )
        );
        assert_eq!(who(&s, "2026-03-29T08:00Z").0, "bob");
        let s = schedule(
            "America/New_York",
            vec![layer(
                "twelve",
                &["alice", "bob"],
                Rotation::Custom { hours: 12 },
                "2026-10-31T20:00",
            )],
        );
        // 20:00 EDT (00:00 UTC) + 12 h = 12:00 UTC = 07:00 EST.
        let (_, since, until) = who(&s, "2026-11-01T06:00Z");
        assert_eq!(
            (since, until),
            (utc("2026-11-01T00:00Z"), utc("2026-11-01T12:00Z"))
        );
        assert_eq!(until - since, 12 * HOUR_MS);
    }

    /// A 24/7 weekly base layer, a weekday daytime layer on top, an override over both.
    fn layered() -> OnCallSchedule {
        let mut day = layer(
            "office",
            &["carol", "dave"],
            Rotation::Daily,
            "2026-03-30T08:00",
        );
        day.active = vec![OpenHours {
            days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            start: "08:00".parse().expect("time"),
            end: "18:00".parse().expect("end"),
        }];
        let mut s = schedule(
            "Europe/Paris",
            vec![
                layer(
                    "base",
                    &["alice", "bob"],
                    Rotation::Weekly,
                    "2026-03-30T09:00",
                ),
                day,
            ],
        );
        s.overrides.push(Override {
            id: "swap-eve".into(),
            user: "eve".into(),
            start_ms: utc("2026-04-01T08:00Z"), // Wednesday 10:00 CEST
            end_ms: utc("2026-04-01T12:00Z"),
            note: Some("carol at the dentist".into()),
        });
        s
    }

    #[test]
    fn the_top_layer_wins_where_active_and_an_override_beats_both() {
        let s = layered();
        assert_eq!(s.validate(), Ok(()));
        // Tuesday 31 March 10:00 CEST: the office layer (day 2 of its rotation: dave).
        let a = s.on_call_at(utc("2026-03-31T08:00Z")).expect("on call");
        assert_eq!(
            (a.user.as_str(), a.layer.as_deref()),
            ("dave", Some("office"))
        );
        assert_eq!(
            (a.since_ms, a.until_ms),
            (utc("2026-03-31T06:00Z"), utc("2026-03-31T16:00Z"))
        );
        // Tuesday 20:00: the base layer shows through.
        let a = s.on_call_at(utc("2026-03-31T18:00Z")).expect("on call");
        assert_eq!(
            (a.user.as_str(), a.layer.as_deref()),
            ("alice", Some("base"))
        );
        assert_eq!(
            (a.since_ms, a.until_ms),
            (utc("2026-03-31T16:00Z"), utc("2026-04-01T06:00Z"))
        );
        // Wednesday 11:00: the override.
        let a = s.on_call_at(utc("2026-04-01T09:00Z")).expect("on call");
        assert_eq!(
            (a.user.as_str(), a.layer, a.override_id.as_deref()),
            ("eve", None, Some("swap-eve"))
        );
        assert_eq!(
            (a.since_ms, a.until_ms),
            (utc("2026-04-01T08:00Z"), utc("2026-04-01T12:00Z"))
        );
        // Saturday: base only, alice's week, until the office layer starts on Monday 08:00.
        let a = s.on_call_at(utc("2026-04-04T12:00Z")).expect("on call");
        assert_eq!(a.user, "alice");
        assert_eq!(a.until_ms, utc("2026-04-06T06:00Z"));

        let shifts = s.shifts(utc("2026-04-01T00:00Z"), utc("2026-04-02T00:00Z"));
        let summary: Vec<(&str, i64, i64)> = shifts
            .iter()
            .map(|x| (x.user.as_str(), x.start_ms, x.end_ms))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("alice", utc("2026-04-01T00:00Z"), utc("2026-04-01T06:00Z")),
                ("carol", utc("2026-04-01T06:00Z"), utc("2026-04-01T08:00Z")),
                ("eve", utc("2026-04-01T08:00Z"), utc("2026-04-01T12:00Z")),
                ("carol", utc("2026-04-01T12:00Z"), utc("2026-04-01T16:00Z")),
                ("alice", utc("2026-04-01T16:00Z"), utc("2026-04-02T00:00Z")),
            ]
        );
    }

    #[test]
    fn invalid_schedules_are_refused() {
        let good = layered();
        let with = |f: &dyn Fn(&mut OnCallSchedule)| {
            let mut s = good.clone();
            f(&mut s);
            s.validate().expect_err("refused").code()
        };
        assert_eq!(with(&|s| s.name = String::new()), "bad_name");
        assert_eq!(
            with(&|s| s.time_zone = "Europe/Lutece".into()),
            "unknown_time_zone"
        );
        assert_eq!(with(&|s| s.layers.clear()), "bad_schedule");
        assert_eq!(with(&|s| s.layers[0].participants.clear()), "bad_schedule");
        assert_eq!(with(&|s| s.layers[1].name = "base".into()), "bad_schedule");
        assert_eq!(
            with(&|s| s.layers[0].rotation = Rotation::Custom { hours: 0 }),
            "bad_schedule"
        );
        assert_eq!(
            with(&|s| s.layers[1].active[0].end = "07:00".parse().expect("end")),
            "bad_schedule"
        );
        assert_eq!(
            with(&|s| s.overrides[0].end_ms = s.overrides[0].start_ms),
            "bad_override"
        );
        assert_eq!(
            with(&|s| s.overrides[0].id = "Bad Id".into()),
            "bad_override"
        );
        assert_eq!(
            with(&|s| {
                let o = s.overrides[0].clone();
                s.overrides.push(o);
            }),
            "bad_override"
        );
    }

    #[test]
    fn json_document_round_trips_and_refuses_unknown_fields() {
        let json = r#"{
            "id": "msp-night", "name": "Night", "time_zone": "Europe/Paris",
            "layers": [
                {"name": "base", "participants": ["usr-a", "Partner NOC"],
                 "rotation": {"type": "weekly"}, "start": "2026-03-30T09:00"},
                {"name": "twelve", "participants": ["usr-b"],
                 "rotation": {"type": "custom", "hours": 12}, "start": "2026-03-30T21:00",
                 "active": [{"days": ["saturday"], "start": "00:00", "end": "24:00"}]}
            ],
            "overrides": [{"id": "o1", "user": "usr-c", "start_ms": 1, "end_ms": 2}]
        }"#;
        let s: OnCallSchedule = serde_json::from_str(json).expect("parses");
        assert_eq!(s.validate(), Ok(()));
        let back: OnCallSchedule =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("back");
        assert_eq!(back, s);
        for (from, to) in [
            (
                "\"name\": \"Night\"",
                "\"name\": \"Night\", \"colour\": \"red\"",
            ),
            (
                "{\"type\": \"weekly\"}",
                "{\"type\": \"weekly\", \"hours\": 3}",
            ),
            ("{\"type\": \"weekly\"}", "{\"type\": \"fortnightly\"}"),
            ("\"end_ms\": 2", "\"end_ms\": 2, \"x\": 0"),
        ] {
            let bad = json.replacen(from, to, 1);
            assert!(
                serde_json::from_str::<OnCallSchedule>(&bad).is_err(),
                "{to}"
            );
        }
    }

    fn arb_schedule() -> impl Strategy<Value = OnCallSchedule> {
        let zone = prop::sample::select(vec!["Europe/Paris", "America/New_York", "UTC"]);
        let rotation = prop_oneof![
            Just(Rotation::Daily),
            Just(Rotation::Weekly),
            (1u32..72).prop_map(|hours| Rotation::Custom { hours }),
        ];
        let layer = (rotation, 0i32..40, 0u8..24, 1usize..4, prop::bool::ANY);
        (
            zone,
            prop::collection::vec(layer, 1..4),
            prop::collection::vec((0i64..60 * 24, 1i64..48), 0..4),
        )
            .prop_map(|(zone, layers, overrides)| {
                let base = civil::date(2026, 3, 1);
                let layers = layers
                    .into_iter()
                    .enumerate()
                    .map(|(i, (rotation, day, hour, n, nights))| Layer {
                        name: format!("l{i}"),
                        participants: (0..n).map(|p| format!("u{i}{p}")).collect(),
                        rotation,
                        start: crate::local::LocalDate::from_civil(days_after(base, day))
                            .at(LocalTime::new(hour, 0).expect("time")),
                        active: if nights {
                            vec![OpenHours {
                                days: vec![Weekday::Monday, Weekday::Saturday],
                                start: LocalTime::new(20, 0).expect("time"),
                                end: EndTime::END_OF_DAY,
                            }]
                        } else {
                            vec![]
                        },
                    })
                    .collect();
                let overrides = overrides
                    .into_iter()
                    .enumerate()
                    .map(|(i, (h, len))| Override {
                        id: format!("o{i}"),
                        user: format!("x{i}"),
                        start_ms: utc("2026-03-01T00:00Z") + h * HOUR_MS,
                        end_ms: utc("2026-03-01T00:00Z") + (h + len) * HOUR_MS,
                        note: None,
                    })
                    .collect();
                OnCallSchedule {
                    overrides,
                    ..schedule(zone, layers)
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        #[test]
        fn on_call_at_agrees_with_shifts(
            s in arb_schedule(),
            t in utc("2026-03-01T00:00Z")..utc("2026-05-01T00:00Z"),
        ) {
            prop_assert_eq!(s.validate(), Ok(()));
            let shifts = s.shifts(t - 3 * DAY_MS, t + 3 * DAY_MS);
            prop_assert!(shifts.windows(2).all(|p| p[0].end_ms <= p[1].start_ms));
            let here = shifts.iter().find(|x| x.start_ms <= t && t < x.end_ms);
            match (s.on_call_at(t), here) {
                (None, None) => {}
                (Some(a), Some(x)) => {
                    prop_assert_eq!((&a.user, &a.layer, &a.override_id), (&x.user, &x.layer, &x.override_id));
                    prop_assert!(a.since_ms <= t && t < a.until_ms);
                    // The shift list is clipped to the range; inside it they agree.
                    prop_assert_eq!(a.since_ms.max(t - 3 * DAY_MS), x.start_ms);
                    prop_assert_eq!(a.until_ms.min(t + 3 * DAY_MS), x.end_ms);
                }
                (a, x) => prop_assert!(false, "on_call_at {:?} but shift {:?}", a, x),
            }
        }
    }
}
