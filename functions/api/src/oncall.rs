//! Business-hours calendars and on-call schedules.
//!
//! Calendars follow the maintenance windows' visibility rules: a caller limited to some
//! client companies (a client viewer, a limited technician) reads only calendars of the whole
//! tenant or of its companies and their sites; anything else is 404, like another tenant's.
//! MSP admins write them. Schedules are the MSP's own: admins write them, admins and
//! technicians read them and swap shifts with overrides.
//!
//! Editing part of a document (importing holidays, adding or removing an override) is a
//! conditional write on the version read, retried on a lost race, so two edits at once both
//! land; replacing a whole document is last-writer-wins.

use serde::Deserialize;
use serde_json::{Value, json};
use vigie_aws::oncall::{EditError, Edited, TenantDocuments};
use vigie_calendar::{
    BusinessCalendar, CalendarId, DayException, Holiday, Layer, LocalCalendar, OnCallSchedule,
    OpenHours, Override, ScheduleId, parse_ical_holidays_between, parse_instant, validate_override,
};
use vigie_domain::clock::Clock;
use vigie_domain::policy::Scope;
use vigie_edge::{HttpRequest, HttpResponse};

use crate::Api;
use crate::access::Context;
use crate::error::ApiError;
use crate::handlers::{
    Params, audit, check_scope_exists, json_body, page, utc_text, window_visible,
};
use crate::routes::{Matched, Operation};

const DAY_MS: i64 = 86_400_000;
/// Longest range `GET …/shifts` answers.
const MAX_SHIFT_RANGE_DAYS: i64 = 90;
/// Overrides that ended this long ago are dropped when another is added.
const OVERRIDE_KEPT_DAYS: i64 = 90;
/// Years ahead an open-ended yearly holiday is imported for.
const HOLIDAY_YEARS_AHEAD: u16 = 5;

fn calendar_view(c: &BusinessCalendar) -> Value {
    json!({
        "calendar_id": c.id,
        "name": c.name,
        "time_zone": c.time_zone,
        "scope": c.scope,
        "weekly": c.weekly,
        "holidays": c.holidays,
        "exceptions": c.exceptions,
    })
}

fn schedule_view(s: &OnCallSchedule) -> Value {
    json!({
        "schedule_id": s.id,
        "name": s.name,
        "time_zone": s.time_zone,
        "layers": s.layers,
        "overrides": s.overrides,
    })
}

/// An instant from the query (`at`, `from`, `to`): Unix ms or RFC 3339.
fn instant(p: &Params<'_>, name: &str) -> Result<Option<i64>, ApiError> {
    p.query
        .get(name)
        .map(|v| {
            parse_instant(v).map_err(|e| ApiError::invalid("bad_instant", format!("{name}: {e}")))
        })
        .transpose()
}

fn edit_failed(e: EditError<ApiError>) -> ApiError {
    match e {
        EditError::Store(e) => e.into(),
        EditError::Refused(e) => e,
        EditError::Contended => ApiError::Conflict {
            code: "edit_contended",
            message: "the document kept changing during the edit; retry".into(),
        },
    }
}

