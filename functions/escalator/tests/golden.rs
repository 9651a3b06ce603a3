//! Golden tests of the seed procedures (MISSION.md) with an injected clock: each step, the
//! exact instant its notice goes out, who it reaches — on the real business-hours calendar
//! and on-call schedule of the supervision contract (Europe/Paris, Monday to Saturday
//! 06:00–22:00, an on-call partner outside those hours), across the 2026 daylight-saving
//! changes.

use vigie_calendar::{BusinessCalendar, OnCallSchedule};
use vigie_domain::alert::{AlertFamily, Severity};
use vigie_domain::escalation::templates::{self, TemplateParams};
use vigie_domain::escalation::{
    AlertFacts, Escalation, EscalationPolicy, EscalationState, People, Recipient, Step, Target,
};
use vigie_domain::ids::{ClientId, DeviceId, SiteId, TenantId};
use vigie_escalator::resolver::TenantRoster;

const MIN: i64 = 60_000;

/// `2026-03-27T14:10:00Z` → Unix ms.
fn utc(s: &str) -> i64 {
    let (date, time) = s.trim_end_matches('Z').split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("n")).collect();
    let t: Vec<i64> = time.split(':').map(|x| x.parse().expect("n")).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * MIN
}

fn supervision() -> BusinessCalendar {
    serde_json::from_value(serde_json::json!({
        "id": "supervision", "name": "Supervision contract", "time_zone": "Europe/Paris",
        "scope": {"level": "tenant"},
        "weekly": [{"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"],
                    "start": "06:00", "end": "22:00"}],
        "holidays": [{"date": "2026-04-06", "name": "Lundi de Pâques"}]
    }))
    .expect("calendar")
}

/// Technicians by day (a weekly rotation handing over on Mondays at 06:00), the on-call
/// partner underneath at every other hour.
fn supervisors() -> OnCallSchedule {
    serde_json::from_value(serde_json::json!({
        "id": "supervisors", "name": "Supervisors", "time_zone": "Europe/Paris",
        "layers": [
            {"name": "partner", "participants": ["usr-partner"], "rotation": {"type": "weekly"},
             "start": "2026-01-05T06:00"},
            {"name": "technicians", "participants": ["usr-ana", "usr-bob"],
             "rotation": {"type": "weekly"}, "start": "2026-01-05T06:00",
             "active": [{"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"],
                         "start": "06:00", "end": "22:00"}]}
        ]
    }))
    .expect("schedule")
}

fn roster() -> TenantRoster {
    let mut r = TenantRoster::default();
    r.calendars.insert("supervision".into(), supervision());
    r.schedules.insert("supervisors".into(), supervisors());
    r
}

fn params() -> TemplateParams {
    TemplateParams {
        policy_id: None,
        supervisors: Target::OnCall {
            schedule_id: "supervisors".into(),
        },
        supervision_mailbox: Target::Email {
            address: "supervision@msp.example".into(),
            name: None,
        },
        account_manager: Target::User {
            user_id: "usr-am".into(),
        },
        client_contact: Some(Target::Email {
            address: "it@acme.example".into(),
            name: Some("Acme IT".into()),
        }),
        calendar_id: "supervision".into(),
        time_zone: "Europe/Paris".into(),
        clients: Vec::new(),
    }
}

fn facts(severity: Severity, role: &str, opened_ms: i64) -> AlertFacts {
    AlertFacts {
        tenant_id: TenantId::parse("msp").expect("id"),
        alert_id: "al-backup".into(),
        opened_ms,
        client_id: ClientId::parse("acme").expect("id"),
        site_id: SiteId::parse("hq").expect("id"),
        device_id: DeviceId::parse("dev-1").expect("id"),
        device_name: "pc-anna".into(),
        family: AlertFamily::BackupFailure,
        severity,
        subject: "nightly".into(),
        detail: Some("nightly is failed".into()),
        role: Some(role.into()),
    }
}

fn email(a: &str) -> Recipient {
    Recipient::Email { address: a.into() }
}

fn user(u: &str) -> Recipient {
    Recipient::User {
        user_id: u.into(),
        address: None,
    }
}

/// One notice as the golden files read: when, step, to, cc.
type Sent = (i64, usize, Vec<Recipient>, Vec<Recipient>);

