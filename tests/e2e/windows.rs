//! Maintenance windows end to end: stored through the API, applied by the evaluator, the
//! silence sweeper and the notifier, against the emulator with real webhooks.
//!
//! Windows are one-off UTC windows of whole minutes placed around sample times chosen by the
//! test (the evaluator decides on sample times, the sweeper on its injected clock), so nothing
//! waits for a window to pass.

use std::time::{Duration, Instant};

use serde_json::json;
use vigie_calendar::{
    LocalCalendar, LocalDateTime, MaintenanceWindow, Recurrence, Schedule, Suppress, Weekday,
    WindowId,
};
use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily};
use vigie_domain::clock::ManualClock;
use vigie_domain::ids::{DeviceId, TenantId};
use vigie_domain::maintenance::MaintenanceEffect;
use vigie_domain::policy::Scope;
use vigie_evaluator::silence::SilenceSweeper;
use vigie_local::webhook_sink::WebhookSink;

use crate::evaluate::{disk_policy, envelope, evaluator};
use crate::stack::{Stack, batch_body, enroll, now_ms, placement, post_batch};

/// The test keeps a handle on the sweeper's clock.
#[derive(Clone)]
struct SharedClock(std::sync::Arc<ManualClock>);

impl vigie_domain::clock::Clock for SharedClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

const SECRET: &str = "whsec_windows_secret_0123";
const MINUTE: i64 = 60_000;

/// A window document as the API stores it.
pub(crate) fn window_for(
    tenant: &TenantId,
    id: &str,
    scope: Scope,
    zone: &str,
    schedule: Schedule,
    alerts: bool,
) -> MaintenanceWindow {
    let w = MaintenanceWindow {
        id: WindowId::parse(id).expect("id"),
        tenant: tenant.clone(),
        name: format!("window {id}"),
        scope,
        time_zone: zone.into(),
        schedule,
        suppress: Suppress {
            notifications: !alerts,
            alerts,
            families: Vec::new(),
        },
    };
    assert_eq!(w.validate(), Ok(()));
    w
}

/// Sundays 01:00 for 4 hours.
pub(crate) fn weekly_sunday_schedule() -> Schedule {
    Schedule::Recurring {
        rule: Recurrence::Weekly {
            days: vec![Weekday::Sunday],
        },
        start_time: "01:00".parse().expect("time"),
        duration_minutes: 240,
        from_date: "2026-01-01".parse().expect("date"),
        until_date: None,
    }
}

/// A one-off UTC window over `[start_ms, end_ms)` (whole minutes).
fn once_utc(start_ms: i64, end_ms: i64) -> Schedule {
    let utc = LocalCalendar::new("UTC").expect("utc");
    let local = |ms| {
        let (d, t, _) = utc.to_local(ms);
        LocalDateTime::new(d, t)
    };
    Schedule::Once {
        start: local(start_ms),
        end: local(end_ms),
    }
}

/// The events the sink received, after waiting up to `secs` for `n` of them and then a
/// little longer for any extra one.
async fn delivered(sink: &WebhookSink, n: usize, secs: u64) -> Vec<AlertEvent> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while sink.received().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink.received()
        .iter()
        .map(|r| {
            assert!(r.signature_valid);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            serde_json::from_value(body["event"].clone()).expect("event")
        })
        .collect()
}

/// The start of the minute `ms` is in.
fn minute(ms: i64) -> i64 {
    ms - ms.rem_euclid(MINUTE)
}

