//! The whole pipeline with the real agent: telemetry crosses a threshold the tenant set for
//! its servers (a `role=server` policy over a quiet tenant default), an alert opens and a
//! signed webhook says so; the policy is relaxed, the alert resolves and the webhook says that
//! too.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily};
use vigie_domain::notification::{
    ChannelFilter, ChannelId, ChannelKind, NotificationChannel, WebhookSecret,
};
use vigie_domain::policy::{Metric, Policy, Rule, RuleId, Scope};
use vigie_domain::ports::DeviceRegistry;
use vigie_domain::rules::{Direction, Level, Threshold};
use vigie_local::webhook_sink::WebhookSink;

use crate::agent::{agent_binary, enroll_tagged, state_dir, terminate};
use crate::stack::{Stack, now_ms, placement};

fn root_disk_policy(scope: Scope, warning: f64, critical: f64) -> Policy {
    Policy {
        scope,
        rules: vec![Rule::threshold(
            RuleId::parse("disk-used").expect("id"),
            AlertFamily::Resources,
            Metric::FilesystemUsedPct,
            None,
            Threshold {
                direction: Direction::Above,
                warning: Some(Level {
                    threshold: warning,
                    for_s: 0,
                }),
                critical: Some(Level {
                    threshold: critical,
                    for_s: 0,
                }),
                hysteresis: 0.5,
                max_gap_s: 600,
            },
        )],
    }
}

/// Alert events delivered to the webhook since `seen` (checking each signature).
fn delivered(sink: &WebhookSink, seen: &mut usize) -> Vec<AlertEvent> {
    let all = sink.received();
    let new = all[*seen..].to_vec();
    *seen = all.len();
    new.into_iter()
        .map(|r| {
            assert!(r.signature_valid, "every webhook is signed");
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            serde_json::from_value(body["event"].clone()).expect("alert event")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_telemetry_opens_then_resolves_an_alert_end_to_end() {
    let stack = Stack::start_pipeline("pipeline").await;
    let tenant = placement("msp-field", "bakery", "shop-1").tenant;
    let sink = WebhookSink::start("whsec_pipeline_secret_0123", 200)
        .await
        .expect("sink");
    let channel = NotificationChannel {
        id: ChannelId::parse("ticketing").expect("id"),
        tenant_id: tenant.clone(),
        name: "Ticketing".into(),
        kind: ChannelKind::Webhook {
            url: sink.url(),
            secret: WebhookSecret::new("whsec_pipeline_secret_0123"),
        },
        filter: ChannelFilter::default(),
        group_wait_s: 0,
    };
    stack.ports.save_channel(&channel).await.expect("channel");
    let mut seen = 0;
    let state = state_dir("pipeline");
    let servers = Scope::Tag {
        key: "role".into(),
        value: "server".into(),
    };
    let tags = [("role".to_owned(), "server".to_owned())]
        .into_iter()
        .collect();
    let device = enroll_tagged(&stack, &state, tags).await;
    let record = stack
        .ports
        .devices()
        .device(&device)
        .await
        .expect("read")
        .expect("device");
    assert_eq!(
        record.tags.get("role").map(String::as_str),
        Some("server"),
        "the token's tags"
    );
    // The tenant default is quiet; for servers, any filesystem above 0.01 % used crosses:
    // every real filesystem of this machine.
    let policies = stack.ports.policies();
    policies
        .put(
            &tenant,
            &root_disk_policy(Scope::Tenant, 99.0, 99.5),
            now_ms(),
        )
        .await
        .expect("policy");
    policies
        .put(
            &tenant,
            &root_disk_policy(servers.clone(), 0.01, 100.0),
            now_ms(),
        )
        .await
        .expect("policy");
    let mut child = Command::new(agent_binary())
        .args([
            "run",
            "--sample-interval",
            "1",
            "--send-interval",
            "1",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agent starts");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut opened: Vec<AlertEvent> = Vec::new();
    while opened.is_empty() {
        assert!(Instant::now() < deadline, "no alert opened");
        opened.extend(
            delivered(&sink, &mut seen)
                .into_iter()
                .filter(|e| e.kind == AlertEventKind::Opened),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = &opened[0];
    assert_eq!(e.device_id, device);
    assert_eq!(
        (
            e.tenant_id.as_str(),
            e.client_id.as_str(),
            e.site_id.as_str()
        ),
        ("msp-field", "bakery", "shop-1")
    );
    assert!(e.value > 0.01 && e.threshold == 0.01);

    // Wait a little for every filesystem's alert, then relax the policy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    opened.extend(
        delivered(&sink, &mut seen)
            .into_iter()
            .filter(|e| e.kind == AlertEventKind::Opened),
    );
    let open_ids: BTreeSet<String> = opened.iter().map(|e| e.alert_id.clone()).collect();
    assert_eq!(
        open_ids.len(),
        opened.len(),
        "one open per alert: {opened:#?}"
    );
    stack
        .ports
        .policies()
        .put(&tenant, &root_disk_policy(servers, 99.0, 99.5), now_ms())
        .await
        .expect("relax");

    let mut resolved = BTreeSet::new();
    while resolved != open_ids {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "not all resolved: {resolved:?} of {open_ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for e in delivered(&sink, &mut seen) {
            assert_ne!(
                e.kind,
                AlertEventKind::Opened,
                "no reopening after the relaxation"
            );
            if e.kind == AlertEventKind::Resolved {
                assert!(resolved.insert(e.alert_id.clone()), "one resolve per alert");
            }
        }
    }
    assert!(terminate(&mut child).success());
    let record = stack
        .ports
        .evaluation()
        .alert(&tenant, &opened[0].alert_id)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record["status"], "resolved");
    let _ = std::fs::remove_dir_all(&state);
}