/// Runs the escalation as a sweeper would: at each due instant, until `until`.
fn drive(e: &mut Escalation, r: &TenantRoster, until: i64) -> Vec<Sent> {
    let mut sent = Vec::new();
    while let Some(due) = e.due_ms.filter(|d| *d <= until) {
        e.run_due(due, &People::default(), r);
        sent.extend(e.outbox.drain(..).map(|n| (n.at_ms, n.step, n.to, n.cc)));
    }
    sent
}

#[test]
fn workstation_backup_user_at_d_plus_1_then_phone_after_a_week_across_the_spring_change() {
    let r = roster();
    let policy = templates::instantiate(templates::WORKSTATION_BACKUP, &params()).expect("policy");
    // Friday 27 March 2026, 15:10 in Paris (UTC+1).
    let opened = utc("2026-03-27T14:10:00Z");
    let mut e = Escalation::start(
        &policy,
        facts(Severity::Critical, "workstation", opened),
        opened,
        &r,
    );
    let sent = drive(&mut e, &r, utc("2026-05-01T00:00:00Z"));
    let copies = vec![user("usr-am"), email("supervision@msp.example")];
    assert_eq!(
        sent,
        vec![
            // D+1: Saturday 28 March 09:00 in Paris (still UTC+1): the client's IT contact,
            // account manager and supervision mailbox in copy.
            (
                utc("2026-03-28T08:00:00Z"),
                2,
                vec![email("it@acme.example")],
                copies.clone()
            ),
            // A week later, Saturday 4 April 09:00 in Paris — now UTC+2 after the 29 March
            // change: the technician of the week (Ana: 89 days after the rotation began with
            // her on 5 January, week 12, even) is asked to phone the client, same copies.
            (
                utc("2026-04-04T07:00:00Z"),
                4,
                vec![user("usr-ana")],
                copies
            ),
        ]
    );
    assert!(matches!(e.state, EscalationState::Exhausted { .. }));
    // The written trace names every step.
    let actions: Vec<&str> = e.trace.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "started",
            "waiting",
            "notified",
            "waiting",
            "notified",
            "exhausted"
        ]
    );
    assert!(
        e.trace[4].text.contains("phone the client"),
        "{}",
        e.trace[4].text
    );
    assert!(
        e.trace[1]
            .text
            .contains("Sat 2026-03-28 09:00 Europe/Paris"),
        "{}",
        e.trace[1].text
    );
}

#[test]
fn a_workstation_failure_on_saturday_night_waits_past_sunday_and_easter_monday() {
    let r = roster();
    let policy = templates::instantiate(templates::WORKSTATION_BACKUP, &params()).expect("policy");
    // Saturday 4 April 2026, 23:30 in Paris (UTC+2); Sunday closed, Monday 6 April a holiday.
    let opened = utc("2026-04-04T21:30:00Z");
    let mut e = Escalation::start(
        &policy,
        facts(Severity::Info, "workstation", opened),
        opened,
        &r,
    );
    // Sev 3 waits for business hours first: Tuesday 06:00; then "09:00 the next business day"
    // counts from there: Wednesday 8 April 09:00.
    assert_eq!(e.due_ms, Some(utc("2026-04-07T04:00:00Z")));
    let sent = drive(&mut e, &r, utc("2026-04-09T00:00:00Z"));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, utc("2026-04-08T07:00:00Z"));
}

#[test]
fn server_backup_same_day_with_an_acknowledgement_that_lapses() {
    let r = roster();
    let policy = templates::instantiate(templates::SERVER_BACKUP, &params()).expect("policy");
    // Tuesday 10 March 2026, 10:00 in Paris (UTC+1).
    let opened = utc("2026-03-10T09:00:00Z");
    let mut e = Escalation::start(
        &policy,
        facts(Severity::Critical, "server", opened),
        opened,
        &r,
    );

    // Nobody acts: the supervisor at once (Bob: week 9 of the rotation, odd), the account
    // manager 2 h later, everyone at Sev 1 2 h after that.
    let mut quiet = e.clone();
    let sent = drive(&mut quiet, &r, utc("2026-03-11T00:00:00Z"));
    let mailbox = vec![email("supervision@msp.example")];
    assert_eq!(
        sent,
        vec![
            (
                utc("2026-03-10T09:00:00Z"),
                1,
                vec![user("usr-bob")],
                vec![]
            ),
            (
                utc("2026-03-10T11:00:00Z"),
                3,
                vec![user("usr-am")],
                mailbox.clone()
            ),
            (
                utc("2026-03-10T13:00:00Z"),
                6,
                vec![user("usr-bob"), user("usr-am")],
                mailbox.clone()
            ),
        ]
    );
    assert_eq!(quiet.facts.severity, Severity::Critical);

    // Bob acknowledges at 10:30 Paris; the acknowledgement lapses 4 h later (14:30 Paris)
    // with nothing resolved: the chain resumes with the account manager, then climbs 2 h on.
    let sent = drive(&mut e, &r, opened);
    assert_eq!(sent.len(), 1);
    e.acknowledged("usr-bob", utc("2026-03-10T09:30:00Z"));
    assert_eq!(e.due_ms, Some(utc("2026-03-10T13:30:00Z")));
    let sent = drive(&mut e, &r, utc("2026-03-11T00:00:00Z"));
    assert_eq!(
        sent.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
        vec![
            (utc("2026-03-10T13:30:00Z"), 3),
            (utc("2026-03-10T15:30:00Z"), 6)
        ]
    );
    assert!(e.trace.iter().any(|l| l.action == "ack_timed_out"));
}