/// Business-hours calendars (see the module documentation for who reaches which).
pub(crate) async fn calendars<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    p: &Params<'_>,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let tenant = context.tenant()?;
    let store = api.ports.oncall().calendars();
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    let calendar_id = || p.id("calendar_id", CalendarId::parse, "business calendar");
    match matched.route.operation {
        Operation::ListCalendars => {
            let mut visible = Vec::new();
            for c in store.list::<BusinessCalendar>(tenant).await? {
                if window_visible(api, context, &c.scope, false).await? {
                    visible.push(c);
                }
            }
            page(visible, |c| c.id.to_string(), calendar_view, p)
        }
        Operation::GetCalendar => {
            let (c, _) = visible_calendar(api, context, &store, &calendar_id()?, false).await?;
            ok(calendar_view(&c))
        }
        Operation::DeleteCalendar => {
            let id = calendar_id()?;
            let (c, _) = visible_calendar(api, context, &store, &id, true).await?;
            if !store.delete(tenant, id.as_str()).await? {
                return Err(ApiError::NotFound {
                    what: "business calendar",
                });
            }
            audit(context, "business_calendar.delete", id.as_str());
            ok(calendar_view(&c))
        }
        Operation::PutCalendar => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct CalendarInput {
                name: String,
                time_zone: String,
                scope: Scope,
                weekly: Vec<OpenHours>,
                #[serde(default)]
                holidays: Vec<Holiday>,
                #[serde(default)]
                exceptions: Vec<DayException>,
            }
            let id = calendar_id()?;
            let body: CalendarInput = json_body(request)?;
            let calendar = BusinessCalendar {
                id,
                name: body.name.trim().to_owned(),
                time_zone: body.time_zone,
                scope: body.scope,
                weekly: body.weekly,
                holidays: body.holidays,
                exceptions: body.exceptions,
            };
            calendar
                .validate()
                .map_err(|e| ApiError::invalid(e.code(), e.to_string()))?;
            if let Some(old) = store
                .get::<BusinessCalendar>(tenant, calendar.id.as_str())
                .await?
                && !window_visible(api, context, &old.value.scope, true).await?
            {
                return Err(ApiError::NotFound {
                    what: "business calendar",
                });
            }
            if !window_visible(api, context, &calendar.scope, true).await? {
                return Err(ApiError::NotFound { what: "scope" });
            }
            check_scope_exists(api, tenant, &calendar.scope).await?;
            store
                .put(tenant, calendar.id.as_str(), &calendar, now)
                .await?;
            audit(context, "business_calendar.put", calendar.id.as_str());
            ok(calendar_view(&calendar))
        }
        Operation::ImportHolidays => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct HolidayImport {
                ical: Option<String>,
                holidays: Option<Vec<Holiday>>,
            }
            let id = calendar_id()?;
            let body: HolidayImport = json_body(request)?;
            let incoming = match (body.ical, body.holidays) {
                (Some(text), None) => {
                    let (this_year, ..) = LocalCalendar::utc().to_local(now);
                    let year = this_year.year();
                    parse_ical_holidays_between(
                        &text,
                        year,
                        year.saturating_add(HOLIDAY_YEARS_AHEAD),
                    )
                    .map_err(|e| ApiError::invalid(e.code(), e.to_string()))?
                }
                (None, Some(list)) => list,
                _ => {
                    return Err(ApiError::invalid(
                        "bad_body",
                        "send either {\"ical\": \"<iCalendar text>\"} or {\"holidays\": [{\"date\", \"name\"}]}",
                    ));
                }
            };
            // Only a caller that may write the calendar learns it exists.
            visible_calendar(api, context, &store, &id, true).await?;
            let edited = store
                .edit(tenant, id.as_str(), now, |c: &mut BusinessCalendar| {
                    let mut added = 0usize;
                    for h in &incoming {
                        if !c.holidays.iter().any(|old| old.date == h.date) {
                            c.holidays.push(Holiday {
                                date: h.date,
                                name: h.name.trim().to_owned(),
                            });
                            added += 1;
                        }
                    }
                    c.holidays.sort_by_key(|h| h.date);
                    c.validate()
                        .map_err(|e| ApiError::invalid(e.code(), e.to_string()))?;
                    Ok(added)
                })
                .await
                .map_err(edit_failed)?;
            let Edited::Done(calendar, added) = edited else {
                return Err(ApiError::NotFound {
                    what: "business calendar",
                });
            };
            audit(context, "business_calendar.holidays", id.as_str());
            ok(json!({
                "calendar": calendar_view(&calendar),
                "added": added,
                "holidays": calendar.holidays.len(),
            }))
        }
        Operation::CalendarOpen => {
            let (c, cal) = visible_calendar(api, context, &store, &calendar_id()?, false).await?;
            let at = instant(p, "at")?.unwrap_or(now);
            let open = c.is_open(at);
            let next_open = c.next_open(at);
            // Closed now: the close that follows the next opening.
            let next_close = if open {
                c.next_close(at)
            } else {
                next_open.and_then(|o| c.next_close(o))
            };
            let local = |ms: Option<i64>| ms.map(|ms| cal.local_text(ms));
            ok(json!({
                "calendar_id": c.id,
                "time_zone": c.time_zone,
                "at_ms": at,
                "at_utc": utc_text(at),
                "local": cal.local_text(at),
                "open": open,
                "next_open_ms": next_open,
                "next_open_local": local(next_open),
                "next_close_ms": next_close,
                "next_close_local": local(next_close),
            }))
        }
        _ => Err(ApiError::NotFound { what: "route" }),
    }
}

async fn visible_calendar<K: Clock>(
    api: &Api<K>,
    context: &Context,
    store: &TenantDocuments,
    id: &CalendarId,
    write: bool,
) -> Result<(BusinessCalendar, LocalCalendar), ApiError> {
    match store
        .get::<BusinessCalendar>(context.tenant()?, id.as_str())
        .await?
    {
        Some(c) if window_visible(api, context, &c.value.scope, write).await? => {
            let cal = c.value.local_calendar();
            Ok((c.value, cal))
        }
        _ => Err(ApiError::NotFound {
            what: "business calendar",
        }),
    }
}

