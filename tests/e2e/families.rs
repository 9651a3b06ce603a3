//! The ten alert families end to end: for each, the real agent reads the family's real input
//! (files under a fixture root given with `--root`, or this machine itself), its batches go
//! through ingestion and the evaluator under the family's built-in template, and a signed
//! webhook arrives saying what happened, with the family, severity, subject and detail.
//!
//! One pipeline serves all families, each in its own tenant (so no family sees another's
//! rules) and its own task, so the whole module takes about as long as its slowest family.
//! Templates are applied as they ship, with overrides only where the field's defaults wait
//! minutes or hours (`for_s`, days) or where a rule needs its list (services, jobs, targets).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigie_domain::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity};
use vigie_domain::enrollment::Placement;
use vigie_domain::ids::{DeviceId, TenantId};
use vigie_domain::policy::{Policy, Scope};
use vigie_domain::protocol::{AgentConfig, CollectPlan};
use vigie_domain::templates::{Overrides, template};
use vigie_local::webhook_sink::WebhookSink;

use crate::agent::agent_binary;
use crate::stack::{Stack, now_ms, placement};

const SECRET: &str = "whsec_families_secret_0123";

/// Every watcher of the agent: a family switches off those it does not need, so that ten
/// agents watching every second do not load the machine (`apt-get -s` costs seconds of CPU).
const WATCHERS: [&str; 9] = [
    "services",
    "backups",
    "certificates",
    "updates",
    "auth",
    "malware",
    "accounts",
    "smart",
    "neighbours",
];

/// A fixture machine root for one family.
fn fixture_root(family: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("vigie-root-{}", vigie_tests::unique_prefix(family)));
    std::fs::create_dir_all(&dir).expect("root");
    dir
}

/// Writes a file below `root` atomically (a collector never reads half of it).
fn put(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    let tmp = path.with_extension("vigie-tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
}

/// Appends lines to a log below `root`, as a daemon does.
fn append(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("append");
}

/// (year, month, day, hour, minute, second) of Unix ms, UTC.
fn utc(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = ms.div_euclid(86_400_000);
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    // Civil from days (March-based eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// A syslog time stamp (`Nov 21 11:58:03`) of Unix ms, UTC (the agents run with `TZ=UTC`).
fn syslog_stamp(ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, m, d, h, mi, s) = utc(ms);
    format!("{} {d:>2} {h:02}:{mi:02}:{s:02}", MONTHS[m as usize - 1])
}

/// The agent process; killed if a failed assertion unwinds past it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One family's tenant, device, agent and webhook.
struct Family {
    name: &'static str,
    tenant: TenantId,
    device: DeviceId,
    state: PathBuf,
    log: PathBuf,
    sink: WebhookSink,
    seen: Vec<AlertEvent>,
    agent: Option<Running>,
}

/// How one family is set up.
struct Setup {
    name: &'static str,
    template: &'static str,
    /// Template overrides, as the tenant API takes them.
    overrides: Value,
    /// Whether the template is applied to the whole tenant or to the client company.
    client_scope: bool,
    /// `--root`: a fixture tree, or this machine (`None`).
    root: Option<PathBuf>,
    /// The watchers the family needs; the others are switched off on the device.
    watchers: &'static [&'static str],
}

