//! Device silence: the real agent stops, the sweeper raises "device down", the webhook says so;
//! the agent comes back, its next batch resolves it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity};
use vigie_domain::protocol::AgentConfig;
use vigie_local::webhook_sink::WebhookSink;

use crate::agent::{agent_binary, enroll, state_dir, terminate};
use crate::stack::{Stack, placement};

const SECRET: &str = "whsec_silence_secret_0123";

async fn next_event(sink: &WebhookSink, seen: &mut usize, secs: u64) -> Option<AlertEvent> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let got = sink.received();
        if got.len() > *seen {
            let r = &got[*seen];
            *seen += 1;
            assert!(r.signature_valid);
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
            return Some(serde_json::from_value(body["event"].clone()).expect("event"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_down_and_comes_back() {
    let stack = Stack::start_pipeline("silence").await;
    let tenant = placement("msp-field", "bakery", "shop-1").tenant;
    let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
    stack.webhook_channel(&tenant, &sink, SECRET, 0).await;
    let state = state_dir("silence");
    let device = enroll(&stack, &state).await;
    // A short heartbeat for the test (the default is five minutes).
    let config = AgentConfig {
        sample_interval_s: 1,
        send_interval_s: 1,
        heartbeat_s: 3,
        ..AgentConfig::default()
    };
    assert!(
        stack
            .ports
            .devices()
            .set_config(&tenant, &device, &config)
            .await
            .expect("config")
    );
    let other = placement("msp-other", "x", "y").tenant;
    assert!(
        !stack
            .ports
            .devices()
            .set_config(&other, &device, &config)
            .await
            .expect("call"),
        "another tenant's device is not found"
    );

    let run = || {
        Command::new(agent_binary())
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
            .expect("agent starts")
    };
    let mut agent = run();
    // Sending for a few seconds: no alert.
    let mut seen = 0;
    assert!(
        next_event(&sink, &mut seen, 4).await.is_none(),
        "a device that sends is not down"
    );
    assert!(terminate(&mut agent).success());

    // Silent: the sweeper finds it within heartbeat + a slot + a sweep period.
    let down = next_event(&sink, &mut seen, 40)
        .await
        .expect("device down is notified");
    assert_eq!(
        (down.kind, down.family, down.severity),
        (
            AlertEventKind::Opened,
            AlertFamily::DeviceDown,
            Severity::Critical
        )
    );
    assert_eq!(down.device_id, device);
    assert!(
        down.value >= 3.0,
        "silent for at least the heartbeat: {}",
        down.value
    );
    // Still silent: no second opening.
    assert!(
        next_event(&sink, &mut seen, 12).await.is_none(),
        "one alert while it stays down"
    );

    // Back: its first batch resolves the alert.
    let mut agent = run();
    let back = next_event(&sink, &mut seen, 30)
        .await
        .expect("recovery is notified");
    assert_eq!(
        (back.kind, back.alert_id.as_str()),
        (AlertEventKind::Resolved, down.alert_id.as_str())
    );
    assert!(terminate(&mut agent).success());
    let _ = std::fs::remove_dir_all(&state);
}
