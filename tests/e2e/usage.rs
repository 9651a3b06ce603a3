//! Usage metering end to end: signed batches, alerts and notifications counted once each —
//! through a replayed batch, the same intake message delivered twice and an alert event
//! published twice — a day handed over exactly once by the device or the close job, and a
//! closed month that does not change.

use std::time::{Duration, Instant};

use vigie_aws::adapters::AwsPorts;
use vigie_aws::config::{AwsClients, sdk_config_for_endpoint};
use vigie_aws::metering::RequestCounter;
use vigie_domain::clock::ManualClock;
use vigie_domain::device::Device;
use vigie_domain::envelope::{BatchEnvelope, IntakeMessageRef};
use vigie_domain::ids::{DeviceId, TenantId};
use vigie_domain::notification::{
    ChannelFilter, ChannelId, ChannelKind, NotificationChannel, WebhookSecret,
};
use vigie_domain::ports::{AlertPublisher, DeviceRegistry, SequenceOutcome};
use vigie_domain::usage::{ALL_CLIENTS, Day, Month, UsageCounters, UsageRow, parse_csv, to_csv};
use vigie_evaluator::usage_close::UsageClose;
use vigie_local::webhook_sink::WebhookSink;

use crate::evaluate::disk_policy;
use crate::stack::{Stack, batch_body, enroll, now_ms, placement, post_batch};

const SECRET: &str = "whsec_usage_secret_0123456789";

fn counters_of(rows: &[UsageRow], client: &str, period: &str) -> Option<UsageCounters> {
    rows.iter()
        .find(|r| r.client == client && r.period.to_string() == period)
        .map(|r| r.counters)
}

async fn device(ports: &AwsPorts, id: &DeviceId) -> Device {
    ports
        .devices()
        .device(id)
        .await
        .expect("read")
        .expect("device")
}

