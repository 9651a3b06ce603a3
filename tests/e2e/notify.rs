//! Alert events to delivered notifications: signed webhooks, channel filters, a dead receiver
//! that does not hold the others back, and duplicates that do not notify twice.

use std::time::{Duration, Instant};

use vigie_domain::alert::{AlertEventKind, Severity};
use vigie_domain::ids::DeviceId;
use vigie_domain::notification::{
    ChannelFilter, ChannelId, ChannelKind, NotificationChannel, WebhookSecret,
};
use vigie_domain::ports::AlertPublisher;
use vigie_local::webhook_sink::WebhookSink;

use crate::evaluate::{disk_policy, envelope, evaluator};
use crate::stack::{Stack, now_ms, placement};

const SECRET: &str = "whsec_test_secret_0123456789";

fn webhook(id: &str, url: String, min_severity: Severity) -> NotificationChannel {
    NotificationChannel {
        id: ChannelId::parse(id).expect("id"),
        tenant_id: placement("msp-alpha", "acme", "hq").tenant,
        name: format!("channel {id}"),
        kind: ChannelKind::Webhook {
            url,
            secret: WebhookSecret::new(SECRET),
        },
        filter: ChannelFilter {
            min_severity,
            ..ChannelFilter::default()
        },
        // These tests watch each event's own delivery.
        group_wait_s: 0,
    }
}