/// A window of the tenant from 60 to 30 minutes ago (alerts or notifications), stored; and
/// the disk policy. Returns the window's bounds.
async fn past_window(stack: &Stack, tenant: &TenantId, id: &str, alerts: bool) -> (i64, i64) {
    let start = minute(now_ms()) - 60 * MINUTE;
    let end = start + 30 * MINUTE;
    let w = window_for(
        tenant,
        id,
        Scope::Tenant,
        "UTC",
        once_utc(start, end),
        alerts,
    );
    stack
        .ports
        .windows()
        .put(tenant, id, &w, now_ms())
        .await
        .expect("window");
    stack
        .ports
        .policies()
        .put(tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    (start, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_inside_an_alerts_window_is_raised_once_when_it_ends_with_its_real_start() {
    let stack = Stack::start_pipeline("mw-alerts").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&tenant, &sink, SECRET, 0).await;
    let (start, end) = past_window(&stack, &tenant, "patch-night", true).await;
    let ev = evaluator(&stack.ports);
    let device = DeviceId::generate();

    // The disk fills inside the window: the rule state advances, nothing is published.
    let began = start + 2 * MINUTE;
    let inside = ev
        .evaluate(&envelope(&device, 1, began, 90.0))
        .await
        .expect("evaluates");
    assert_eq!(inside.events.len(), 1);
    let hidden = &inside.events[0];
    assert_eq!(
        (hidden.kind, hidden.maintenance_effect()),
        (AlertEventKind::Opened, Some(MaintenanceEffect::Hidden))
    );
    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &hidden.alert_id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(record["status"], "suppressed", "{record}");
    assert_eq!(record["maintenance"]["window_id"], "patch-night");
    // Still firing inside the window: quiet.
    let quiet = ev
        .evaluate(&envelope(&device, 2, start + 10 * MINUTE, 92.0))
        .await
        .expect("evaluates");
    assert!(quiet.events.is_empty() && quiet.states_written == 0);

    // The first batch after the end raises it, once, with the real start.
    let after = envelope(&device, 3, end + MINUTE, 91.0);
    let raised = ev.evaluate(&after).await.expect("evaluates").events;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(
        (raised[0].kind, raised[0].maintenance_effect()),
        (
            AlertEventKind::Opened,
            Some(MaintenanceEffect::RaisedAfterWindow)
        )
    );
    assert_eq!(raised[0].opened_ms, began);
    // Redelivered, and seen by a second evaluator: nothing more.
    assert!(ev.evaluate(&after).await.expect("again").events.is_empty());
    let other = evaluator(&stack.ports);
    assert!(
        other
            .evaluate(&after)
            .await
            .expect("other")
            .events
            .is_empty()
    );

    let got = delivered(&sink, 1, 20).await;
    assert_eq!(got.len(), 1, "exactly one notification: {got:?}");
    assert_eq!(got[0].event_id, raised[0].event_id);
    assert_eq!(
        (got[0].kind, got[0].opened_ms),
        (AlertEventKind::Opened, began)
    );
    let note = got[0]
        .maintenance
        .as_ref()
        .expect("began during maintenance");
    assert_eq!(
        (note.effect, note.window_id.as_str(), note.window_end_ms),
        (MaintenanceEffect::RaisedAfterWindow, "patch-night", end)
    );
    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &hidden.alert_id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(
        (record["status"].as_str(), record["opened_ms"].as_i64()),
        (Some("open"), Some(began))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problem_that_starts_and_ends_inside_the_window_leaves_nothing() {
    let stack = Stack::start_pipeline("mw-inside").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&tenant, &sink, SECRET, 0).await;
    let (start, end) = past_window(&stack, &tenant, "reboots", true).await;
    let ev = evaluator(&stack.ports);
    let device = DeviceId::generate();

    let opened = ev
        .evaluate(&envelope(&device, 1, start + MINUTE, 97.0))
        .await
        .expect("evaluates")
        .events;
    let gone = ev
        .evaluate(&envelope(&device, 2, start + 5 * MINUTE, 40.0))
        .await
        .expect("evaluates")
        .events;
    assert_eq!(
        [opened.as_slice(), gone.as_slice()]
            .concat()
            .iter()
            .map(|e| (e.kind, e.maintenance_effect()))
            .collect::<Vec<_>>(),
        vec![
            (AlertEventKind::Opened, Some(MaintenanceEffect::Hidden)),
            (AlertEventKind::Resolved, Some(MaintenanceEffect::Hidden)),
        ]
    );
    // After the window: no stale "resolved", no late opening.
    let after = ev
        .evaluate(&envelope(&device, 3, end + MINUTE, 41.0))
        .await
        .expect("evaluates");
    assert!(after.events.is_empty() && after.states_written == 0);
    assert!(delivered(&sink, 0, 0).await.is_empty(), "nothing at all");
    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &opened[0].alert_id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(record["status"], "resolved");
    assert_eq!(record["maintenance"]["effect"], "hidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifications_window_opens_the_alert_sends_nothing_and_announces_it_once_after() {
    let own = crate::api::local_issuer();
    let stack = crate::api::api_stack("mw-notify", &own).await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    stack.seed(&placement("msp-alpha", "acme", "hq")).await;
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&tenant, &sink, SECRET, 0).await;
    let (start, end) = past_window(&stack, &tenant, "quiet-hours", false).await;
    let ev = evaluator(&stack.ports);
    let device = DeviceId::generate();

    let opened = ev
        .evaluate(&envelope(&device, 1, start + MINUTE, 90.0))
        .await
        .expect("evaluates")
        .events;
    assert_eq!(
        (opened[0].kind, opened[0].maintenance_effect()),
        (AlertEventKind::Opened, Some(MaintenanceEffect::Unannounced))
    );
    // The delivery log says why nobody was told.
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let r = stack
            .ports
            .deliveries()
            .get(&tenant, &opened[0].event_id, "noc")
            .await
            .expect("read");
        if r.as_ref().is_some_and(|(s, _, _)| s != "sending") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        record.map(|(status, _, _)| status).as_deref(),
        Some("suppressed_maintenance")
    );
    assert!(sink.received().is_empty(), "nothing sent in the window");
    // Visible through the API, open, with its window.
    let admin = crate::api::mint(&own, vigie_auth::Role::MspAdmin, Some(&tenant), None);
    let answer = crate::api::as_user(
        &stack,
        &admin,
        "GET",
        &format!("/v1/alerts/{}", opened[0].alert_id),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    assert_eq!(answer.json["status"], "open");
    assert_eq!(answer.json["maintenance"]["effect"], "unannounced");
    assert_eq!(answer.json["maintenance"]["window_id"], "quiet-hours");

    // Still open after the window: announced once.
    let after = envelope(&device, 2, end + MINUTE, 90.5);
    let announced = ev.evaluate(&after).await.expect("evaluates").events;
    assert_eq!(announced.len(), 1);
    assert!(ev.evaluate(&after).await.expect("again").events.is_empty());
    let got = delivered(&sink, 1, 20).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].kind, got[0].opened_ms, got[0].maintenance_effect()),
        (
            AlertEventKind::Opened,
            start + MINUTE,
            Some(MaintenanceEffect::RaisedAfterWindow)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_silent_during_its_reboot_window_is_not_reported_down() {
    let stack = Stack::start_pipeline("mw-reboot").await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&p.tenant, &sink, SECRET, 0).await;
    let (_, plain) = stack.token(&p, 1).await;
    let (answer, key) = enroll(&stack.url(), plain.expose()).await;
    assert_eq!(answer.status, 201, "{:?}", answer.json);
    let device = answer.json["device_id"].as_str().expect("id").to_owned();
    let last = now_ms();
    let sent = post_batch(&stack.url(), &key, &device, 1, last, batch_body(last, 1)).await;
    assert_eq!(sent.status, 202, "{:?}", sent.json);

    // The device goes quiet for a planned reboot: a window on this device only, for device
    // down, from 5 to 35 minutes after its last batch (its heartbeat is 5 minutes).
    let start = minute(last) + 5 * MINUTE;
    let end = start + 30 * MINUTE;
    let mut window = window_for(
        &p.tenant,
        "reboot",
        Scope::Device {
            device: DeviceId::parse(&device).expect("id"),
        },
        "UTC",
        once_utc(start, end),
        true,
    );
    window.suppress.families = vec![AlertFamily::DeviceDown];
    stack
        .ports
        .windows()
        .put(&p.tenant, "reboot", &window, now_ms())
        .await
        .expect("window");

    // Sweeps on an injected clock: ten minutes after the last batch, inside the window.
    let clock = SharedClock(std::sync::Arc::new(ManualClock::at(last + 10 * MINUTE)));
    let sweeper = SilenceSweeper::new(
        stack.ports.devices(),
        stack.ports.evaluation(),
        stack.ports.alerts_topic(),
        stack.ports.heartbeats(),
        clock.clone(),
    );
    let clock = &clock.0;
    let first = sweeper.sweep().await.expect("sweep");
    assert!(first.checked >= 1, "{first:?}");
    assert_eq!(first.raised, 0, "down inside the window is not raised");
    clock.advance_ms(5 * MINUTE);
    assert_eq!(sweeper.sweep().await.expect("sweep").raised, 0);
    assert!(
        delivered(&sink, 0, 0).await.is_empty(),
        "no device-down notification"
    );

    // Still silent when the window ends: raised once, at the first sweep after the end.
    clock.set_ms(end + 20_000);
    let after = sweeper.sweep().await.expect("sweep");
    assert_eq!(after.raised, 1, "{after:?}");
    clock.advance_ms(MINUTE);
    assert_eq!(sweeper.sweep().await.expect("sweep").raised, 0);
    let got = delivered(&sink, 1, 20).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].family, got[0].kind, got[0].opened_ms),
        (
            AlertFamily::DeviceDown,
            AlertEventKind::Opened,
            last + 10 * MINUTE
        )
    );
    assert_eq!(
        got[0].maintenance_effect(),
        Some(MaintenanceEffect::RaisedAfterWindow)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_through_the_api_validated_scoped_and_shown_in_local_time() {
    let own = crate::api::local_issuer();
    let stack = crate::api::api_stack("mw-api", &own).await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    stack.seed(&placement("msp-alpha", "globex", "hq")).await;
    let admin = crate::api::mint(&own, vigie_auth::Role::MspAdmin, Some(&p.tenant), None);
    let tech = crate::api::mint(&own, vigie_auth::Role::Technician, Some(&p.tenant), None);
    let viewer = crate::api::mint(
        &own,
        vigie_auth::Role::ClientViewer,
        Some(&p.tenant),
        Some("acme"),
    );
    let put = |token: String, id: &str, body: serde_json::Value| {
        let stack = &stack;
        let path = format!("/v1/maintenance-windows/{id}");
        async move { crate::api::as_user(stack, &token, "PUT", &path, body).await }
    };
    let body = |scope: serde_json::Value, zone: &str| {
        json!({
            "name": "Sunday patching",
            "scope": scope,
            "time_zone": zone,
            "schedule": { "type": "recurring", "rule": { "repeat": "weekly", "days": ["sunday"] },
                "start_time": "01:00", "duration_minutes": 240, "from_date": "2026-01-01" },
            "suppress": { "notifications": false, "alerts": true }
        })
    };
    let acme = json!({ "level": "client", "client": "acme" });
    let globex = json!({ "level": "client", "client": "globex" });

    // Refusals with stable codes.
    let bad_zone = put(admin.clone(), "w1", body(acme.clone(), "Europe/Lutece")).await;
    assert_eq!(
        (bad_zone.status, bad_zone.code()),
        (422, "unknown_time_zone"),
        "{:?}",
        bad_zone.json
    );
    let mut no_days = body(acme.clone(), "Europe/Paris");
    no_days["schedule"]["rule"]["days"] = json!([]);
    let answer = put(admin.clone(), "w1", no_days).await;
    assert_eq!(answer.code(), "bad_recurrence", "{:?}", answer.json);
    let mut hourly = body(acme.clone(), "Europe/Paris");
    hourly["schedule"]["rule"] = json!({ "repeat": "hourly" });
    assert_eq!(put(admin.clone(), "w1", hourly).await.code(), "bad_body");
    let unknown_client = put(
        admin.clone(),
        "w1",
        body(json!({ "level": "client", "client": "nobody" }), "UTC"),
    )
    .await;
    assert_eq!(unknown_client.status, 404, "{:?}", unknown_client.json);

    // Admins and technicians write.
    let a = put(
        admin.clone(),
        "patch-acme",
        body(acme.clone(), "Europe/Paris"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["window_id"], "patch-acme");
    let g = put(
        tech.clone(),
        "patch-globex",
        body(globex, "America/New_York"),
    )
    .await;
    assert_eq!(g.status, 200, "{:?}", g.json);
    // A viewer of acme reads acme's window only.
    let list = crate::api::as_user(
        &stack,
        &viewer,
        "GET",
        "/v1/maintenance-windows",
        serde_json::Value::Null,
    )
    .await;
    let ids: Vec<&str> = list.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|w| w["window_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["patch-acme"]);
    let hidden = crate::api::as_user(
        &stack,
        &viewer,
        "GET",
        "/v1/maintenance-windows/patch-globex",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(hidden.status, 404);

    // When the Paris window runs across the spring change: 01:00 CET, 4 real hours.
    let from: i64 = 1_772_323_200_000; // 2026-03-01T00:00Z
    let to: i64 = 1_775_001_600_000; // 2026-04-01T00:00Z
    let occ = crate::api::as_user(
        &stack,
        &viewer,
        "GET",
        &format!("/v1/maintenance-windows/patch-acme/occurrences?from={from}&to={to}"),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(occ.status, 200, "{:?}", occ.json);
    let items = occ.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 5, "five Sundays in March 2026");
    let spring = &items[4];
    assert_eq!(spring["start_utc"], "2026-03-29T00:00Z");
    assert_eq!(spring["start_local"], "2026-03-29T01:00+01:00");
    assert_eq!(spring["end_local"], "2026-03-29T06:00+02:00");
    assert_eq!(items[0]["start_local"], "2026-03-01T01:00+01:00");
    // New York's autumn Sunday: 01:00 happens twice; the first (EDT) starts the window.
    let ny = crate::api::as_user(
        &stack,
        &admin,
        "GET",
        "/v1/maintenance-windows/patch-globex/occurrences?from=1793404800000&to=1793577600000",
        serde_json::Value::Null,
    )
    .await;
    let item = &ny.json["items"][0];
    assert_eq!(
        (item["start_utc"].as_str(), item["start_local"].as_str()),
        (Some("2026-11-01T05:00Z"), Some("2026-11-01T01:00-04:00"))
    );
    assert_eq!(item["end_local"], "2026-11-01T04:00-05:00");

    // Delete: gone for everyone.
    let del = crate::api::as_user(
        &stack,
        &tech,
        "DELETE",
        "/v1/maintenance-windows/patch-globex",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(del.status, 200);
    let again = crate::api::as_user(
        &stack,
        &admin,
        "GET",
        "/v1/maintenance-windows/patch-globex",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(again.status, 404);
}
