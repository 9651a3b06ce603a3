//! The evaluator against the emulator: policies in DynamoDB, versioned rule states, alert
//! events on SNS reaching the notification queue — exactly once in effect.

use std::collections::BTreeMap;

use vigie_aws::adapters::AwsPorts;
use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity};
use vigie_domain::envelope::BatchEnvelope;
use vigie_domain::ids::DeviceId;
use vigie_domain::policy::{Metric, Policy, Rule, RuleId, Scope};
use vigie_domain::rules::{Direction, Level, Threshold};
use vigie_domain::telemetry::{Sample, SpoolReport, TelemetryBatch};
use vigie_edge::sqs::{SqsEvent, SqsMessage};
use vigie_evaluator::Evaluator;

use crate::stack::{Stack, now_ms, placement, sample_batch};

pub(crate) type AwsEvaluator = Evaluator<
    vigie_aws::policies::DynamoPolicies,
    vigie_aws::evaluation::DynamoEvaluation,
    vigie_aws::alerts_topic::SnsAlertsTopic,
    vigie_aws::telemetry_queue::SqsTelemetryQueue,
    vigie_domain::clock::SystemClock,
>;

pub(crate) fn evaluator(ports: &AwsPorts) -> AwsEvaluator {
    Evaluator::new(
        ports.policies(),
        ports.evaluation(),
        ports.alerts_topic(),
        ports.telemetry_queue(),
        vigie_domain::clock::SystemClock,
    )
}

/// Disk used on any filesystem: warning above `warn` %, critical above 95 %, at once.
pub(crate) fn disk_policy(warn: f64) -> Policy {
    Policy {
        scope: Scope::Tenant,
        rules: vec![Rule::threshold(
            RuleId::parse("disk-used").expect("id"),
            AlertFamily::Resources,
            Metric::FilesystemUsedPct,
            None,
            Threshold {
                direction: Direction::Above,
                warning: Some(Level {
                    threshold: warn,
                    for_s: 0,
                }),
                critical: Some(Level {
                    threshold: 95.0,
                    for_s: 0,
                }),
                hysteresis: 2.0,
                max_gap_s: 600,
            },
        )],
    }
}

/// A batch whose root filesystem is at `used_pct`, sampled at `at`.
pub(crate) fn envelope(device: &DeviceId, seq: u64, at: i64, used_pct: f64) -> BatchEnvelope {
    let p = placement("msp-alpha", "acme", "hq");
    let base = sample_batch(at + 1000, 1);
    let mut row: Sample = base.rows().pop().expect("row");
    row.ts = at;
    row.filesystems[0].used_pct = used_pct;
    BatchEnvelope {
        tenant_id: p.tenant,
        client_id: p.client,
        site_id: p.site,
        device_id: device.clone(),
        seq,
        received_ms: at,
        wire_bytes: 100,
        tags: BTreeMap::new(),
        batch: TelemetryBatch::from_samples(base.agent, SpoolReport::default(), &[row]),
    }
}