/// An instant in a body: Unix ms or RFC 3339.
#[derive(Deserialize)]
#[serde(untagged)]
enum BodyInstant {
    Ms(i64),
    Text(String),
}

impl BodyInstant {
    fn ms(&self, name: &str) -> Result<i64, ApiError> {
        match self {
            Self::Ms(ms) => Ok(*ms),
            Self::Text(t) => parse_instant(t)
                .map_err(|e| ApiError::invalid("bad_instant", format!("{name}: {e}"))),
        }
    }
}

/// A stable id for an override sent without one, so a retried request finds the override it
/// already added instead of adding a second.
fn derived_override_id(user: &str, start_ms: i64, end_ms: i64) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user
        .bytes()
        .chain(start_ms.to_be_bytes())
        .chain(end_ms.to_be_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ovr-{h:016x}")
}

/// On-call schedules.
pub(crate) async fn schedules<K: Clock>(
    api: &Api<K>,
    context: &Context,
    matched: &Matched,
    p: &Params<'_>,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, ApiError> {
    let tenant = context.tenant()?;
    let store = api.ports.oncall().schedules();
    let ok = |value: Value| Ok(HttpResponse::json(matched.route.success, &value));
    let schedule_id = || p.id("schedule_id", ScheduleId::parse, "on-call schedule");
    let not_found = || ApiError::NotFound {
        what: "on-call schedule",
    };
    let invalid = |e: vigie_calendar::ScheduleInvalid| ApiError::invalid(e.code(), e.to_string());
    match matched.route.operation {
        Operation::ListSchedules => {
            let all = store.list::<OnCallSchedule>(tenant).await?;
            page(all, |s| s.id.to_string(), schedule_view, p)
        }
        Operation::GetSchedule => {
            let s = store
                .get::<OnCallSchedule>(tenant, schedule_id()?.as_str())
                .await?
                .ok_or_else(not_found)?;
            ok(schedule_view(&s.value))
        }
        Operation::DeleteSchedule => {
            let id = schedule_id()?;
            let s = store
                .get::<OnCallSchedule>(tenant, id.as_str())
                .await?
                .ok_or_else(not_found)?;
            if !store.delete(tenant, id.as_str()).await? {
                return Err(not_found());
            }
            audit(context, "oncall_schedule.delete", id.as_str());
            ok(schedule_view(&s.value))
        }
        Operation::PutSchedule => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct ScheduleInput {
                name: String,
                time_zone: String,
                layers: Vec<Layer>,
                overrides: Option<Vec<Override>>,
            }
            let id = schedule_id()?;
            let body: ScheduleInput = json_body(request)?;
            let mut schedule = OnCallSchedule {
                id: id.clone(),
                name: body.name.trim().to_owned(),
                time_zone: body.time_zone,
                layers: body.layers,
                overrides: body.overrides.clone().unwrap_or_default(),
            };
            schedule.validate().map_err(invalid)?;
            if body.overrides.is_some() {
                store.put(tenant, id.as_str(), &schedule, now).await?;
            } else {
                // Keep the overrides people added (shift swaps) when an admin edits the
                // rotations: conditional on the version read, like any partial edit.
                let edited = store
                    .edit(tenant, id.as_str(), now, |old: &mut OnCallSchedule| {
                        let overrides = std::mem::take(&mut old.overrides);
                        *old = OnCallSchedule {
                            overrides,
                            ..schedule.clone()
                        };
                        old.validate().map_err(invalid)
                    })
                    .await
                    .map_err(edit_failed)?;
                match edited {
                    Edited::Done(s, ()) => schedule = s,
                    Edited::Missing => store.put(tenant, id.as_str(), &schedule, now).await?,
                }
            }
            audit(context, "oncall_schedule.put", id.as_str());
            ok(schedule_view(&schedule))
        }
        Operation::WhoIsOnCall => {
            let s = store
                .get::<OnCallSchedule>(tenant, schedule_id()?.as_str())
                .await?
                .ok_or_else(not_found)?
                .value;
            let cal = LocalCalendar::new(&s.time_zone)
                .map_err(|e| ApiError::invalid("unknown_time_zone", e.to_string()))?;
            let at = instant(p, "at")?.unwrap_or(now);
            let on_call = s.on_call_at(at).map(|a| {
                json!({
                    "user": a.user,
                    "layer": a.layer,
                    "override_id": a.override_id,
                    "since_ms": a.since_ms,
                    "until_ms": a.until_ms,
                    "since_utc": utc_text(a.since_ms),
                    "until_utc": utc_text(a.until_ms),
                    "since_local": cal.local_text(a.since_ms),
                    "until_local": cal.local_text(a.until_ms),
                })
            });
            ok(json!({
                "schedule_id": s.id,
                "time_zone": s.time_zone,
                "at_ms": at,
                "at_utc": utc_text(at),
                "at_local": cal.local_text(at),
                "on_call": on_call,
            }))
        }
        Operation::ScheduleShifts => {
            let s = store
                .get::<OnCallSchedule>(tenant, schedule_id()?.as_str())
                .await?
                .ok_or_else(not_found)?
                .value;
            let cal = LocalCalendar::new(&s.time_zone)
                .map_err(|e| ApiError::invalid("unknown_time_zone", e.to_string()))?;
            let from = instant(p, "from")?.unwrap_or(now);
            let to = instant(p, "to")?.unwrap_or(from.saturating_add(7 * DAY_MS));
            if to <= from || to - from > MAX_SHIFT_RANGE_DAYS * DAY_MS {
                return Err(ApiError::invalid(
                    "bad_range",
                    format!("from must be before to, at most {MAX_SHIFT_RANGE_DAYS} days apart"),
                ));
            }
            let items: Vec<Value> = s
                .shifts(from, to)
                .into_iter()
                .map(|x| {
                    json!({
                        "user": x.user,
                        "layer": x.layer,
                        "override_id": x.override_id,
                        "start_ms": x.start_ms,
                        "end_ms": x.end_ms,
                        "start_local": cal.local_text(x.start_ms),
                        "end_local": cal.local_text(x.end_ms),
                    })
                })
                .collect();
            ok(json!({
                "schedule_id": s.id,
                "time_zone": s.time_zone,
                "from_ms": from,
                "to_ms": to,
                "items": items,
            }))
        }
        Operation::AddOverride => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewOverride {
                id: Option<String>,
                user: String,
                start: BodyInstant,
                end: BodyInstant,
                note: Option<String>,
            }
            let id = schedule_id()?;
            let body: NewOverride = json_body(request)?;
            let (start_ms, end_ms) = (body.start.ms("start")?, body.end.ms("end")?);
            let user = body.user.trim().to_owned();
            let new = Override {
                id: body
                    .id
                    .unwrap_or_else(|| derived_override_id(&user, start_ms, end_ms)),
                user,
                start_ms,
                end_ms,
                note: body.note,
            };
            validate_override(&new).map_err(invalid)?;
            let edited = store
                .edit(tenant, id.as_str(), now, |s: &mut OnCallSchedule| {
                    if let Some(old) = s.overrides.iter().find(|o| o.id == new.id) {
                        // The same request again changes nothing; another with this id is a
                        // conflict.
                        return if *old == new {
                            Ok(false)
                        } else {
                            Err(ApiError::Conflict {
                                code: "override_exists",
                                message: format!(
                                    "override {} exists with other values; delete it first",
                                    new.id
                                ),
                            })
                        };
                    }
                    let horizon = now - OVERRIDE_KEPT_DAYS * DAY_MS;
                    s.overrides.retain(|o| o.end_ms > horizon);
                    s.overrides.push(new.clone());
                    s.validate().map_err(invalid)?;
                    Ok(true)
                })
                .await
                .map_err(edit_failed)?;
            let Edited::Done(schedule, _) = edited else {
                return Err(not_found());
            };
            audit(context, "oncall_schedule.override.add", &new.id);
            ok(json!({ "schedule": schedule_view(&schedule), "override": new }))
        }
        Operation::DeleteOverride => {
            let id = schedule_id()?;
            let override_id = p.path_str("override_id")?.to_owned();
            let edited = store
                .edit(tenant, id.as_str(), now, |s: &mut OnCallSchedule| {
                    let before = s.overrides.len();
                    s.overrides.retain(|o| o.id != override_id);
                    if s.overrides.len() == before {
                        return Err(ApiError::NotFound { what: "override" });
                    }
                    Ok(())
                })
                .await
                .map_err(edit_failed)?;
            let Edited::Done(schedule, ()) = edited else {
                return Err(not_found());
            };
            audit(context, "oncall_schedule.override.delete", &override_id);
            ok(schedule_view(&schedule))
        }
        _ => Err(ApiError::NotFound { what: "route" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_override_ids_are_stable_and_valid() {
        let a = derived_override_id("usr-bob", 1, 2);
        assert_eq!(a, derived_override_id("usr-bob", 1, 2));
        assert_ne!(a, derived_override_id("usr-bob", 1, 3));
        assert!(vigie_calendar::OverrideId::parse(&a).is_ok());
    }
}
