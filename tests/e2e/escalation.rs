//! Escalation on the emulator: an opened alert starts its tenant's policy through the real
//! topic and escalate queue, steps reach a real webhook through the notifier, a technician's
//! acknowledgement through the API stops the chain — and each step notifies once with two
//! sweepers, a crash that left notices in the outbox, repeated or stale wake-ups, and an
//! acknowledgement racing the step.

use std::sync::Arc;
use std::time::Duration;

use vigie_auth::Role;
use vigie_aws::escalations::WakeUp;
use vigie_domain::alert::{AlertFamily, Severity};
use vigie_domain::clock::ManualClock;
use vigie_domain::escalation::{
    AlertFacts, Applies, Escalation, EscalationPolicy, EscalationState, Sev3Urgency, Step, Target,
};
use vigie_domain::ids::{ClientId, DeviceId, SiteId, TenantId};
use vigie_domain::workflow::{AlertAction, AlertWork};
use vigie_escalator::Escalator;
use vigie_escalator::resolver::{DynamoRosters, TenantRoster};
use vigie_local::webhook_sink::WebhookSink;

use crate::api::{api_stack, local_issuer, mint};
use crate::evaluate::{disk_policy, envelope, evaluator};
use crate::stack::{Stack, now_ms, placement, send};

const MIN: i64 = 60_000;

type TestEscalator = Escalator<DynamoRosters, Arc<ManualClock>>;

fn escalator(stack: &Stack, clock: &Arc<ManualClock>) -> TestEscalator {
    Escalator::new(
        &stack.ports,
        DynamoRosters {
            ports: stack.ports.clone(),
        },
        Arc::clone(clock),
    )
}

/// Notify the `noc` channel, wait 10 min, notify it again ("step 3"), wait 10 min.
fn noc_policy(family: Option<AlertFamily>) -> EscalationPolicy {
    let noc = || Target::Channel {
        channel_id: "noc".into(),
    };
    EscalationPolicy {
        policy_id: "noc-chain".into(),
        name: "NOC chain".into(),
        description: None,
        applies: Applies {
            families: family.into_iter().collect(),
            ..Applies::default()
        },
        priority: 0,
        calendar_id: None,
        time_zone: "Europe/Paris".into(),
        sev3: Sev3Urgency::Now,
        repeat: 0,
        ack_timeout_minutes: None,
        steps: vec![
            Step::Notify {
                to: vec![noc()],
                cc: vec![],
                say: Some("first call".into()),
            },
            Step::wait_minutes(10),
            Step::Notify {
                to: vec![noc()],
                cc: vec![],
                say: Some("second call".into()),
            },
            Step::wait_minutes(10),
        ],
        template: None,
    }
}

fn facts(tenant: &TenantId, alert: &str, opened_ms: i64) -> AlertFacts {
    AlertFacts {
        tenant_id: tenant.clone(),
        alert_id: alert.into(),
        opened_ms,
        client_id: ClientId::parse("acme").expect("id"),
        site_id: SiteId::parse("hq").expect("id"),
        device_id: DeviceId::parse("dev-esc").expect("id"),
        device_name: "srv-esc".into(),
        family: AlertFamily::BackupFailure,
        severity: Severity::Critical,
        subject: "nightly".into(),
        detail: None,
        role: None,
    }
}

/// Stores an episode whose escalation has just started (its first step due at `at`).
async fn episode(stack: &Stack, tenant: &TenantId, alert: &str, at: i64) {
    let work = AlertWork {
        escalation: Some(Escalation::start(
            &noc_policy(None),
            facts(tenant, alert, at),
            at,
            &TenantRoster::default(),
        )),
        ..AlertWork::default()
    };
    assert!(
        stack
            .ports
            .alert_work()
            .save(tenant, alert, at, &work, 0)
            .await
            .expect("save")
    );
}

