//! Noise controls on the whole local stack: a router down with thirty devices behind it is one
//! notification; the parent route refuses cycles and unknown parents.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigie_auth::Role;
use vigie_domain::ids::DeviceId;
use vigie_domain::protocol::AgentConfig;
use vigie_local::webhook_sink::WebhookSink;

use crate::api::{api_stack, local_issuer, mint};
use crate::stack::{Stack, batch_body, enroll, now_ms, placement, post_batch, send};

const SECRET: &str = "whsec_noise_secret_0123456";

async fn api(stack: &Stack, bearer: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    let a = send(
        method,
        format!("{}{path}", stack.url()),
        vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), format!("Bearer {bearer}")),
        ],
        body,
    )
    .await;
    (a.status, a.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_down_with_thirty_devices_behind_it_is_one_notification() {
    let own = local_issuer();
    let stack = api_stack("noise-deps", &own).await;
    let p = placement("msp-noise", "bakery", "shop-1");
    stack.seed(&p).await;
    let admin = mint(&own, Role::MspAdmin, Some(&p.tenant), None);
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&p.tenant, &sink, SECRET, 0).await;

    // 31 devices with a five-second heartbeat: a router and thirty behind it.
    let (_, plain) = stack.token(&p, 31).await;
    let config = AgentConfig {
        sample_interval_s: 1,
        send_interval_s: 1,
        heartbeat_s: 5,
        ..AgentConfig::default()
    };
    let mut devices = Vec::new();
    for _ in 0..31 {
        let (answer, key) = enroll(&stack.url(), plain.expose()).await;
        assert_eq!(answer.status, 201, "{:?}", answer.json);
        let id = DeviceId::parse(answer.json["device_id"].as_str().expect("id")).expect("id");
        assert!(
            stack
                .ports
                .devices()
                .set_config(&p.tenant, &id, &config)
                .await
                .expect("config")
        );
        devices.push((id, key));
    }
    let router = devices[0].0.clone();
    let children: Vec<DeviceId> = devices[1..].iter().map(|(id, _)| id.clone()).collect();

    // The parent route: unknown parents, cycles and self-parents are refused.
    let path = |d: &DeviceId| format!("/v1/devices/{d}/parent");
    let (status, body) = api(
        &stack,
        &admin,
        "PUT",
        &path(&router),
        json!({"parent_id": "dev-nobody"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("bad_parent")),
        "{body}"
    );
    let (status, _) = api(
        &stack,
        &admin,
        "PUT",
        &path(&router),
        json!({"parent_id": router}),
    )
    .await;
    assert_eq!(status, 422);
    for child in &children {
        let (status, body) = api(
            &stack,
            &admin,
            "PUT",
            &path(child),
            json!({"parent_id": router}),
        )
        .await;
        assert_eq!(
            (status, &body["parent_id"]),
            (200, &json!(router)),
            "{body}"
        );
    }
    let (status, body) = api(
        &stack,
        &admin,
        "PUT",
        &path(&router),
        json!({"parent_id": children[0]}),
    )
    .await;
    assert_eq!(status, 422, "a cycle: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cycle"),
        "{body}"
    );
    // Removing and setting again is idempotent; the device view lists parent and children.
    let (status, body) = api(&stack, &admin, "DELETE", &path(&children[0]), Value::Null).await;
    assert_eq!((status, &body["parent_id"]), (200, &Value::Null), "{body}");
    let (status, _) = api(
        &stack,
        &admin,
        "PUT",
        &path(&children[0]),
        json!({"parent_id": router}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, view) = api(
        &stack,
        &admin,
        "GET",
        &format!("/v1/devices/{router}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        view["children"].as_array().map(Vec::len),
        Some(30),
        "{view}"
    );
    let (_, view) = api(
        &stack,
        &admin,
        "GET",
        &format!("/v1/devices/{}", children[5]),
        Value::Null,
    )
    .await;
    assert_eq!(view["parent_id"], json!(router));

    // One batch each, the children first: they go silent a little before their router.
    let now = now_ms();
    for (id, key) in devices[1..].iter().chain(devices[..1].iter()) {
        let a = post_batch(
            &stack.url(),
            key,
            id.as_str(),
            1,
            now_ms(),
            batch_body(now_ms(), 2),
        )
        .await;
        assert!(a.status < 300, "{:?}", a.json);
    }
    let _ = now;

    // The router goes down; so does everything behind it. One notification, the router's.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.received().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Leave room for any straggler: several more sweeps.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let got = sink.received();
    assert_eq!(got.len(), 1, "one notification for 31 silent devices");
    let body: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["event"]["device_id"], json!(router), "{body}");
    assert_eq!(body["event"]["kind"], "opened");
    assert_eq!(body["event"]["family"], "device_down");
    assert_eq!(body["event"]["sev"], 1, "Sev 1 next to critical");

    // The router's alert lists the thirty suppressed alerts of its children.
    let alert_id = body["event"]["alert_id"].as_str().expect("alert id");
    let (status, alert) = api(
        &stack,
        &admin,
        "GET",
        &format!("/v1/alerts/{alert_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{alert}");
    assert_eq!(alert["sev"], 1);
    assert_eq!(alert["suppressed_children"]["count"], 30, "{alert}");
    let listed: std::collections::BTreeSet<&str> = alert["suppressed_children"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["device_id"].as_str())
        .collect();
    let expected: std::collections::BTreeSet<&str> = children.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, expected);
}

/// The webhook bodies `sink` received, once `n` arrived (or the wait ran out), and a little
/// later, so that a surplus one would show.
async fn bodies(sink: &WebhookSink, n: usize, secs: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while sink.received().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    sink.received()
        .iter()
        .map(|r| {
            assert!(r.signature_valid);
            serde_json::from_slice(&r.body).expect("json")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_rule_is_announced_once_then_once_more_when_it_settles() {
    use crate::evaluate::{disk_policy, envelope, evaluator};
    let stack = Stack::start_pipeline("noise-flap").await;
    let p = placement("msp-alpha", "acme", "hq");
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&p.tenant, &sink, SECRET, 0).await;
    stack
        .ports
        .policies()
        .put(&p.tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    let evaluator = evaluator(&stack.ports);
    let device = DeviceId::parse("dev-flappy").expect("id");
    const MIN: i64 = 60_000;
    let t0 = now_ms() - 60 * MIN;
    // Disk at 90 % / 50 % every two minutes: four ordinary transitions, the fifth is
    // "flapping", two more are quiet; then 91 % for sixteen minutes settles it, still open.
    let mut samples: Vec<(i64, f64)> = (0..7)
        .map(|i| (t0 + i * 2 * MIN, if i % 2 == 0 { 90.0 } else { 50.0 }))
        .collect();
    let last_change = t0 + 12 * MIN;
    samples.extend((1..=4).map(|i| (last_change + i * 4 * MIN, 91.0)));
    let mut kinds = Vec::new();
    for (seq, (at, used)) in samples.iter().enumerate() {
        let outcome = evaluator
            .evaluate(&envelope(&device, seq as u64 + 1, *at, *used))
            .await
            .expect("evaluates");
        kinds.extend(outcome.events.iter().map(|e| e.kind.as_str()));
    }
    assert_eq!(
        kinds,
        [
            "opened", "resolved", "opened", "resolved", "flapping", "settled"
        ],
        "the evaluator's events"
    );
    // Redelivering the last batch changes nothing.
    let again = evaluator
        .evaluate(&envelope(&device, 11, samples[10].0, 91.0))
        .await
        .expect("evaluates");
    assert!(again.events.is_empty());

    let got = bodies(&sink, 6, 40).await;
    let mut delivered: Vec<&str> = got
        .iter()
        .filter_map(|b| b["event"]["kind"].as_str())
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        [
            "flapping", "opened", "opened", "resolved", "resolved", "settled"
        ],
        "one flapping and one settled notification; nothing while it flapped"
    );
    let settled = got
        .iter()
        .find(|b| b["event"]["kind"] == "settled")
        .expect("settled");
    assert_eq!(settled["event"]["severity"], "warning");
    assert_eq!(settled["event"]["sev"], 2);
    assert!(
        settled["text"]
            .as_str()
            .unwrap_or("")
            .contains("[Sev 2 · WARNING]"),
        "{settled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_of_one_site_within_the_wait_are_one_notification() {
    use crate::evaluate::{disk_policy, envelope, evaluator};
    let stack = Stack::start_pipeline("noise-group").await;
    let p = placement("msp-alpha", "acme", "hq");
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    let wait_s = 4;
    stack
        .webhook_channel(&p.tenant, &sink, SECRET, wait_s)
        .await;
    stack
        .ports
        .policies()
        .put(&p.tenant, &disk_policy(85.0), now_ms())
        .await
        .expect("policy");
    let evaluator = evaluator(&stack.ports);
    let opened = |n: usize| {
        let evaluator = &evaluator;
        async move {
            let device = DeviceId::parse(&format!("dev-disk-{n}")).expect("id");
            let out = evaluator
                .evaluate(&envelope(&device, 1, now_ms() - 1_000, 90.0))
                .await
                .expect("evaluates");
            assert_eq!(out.events.len(), 1);
            out.events[0].event_id.clone()
        }
    };
    // Five disks of one site fill up together.
    let started = Instant::now();
    let mut first_five = Vec::new();
    for n in 0..5 {
        first_five.push(opened(n).await);
    }
    let got = bodies(&sink, 1, 30).await;
    assert_eq!(got.len(), 1, "one notification for five alerts");
    let alerts: Vec<&str> = got[0]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["event_id"].as_str())
        .collect();
    let mut want = first_five.iter().map(String::as_str).collect::<Vec<_>>();
    want.sort();
    let mut alerts_sorted = alerts.clone();
    alerts_sorted.sort();
    assert_eq!(alerts_sorted, want);
    assert_eq!(got[0]["group"]["count"], 5);
    assert_eq!(got[0]["group"]["site_id"], "hq");
    assert!(
        got[0]["text"]
            .as_str()
            .expect("text")
            .starts_with("5 alerts on site hq (acme)"),
        "{}",
        got[0]["text"]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(u64::from(wait_s)),
        "delivered after the wait"
    );
    // A sixth after the flush opens the next group: announced on its own.
    let sixth = opened(5).await;
    let got = bodies(&sink, 2, 30).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(got[1]["alerts"][0]["event_id"], json!(sixth));
    assert_eq!(
        got[1]["text"]
            .as_str()
            .map(|t| t.starts_with("1 alert on site hq")),
        Some(true)
    );
}