/// Enrols one device of `p` over HTTP; its id and key.
async fn enrolled(
    stack: &Stack,
    p: &vigie_domain::enrollment::Placement,
) -> (DeviceId, vigie_domain::signing::DeviceSigningKey) {
    let (_, plain) = stack.token(p, 5).await;
    let (answer, key) = enroll(&stack.url(), plain.expose()).await;
    assert_eq!(answer.status, 201, "{:?}", answer.json);
    let id = DeviceId::parse(answer.json["device_id"].as_str().expect("id")).expect("id");
    (id, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reconciles_with_batches_alerts_and_notifications_counted_once() {
    let stack = Stack::start_pipeline("usage").await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let tenant = p.tenant.clone();
    let hook = WebhookSink::start(SECRET, 200).await.expect("sink");
    let slack = WebhookSink::start(SECRET, 200).await.expect("sink");
    for channel in [
        NotificationChannel {
            id: ChannelId::parse("ticketing").expect("id"),
            tenant_id: tenant.clone(),
            name: "Ticketing".into(),
            kind: ChannelKind::Webhook {
                url: hook.url(),
                secret: WebhookSecret::new(SECRET),
            },
            filter: ChannelFilter::default(),
            group_wait_s: 0,
        },
        NotificationChannel {
            id: ChannelId::parse("slack-noc").expect("id"),
            tenant_id: tenant.clone(),
            name: "NOC".into(),
            kind: ChannelKind::Slack {
                webhook_url: slack.url(),
            },
            filter: ChannelFilter::default(),
            group_wait_s: 0,
        },
    ] {
        channel.validate().expect("valid");
        stack.ports.save_channel(&channel).await.expect("channel");
    }
    // The sample batches' root filesystem is 60 % used: above 50 % opens a warning, once.
    stack
        .ports
        .policies()
        .put(&tenant, &disk_policy(50.0), now_ms())
        .await
        .expect("policy");
    let mut watched = stack.runtime.watch_batches();
    let (device_id, key) = enrolled(&stack, &p).await;

    let mut sent_bytes = 0u64;
    let mut last_body = Vec::new();
    for seq in 1..=4u64 {
        let body = batch_body(now_ms(), 2 + seq as usize);
        let answer = post_batch(
            &stack.url(),
            &key,
            device_id.as_str(),
            seq,
            now_ms(),
            body.clone(),
        )
        .await;
        assert_eq!(answer.status, 202, "{:?}", answer.json);
        sent_bytes += body.len() as u64;
        last_body = body;
    }
    // A replayed batch is refused and counts nothing.
    let replay = post_batch(
        &stack.url(),
        &key,
        device_id.as_str(),
        4,
        now_ms(),
        last_body,
    )
    .await;
    assert_eq!(replay.status, 409, "{:?}", replay.json);

    // The same intake message delivered twice (a redelivery past the FIFO deduplication
    // window): the evaluator sees the first batch again.
    let first: BatchEnvelope = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match watched.recv().await {
                Ok(e) if e.device_id == device_id && e.seq == 1 => return e,
                Ok(_) => {}
                Err(e) => panic!("watching batches: {e}"),
            }
        }
    })
    .await
    .expect("the evaluator received the first batch");
    let body = serde_json::to_string(&IntakeMessageRef::Batch(&first)).expect("json");
    stack
        .ports
        .clients()
        .sqs
        .send_message()
        .queue_url(stack.ports.telemetry_queue().queue_url())
        .message_body(body)
        .message_group_id(device_id.as_str())
        .message_deduplication_id("redelivered-1")
        .send()
        .await
        .expect("redeliver");

    // The alert opens once; both channels hear it once.
    let deadline = Instant::now() + Duration::from_secs(40);
    while hook.received().is_empty() || slack.received().is_empty() {
        assert!(Instant::now() < deadline, "the opening was not delivered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let event: serde_json::Value = serde_json::from_slice(&hook.received()[0].body).expect("json");
    let event: vigie_domain::alert::AlertEvent =
        serde_json::from_value(event["event"].clone()).expect("event");
    // SNS delivers the event again: nobody is notified twice, nothing counts twice.
    stack
        .ports
        .alerts_topic()
        .publish(&event)
        .await
        .expect("republish");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!((hook.received().len(), slack.received().len()), (1, 1));

    // Today's batches are still counting on the device record (no write per batch elsewhere).
    let today = Day::of_ms(now_ms());
    let record = device(&stack.ports, &device_id).await;
    assert_eq!(
        (record.usage.day, record.usage.batches, record.usage.bytes),
        (Some(today), 4, sent_bytes)
    );
    let usage = stack.ports.usage();
    let rows = usage.day_rows(&tenant, today, today).await.expect("rows");
    let live = counters_of(&rows, "acme", &today.to_string()).expect("a row for acme");
    assert_eq!(
        (
            live.batches,
            live.alerts_opened,
            live.notifications_webhook,
            live.notifications_slack
        ),
        (0, 1, 1, 1),
        "{rows:?}"
    );

    // The close job after midnight hands the day over, once.
    let close = UsageClose::new(
        stack.ports.usage(),
        ManualClock::at(today.next().start_ms() + 60_000),
    );
    assert_eq!(close.run().await.expect("close").flushed, 1);
    assert_eq!(close.run().await.expect("close").flushed, 0);
    let rows = usage.day_rows(&tenant, today, today).await.expect("rows");
    let expected = UsageCounters {
        batches: 4,
        bytes: sent_bytes,
        device_days: 1,
        alerts_opened: 1,
        notifications_webhook: 1,
        notifications_slack: 1,
        ..UsageCounters::default()
    };
    assert_eq!(
        counters_of(&rows, "acme", &today.to_string()),
        Some(expected)
    );
    assert_eq!(
        counters_of(&rows, ALL_CLIENTS, &today.to_string()),
        Some(expected)
    );
    let month = usage
        .month_rows(&tenant, today.month())
        .await
        .expect("month");
    assert!(!month.closed);
    assert_eq!(
        counters_of(&month.rows, "acme", &today.month().to_string()),
        Some(expected)
    );
    // The export: a header and two lines (the tenant total and acme), CRLF.
    let csv = to_csv(&month.rows);
    let records = parse_csv(&csv).expect("rfc 4180");
    assert_eq!(records.len(), 3, "{csv}");
    assert!(csv.ends_with("\r\n"));
    let month_text = today.month().to_string();
    assert_eq!(records[2][..3], ["msp-alpha", "acme", month_text.as_str()]);
    assert_eq!(records[2][3], "4");
    assert_eq!(records[2][4], sent_bytes.to_string());
}

/// Clients that count their requests, over the stack's resources.
async fn counted_ports(stack: &Stack, counter: &RequestCounter) -> AwsPorts {
    let endpoint = tokio::task::spawn_blocking(vigie_tests::emulator_endpoint)
        .await
        .expect("endpoint");
    let clients =
        AwsClients::from_config_counted(&sdk_config_for_endpoint(&endpoint).await, counter);
    AwsPorts::connect(clients, stack.ports.names().clone())
        .await
        .expect("connect")
}

fn at(day: Day, hours: i64) -> i64 {
    day.start_ms() + hours * 3_600_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_rollover_and_the_close_job_hand_a_day_over_exactly_once() {
    let stack = Stack::start("usagedays").await;
    let p = placement("msp-days", "bakery", "shop");
    stack.seed(&p).await;
    let tenant: TenantId = p.tenant.clone();
    let (id, _) = enrolled(&stack, &p).await;
    let counter = RequestCounter::new();
    let ports = counted_ports(&stack, &counter).await;
    let devices = ports.devices();
    let usage = ports.usage();
    let d = Day::parse("2031-01-30").expect("day");

    // The first batch of the day opens it (one transaction); the next ones are one update each.
    let record = |seq: u64, bytes: u64, now: i64| {
        let devices = devices.clone();
        let ports = ports.clone();
        let id = id.clone();
        async move {
            let current = device(&ports, &id).await;
            devices
                .record_batch(&current, seq, bytes, now)
                .await
                .expect("record")
        }
    };
    assert_eq!(record(1, 100, at(d, 10)).await, SequenceOutcome::Recorded);
    let stale = device(&ports, &id).await;
    for (seq, minutes) in [(2u64, 1i64), (3, 2)] {
        let current = device(&ports, &id).await;
        let before = counter.snapshot();
        let outcome = devices
            .record_batch(&current, seq, 200, at(d, 10) + minutes * 60_000)
            .await
            .expect("record");
        assert_eq!(outcome, SequenceOutcome::Recorded);
        let writes = RequestCounter::diff(&before, &counter.snapshot());
        // Same minute window, same heartbeat slot or not: at most the slot move joins it.
        assert!(
            writes.get("DynamoDB:UpdateItem") == Some(&1)
                && !writes.contains_key("DynamoDB:TransactWriteItems")
                || writes.get("DynamoDB:TransactWriteItems") == Some(&1),
            "a quiet batch is one write: {writes:?}"
        );
    }
    // A replay (from a stale read) fails the sequence condition and counts nothing.
    assert_eq!(
        devices
            .record_batch(&stale, 3, 999, at(d, 11))
            .await
            .expect("replay"),
        SequenceOutcome::AlreadyAccepted { last: 3 }
    );
    let now = device(&ports, &id).await;
    assert_eq!(
        (now.usage.day, now.usage.batches, now.usage.bytes),
        (Some(d), 3, 500)
    );

    // The next day: its first batch hands the finished day over (and opens the new one).
    assert_eq!(
        record(4, 50, at(d.next(), 1)).await,
        SequenceOutcome::Recorded
    );
    let rows = usage.day_rows(&tenant, d, d.plus(5)).await.expect("rows");
    let day0 = counters_of(&rows, "bakery", &d.to_string()).expect("day handed over");
    assert_eq!((day0.batches, day0.bytes, day0.device_days), (3, 500, 1));
    assert_eq!(counters_of(&rows, "bakery", &d.next().to_string()), None);

    // The close job after the second day races a late request read before it ran: the day is
    // handed over once, and the late batch counts in the new day instead of reopening it.
    let late_read = device(&ports, &id).await;
    let close = UsageClose::new(usage.clone(), ManualClock::at(at(d.plus(2), 0) + 60_000));
    let report = close.run().await.expect("close");
    assert_eq!(
        (report.flushed, report.already_flushed),
        (1, 0),
        "{report:?}"
    );
    assert_eq!(
        close.run().await.expect("close").flushed,
        0,
        "twice is once"
    );
    assert_eq!(
        devices
            .record_batch(&late_read, 5, 70, at(d.next(), 23) + 3_599_000)
            .await
            .expect("late"),
        SequenceOutcome::Recorded
    );
    let after = device(&ports, &id).await;
    assert_eq!((after.usage.day, after.usage.batches), (Some(d.plus(2)), 1));
    let close = UsageClose::new(usage.clone(), ManualClock::at(at(d.plus(3), 0) + 60_000));
    assert_eq!(close.run().await.expect("close").flushed, 1);
    assert_eq!(close.run().await.expect("close").flushed, 0);
    let rows = usage.day_rows(&tenant, d, d.plus(5)).await.expect("rows");
    let got: Vec<(String, u64, u64, u64)> = rows
        .iter()
        .filter(|r| r.client == "bakery")
        .map(|r| {
            (
                r.period.to_string(),
                r.counters.batches,
                r.counters.bytes,
                r.counters.device_days,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (d.to_string(), 3, 500, 1),
            (d.next().to_string(), 1, 50, 1),
            (d.plus(2).to_string(), 1, 70, 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_month_does_not_change() {
    let stack = Stack::start("usagemonth").await;
    let p = placement("msp-month", "acme", "hq");
    stack.seed(&p).await;
    let tenant = p.tenant.clone();
    let (first, _) = enrolled(&stack, &p).await;
    let (second, _) = enrolled(&stack, &p).await;
    let devices = stack.ports.devices();
    let usage = stack.ports.usage();
    let march = Month::parse("2031-03").expect("month");
    let last = march.last_day();
    for (seq, day, bytes) in [(1u64, last.plus(-1), 100u64), (2, last, 200)] {
        let d = device(&stack.ports, &first).await;
        assert_eq!(
            devices
                .record_batch(&d, seq, bytes, at(day, 12))
                .await
                .expect("record"),
            SequenceOutcome::Recorded
        );
    }
    // April 1st: the last day is handed over, but the month waits for its grace day.
    let close = UsageClose::new(usage.clone(), ManualClock::at(at(last.next(), 0) + 60_000));
    let report = close.run().await.expect("close");
    assert_eq!((report.flushed, report.months_closed), (1, 0), "{report:?}");
    assert!(
        !usage
            .month_rows(&tenant, march)
            .await
            .expect("month")
            .closed
    );
    // April 2nd: closed, once.
    let close = UsageClose::new(
        usage.clone(),
        ManualClock::at(at(march.closes_on(), 0) + 60_000),
    );
    assert_eq!(close.run().await.expect("close").months_closed, 1);
    assert_eq!(close.run().await.expect("close").months_closed, 0);
    let closed = usage.month_rows(&tenant, march).await.expect("month");
    assert!(closed.closed);
    let summary = counters_of(&closed.rows, "acme", "2031-03").expect("acme");
    assert_eq!(
        (summary.batches, summary.bytes, summary.device_days),
        (2, 300, 2)
    );

    // Late counts for March (which the close job should make impossible): a device whose
    // request was read on March 31st, handed over after the close, and a direct correction.
    let d = device(&stack.ports, &second).await;
    assert_eq!(
        devices
            .record_batch(&d, 1, 999, at(last, 23))
            .await
            .expect("late"),
        SequenceOutcome::Recorded
    );
    let close = UsageClose::new(
        usage.clone(),
        ManualClock::at(at(march.closes_on().next(), 0) + 60_000),
    );
    assert_eq!(close.run().await.expect("close").flushed, 1);
    usage
        .add(
            &tenant,
            &p.client,
            last,
            &UsageCounters {
                alerts_opened: 5,
                ..UsageCounters::default()
            },
        )
        .await
        .expect("add");
    // The day items moved; the closed month did not.
    let days = usage.day_rows(&tenant, last, last).await.expect("days");
    assert_eq!(
        counters_of(&days, "acme", &last.to_string()).map(|c| (c.batches, c.alerts_opened)),
        Some((2, 5))
    );
    let again = usage.month_rows(&tenant, march).await.expect("month");
    assert_eq!(again, closed);
}