impl Family {
    async fn start(stack: &Stack, setup: Setup) -> Self {
        let name = setup.name;
        let p: Placement = placement(&format!("msp-{name}"), "client-a", "site-a");
        stack.seed(&p).await;
        let tenant = p.tenant.clone();
        let sink = WebhookSink::start(SECRET, 200).await.expect("sink");
        // Each family checks its own notification, so none waits to be grouped.
        stack.webhook_channel(&tenant, &sink, SECRET, 0).await;

        let overrides: Overrides =
            serde_json::from_value(setup.overrides).expect("overrides shape");
        let rules = template(setup.template)
            .expect("template")
            .instantiate(&overrides)
            .unwrap_or_else(|e| panic!("{name}: template overrides refused: {e}"));
        let scope = if setup.client_scope {
            Scope::Client {
                client: p.client.clone(),
            }
        } else {
            Scope::Tenant
        };
        stack
            .ports
            .policies()
            .put(&tenant, &Policy { scope, rules }, now_ms())
            .await
            .expect("policy");

        let state = crate::agent::state_dir(&format!("families-{name}"));
        let (_, token) = stack.token(&p, 1).await;
        let (url, token, dir) = (stack.url(), token.expose().to_owned(), state.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(agent_binary())
                .args(["enroll", "--url", &url, "--token", &token, "--state-dir"])
                .arg(&dir)
                .output()
                .expect("agent runs")
        })
        .await
        .expect("enrol thread");
        assert!(
            out.status.success(),
            "{name}: enrol failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = DeviceId::parse(String::from_utf8_lossy(&out.stdout).trim())
            .expect("device id printed");

        // Only the watchers this family needs (the command line shortens the cadences further
        // than a configuration may).
        let config = AgentConfig {
            sample_interval_s: AgentConfig::MIN_INTERVAL_S,
            send_interval_s: AgentConfig::MIN_INTERVAL_S,
            heartbeat_s: 300,
            collect: CollectPlan {
                disabled: WATCHERS
                    .iter()
                    .filter(|w| !setup.watchers.contains(w))
                    .map(|w| (*w).to_owned())
                    .collect(),
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

        let log = state.join("agent.log");
        let mut cmd = Command::new(agent_binary());
        cmd.args([
            "run",
            "--sample-interval",
            "1",
            "--send-interval",
            "1",
            "--watch-every",
            "1",
            "--state-dir",
        ])
        .arg(&state)
        // Syslog time stamps carry no zone: the fixtures write UTC.
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
        if let Some(root) = &setup.root {
            cmd.arg("--root").arg(root);
        }
        let agent = Running(cmd.spawn().expect("agent starts"));
        Self {
            name,
            tenant,
            device,
            state,
            log,
            sink,
            seen: Vec::new(),
            agent: Some(agent),
        }
    }

    /// What went wrong, with what arrived and what the agent said.
    fn context(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let events: Vec<String> = self
            .seen
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} [{}] {:?} {:?}",
                    e.kind.as_str(),
                    e.rule_id,
                    e.severity.as_str(),
                    e.subject,
                    e.value,
                    e.detail
                )
            })
            .collect();
        format!(
            "[{}] webhooks received: {events:#?}\nagent log (last lines first):\n{}",
            self.name,
            tail.join("\n")
        )
    }

    /// Waits for a delivered event matching `pred`, checking every webhook's signature.
    async fn wait_for(
        &mut self,
        what: &str,
        secs: u64,
        pred: impl Fn(&AlertEvent) -> bool,
    ) -> AlertEvent {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut checked = 0;
        loop {
            let all = self.sink.received();
            for r in &all[checked..] {
                assert!(r.signature_valid, "[{}] an unsigned webhook", self.name);
                let body: Value = serde_json::from_slice(&r.body).expect("json");
                let event: AlertEvent =
                    serde_json::from_value(body["event"].clone()).expect("alert event");
                if !self.seen.iter().any(|e| e.event_id == event.event_id) {
                    self.seen.push(event);
                }
            }
            checked = all.len();
            if let Some(e) = self.seen.iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "[{}] no webhook for {what} within {secs} s\n{}",
                self.name,
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for `rule`'s alert to open, and checks what every family's event carries.
    async fn opened(&mut self, family: AlertFamily, rule: &str, secs: u64) -> AlertEvent {
        let e = self
            .wait_for(&format!("{rule} opening"), secs, |e| {
                e.kind == AlertEventKind::Opened && e.rule_id == rule
            })
            .await;
        assert_eq!(e.family, family, "[{}] family", self.name);
        assert_eq!(
            (&e.tenant_id, &e.device_id),
            (&self.tenant, &self.device),
            "[{}] the tenant's device",
            self.name
        );
        e
    }

    /// Waits until the agent has delivered at least `n` batches.
    async fn delivered(&self, n: u64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let state = self.state.clone();
            let out = tokio::task::spawn_blocking(move || {
                Command::new(agent_binary())
                    .args(["status", "--json", "--state-dir"])
                    .arg(&state)
                    .output()
                    .expect("status runs")
            })
            .await
            .expect("status thread");
            let st: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if st["sent"].as_u64().is_some_and(|s| s >= n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "[{}] fewer than {n} batches delivered: {st}\n{}",
                self.name,
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until a watcher has finished its first run (its state file exists).
    async fn watcher_ran(&self, state_file: &str, secs: u64) {
        let path = self.state.join("watch").join(state_file);
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "[{}] {state_file} never written\n{}",
                self.name,
                self.context()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the agent with SIGTERM. It may be waiting for a watcher's tool (`apt-get -s`
    /// takes seconds, more on a loaded machine), which is bounded by the tools' 30 s limit.
    async fn stop(mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &agent.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(40);
            let status = loop {
                if let Some(status) = agent.0.try_wait().expect("wait") {
                    break status;
                }
                assert!(
                    Instant::now() < deadline,
                    "[{}] no stop within 40 s of SIGTERM\n{}",
                    self.name,
                    self.context()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert!(status.success(), "[{}] clean stop: {status}", self.name);
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn detail(e: &AlertEvent) -> &str {
    e.detail.as_deref().unwrap_or("")
}

/// Family 1: a temperature sensor rising past the warning, then the critical level.
async fn overheating(stack: Arc<Stack>) {
    let root = fixture_root("overheating");
    let chip = "sys/class/hwmon/hwmon0";
    put(&root, &format!("{chip}/name"), "coretemp\n");
    put(&root, &format!("{chip}/temp1_label"), "Package id 0\n");
    put(&root, &format!("{chip}/temp1_crit"), "100000\n");
    put(&root, &format!("{chip}/temp1_input"), "45000\n");
    let mut f = Family::start(
        &stack,
        Setup {
            name: "overheating",
            template: "overheating",
            overrides: json!({"temperature": {"warning": {"for_s": 0}, "critical": {"for_s": 0}}}),
            client_scope: false,
            root: Some(root.clone()),
            watchers: &[],
        },
    )
    .await;
    f.delivered(2, 30).await;
    put(&root, &format!("{chip}/temp1_input"), "85000\n");
    let e = f
        .opened(AlertFamily::Overheating, "tpl-overheating-temperature", 30)
        .await;
    assert_eq!(
        (e.severity, e.subject.as_str(), e.value, e.threshold),
        (Severity::Warning, "coretemp/Package id 0", 85.0, 80.0),
        "{}",
        f.context()
    );
    put(&root, &format!("{chip}/temp1_input"), "95000\n");
    let alert = e.alert_id.clone();
    let raised = f
        .wait_for("the critical level", 30, |e| {
            e.alert_id == alert && e.kind == AlertEventKind::SeverityRaised
        })
        .await;
    assert_eq!(
        (raised.severity, raised.value, raised.threshold),
        (Severity::Critical, 95.0, 90.0)
    );
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Family 2: a service that must run is not running (no systemd here: the process list
/// says so), then a real process of that name starts and the alert resolves.
async fn device_down(stack: Arc<Stack>) {
    assert!(
        !Path::new("/run/systemd/system").exists(),
        "this test expects a machine without systemd (services found by process)"
    );
    let service = format!("vigie-svc{}", std::process::id() % 100_000);
    let mut f = Family::start(
        &stack,
        Setup {
            name: "device-down",
            template: "device-down",
            overrides: json!({"service": {"subjects": [service], "for_s": 0}}),
            client_scope: true,
            root: None,
            watchers: &["services"],
        },
    )
    .await;
    let e = f
        .opened(AlertFamily::DeviceDown, "tpl-device-down-service", 40)
        .await;
    assert_eq!(
        (e.severity, e.subject.as_str()),
        (Severity::Critical, service.as_str())
    );
    assert_eq!(
        detail(&e),
        format!("{service} is inactive (process)"),
        "{}",
        f.context()
    );

    // The service starts: a real process with that program name.
    let dir = fixture_root("device-down-bin");
    let program = dir.join(&service);
    std::fs::copy("/bin/sleep", &program).expect("copy sleep");
    let mut process = Running(
        Command::new(&program)
            .arg("300")
            .spawn()
            .expect("service starts"),
    );
    let alert = e.alert_id.clone();
    let resolved = f
        .wait_for("the service's resolution", 40, |e| {
            e.alert_id == alert && e.kind == AlertEventKind::Resolved
        })
        .await;
    assert_eq!(resolved.family, AlertFamily::DeviceDown);
    let _ = process.0.kill();
    f.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Family 3: an interface carrying ~87 % of its 10 Mb/s link: counters advanced by the test.
async fn network_saturated(stack: Arc<Stack>) {
    let root = fixture_root("network");
    put(&root, "sys/class/net/eth0/speed", "10\n");
    let net_dev = |rx: u64, tx: u64| {
        format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n  \
             eth0: {rx} 1000 0 0 0 0 0 0 {tx} 1000 0 0 0 0 0 0\n"
        )
    };
    put(&root, "proc/net/dev", &net_dev(1_000_000, 500_000));
    // 87.5 % of 10 Mb/s: 1,093,750 bytes a second, received and sent together.
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (root, running) = (root.clone(), running.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while running.load(Ordering::SeqCst) {
                let bytes = (start.elapsed().as_secs_f64() * 1_093_750.0) as u64;
                put(
                    &root,
                    "proc/net/dev",
                    &net_dev(1_000_000 + bytes * 4 / 5, 500_000 + bytes / 5),
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut f = Family::start(
        &stack,
        Setup {
            name: "network",
            template: "network-saturated",
            overrides: json!({"utilisation": {"warning": {"for_s": 0}, "critical": {"for_s": 0}}}),
            client_scope: false,
            root: Some(root.clone()),
            watchers: &[],
        },
    )
    .await;
    let e = f
        .opened(
            AlertFamily::NetworkSaturated,
            "tpl-network-saturated-utilisation",
            40,
        )
        .await;
    running.store(false, Ordering::SeqCst);
    let _ = writer.join();
    assert_eq!(
        (e.severity, e.subject.as_str()),
        (Severity::Warning, "eth0")
    );
    assert!(
        (80.0..95.0).contains(&e.value) && e.threshold == 80.0,
        "{e:?}\n{}",
        f.context()
    );
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Used % of this machine's root filesystem, as `df` sees it.
fn root_used_pct() -> f64 {
    let out = Command::new("df")
        .args(["-P", "/"])
        .output()
        .expect("df runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text
        .lines()
        .nth(1)
        .expect("df line")
        .split_whitespace()
        .collect();
    let used: f64 = fields[2].parse().expect("used");
    let available: f64 = fields[3].parse().expect("available");
    used / (used + available) * 100.0
}

/// Family 4: this machine's real root filesystem above a warning level set just below its
/// usage.
async fn resources(stack: Arc<Stack>) {
    let used = root_used_pct();
    let warning = (used - 5.0).max(0.01);
    let mut f = Family::start(
        &stack,
        Setup {
            name: "resources",
            template: "resources",
            overrides: json!({"disk": {
                "warning": {"threshold": warning, "for_s": 0},
                "critical": {"threshold": 99.99, "for_s": 0}}}),
            client_scope: true,
            root: None,
            watchers: &[],
        },
    )
    .await;
    let e = f
        .wait_for("the root filesystem's alert", 40, |e| {
            e.kind == AlertEventKind::Opened
                && e.rule_id == "tpl-resources-disk"
                && e.subject == "/"
        })
        .await;
    assert_eq!(e.family, AlertFamily::Resources);
    assert_eq!(e.severity, Severity::Warning, "{}", f.context());
    assert_eq!(e.threshold, warning);
    assert!(
        (e.value - used).abs() < 2.0,
        "{} % used, df says {used} %",
        e.value
    );
    f.stop().await;
}

/// Family 5: a backup job's status file says OK, then FAILED.
async fn backup_failure(stack: Arc<Stack>) {
    let root = fixture_root("backup");
    put(&root, "var/backups/nightly.status", "OK\n");
    let mut f = Family::start(
        &stack,
        Setup {
            name: "backup",
            template: "backup-failure",
            overrides: json!({"failed": {"sources": [{"source": "status_file", "job": "nightly",
                "path": "/var/backups/nightly.status"}]}}),
            client_scope: false,
            root: Some(root.clone()),
            watchers: &["backups"],
        },
    )
    .await;
    f.delivered(2, 30).await;
    put(
        &root,
        "var/backups/nightly.status",
        "FAILED: NAS unreachable\n",
    );
    let e = f
        .opened(AlertFamily::BackupFailure, "tpl-backup-failure-failed", 40)
        .await;
    assert_eq!(
        (e.severity, e.subject.as_str()),
        (Severity::Critical, "nightly")
    );
    assert!(
        detail(&e).starts_with("backup nightly failed: NAS unreachable; last success 0 h ago"),
        "{}",
        f.context()
    );
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// A real TLS endpoint on 127.0.0.1 presenting a certificate for `localhost` that expires at
/// `not_after_ms`; serves until the process ends.
fn tls_endpoint(not_after_ms: i64) -> u16 {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "portal.example");
    params.not_after =
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_millis(not_after_ms as u64);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            let _ = conn.complete_io(&mut tcp);
        }
    });
    port
}

/// Family 6: a TLS endpoint whose certificate expires in 10 days: the 14-day reminder.
async fn certificate_expiry(stack: Arc<Stack>) {
    let not_after = now_ms() + 10 * 86_400_000 + 3_600_000;
    let port = tls_endpoint(not_after);
    let mut f = Family::start(
        &stack,
        Setup {
            name: "certificate",
            template: "certificate-expiry",
            overrides: json!({
                "expiry": {"targets": [{"source": "endpoint", "host": "127.0.0.1", "port": port,
                    "sni": "localhost"}]},
                // Self-signed: the chain does not verify, which is another rule's news.
                "validity": {"enabled": false}}),
            client_scope: true,
            root: None,
            watchers: &["certificates"],
        },
    )
    .await;
    let e = f
        .opened(
            AlertFamily::CertificateExpiry,
            "tpl-certificate-expiry-expiry",
            40,
        )
        .await;
    let target = format!("127.0.0.1:{port}");
    assert_eq!(
        (e.severity, e.subject.as_str(), e.threshold),
        (Severity::Warning, target.as_str(), 14.0),
        "{}",
        f.context()
    );
    assert!((10.0..10.1).contains(&e.value), "days left: {}", e.value);
    assert!(
        detail(&e).starts_with(&format!("certificate of {target} expires in 10 days (")),
        "{}",
        f.context()
    );
    f.stop().await;
}

/// Family 7: ten failed SSH logins from one address appended to the auth log.
async fn intrusion(stack: Arc<Stack>) {
    let root = fixture_root("intrusion");
    let earlier = syslog_stamp(now_ms() - 3_600_000);
    put(
        &root,
        "var/log/auth.log",
        &format!(
            "{earlier} web1 sshd[4000]: Accepted publickey for alice from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:x\n"
        ),
    );
    let mut f = Family::start(
        &stack,
        Setup {
            name: "intrusion",
            template: "intrusion",
            overrides: json!({}),
            client_scope: false,
            root: Some(root.clone()),
            watchers: &["auth"],
        },
    )
    .await;
    // The first run only learns what the log holds.
    f.watcher_ran("auth.json", 30).await;
    let mut lines = String::new();
    for i in 0..10 {
        lines.push_str(&format!(
            "{} web1 sshd[{}]: Failed password for root from 203.0.113.9 port {} ssh2\n",
            syslog_stamp(now_ms()),
            4100 + i,
            52_000 + i
        ));
    }
    append(&root, "var/log/auth.log", &lines);
    let e = f
        .opened(AlertFamily::Intrusion, "tpl-intrusion-failed-logins", 40)
        .await;
    assert_eq!(
        (e.severity, e.subject.as_str(), e.value, e.threshold),
        (Severity::Warning, "203.0.113.9", 10.0, 10.0),
        "{}",
        f.context()
    );
    assert_eq!(
        detail(&e),
        "10 failed logins from 203.0.113.9 within 5 min",
        "{}",
        f.context()
    );
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Family 8: ClamAV's scan log reports a threat in a file that is there.
async fn malware(stack: Arc<Stack>) {
    let root = fixture_root("malware");
    std::fs::create_dir_all(root.join("var/lib/clamav")).expect("database dir");
    put(
        &root,
        "home/alice/invoice.pdf.exe",
        "MZ not really a program\n",
    );
    put(
        &root,
        "var/log/clamav/clamscan.log",
        "\n-------------------------------------------------------------------------------\n\n\
         /home/alice/notes.txt: OK\n",
    );
    let mut f = Family::start(
        &stack,
        Setup {
            name: "malware",
            template: "malware",
            overrides: json!({}),
            client_scope: true,
            root: Some(root.clone()),
            watchers: &["malware"],
        },
    )
    .await;
    f.watcher_ran("malware.json", 30).await;
    append(
        &root,
        "var/log/clamav/clamscan.log",
        "\n-------------------------------------------------------------------------------\n\n\
         /home/alice/invoice.pdf.exe: Win.Trojan.Agent-1 FOUND\n\n\
         ----------- SCAN SUMMARY -----------\nInfected files: 1\n",
    );
    let e = f
        .opened(AlertFamily::Malware, "tpl-malware-threat", 40)
        .await;
    assert_eq!(
        (e.severity, e.subject.as_str()),
        (Severity::Critical, "clamav"),
        "{}",
        f.context()
    );
    assert!(
        detail(&e).starts_with(
            "clamav reports infected: Win.Trojan.Agent-1 in /home/alice/invoice.pdf.exe"
        ),
        "{}",
        f.context()
    );
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Security updates apt says this machine has pending (`None` without apt), read the way
/// the agent reads them: `Inst` lines from a `-security` origin.
fn apt_security_pending() -> Option<usize> {
    let out = Command::new("apt-get")
        .args(["-s", "-o", "Debug::NoLocking=1", "upgrade"])
        .env("LC_ALL", "C")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter(|l| {
                l.split_once('(')
                    .is_some_and(|(_, o)| o.contains("-security"))
            })
            .count(),
    )
}

/// Family 9: the machine says a reboot is required (Debian's flag file); the rule waits 0
/// days. Where this machine really has security updates pending (apt), the security rule,
/// also at 0 days, must say so too.
async fn updates(stack: Arc<Stack>) {
    let root = fixture_root("updates");
    put(
        &root,
        "var/run/reboot-required",
        "*** System restart required ***\n",
    );
    let security = tokio::task::spawn_blocking(apt_security_pending)
        .await
        .expect("apt thread");
    let mut f = Family::start(
        &stack,
        Setup {
            name: "updates",
            template: "updates",
            overrides: json!({"reboot": {"warning": 0}, "security": {"warning": 0}}),
            client_scope: false,
            root: Some(root.clone()),
            watchers: &["updates"],
        },
    )
    .await;
    let e = f
        .opened(AlertFamily::Updates, "tpl-updates-reboot", 60)
        .await;
    assert_eq!(e.severity, Severity::Warning, "{}", f.context());
    assert!(
        ["apt", "dnf", "zypper"].contains(&e.subject.as_str()),
        "the package manager: {}",
        e.subject
    );
    assert!(
        detail(&e).ends_with("; reboot required; reboot required for 0 days"),
        "{}",
        f.context()
    );
    match security {
        Some(n) if n > 0 => {
            let e = f
                .opened(AlertFamily::Updates, "tpl-updates-security", 30)
                .await;
            assert_eq!((e.severity, e.subject.as_str()), (Severity::Warning, "apt"));
            assert!(
                detail(&e).contains(&format!(" ({n} security, "))
                    && detail(&e).contains("; security updates pending for 0 days"),
                "{n} security updates: {}",
                f.context()
            );
        }
        _ => eprintln!("family updates: no security update pending here, that path not fed"),
    }
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Family 10: a user added to the sudo group after the first (learning) run.
async fn accounts(stack: Arc<Stack>) {
    let root = fixture_root("accounts");
    let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                  alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
                  mallory:x:1001:1001:Mallory:/home/mallory:/bin/bash\n";
    put(&root, "etc/passwd", passwd);
    put(
        &root,
        "etc/group",
        "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\nmallory:x:1001:\n",
    );
    put(
        &root,
        "etc/shadow",
        "root:*:20000:0:99999:7:::\nalice:$6$a$b:20000:0:99999:7:::\nmallory:$6$c$d:20000:0:99999:7:::\n",
    );
    let mut f = Family::start(
        &stack,
        Setup {
            name: "accounts",
            template: "accounts",
            overrides: json!({}),
            client_scope: true,
            root: Some(root.clone()),
            watchers: &["accounts"],
        },
    )
    .await;
    f.watcher_ran("accounts.json", 30).await;
    put(
        &root,
        "etc/group",
        "root:x:0:\nsudo:x:27:alice,mallory\nalice:x:1000:\nmallory:x:1001:\n",
    );
    let e = f
        .opened(AlertFamily::Accounts, "tpl-accounts-new-admin", 40)
        .await;
    assert_eq!(
        (e.severity, e.subject.as_str()),
        (Severity::Warning, "mallory"),
        "{}",
        f.context()
    );
    assert!(detail(&e).contains("new administrator"), "{}", f.context());
    f.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_family_from_its_real_input_to_a_delivered_webhook() {
    let started = Instant::now();
    let stack = Arc::new(Stack::start_pipeline("families").await);
    eprintln!(
        "families: stack up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut tasks = Vec::new();
    macro_rules! family {
        ($name:literal, $f:ident) => {
            let stack = stack.clone();
            let task = tokio::spawn(async move {
                let t = Instant::now();
                $f(stack).await;
                t.elapsed()
            });
            tasks.push(($name, task));
        };
    }
    family!("1 overheating", overheating);
    family!("2 device down", device_down);
    family!("3 network saturated", network_saturated);
    family!("4 resources", resources);
    family!("5 backup failure", backup_failure);
    family!("6 certificate expiry", certificate_expiry);
    family!("7 intrusion", intrusion);
    family!("8 malware", malware);
    family!("9 updates", updates);
    family!("10 accounts", accounts);
    let mut failed = Vec::new();
    for (name, task) in tasks {
        match task.await {
            Ok(took) => eprintln!("family {name}: ok in {:.1} s", took.as_secs_f64()),
            Err(e) => {
                let message = match e.try_into_panic() {
                    Ok(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                failed.push(format!("family {name} FAILED: {message}"));
            }
        }
    }
    eprintln!(
        "families: {} of 10 passed in {:.1} s",
        10 - failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
