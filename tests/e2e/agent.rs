//! The real agent binary against the local runtime and the emulator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigie_domain::ids::DeviceId;

use crate::stack::{Stack, placement};

/// The agent binary: `VIGIE_AGENT_BIN` (set by `cargo xtask test` to the static release build),
/// or the workspace's debug build, built on demand.
pub(crate) fn agent_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VIGIE_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let root = vigie_emulator::project_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--package",
            "vigie-agent",
            "--bin",
            "vigie-agent",
        ])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the agent failed");
    root.join("target").join("debug").join("vigie-agent")
}

pub(crate) fn state_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("vigie-agent-{}", vigie_tests::unique_prefix(test)));
    std::fs::create_dir_all(&dir).expect("state dir");
    dir
}

fn agent(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(agent_binary())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("agent runs")
}

fn status(state: &Path) -> serde_json::Value {
    let out = agent(state, &["status", "--json"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status json: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Stops the agent with SIGTERM (what systemd does) and waits for it.
pub(crate) fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) async fn enroll(stack: &Stack, state: &Path) -> DeviceId {
    enroll_tagged(stack, state, Default::default()).await
}

/// Enrols the real agent with a token giving its device `tags`.
pub(crate) async fn enroll_tagged(
    stack: &Stack,
    state: &Path,
    tags: vigie_domain::device::Tags,
) -> DeviceId {
    let p = placement("msp-field", "bakery", "shop-1");
    stack.seed(&p).await;
    let (_, token) = stack.token_tagged(&p, 1, tags).await;
    let state = state.to_path_buf();
    let url = stack.url();
    let token = token.expose().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        agent(&state, &["enroll", "--url", &url, "--token", &token])
    })
    .await
    .expect("enrol thread");
    assert!(
        out.status.success(),
        "enrol failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let id = printed
        .split_whitespace()
        .find(|w| w.starts_with("dev-"))
        .expect("device id printed");
    DeviceId::parse(id.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .expect("device id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_agent_enrols_and_its_batch_reaches_the_queue_with_its_placement() {
    let stack = Stack::start("agent-e2e").await;
    let state = state_dir("agent-e2e");
    let device = enroll(&stack, &state).await;

    let s = state.clone();
    let out = tokio::task::spawn_blocking(move || agent(&s, &["run", "--once"]))
        .await
        .expect("thread");
    assert!(
        out.status.success(),
        "run --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let queue = stack.ports.telemetry_queue();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(queue.receive(10, 1).await.expect("receive"));
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1, "one batch on the queue");
    let e = &got[0].envelope;
    assert_eq!(e.device_id, device);
    assert_eq!(
        (
            e.tenant_id.as_str(),
            e.client_id.as_str(),
            e.site_id.as_str()
        ),
        ("msp-field", "bakery", "shop-1")
    );
    assert_eq!(e.seq, 1);
    let sample = e.batch.rows().pop().expect("a sample");
    assert!(
        sample.cpu.is_some() && sample.memory.is_some(),
        "real CPU and memory readings"
    );
    assert!(!sample.filesystems.is_empty(), "real filesystems");
    assert!(e.batch.agent.boot_time > 0 && !e.batch.agent.kernel.is_empty());

    let st = status(&state);
    assert_eq!(st["device_id"], device.as_str());
    assert_eq!(st["spool_batches"], 0);
    assert_eq!(st["sent"], 1);
    assert!(st["last_successful_send"].is_string());
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_backend_is_down_the_agent_spools_and_then_delivers_everything_once_in_order() {
    let mut stack = Stack::start("agent-outage").await;
    let state = state_dir("agent-outage");
    let device = enroll(&stack, &state).await;
    let addr = stack.runtime.addr();

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

    // Up and delivering.
    let wait_for = |pred: &dyn Fn(&serde_json::Value) -> bool, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let st = status(&state);
            if pred(&st) {
                return st;
            }
            assert!(Instant::now() < deadline, "timed out; last status {st}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(&|st| st["sent"].as_u64() >= Some(1), 30);

    // The backend goes away; the agent keeps sampling into its spool.
    let runtime = std::mem::replace(
        &mut stack.runtime,
        vigie_local::LocalRuntime::start(
            &stack.ports,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .expect("placeholder runtime"),
    );
    runtime.stop().await;
    let down = wait_for(&|st| st["spool_batches"].as_u64() >= Some(4), 30);
    assert!(
        down["last_error"].is_string(),
        "the outage is visible in status: {down}"
    );

    // It comes back on the same address; the spool drains.
    stack.runtime = vigie_local::LocalRuntime::start(&stack.ports, addr)
        .await
        .expect("restart on the same port");
    let drained = wait_for(&|st| st["spool_batches"].as_u64() == Some(0), 90);
    let exit = terminate(&mut child);
    assert!(exit.success(), "clean stop on SIGTERM: {exit}");
    let final_status = status(&state);
    let delivered = final_status["sent"].as_u64().expect("sent")
        + final_status["replay_acknowledged"].as_u64().unwrap_or(0);
    assert!(drained["sent"].as_u64() >= Some(5));

    // Every batch arrived exactly once, in order.
    let queue = stack.ports.telemetry_queue();
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seqs.len() as u64) < delivered && Instant::now() < deadline {
        for m in queue.receive(10, 1).await.expect("receive") {
            assert_eq!(m.envelope.device_id, device);
            seqs.push(m.envelope.seq);
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
    }
    let expected: Vec<u64> = (1..=delivered).collect();
    assert_eq!(
        seqs, expected,
        "each spooled batch exactly once, in sequence order"
    );
    // Nothing more is waiting.
    assert!(queue.receive(10, 1).await.expect("receive").is_empty());
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_agent_watches_what_its_configuration_plans_and_its_collectors_show_per_device() {
    use vigie_domain::protocol::{AgentConfig, BackupSource, CollectPlan};
    // Ingestion only at first, so the batches wait on the queue for the test to read.
    let stack = Stack::start("agent-watch").await;
    let state = state_dir("agent-watch");
    let device = enroll(&stack, &state).await;
    let tenant = placement("msp-field", "bakery", "shop-1").tenant;

    // A real status file the backup job wrote, and a restic job although restic is not
    // installed here: the collector must say so rather than stay silent.
    assert!(
        Command::new("sh")
            .args(["-c", "command -v restic"])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true),
        "this test expects restic to be absent"
    );
    let status_file = state.join("nightly.status");
    std::fs::write(&status_file, "FAILED: NAS unreachable\n").expect("status file");
    let config = AgentConfig {
        sample_interval_s: 5,
        send_interval_s: 5,
        heartbeat_s: 300,
        collect: CollectPlan {
            backups: vec![
                BackupSource::StatusFile {
                    job: "nightly".into(),
                    path: status_file.display().to_string(),
                },
                BackupSource::Restic {
                    job: "offsite".into(),
                    repository: "/srv/restic".into(),
                    password_file: None,
                },
            ],
            ..CollectPlan::default()
        },
    };
    assert!(
        stack
            .ports
            .devices()
            .set_config(&tenant, &device, &config)
            .await
            .expect("config")
    );

    let log_path = state.join("agent.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(agent_binary())
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
        .stderr(log)
        .spawn()
        .expect("agent starts");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // A failed assertion must not leave the agent running.
    struct Running(Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Running(child);

    // The finding reaches the queue with the batch.
    let queue = stack.ports.telemetry_queue();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut backups = Vec::new();
    let mut sent_statuses = Vec::new();
    // Every collector reports once its first run is done (`updates` reads apt: the slowest).
    while (backups.len() < 2 || !sent_statuses.contains(&"updates".to_owned()))
        && Instant::now() < deadline
    {
        for m in queue.receive(10, 1).await.expect("receive") {
            assert_eq!(m.envelope.device_id, device);
            sent_statuses.extend(
                m.envelope
                    .batch
                    .collectors
                    .iter()
                    .map(|c| c.collector.clone()),
            );
            for f in &m.envelope.batch.findings {
                if let vigie_domain::telemetry::Finding::Backup(b) = f {
                    backups.push(b.clone());
                }
            }
            queue.delete(&m.receipt_handle).await.expect("delete");
        }
    }
    let nightly = backups
        .iter()
        .find(|b| b.job == "nightly")
        .unwrap_or_else(|| panic!("no status-file finding delivered; agent log:\n{}", log()));
    assert_eq!(
        (nightly.status.as_str(), nightly.message.as_deref()),
        ("failed", Some("NAS unreachable"))
    );
    let offsite = backups
        .iter()
        .find(|b| b.job == "offsite")
        .expect("the restic job's finding");
    assert_eq!(offsite.status.as_str(), "unknown");

    // Then the tenant API over the same tables: the device's collector statuses show there.
    let exit = terminate(&mut child.0);
    assert!(exit.success(), "clean stop: {exit}");
    let own = crate::api::local_issuer();
    let api = vigie_local::LocalRuntime::start_with(
        &stack.ports,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        &vigie_local::RuntimeOptions {
            api: Some(vigie_local::ApiAuth::own(&own)),
            ..vigie_local::RuntimeOptions::default()
        },
    )
    .await
    .expect("API runtime");
    let admin = crate::api::mint(&own, vigie_auth::Role::MspAdmin, Some(&tenant), None);
    let answer = crate::stack::send(
        "GET",
        format!("{}/v1/devices/{device}", api.url()),
        vec![("authorization".into(), format!("Bearer {admin}"))],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let collectors = answer.json["collectors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of = |name: &str| {
        collectors
            .iter()
            .find(|c| c["collector"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of("backups")["state"], "missing_tool", "{collectors:?}");
    assert_eq!(
        of("backups")["detail"],
        "offsite: restic is not installed",
        "{collectors:?}"
    );
    assert!(of("backups")["at_ms"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(of("services")["state"], "not_applicable");
    assert_eq!(of("certificates")["state"], "not_applicable");
    assert!(
        ["ok", "missing_tool"].contains(&of("updates")["state"].as_str().unwrap_or("")),
        "{collectors:?}"
    );
    api.stop().await;

    // The agent's own `status` shows the same.
    let st = status(&state);
    let local = st["collectors"].as_array().cloned().unwrap_or_default();
    assert!(
        local
            .iter()
            .any(|c| c["collector"] == "backups" && c["state"] == "missing_tool"),
        "{st}"
    );
    let _ = std::fs::remove_dir_all(&state);
}