/// Escalation notices the sink received: (notice id, alert id, step).
fn notices(sink: &WebhookSink) -> Vec<(String, String, u64)> {
    sink.received()
        .iter()
        .filter_map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            (body["type"] == "escalation").then(|| {
                assert!(r.signature_valid, "escalation webhooks are signed");
                (
                    body["notice"]["notice_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    body["notice"]["alert"]["alert_id"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    body["notice"]["step"].as_u64().unwrap_or(0),
                )
            })
        })
        .collect()
}

/// Waits until the sink holds `n` escalation notices, then a little longer to catch extras.
async fn settle(sink: &WebhookSink, n: usize, what: &str) -> Vec<(String, String, u64)> {
    for _ in 0..300 {
        if notices(sink).len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything sent twice would arrive within the notifier's next polls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = notices(sink);
    assert_eq!(got.len(), n, "{what}: {got:?}");
    got
}

async fn work(stack: &Stack, tenant: &TenantId, alert: &str, opened: i64) -> AlertWork {
    stack
        .ports
        .alert_work()
        .work(tenant, alert, opened)
        .await
        .expect("read")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opened_alert_starts_its_policy_and_a_technician_acknowledges_it_through_the_api() {
    let own = local_issuer();
    let stack = api_stack("esc-pipeline", &own).await;
    let p = placement("msp-alpha", "acme", "hq");
    stack.seed(&p).await;
    let sink = WebhookSink::start("esc-secret", 200).await.expect("sink");
    stack
        .webhook_channel(&p.tenant, &sink, "esc-secret", 0)
        .await;
    stack
        .ports
        .escalations()
        .put_policy(
            &p.tenant,
            &noc_policy(Some(AlertFamily::Resources)),
            now_ms(),
            false,
        )
        .await
        .expect("policy");
    stack
        .ports
        .policies()
        .put(&p.tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("disk policy");

    // A real evaluation opens the alert and publishes it on the tenant's topic; the escalate
    // queue's subscription hands it to the runtime's escalator, which runs step 1 at once.
    let device = DeviceId::parse("dev-esc-1").expect("id");
    evaluator(&stack.ports)
        .evaluate(&envelope(&device, 1, now_ms(), 91.0))
        .await
        .expect("evaluate");
    let got = settle(&sink, 1, "step 1 of the policy").await;
    assert_eq!(got[0].2, 1);
    let alert_id = got[0].1.clone();

    // A technician acknowledges through the tenant API: the escalation stops.
    let tech = mint(&own, Role::Technician, Some(&p.tenant), None);
    let answer = send(
        "POST",
        format!("{}/v1/alerts/{alert_id}/acknowledge", stack.url()),
        vec![("authorization".into(), format!("Bearer {tech}"))],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let opened = answer.json["opened_ms"]
        .as_i64()
        .or_else(|| answer.json["alert"]["opened_ms"].as_i64())
        .expect("opened_ms in the alert view");
    let w = work(&stack, &p.tenant, &alert_id, opened).await;
    let esc = w.escalation.expect("escalation on the episode");
    assert!(
        matches!(&esc.state, EscalationState::Acknowledged { by, .. } if by == "user-technician"),
        "{:?}",
        esc.state
    );
    assert_eq!(esc.due_ms, None, "nothing more is due");
    let actions: Vec<&str> = esc.trace.iter().map(|l| l.action.as_str()).collect();
    assert_eq!(actions, ["started", "notified", "waiting", "acknowledged"]);

    // Long after the wait would have ended, a sweep finds nothing and sends nothing.
    let clock = Arc::new(ManualClock::at(now_ms() + 30 * MIN));
    let report = escalator(&stack, &clock).sweep().await.expect("sweep");
    assert_eq!(report.steps, 0);
    settle(&sink, 1, "nothing after the acknowledgement").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_and_a_crash_left_outbox_notify_each_step_once() {
    let stack = Stack::start_pipeline("esc-sweepers").await;
    let p = placement("msp-sweep", "acme", "hq");
    stack.seed(&p).await;
    let sink = WebhookSink::start("sweep-secret", 200).await.expect("sink");
    stack
        .webhook_channel(&p.tenant, &sink, "sweep-secret", 0)
        .await;

    // Far from now, so the runtime's own sweeper (on the real clock) sees nothing due: only
    // the two test sweepers run these escalations.
    let t0 = now_ms() + 24 * 60 * MIN;
    let alerts: Vec<String> = (0..12).map(|i| format!("al-sweep-{i:02}")).collect();
    for a in &alerts {
        episode(&stack, &p.tenant, a, t0).await;
    }
    let clock = Arc::new(ManualClock::at(t0));
    let (one, two) = (escalator(&stack, &clock), escalator(&stack, &clock));
    // Step 1 of each: both sweepers at the same instant, twice each.
    let (a, b) = tokio::join!(one.sweep(), two.sweep());
    let (a, b) = (a.expect("sweep"), b.expect("sweep"));
    assert!(a.due + b.due >= alerts.len(), "{a:?} {b:?}");
    let (c, d) = tokio::join!(one.sweep(), two.sweep());
    assert_eq!(c.expect("sweep").steps + d.expect("sweep").steps, 0);
    settle(&sink, alerts.len(), "step 1 once per alert").await;

    // A sweeper "crashes" right after winning step 3 of the first alert: the step is written,
    // its notice is in the outbox, nothing was handed over.
    clock.set_ms(t0 + 10 * MIN);
    let crashed = &alerts[0];
    let (mut w, version) = stack
        .ports
        .alert_work()
        .work(&p.tenant, crashed, t0)
        .await
        .expect("read");
    let esc = w.escalation.as_mut().expect("escalation");
    esc.run_due(
        t0 + 10 * MIN,
        &vigie_domain::escalation::People::default(),
        &TenantRoster::default(),
    );
    assert_eq!(esc.outbox.len(), 1);
    assert!(
        stack
            .ports
            .alert_work()
            .save(&p.tenant, crashed, t0, &w, version)
            .await
            .expect("save")
    );
    // Both sweepers now: step 3 of the others, and the crashed one's notice handed over.
    let (a, b) = tokio::join!(one.sweep(), two.sweep());
    a.expect("sweep");
    b.expect("sweep");
    // The notice of the crashed step is handed over a second time by hand (as a sweeper
    // that stopped after sending and before clearing would): still delivered once.
    let left = w.escalation.as_ref().expect("escalation").outbox.clone();
    stack
        .ports
        .escalation_queue()
        .send_notices(&left)
        .await
        .expect("resend");
    let got = settle(&sink, 2 * alerts.len(), "steps 1 and 3 once per alert").await;
    let mut ids: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2 * alerts.len(), "every notice is distinct");
    for a in &alerts {
        let steps: Vec<u64> = got.iter().filter(|g| &g.1 == a).map(|g| g.2).collect();
        assert_eq!(steps.len(), 2, "{a}: {steps:?}");
        let w = work(&stack, &p.tenant, a, t0).await;
        let esc = w.escalation.expect("escalation");
        assert!(esc.outbox.is_empty(), "{a}: outbox handed over and cleared");
        assert_eq!(esc.due_ms, Some(t0 + 20 * MIN));
        let notified = esc.trace.iter().filter(|l| l.action == "notified").count();
        assert_eq!(notified, 2, "{a}: one trace line per step");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_stale_wake_ups_run_a_step_once() {
    let stack = Stack::start_pipeline("esc-wakeups").await;
    let p = placement("msp-wake", "acme", "hq");
    stack.seed(&p).await;
    let sink = WebhookSink::start("wake-secret", 200).await.expect("sink");
    stack
        .webhook_channel(&p.tenant, &sink, "wake-secret", 0)
        .await;
    let t0 = now_ms() + 24 * 60 * MIN;
    episode(&stack, &p.tenant, "al-wake", t0).await;
    let clock = Arc::new(ManualClock::at(t0));
    let e = escalator(&stack, &clock);
    let generation = work(&stack, &p.tenant, "al-wake", t0)
        .await
        .escalation
        .expect("escalation")
        .generation;
    let wake = WakeUp {
        tenant_id: p.tenant.clone(),
        alert_id: "al-wake".into(),
        opened_ms: t0,
        generation,
    };
    // The same wake-up delivered three times, two of them at once.
    let (a, b) = tokio::join!(e.wake(&wake), e.wake(&wake));
    let c = e.wake(&wake).await.expect("wake");
    let (a, b) = (a.expect("wake"), b.expect("wake"));
    assert_eq!(a.steps + b.steps + c.steps, 2, "notify + wait, once");
    assert!(c.stale, "the third finds the escalation moved on");
    // A wake-up for the next step's generation, delivered before its time: nothing.
    let next = work(&stack, &p.tenant, "al-wake", t0)
        .await
        .escalation
        .expect("escalation")
        .generation;
    let early = WakeUp {
        generation: next,
        ..wake.clone()
    };
    assert_eq!(e.wake(&early).await.expect("wake").steps, 0);
    // On time, it runs step 3 once, however often it comes.
    clock.set_ms(t0 + 10 * MIN);
    let (a, b) = tokio::join!(e.wake(&early), e.wake(&early));
    assert_eq!(a.expect("wake").steps + b.expect("wake").steps, 2);
    let got = settle(&sink, 2, "steps 1 and 3").await;
    assert_eq!(got.iter().map(|g| g.2).collect::<Vec<_>>().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_racing_a_step_gives_at_most_one_notice_and_stops_the_chain() {
    let stack = Stack::start_pipeline("esc-race").await;
    let p = placement("msp-race", "acme", "hq");
    stack.seed(&p).await;
    let sink = WebhookSink::start("race-secret", 200).await.expect("sink");
    stack
        .webhook_channel(&p.tenant, &sink, "race-secret", 0)
        .await;
    let t0 = now_ms() + 24 * 60 * MIN;
    let clock = Arc::new(ManualClock::at(t0));
    let e = escalator(&stack, &clock);
    let store = stack.ports.alert_work();
    let rounds = 8;
    let mut stepped = 0;
    for i in 0..rounds {
        let alert = format!("al-race-{i}");
        episode(&stack, &p.tenant, &alert, t0).await;
        // The acknowledgement is the API's own read-apply-conditional-write, retried on a
        // conflict like the handler does.
        let ack = async {
            for _ in 0..5 {
                let (mut w, v) = store.work(&p.tenant, &alert, t0).await.expect("read");
                w.apply(AlertAction::Acknowledge, "usr-tech", t0, false)
                    .expect("ack");
                if store
                    .save(&p.tenant, &alert, t0, &w, v)
                    .await
                    .expect("save")
                {
                    return;
                }
            }
            panic!("acknowledgement never landed");
        };
        let (fired, ()) = tokio::join!(e.fire(&p.tenant, &alert, t0, None, None), ack);
        let fired = fired.expect("fire");
        stepped += usize::from(fired.notices > 0);
        let w = work(&stack, &p.tenant, &alert, t0).await;
        let esc = w.escalation.expect("escalation");
        assert!(matches!(esc.state, EscalationState::Acknowledged { .. }));
        assert_eq!(esc.due_ms, None);
        assert_eq!(w.acknowledged.expect("ack").by, "usr-tech");
    }
    // However the races went, later sweeps find nothing to run.
    clock.set_ms(t0 + 60 * MIN);
    assert_eq!(e.sweep().await.expect("sweep").steps, 0);
    let got = settle(&sink, stepped, "one notice per step that won its race").await;
    for (_, alert, step) in &got {
        assert_eq!(*step, 1, "{alert}: only step 1 can have run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_an_overdue_escalation_once_and_runs_it() {
    let stack = Stack::start_pipeline("esc-audit").await;
    let p = placement("msp-audit", "acme", "hq");
    stack.seed(&p).await;
    let sink = WebhookSink::start("audit-secret", 200).await.expect("sink");
    stack
        .webhook_channel(&p.tenant, &sink, "audit-secret", 0)
        .await;
    let t0 = now_ms() + 24 * 60 * MIN;
    episode(&stack, &p.tenant, "al-late", t0).await;
    episode(&stack, &p.tenant, "al-fresh", t0 + 5 * MIN).await;
    // Seven minutes after the first was due (no sweep ran meanwhile): overdue; the second is
    // due but not overdue (2 min).
    let clock = Arc::new(ManualClock::at(t0 + 7 * MIN));
    let e = escalator(&stack, &clock);
    let report = e.audit().await.expect("audit");
    assert_eq!(report.due, 1, "{report:?}");
    assert_eq!(report.notices, 1);
    let w = work(&stack, &p.tenant, "al-late", t0).await;
    assert!(
        w.escalation
            .expect("escalation")
            .trace
            .iter()
            .any(|l| l.action == "rescheduled")
    );
    assert_eq!(e.audit().await.expect("audit").due, 0, "found once");
    // The sweep takes the rest.
    assert_eq!(e.sweep().await.expect("sweep").notices, 1);
    settle(&sink, 2, "each escalation's first step once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_wait_is_ended_by_its_delayed_wake_up_on_time() {
    use vigie_local::pollers::{PolledQueue, receive};
    // The front only: no escalator polls the queue and no sweep runs, so only the delayed
    // wake-up can run step 3.
    let stack = Stack::start("esc-delay").await;
    let tenant = TenantId::parse("msp-delay").expect("id");
    let mut policy = noc_policy(None);
    policy.steps[1] = Step::wait_minutes(1);
    let t0 = now_ms();
    let stored = AlertWork {
        escalation: Some(Escalation::start(
            &policy,
            facts(&tenant, "al-delay", t0),
            t0,
            &TenantRoster::default(),
        )),
        ..AlertWork::default()
    };
    let store = stack.ports.alert_work();
    assert!(
        store
            .save(&tenant, "al-delay", t0, &stored, 0)
            .await
            .expect("save")
    );
    let e = Escalator::new(
        &stack.ports,
        DynamoRosters {
            ports: stack.ports.clone(),
        },
        vigie_domain::clock::SystemClock,
    );
    let fired = e
        .fire(&tenant, "al-delay", t0, None, None)
        .await
        .expect("fire");
    assert_eq!(fired.notices, 1);
    let due = t0 + MIN;
    let sqs = &stack.ports.clients().sqs;
    let queue = PolledQueue::lookup(sqs, stack.ports.escalate_queue_url())
        .await
        .expect("queue");
    let mut handled_at = None;
    while now_ms() < due + 30_000 {
        let event = receive(sqs, &queue, 1).await.expect("receive");
        if event.records.is_empty() {
            continue;
        }
        let arrived = now_ms();
        assert!(
            arrived >= due - 1_000,
            "the wake-up arrived {} ms early",
            due - arrived
        );
        for r in &event.records {
            sqs.delete_message()
                .queue_url(stack.ports.escalate_queue_url())
                .receipt_handle(&r.receipt_handle)
                .send()
                .await
                .expect("delete");
        }
        let response = e.handle(event).await;
        assert!(response.batch_item_failures.is_empty());
        handled_at = Some(arrived);
        break;
    }
    let handled_at = handled_at.expect("the wake-up arrived");
    let w = work(&stack, &tenant, "al-delay", t0).await;
    let esc = w.escalation.expect("escalation");
    let step3 = esc
        .trace
        .iter()
        .find(|l| l.action == "notified" && l.step == Some(3))
        .expect("step 3 ran from the wake-up");
    println!(
        "wake-up: step 3 due at +60.0 s ran at +{:.1} s",
        (step3.at_ms - t0) as f64 / 1000.0
    );
    assert!(step3.at_ms >= due && step3.at_ms <= handled_at + 5_000);
    assert!(step3.at_ms - due < 10_000, "{} ms late", step3.at_ms - due);
}
