//! Time in local calendars: maintenance windows, business hours and on-call schedules.
//!
//! Invariants: pure (no I/O, no AWS, no async, no clock: instants are passed in as Unix
//! milliseconds). Time zones come from the IANA database compiled into the binary (jiff's
//! `tzdb-bundle-always`); the host's `/usr/share/zoneinfo` is never read, so a Lambda, a
//! developer's laptop and CI give the same answers. Only this crate depends on jiff: neither
//! `vigie-domain` nor the agent does.
//!
//! # Local time to instants
//!
//! People write schedules in wall-clock time in an IANA zone ("02:30 every Sunday,
//! Europe/Paris"). Twice a year a wall-clock time can be missing or repeated; this crate reads
//! a window's start time with one rule everywhere:
//!
//! - **A time that does not exist** (clocks set forward, e.g. 02:30 on 2026-03-29 in Paris,
//!   where 02:00 jumps to 03:00) stands for the **first instant after the gap**: the window
//!   starts when the wall clock shows 03:00 (01:00 UTC). It is neither skipped nor moved an
//!   hour late.
//! - **A time that occurs twice** (clocks set back, e.g. 02:30 on 2026-10-25 in Paris, once on
//!   summer time, once on winter time) stands for its **first occurrence** (00:30 UTC): the
//!   window starts as soon as the wall clock first shows the time.
//!
//! # Durations are elapsed time
//!
//! A recurring window lasts `duration_minutes` of **real time**, whatever the wall clock does
//! meanwhile: a daily 01:00 window of 4 hours in Paris is 00:00–04:00 UTC on 2026-03-29 (wall
//! clock 01:00 winter time to 06:00 summer time) and 23:00–03:00 UTC on the night of
//! 2026-10-25 (wall clock 01:00 summer time to 04:00 winter time).
//! An MSP sizes a window by the work it covers — a patch run, a backup, a reboot cycle — and
//! agrees its length with the client; the silence must last that long on the night the clocks
//! change too. A wall-clock end would cut the spring window to 3 hours, so the end of a patch
//! run would page the on-call person, and an end inside the gap or the repeated hour would be
//! ambiguous again. A one-off window ([`Schedule::Once`]) is different: a person wrote both of
//! its ends as wall-clock times, so both are read with the rules above.
//!
//! Intervals are `[start, end)`: open at its start, closed again at its end.
//!
//! # Maps
//!
//! - [`local`]: [`LocalDate`], [`LocalTime`], [`LocalDateTime`], [`Weekday`], and
//!   [`LocalCalendar`] (to UTC and back in one zone), the base for business hours.
//! - [`window`]: [`MaintenanceWindow`], its [`Schedule`] and what it silences ([`Suppress`]):
//!   validation, [`MaintenanceWindow::is_active`], [`MaintenanceWindow::next_change`],
//!   [`MaintenanceWindow::occurrences`]. Storing windows and applying them in the evaluator
//!   and notifier are not here.
//! - [`hours`]: [`BusinessCalendar`] (weekly [`OpenHours`], [`Holiday`]s, [`DayException`]s):
//!   [`BusinessCalendar::is_open`], [`BusinessCalendar::next_open`],
//!   [`BusinessCalendar::next_close`], [`BusinessCalendar::open_intervals`] and
//!   [`BusinessCalendar::at_local_time`] ("tomorrow at 09:00 on an open day").
//! - [`ical`]: [`parse_ical_holidays`], public holidays from iCalendar text.
//! - [`oncall`]: [`OnCallSchedule`] (rotation [`Layer`]s and [`Override`]s):
//!   [`OnCallSchedule::on_call_at`] for any instant, [`OnCallSchedule::shifts`].
//!
//! Business hours and on-call follow the same reading of wall-clock times as windows: an
//! opening hour, a closing hour or a hand-off time that does not exist that day is the first
//! instant after the gap, one that occurs twice is its first occurrence. "Tomorrow at 09:00"
//! and a daily 09:00 hand-off stay at 09:00 on the wall clock across a change (the day in
//! between lasts 23 or 25 hours); a custom on-call rotation of N hours is N elapsed hours.

pub mod hours;
pub mod ical;
pub mod ids;
pub mod local;
pub mod oncall;
pub mod window;

pub use hours::{
    BusinessCalendar, CalendarInvalid, DayException, EndTime, Holiday, OpenHours, OpenSpan,
};
pub use ical::{IcalInvalid, parse_ical_holidays, parse_ical_holidays_between};
pub use ids::{CalendarId, OverrideId, ScheduleId};
pub use local::{
    Disambiguation, LocalCalendar, LocalDate, LocalDateTime, LocalTime, LocalValueInvalid,
    UnknownTimeZone, Weekday, parse_instant,
};
pub use oncall::{
    Layer, OnCallAt, OnCallSchedule, Override, Rotation, ScheduleInvalid, Shift, validate_override,
};
pub use window::{MaintenanceWindow, Nth, Recurrence, Schedule, Suppress, WindowId, WindowInvalid};