async fn wait_for(
    sink: &WebhookSink,
    n: usize,
    secs: u64,
) -> Vec<vigie_local::webhook_sink::Received> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = sink.received();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_reach_the_channels_that_asked_signed_and_once() {
    let stack = Stack::start_pipeline("notify").await;
    let tenant = placement("msp-alpha", "acme", "hq").tenant;
    let good = WebhookSink::start(SECRET, 200).await.expect("sink");
    let down = WebhookSink::start(SECRET, 503).await.expect("sink");
    let critical_only = WebhookSink::start(SECRET, 200).await.expect("sink");
    let slack = WebhookSink::start(SECRET, 200).await.expect("sink");
    let teams = WebhookSink::start(SECRET, 200).await.expect("sink");
    let chat = |id: &str, kind: ChannelKind| NotificationChannel {
        id: ChannelId::parse(id).expect("id"),
        tenant_id: tenant.clone(),
        name: id.to_owned(),
        kind,
        filter: ChannelFilter::default(),
        group_wait_s: 0,
    };
    for c in [
        chat(
            "slack-noc",
            ChannelKind::Slack {
                webhook_url: slack.url(),
            },
        ),
        chat(
            "teams-noc",
            ChannelKind::Teams {
                webhook_url: teams.url(),
            },
        ),
    ] {
        c.validate().expect("valid channel");
        stack.ports.save_channel(&c).await.expect("channel");
    }
    for c in [
        webhook("ticketing", good.url(), Severity::Info),
        webhook("broken", down.url(), Severity::Info),
        webhook("pager", critical_only.url(), Severity::Critical),
    ] {
        c.validate().expect("valid channel");
        stack.ports.save_channel(&c).await.expect("channel");
    }
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
        .expect("evaluates")
        .events;
    let got = wait_for(&good, 1, 20).await;
    assert_eq!(got.len(), 1, "the ticketing webhook got the opening");
    assert!(got[0].signature_valid, "signed with the channel's secret");
    assert_eq!(
        got[0].headers.get("x-vigie-event-id"),
        Some(&opened[0].event_id)
    );
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["version"], 1);
    assert_eq!(body["event"]["kind"], "opened");
    assert!(
        body["text"].as_str().is_some_and(|t| t.contains("WARNING")),
        "{body}"
    );

    // The dead receiver was tried, is recorded as retrying, and did not hold the others back.
    let tried = wait_for(&down, 1, 10).await;
    assert!(!tried.is_empty());
    let record = stack
        .ports
        .deliveries()
        .get(&tenant, &opened[0].event_id, "broken")
        .await
        .expect("read");
    let (status, attempts, code) = record.expect("a delivery record");
    assert_eq!((status.as_str(), code), ("retrying", Some(503)));
    assert!(attempts >= 1);

    // The same event delivered again by SNS: nobody is notified twice.
    stack
        .ports
        .alerts_topic()
        .publish(&opened[0])
        .await
        .expect("republish");
    // Recovery.
    let resolved = ev
        .evaluate(&envelope(&device, 2, t0 + 60_000, 40.0))
        .await
        .expect("evaluates")
        .events;
    assert_eq!(resolved[0].kind, AlertEventKind::Resolved);
    let got = wait_for(&good, 2, 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = good.received();
    assert_eq!(
        got_after.len(),
        2,
        "opened once, resolved once: {:?}",
        got.iter()
            .map(|r| r.headers.get("x-vigie-event-id"))
            .collect::<Vec<_>>()
    );
    assert!(got_after.iter().all(|r| r.signature_valid));
    let kinds: Vec<String> = got_after
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["event"]["kind"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, vec!["opened", "resolved"]);
    // Slack and Teams channels got their own formats.
    let slack_got = wait_for(&slack, 2, 10).await;
    let teams_got = wait_for(&teams, 2, 10).await;
    assert_eq!((slack_got.len(), teams_got.len()), (2, 2));
    let slack_body: serde_json::Value = serde_json::from_slice(&slack_got[0].body).expect("json");
    assert!(
        slack_body["blocks"].is_array()
            && slack_body["text"]
                .as_str()
                .is_some_and(|t| t.contains("WARNING")),
        "{slack_body}"
    );
    let teams_body: serde_json::Value = serde_json::from_slice(&teams_got[1].body).expect("json");
    assert_eq!(
        teams_body["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive",
        "{teams_body}"
    );
    // The critical-only channel heard nothing of a warning.
    assert!(critical_only.received().is_empty());
    let delivered = stack
        .ports
        .deliveries()
        .get(&tenant, &resolved[0].event_id, "ticketing")
        .await
        .expect("read");
    assert_eq!(delivered, Some(("delivered".to_owned(), 1, Some(200))));
}

/// One event for `tenant`, published as the evaluator would.
fn event_for(tenant: &str, n: u32) -> vigie_domain::alert::AlertEvent {
    let mut e = vigie_domain::fixtures::event(AlertEventKind::Opened);
    e.tenant_id = vigie_domain::ids::TenantId::parse(tenant).expect("id");
    e.event_id = format!("evt-dead-{tenant}-{n}-{}", now_ms());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_backs_off_then_dead_letters_while_everyone_else_is_served() {
    use vigie_notifier::service::Backoff;
    let (clients, names, provisioned) = vigie_tests::provisioned("deadhook").await;
    let ports = vigie_aws::adapters::AwsPorts::connect(clients, names)
        .await
        .expect("connect");
    let options = vigie_local::RuntimeOptions {
        policy_ttl: Duration::from_secs(1),
        // Short delays for the test; the queue's redrive limit as provisioned.
        notify_backoff: Backoff {
            base_s: 1,
            max_s: 3,
            max_receives: vigie_aws::provision::MAX_RECEIVE_COUNT,
        },
        ..vigie_local::RuntimeOptions::default()
    };
    let _runtime = vigie_local::LocalRuntime::start_with(
        &ports,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        &options,
    )
    .await
    .expect("runtime");

    let good = WebhookSink::start(SECRET, 200).await.expect("sink");
    let down = WebhookSink::start(SECRET, 503).await.expect("sink");
    let other_tenant = WebhookSink::start(SECRET, 200).await.expect("sink");
    let on = |tenant: &str, mut c: NotificationChannel| {
        c.tenant_id = vigie_domain::ids::TenantId::parse(tenant).expect("id");
        c
    };
    let mail = |id: &str, from: &str| NotificationChannel {
        id: ChannelId::parse(id).expect("id"),
        tenant_id: vigie_domain::ids::TenantId::parse("msp-dead").expect("id"),
        name: id.to_owned(),
        kind: ChannelKind::Email {
            to: vec!["oncall@msp-dead.example".into()],
            from: from.to_owned(),
        },
        filter: ChannelFilter::default(),
        group_wait_s: 0,
    };
    for c in [
        on("msp-dead", webhook("good", good.url(), Severity::Info)),
        on("msp-dead", webhook("down", down.url(), Severity::Info)),
        on(
            "msp-other",
            webhook("theirs", other_tenant.url(), Severity::Info),
        ),
        // Saving an e-mail channel makes its sender an SES identity.
        mail("mail", "alerts@msp-dead.example"),
    ] {
        c.validate().expect("valid");
        ports.save_channel(&c).await.expect("channel");
    }
    // A channel whose sender never became an identity: SES refuses it, for good.
    ports
        .channels()
        .put(&mail("mail-unverified", "nobody@unverified.example"))
        .await
        .expect("channel");

    let dead_event = event_for("msp-dead", 1);
    ports
        .alerts_topic()
        .publish(&dead_event)
        .await
        .expect("publish");
    ports
        .alerts_topic()
        .publish(&event_for("msp-other", 2))
        .await
        .expect("publish");

    // Everyone else is served at once, whatever the dead receiver does.
    assert_eq!(wait_for(&good, 1, 15).await.len(), 1);
    assert_eq!(wait_for(&other_tenant, 1, 15).await.len(), 1);
    let deliveries = ports.deliveries();
    let record = |channel: &'static str| {
        let deliveries = deliveries.clone();
        let tenant = dead_event.tenant_id.clone();
        let event_id = dead_event.event_id.clone();
        async move {
            deliveries
                .get(&tenant, &event_id, channel)
                .await
                .expect("read")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while record("mail").await.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        record("mail")
            .await
            .map(|(status, attempts, _)| (status, attempts)),
        Some(("delivered".to_owned(), 1)),
        "e-mail sent through SES"
    );
    assert_eq!(
        record("mail-unverified").await.map(|(status, _, _)| status),
        Some("failed".to_owned()),
        "SES refuses an unverified sender, and that is not retried"
    );

    // The dead receiver: tried once per receive, with growing gaps, until the redrive limit.
    let tries = wait_for(&down, 5, 40).await;
    assert_eq!(tries.len(), 5, "one try per receive, five receives");
    let gaps: Vec<i64> = tries
        .windows(2)
        .map(|w| w[1].received_ms - w[0].received_ms)
        .collect();
    assert!(
        gaps[0] >= 900 && gaps[1] >= 1900 && gaps[3] >= 2900,
        "backoff 1 s, 2 s, 3 s (capped): {gaps:?}"
    );
    // Then the event goes to the notify DLQ, recorded as exhausted.
    let sqs = &ports.clients().sqs;
    let mut dead_lettered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_lettered.is_empty() && Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(&provisioned.notify_dlq_url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        dead_lettered.extend(
            got.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
    }
    assert_eq!(dead_lettered.len(), 1, "{dead_lettered:?}");
    assert!(dead_lettered[0].contains(&dead_event.event_id));
    let (status, attempts, code) = record("down").await.expect("record");
    assert_eq!(
        (status.as_str(), attempts, code),
        ("exhausted", 5, Some(503))
    );
    // Nobody heard the event twice in all those retries.
    assert_eq!(good.received().len(), 1);
    assert_eq!(down.received().len(), 5);
}