#[test]
fn a_sev1_at_night_pages_the_on_call_partner_now_a_sev3_waits_for_monday_morning() {
    let r = roster();
    let policy = EscalationPolicy {
        steps: vec![
            Step::Notify {
                to: vec![Target::OnCall {
                    schedule_id: "supervisors".into(),
                }],
                cc: vec![],
                say: None,
            },
            Step::wait_minutes(30),
        ],
        ..templates::instantiate(templates::SERVER_BACKUP, &params()).expect("policy")
    };
    let policy = EscalationPolicy {
        sev3: vigie_domain::escalation::Sev3Urgency::BusinessHours,
        ..policy
    };
    // Sunday 25 October 2026, 02:30 in Paris — inside the repeated hour of the autumn change.
    let night = utc("2026-10-25T00:30:00Z");
    let mut sev1 = Escalation::start(
        &policy,
        facts(Severity::Critical, "server", night),
        night,
        &r,
    );
    let sent = drive(&mut sev1, &r, night);
    assert_eq!(sent, vec![(night, 1, vec![user("usr-partner")], vec![])]);
    let mut sev3 = Escalation::start(&policy, facts(Severity::Info, "server", night), night, &r);
    // Monday 26 October 06:00 in Paris, now UTC+1.
    let monday = utc("2026-10-26T05:00:00Z");
    assert_eq!(sev3.due_ms, Some(monday));
    let sent = drive(&mut sev3, &r, monday);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, monday);
    // 294 days after the rotation began with Ana: week 42, even, hers again.
    assert_eq!(sent[0].2, vec![user("usr-ana")]);
}

#[test]
fn new_york_business_hours_wait_and_hand_off_across_both_changes() {
    let mut cal = supervision();
    cal.time_zone = "America/New_York".into();
    cal.holidays.clear();
    let mut schedule = supervisors();
    schedule.time_zone = "America/New_York".into();
    let mut r = TenantRoster::default();
    r.calendars.insert("supervision".into(), cal);
    r.schedules.insert("supervisors".into(), schedule);
    let policy = EscalationPolicy {
        time_zone: "America/New_York".into(),
        steps: vec![
            Step::wait_business_hours(),
            Step::Notify {
                to: vec![Target::OnCall {
                    schedule_id: "supervisors".into(),
                }],
                cc: vec![],
                say: None,
            },
        ],
        ..templates::instantiate(templates::SERVER_BACKUP, &params()).expect("policy")
    };
    // Saturday 7 March 2026, 23:00 in New York (UTC−5); Sunday 8 March the clocks go forward.
    let opened = utc("2026-03-08T04:00:00Z");
    let mut e = Escalation::start(
        &policy,
        facts(Severity::Critical, "server", opened),
        opened,
        &r,
    );
    let sent = drive(&mut e, &r, utc("2026-03-10T00:00:00Z"));
    // Monday 9 March 06:00 in New York, now UTC−4; the technicians' weekly hand-off happened
    // at 06:00 local that same morning.
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, utc("2026-03-09T10:00:00Z"));
    // Saturday 31 October 2026, 23:00 (UTC−4); Sunday 1 November the clocks go back.
    let opened = utc("2026-11-01T03:00:00Z");
    let mut e = Escalation::start(
        &policy,
        facts(Severity::Critical, "server", opened),
        opened,
        &r,
    );
    let sent = drive(&mut e, &r, utc("2026-11-03T00:00:00Z"));
    // Monday 2 November 06:00 in New York, now UTC−5.
    assert_eq!(sent[0].0, utc("2026-11-02T11:00:00Z"));
}