/// Alert events that reached the events queue (every transition, raw SNS delivery), with attributes.
async fn notified(stack: &Stack, expect: usize) -> Vec<(AlertEvent, BTreeMap<String, String>)> {
    let sqs = &stack.ports.clients().sqs;
    let mut out = Vec::new();
    for _ in 0..8 {
        let got = sqs
            .receive_message()
            .queue_url(&stack.provisioned.events_queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(if out.len() >= expect { 0 } else { 1 })
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        for m in got.messages() {
            let attrs = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                serde_json::from_str(m.body().expect("body")).expect("alert event"),
                attrs,
            ));
            sqs.delete_message()
                .queue_url(&stack.provisioned.events_queue_url)
                .receipt_handle(m.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
        if got.messages().is_empty() && out.len() >= expect {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossing_opens_once_notifies_once_and_the_recovery_resolves() {
    let stack = Stack::start("eval-open").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    stack
        .ports
        .policies()
        .put(&tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    let ev = evaluator(&stack.ports);
    let device = DeviceId::generate();
    let t0 = now_ms() - 10 * 60_000;

    let opened = ev
        .evaluate(&envelope(&device, 1, t0, 90.0))
        .await
        .expect("evaluates");
    assert_eq!(opened.events.len(), 1);
    assert_eq!(opened.events[0].kind, AlertEventKind::Opened);
    assert_eq!(opened.events[0].severity, Severity::Warning);
    // Redelivery of the same batch, and a quiet batch: nothing new, nothing written.
    assert!(
        ev.evaluate(&envelope(&device, 1, t0, 90.0))
            .await
            .expect("again")
            .events
            .is_empty()
    );
    let quiet = ev
        .evaluate(&envelope(&device, 2, t0 + 60_000, 90.5))
        .await
        .expect("quiet");
    assert!(quiet.events.is_empty());
    assert_eq!(
        quiet.states_written, 0,
        "no write per batch in steady state"
    );
    // Up to critical, then back to normal.
    let raised = ev
        .evaluate(&envelope(&device, 3, t0 + 120_000, 97.0))
        .await
        .expect("raise");
    assert_eq!(raised.events[0].kind, AlertEventKind::SeverityRaised);
    let resolved = ev
        .evaluate(&envelope(&device, 4, t0 + 180_000, 50.0))
        .await
        .expect("resolve");
    assert_eq!(resolved.events[0].kind, AlertEventKind::Resolved);

    let got = notified(&stack, 3).await;
    let kinds: Vec<AlertEventKind> = got.iter().map(|(e, _)| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AlertEventKind::Opened,
            AlertEventKind::SeverityRaised,
            AlertEventKind::Resolved
        ]
    );
    let ids: std::collections::BTreeSet<&str> =
        got.iter().map(|(e, _)| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "every transition has its own event id");
    assert!(
        got.iter().all(|(e, _)| e.alert_id == got[0].0.alert_id),
        "one alert identity"
    );
    let (first, attrs) = &got[0];
    assert_eq!(
        attrs.get("tenant_id").map(String::as_str),
        Some("msp-alpha")
    );
    assert_eq!(attrs.get("client_id").map(String::as_str), Some("acme"));
    assert_eq!(attrs.get("severity").map(String::as_str), Some("warning"));
    assert_eq!(attrs.get("family").map(String::as_str), Some("resources"));
    assert_eq!(
        (first.subject.as_str(), first.value, first.threshold),
        ("/", 90.0, 85.0)
    );

    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &first.alert_id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record["status"], "resolved");
    assert_eq!(record["opened_ms"], t0);
    assert_eq!(record["site_id"], "hq");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_evaluators_on_one_batch_and_a_late_batch_make_one_alert() {
    let stack = Stack::start("eval-race").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    stack
        .ports
        .policies()
        .put(&tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    let (a, b) = (evaluator(&stack.ports), evaluator(&stack.ports));
    let device = DeviceId::generate();
    let t0 = now_ms() - 10 * 60_000;
    let batch = envelope(&device, 1, t0, 91.0);
    let (ra, rb) = tokio::join!(a.evaluate(&batch), b.evaluate(&batch));
    let events = ra.expect("a").events.len() + rb.expect("b").events.len();
    assert_eq!(events, 1, "exactly one evaluator opens the alert");

    // A newer batch resolves; an older one arriving afterwards cannot reopen it.
    assert_eq!(
        a.evaluate(&envelope(&device, 3, t0 + 120_000, 40.0))
            .await
            .expect("newer")
            .events
            .len(),
        1
    );
    assert!(
        b.evaluate(&envelope(&device, 2, t0 + 60_000, 99.0))
            .await
            .expect("older")
            .events
            .is_empty()
    );

    let got = notified(&stack, 2).await;
    let kinds: Vec<AlertEventKind> = got.iter().map(|(e, _)| e.kind).collect();
    assert_eq!(
        kinds,
        vec![AlertEventKind::Opened, AlertEventKind::Resolved]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_queue_with_its_reason_and_fifo_order_is_kept() {
    let stack = Stack::start("eval-poison").await;
    let ev = evaluator(&stack.ports);
    let record = |id: &str, body: &str| SqsMessage {
        message_id: id.into(),
        receipt_handle: format!("rh-{id}"),
        body: body.into(),
        attributes: BTreeMap::new(),
        message_attributes: BTreeMap::new(),
        md5_of_body: String::new(),
        event_source: "aws:sqs".into(),
        event_source_arn: String::new(),
        aws_region: "us-east-1".into(),
    };
    let device = DeviceId::generate();
    let good = serde_json::to_string(&vigie_domain::envelope::IntakeMessageRef::Batch(&envelope(
        &device,
        1,
        now_ms(),
        10.0,
    )))
    .expect("json");
    let response = ev
        .handle(SqsEvent {
            records: vec![record("m1", "{not json"), record("m2", &good)],
        })
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "poison is parked, not retried: {response:?}"
    );

    let dlq = stack
        .ports
        .clients()
        .sqs
        .receive_message()
        .queue_url(&stack.provisioned.telemetry_dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let parked = &dlq.messages()[0];
    assert_eq!(parked.body(), Some("{not json"));
    let reason = parked
        .message_attributes()
        .and_then(|a| a.get("failure_reason"))
        .and_then(|v| v.string_value());
    assert!(
        reason.is_some_and(|r| r.contains("does not parse")),
        "{reason:?}"
    );

    // A spilled message whose object is gone fails (retryable), and the next one of the FIFO
    // batch is handed back with it, so order is kept.
    let spilled = serde_json::json!({
        "kind": "spilled", "tenant_id": "msp-alpha", "client_id": "acme", "site_id": "hq",
        "device_id": device.as_str(), "seq": 2, "bucket": stack.provisioned.spill_bucket, "key": "tenants/msp-alpha/missing.json"
    });
    let response = ev
        .handle(SqsEvent {
            records: vec![record("m3", &spilled.to_string()), record("m4", &good)],
        })
        .await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m3", "m4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_left_in_the_outbox_by_a_crash_is_published_by_the_next_batch() {
    use vigie_domain::ports::{EvaluationStore, StateChange};
    let stack = Stack::start("eval-outbox").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    stack
        .ports
        .policies()
        .put(&tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    let device = DeviceId::generate();
    let t0 = now_ms() - 10 * 60_000;
    // An evaluator that stops after its commit: evaluate with a store whose commit we make by
    // hand, a minute ago, and never publish.
    let ev = evaluator(&stack.ports);
    let outcome = ev
        .evaluate(&envelope(&device, 1, t0, 90.0))
        .await
        .expect("evaluates");
    let event = outcome.events[0].clone();
    let _ = notified(&stack, 1).await; // the live publish
    let store = stack.ports.evaluation();
    let stale = StateChange {
        key: (RuleId::parse("disk-used").expect("id"), "/".into()),
        state: store
            .load(&tenant, &device)
            .await
            .expect("load")
            .states
            .values()
            .next()
            .expect("state")
            .state,
        read_version: Some(1),
    };
    let crashed = AlertEvent {
        event_id: "evt-crashed".into(),
        ..event
    };
    store
        .commit(&tenant, &device, &[stale], &[crashed], now_ms() - 60_000)
        .await
        .expect("commit");
    assert_eq!(
        store
            .load(&tenant, &device)
            .await
            .expect("load")
            .outbox
            .len(),
        1
    );

    // The device's next (quiet) batch publishes it and empties the outbox.
    ev.evaluate(&envelope(&device, 2, t0 + 60_000, 90.0))
        .await
        .expect("evaluates");
    let got = notified(&stack, 1).await;
    assert_eq!(
        got.iter()
            .map(|(e, _)| e.event_id.as_str())
            .collect::<Vec<_>>(),
        vec!["evt-crashed"]
    );
    assert!(
        store
            .load(&tenant, &device)
            .await
            .expect("load")
            .outbox
            .is_empty()
    );
}

/// A batch carrying one systemd finding for `service`, observed at `at`.
fn service_envelope(device: &DeviceId, seq: u64, at: i64, state: &str, sub: &str) -> BatchEnvelope {
    let mut e = envelope(device, seq, at, 40.0);
    e.batch.findings = vec![vigie_domain::telemetry::Finding::Service(
        vigie_domain::telemetry::ServiceFinding {
            observed_ms: at,
            name: "nginx".into(),
            state: state.into(),
            sub_state: Some(sub.into()),
            via: "systemd".into(),
        },
    )];
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_service_under_the_device_down_template_opens_with_its_detail() {
    let stack = Stack::start("eval-service").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    // The device-down template, with nginx as a service that must run, at once.
    let overrides = serde_json::from_value(serde_json::json!({
        "service": {"subjects": ["nginx"], "for_s": 0}
    }))
    .expect("overrides");
    let rules = vigie_domain::templates::template("device-down")
        .expect("template")
        .apply(&[], &overrides)
        .expect("applies");
    let policy = Policy {
        scope: Scope::Tenant,
        rules,
    };
    policy.validate().expect("valid");
    stack
        .ports
        .policies()
        .put(&tenant, &policy, now_ms())
        .await
        .expect("policy");
    let ev = evaluator(&stack.ports);
    let device = DeviceId::generate();
    let t0 = now_ms() - 10 * 60_000;

    let opened = ev
        .evaluate(&service_envelope(&device, 1, t0, "failed", "dead"))
        .await
        .expect("evaluates");
    assert_eq!(opened.events.len(), 1, "{:?}", opened.events);
    let e = &opened.events[0];
    assert_eq!(
        (e.kind, e.severity, e.family),
        (
            AlertEventKind::Opened,
            Severity::Critical,
            AlertFamily::DeviceDown
        )
    );
    assert_eq!(
        (e.rule_id.as_str(), e.subject.as_str(), e.metric.as_str()),
        ("tpl-device-down-service", "nginx", "finding:service")
    );
    assert_eq!(e.detail.as_deref(), Some("nginx is failed (systemd: dead)"));
    // Redelivered, and still failed a minute later: nothing new, nothing written.
    assert!(
        ev.evaluate(&service_envelope(&device, 1, t0, "failed", "dead"))
            .await
            .expect("again")
            .events
            .is_empty()
    );
    let steady = ev
        .evaluate(&service_envelope(&device, 2, t0 + 60_000, "failed", "dead"))
        .await
        .expect("steady");
    assert!(steady.events.is_empty());
    assert_eq!(steady.states_written, 0);
    let resolved = ev
        .evaluate(&service_envelope(
            &device,
            3,
            t0 + 120_000,
            "active",
            "running",
        ))
        .await
        .expect("resolves");
    assert_eq!(resolved.events[0].kind, AlertEventKind::Resolved);

    let got = notified(&stack, 2).await;
    assert_eq!(got.len(), 2);
    let (published, attrs) = &got[0];
    assert_eq!(
        published.detail.as_deref(),
        Some("nginx is failed (systemd: dead)")
    );
    assert_eq!(attrs.get("family").map(String::as_str), Some("device_down"));
    assert_eq!(
        got[1].0.detail.as_deref(),
        Some("nginx is active (systemd: running)")
    );
    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &published.alert_id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record["status"], "resolved");
    assert_eq!(record["opened_ms"], t0);
}
