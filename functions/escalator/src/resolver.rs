//! The tenant's calendars, on-call schedules and user groups, loaded for the policy a step
//! runs under, behind the domain's [`Resolver`].

use std::collections::HashMap;

use vigie_aws::adapters::AwsPorts;
use vigie_calendar::{BusinessCalendar, LocalCalendar, LocalTime, OnCallSchedule};
use vigie_domain::escalation::{EscalationPolicy, Resolver, Target};
use vigie_domain::ids::TenantId;
use vigie_domain::ports::{OnCallStore, StoreError};

use crate::RosterSource;

/// What one policy's steps may ask about, loaded before they run: only what the policy
/// names (its calendar, the schedules and groups of its steps).
#[derive(Debug, Default, Clone)]
pub struct TenantRoster {
    pub calendars: HashMap<String, BusinessCalendar>,
    pub schedules: HashMap<String, OnCallSchedule>,
    pub groups: HashMap<String, Vec<String>>,
}

fn zone(name: &str) -> LocalCalendar {
    LocalCalendar::new(name).unwrap_or_else(|_| LocalCalendar::new("UTC").expect("UTC"))
}

fn local_time(at: (u8, u8)) -> LocalTime {
    LocalTime::new(at.0, at.1).unwrap_or_else(|_| LocalTime::new(0, 0).expect("00:00"))
}

impl Resolver for TenantRoster {
    fn next_open(&self, calendar_id: &str, at_ms: i64) -> Option<i64> {
        self.calendars.get(calendar_id)?.next_open(at_ms)
    }

    fn at_local_time(
        &self,
        calendar_id: Option<&str>,
        zone_name: &str,
        after_ms: i64,
        at: (u8, u8),
        days_later: u32,
        open_days_only: bool,
    ) -> i64 {
        match calendar_id.and_then(|c| self.calendars.get(c)) {
            Some(cal) => cal.at_local_time(after_ms, local_time(at), days_later, open_days_only),
            None => zone(zone_name).at_local_time(after_ms, local_time(at), days_later),
        }
    }

    fn on_call(&self, schedule_id: &str, at_ms: i64) -> Option<String> {
        self.schedules
            .get(schedule_id)?
            .on_call_at(at_ms)
            .map(|o| o.user)
    }

    fn group_members(&self, group_id: &str) -> Vec<String> {
        self.groups.get(group_id).cloned().unwrap_or_default()
    }

    fn describe(&self, zone_name: &str, at_ms: i64) -> String {
        describe(&zone(zone_name), at_ms)
    }
}

/// "Mon 2026-03-30 06:00 Europe/Paris".
pub fn describe(cal: &LocalCalendar, at_ms: i64) -> String {
    let (date, time, weekday) = cal.to_local(at_ms);
    let day = format!("{weekday:?}");
    format!(
        "{} {:04}-{:02}-{:02} {:02}:{:02} {}",
        &day[..3],
        date.year(),
        date.month(),
        date.day(),
        time.hour(),
        time.minute(),
        cal.zone_name()
    )
}

/// Loads rosters from the tenant's records in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoRosters {
    pub ports: AwsPorts,
}

impl RosterSource for DynamoRosters {
    type Roster = TenantRoster;

    async fn load(
        &self,
        tenant: &TenantId,
        policy: &EscalationPolicy,
    ) -> Result<TenantRoster, StoreError> {
        let mut roster = TenantRoster::default();
        let store = self.ports.oncall();
        if let Some(id) = &policy.calendar_id
            && let Some(cal) = store
                .business_calendar::<BusinessCalendar>(tenant, id)
                .await?
        {
            roster.calendars.insert(id.clone(), cal);
        }
        let escalations = self.ports.escalations();
        for target in policy.targets() {
            match target {
                Target::OnCall { schedule_id } if !roster.schedules.contains_key(schedule_id) => {
                    if let Some(s) = store
                        .oncall_schedule::<OnCallSchedule>(tenant, schedule_id)
                        .await?
                    {
                        roster.schedules.insert(schedule_id.clone(), s);
                    }
                }
                Target::Group { group_id } if !roster.groups.contains_key(group_id) => {
                    if let Some(g) = escalations.group(tenant, group_id).await? {
                        roster.groups.insert(group_id.clone(), g.members);
                    }
                }
                _ => {}
            }
        }
        Ok(roster)
    }
}
