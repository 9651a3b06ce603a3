//! `cargo xtask demo [--once]`: the product's main job on this machine.
//!
//! Brings up the emulator, provisions every resource, creates a demo tenant, client company and
//! site with an enrolment token, enrols the real agent running on this machine, and runs the
//! round trip: a policy this machine crosses opens an alert, a local webhook receiver gets the
//! signed notification, the policy is relaxed, the alert resolves and the recovery is
//! delivered. Batches are shown as they are evaluated. `--once` exits after the round trip.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use vigie_aws::adapters::AwsPorts;
use vigie_aws::config::{AwsClients, sdk_config_for_endpoint};
use vigie_aws::provision::provision;
use vigie_aws::resources::ResourceNames;
use vigie_domain::alert::AlertFamily;
use vigie_domain::clock::{Clock, SystemClock};
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::envelope::BatchEnvelope;
use vigie_domain::ids::{ClientId, SiteId, TenantId};
use vigie_domain::notification::{
    ChannelFilter, ChannelId, ChannelKind, NotificationChannel, WebhookSecret,
};
use vigie_domain::policy::{EffectivePolicy, Metric, Policy, Rule, RuleId, Scope};
use vigie_domain::rules::{Direction, Level, Threshold};
use vigie_emulator::Emulator;
use vigie_local::LocalRuntime;
use vigie_local::webhook_sink::WebhookSink;

use crate::util::root;

struct Options {
    once: bool,
    sample_interval: u32,
    send_interval: u32,
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut options = Options {
        once: false,
        sample_interval: 2,
        send_interval: 4,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => options.once = true,
            "--sample-interval" => options.sample_interval = it.next().context("value")?.parse()?,
            "--send-interval" => options.send_interval = it.next().context("value")?.parse()?,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask demo [--once] [--sample-interval S] [--send-interval S]"
            ),
        }
    }
    let agent = crate::agent::build(crate::agent::HOST_TARGET)?;
    say(
        "starting the local AWS emulator (moto server; first run installs it into localstack/.venv)",
    );
    let emulator = Emulator::start(&root()).context("starting the emulator")?;
    say(&format!("emulator listening at {}", emulator.endpoint()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(demo(&options, emulator.endpoint(), &agent));
    drop(emulator);
    result
}

/// The emulator to use: the one named by `VIGIE_EMULATOR_URL` (e.g. LocalStack in Docker), or a
/// moto server started (and, the first time, installed) for this run.
pub enum EmulatorHandle {
    External(String),
    Started(Emulator),
}

impl EmulatorHandle {
    pub fn endpoint(&self) -> &str {
        match self {
            Self::External(url) => url,
            Self::Started(e) => e.endpoint(),
        }
    }
}

pub fn start_emulator() -> anyhow::Result<EmulatorHandle> {
    if let Some(url) = vigie_emulator::endpoint_from_env() {
        say(&format!("using the emulator at {url} (VIGIE_EMULATOR_URL)"));
        return Ok(EmulatorHandle::External(url));
    }
    say(
        "starting the local AWS emulator (moto server; the first run installs it into localstack/.venv)",
    );
    let emulator = Emulator::start(&root()).context("starting the emulator")?;
    say(&format!("emulator listening at {}", emulator.endpoint()));
    Ok(EmulatorHandle::Started(emulator))
}

pub fn say(line: &str) {
    let t = SystemClock.now_ms();
    let secs = t / 1000 % 86_400;
    println!(
        "[{:02}:{:02}:{:02}] {line}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// The demo installation: every resource provisioned under `prefix`, a tenant, client company and
/// site, a single-use enrolment token, and the local runtime serving the ingestion function.
pub struct DemoStack {
    pub ports: AwsPorts,
    pub server: LocalRuntime,
    pub token: vigie_domain::enrollment::TokenPlaintext,
    /// A technician's token for the tenant API.
    pub technician: String,
}

pub async fn setup(endpoint: &str, prefix: &str) -> anyhow::Result<DemoStack> {
    let clients = AwsClients::from_config(&sdk_config_for_endpoint(endpoint).await);
    let names = ResourceNames::new(prefix);
    let provisioned = provision(&clients, &names).await.context("provisioning")?;
    say(&format!(
        "provisioned table {}, queues {} (+DLQ), {} (+DLQ) and {}, buckets {}, {}, {} (Object Lock)",
        provisioned.table_name,
        names.telemetry_queue(),
        names.notify_queue(),
        names.events_queue(),
        provisioned.reports_bucket,
        provisioned.spill_bucket,
        provisioned.audit_bucket,
    ));
    let ports = AwsPorts::connect(clients, names)
        .await
        .context("connecting")?;

    let now = SystemClock.now_ms();
    let placement = Placement {
        tenant: TenantId::parse("demo-msp")?,
        client: ClientId::parse("acme-dental")?,
        site: SiteId::parse("lyon-office")?,
    };
    let dir = ports.directory();
    dir.put_tenant(&Tenant::new(
        placement.tenant.clone(),
        "Demo MSP",
        now,
        Default::default(),
    ))
    .await?;
    dir.put_client(&ClientCompany {
        tenant: placement.tenant.clone(),
        id: placement.client.clone(),
        name: "ACME Dental".into(),
        created_ms: now,
    })
    .await?;
    dir.put_site(&Site {
        tenant: placement.tenant.clone(),
        client: placement.client.clone(),
        id: placement.site.clone(),
        name: "Lyon office".into(),
        time_zone: "Europe/Paris".into(),
        created_ms: now,
    })
    .await?;
    let (token, plaintext) =
        EnrollmentToken::issue(placement.clone(), now, now + 3_600_000, 1, "demo")?;
    ports.enrollment().create(&token).await?;
    say(&format!(
        "tenant demo-msp / client acme-dental / site lyon-office created; single-use enrolment token {} (expires in 1 h)",
        token.id
    ));

    let issuer = crate::api::local_issuer()?;
    let options = vigie_local::RuntimeOptions {
        policy_ttl: Duration::from_secs(2),
        api: Some(vigie_local::ApiAuth::own(&issuer)),
        ..vigie_local::RuntimeOptions::default()
    };
    let server =
        LocalRuntime::start_with(&ports, SocketAddr::from(([127, 0, 0, 1], 0)), &options).await?;
    say(&format!(
        "local runtime: ingestion at {0}/v1/agent, tenant API at {0}/v1, evaluator and notifier polling their queues",
        server.url()
    ));
    let technician = issuer.mint(
        &vigie_auth::Grant::new(
            "tech@demo-msp",
            vigie_auth::Role::Technician,
            Some(placement.tenant.clone()),
            None,
            Vec::new(),
        )?,
        Duration::from_secs(3600),
        now / 1000,
    )?;

    Ok(DemoStack {
        ports,
        server,
        token: plaintext,
        technician,
    })
}

async fn demo(options: &Options, endpoint: &str, agent: &std::path::Path) -> anyhow::Result<()> {
    let DemoStack {
        ports,
        server,
        token: plaintext,
        technician,
    } = setup(endpoint, "vigie-demo").await?;
    let state_dir = root().join(".vigie").join("demo-agent");
    let _ = std::fs::remove_dir_all(&state_dir);
    std::fs::create_dir_all(&state_dir)?;
    let enroll = Command::new(agent)
        .args([
            "enroll",
            "--url",
            &server.url(),
            "--token",
            plaintext.expose(),
            "--state-dir",
        ])
        .arg(&state_dir)
        .output()
        .context("running the agent")?;
    if !enroll.status.success() {
        bail!(
            "agent enrolment failed: {}{}",
            String::from_utf8_lossy(&enroll.stdout),
            String::from_utf8_lossy(&enroll.stderr)
        );
    }
    say(&format!(
        "agent enrolled: {}",
        String::from_utf8_lossy(&enroll.stdout).trim()
    ));

    let mut child = Command::new(agent)
        .args([
            "run",
            "--sample-interval",
            &options.sample_interval.to_string(),
            "--send-interval",
            &options.send_interval.to_string(),
            "--state-dir",
        ])
        .arg(&state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the agent")?;
    say(&format!(
        "agent running (pid {}), sampling every {} s and sending every {} s (the default is 60 s for both)",
        child.id(),
        options.sample_interval,
        options.send_interval
    ));

    let outcome = watch(&ports, &server, &technician, options, &mut child).await;
    stop_agent(&mut child);
    let status = Command::new(agent)
        .args(["status", "--state-dir"])
        .arg(&state_dir)
        .output();
    if let Ok(out) = status {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            say(&format!("agent status: {line}"));
        }
    }
    server.stop().await;
    outcome
}

/// The round trip: a policy this machine crosses, the signed webhook of the opening, the
/// policy relaxed, the webhook of the resolution; batches are shown as they are evaluated.
async fn watch(
    ports: &AwsPorts,
    server: &LocalRuntime,
    technician: &str,
    options: &Options,
    child: &mut Child,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timeline: Vec<(f64, String)> = Vec::new();
    let mut mark = |what: String| {
        say(&what);
        timeline.push((started.elapsed().as_secs_f64(), what));
    };
    let tenant = TenantId::parse("demo-msp")?;
    let (mount, used) = root_filesystem();
    let secret = WebhookSecret::generate();
    let sink = WebhookSink::start(std::str::from_utf8(secret.expose())?, 200).await?;
    let channel = NotificationChannel {
        id: ChannelId::parse("demo-webhook")?,
        tenant_id: tenant.clone(),
        name: "Demo ticketing webhook".into(),
        kind: ChannelKind::Webhook {
            url: sink.url(),
            secret,
        },
        filter: ChannelFilter::default(),
        group_wait_s: 0,
    };
    channel.validate()?;
    ports.save_channel(&channel).await?;
    mark(format!(
        "webhook receiver listening at {} (channel demo-webhook, HMAC-signed)",
        sink.url()
    ));
    let escalation = demo_escalation();
    escalation.validate()?;
    ports
        .escalations()
        .put_policy(&tenant, &escalation, now(), false)
        .await?;
    mark(
        "escalation policy demo-escalation: notify demo-webhook now, again after 15 min, then every 15 min up to 3 times, until someone acknowledges"
            .into(),
    );
    let warn_at = (used - 1.0).max(0.01);
    ports
        .policies()
        .put(&tenant, &disk_policy(Scope::Tenant, &mount, 90.0)?, now())
        .await?;
    let site = Scope::Site {
        client: ClientId::parse("acme-dental")?,
        site: SiteId::parse("lyon-office")?,
    };
    ports
        .policies()
        .put(&tenant, &disk_policy(site.clone(), &mount, warn_at)?, now())
        .await?;
    mark(format!(
        "policies applied: demo-msp disk {mount} warning above 90 %; site lyon-office overrides it with {warn_at:.2} % (this machine is at {used:.2} %)"
    ));
    let policies = vigie_domain::ports::PolicyStore::policies(&ports.policies(), &tenant).await?;
    for d in ports.devices().list(&tenant, None, None).await? {
        let p = &d.placement;
        let effective =
            EffectivePolicy::for_device(policies.iter(), &d.id, &p.client, &p.site, &d.tags);
        for (rule, scope) in &effective.rules {
            let vigie_domain::checks::Check::Threshold(check) = &rule.check else {
                continue;
            };
            let warning = check
                .threshold
                .warning
                .map_or("-".to_owned(), |l| format!("{:.2} %", l.threshold));
            mark(format!(
                "effective policy of {} ({}): rule {} on {} {}, warning above {warning}, from the {} level",
                d.id,
                d.hostname,
                rule.id,
                check.metric.as_str(),
                check.subject.as_deref().unwrap_or("(all)"),
                scope.key()
            ));
        }
    }

    let mut batches_rx = server.watch_batches();
    let mut batches = 0usize;
    let mut samples = 0usize;
    let mut metrics = BTreeSet::new();
    let mut seen = 0usize;
    let mut phase = Phase::WaitOpen;
    let deadline = Instant::now() + Duration::from_secs(u64::from(options.send_interval) * 10 + 90);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the agent exited unexpectedly ({status})");
        }
        if options.once && phase != Phase::Done && Instant::now() > deadline {
            bail!("the round trip did not finish in time (at {phase:?}, {batches} batches)");
        }
        tokio::select! {
            b = batches_rx.recv() => {
                if let Ok(e) = b {
                    print_batch(&e);
                    batches += 1;
                    samples += e.batch.len();
                    metrics.extend(e.batch.summary().metrics);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c => {
                say("Ctrl-C: stopping");
                break;
            }
        }
        let received = sink.received();
        for r in &received[seen..] {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let kind = body["event"]["kind"].as_str().unwrap_or("?").to_owned();
            let check = if r.signature_valid {
                "signature verified"
            } else {
                "BAD SIGNATURE"
            };
            mark(format!(
                "webhook received ({check}): {}",
                body["text"].as_str().unwrap_or("?")
            ));
            if !r.signature_valid {
                bail!("a webhook arrived with a signature that does not verify");
            }
            let escalation_step = (body["type"] == "escalation")
                .then(|| body["notice"]["step"].as_u64())
                .flatten();
            match (phase.clone(), kind.as_str()) {
                (Phase::WaitOpen, "opened") => {
                    let alert_id = body["event"]["alert_id"].as_str().unwrap_or("?").to_owned();
                    let opened_ms = body["event"]["opened_ms"].as_i64().unwrap_or(0);
                    mark(format!(
                        "alert {alert_id} opened; the escalation policy \"demo-escalation\" starts on it"
                    ));
                    phase = Phase::WaitStep(alert_id, opened_ms);
                }
                (Phase::WaitStep(alert_id, opened_ms), _) if escalation_step == Some(1) => {
                    let alert_id = alert_id.clone();
                    let acked = api_post(
                        &server.url(),
                        technician,
                        &format!("/v1/alerts/{alert_id}/acknowledge"),
                    )
                    .await?;
                    mark(format!(
                        "tenant API: POST /v1/alerts/{alert_id}/acknowledge → {} by {}",
                        acked["status"].as_str().unwrap_or("?"),
                        acked["acknowledged"]["by"].as_str().unwrap_or("?")
                    ));
                    let (work, _) = ports
                        .alert_work()
                        .work(&tenant, &alert_id, opened_ms)
                        .await?;
                    if let Some(esc) = work.escalation {
                        for line in &esc.trace {
                            mark(format!("escalation trace ({}): {}", line.action, line.text));
                        }
                        let stopped = matches!(
                            esc.state,
                            vigie_domain::escalation::EscalationState::Acknowledged { .. }
                        ) && esc.due_ms.is_none();
                        if !stopped {
                            bail!(
                                "the acknowledgement did not stop the escalation: {:?}",
                                esc.state
                            );
                        }
                        mark(
                            "escalation stopped by the acknowledgement: no further step is due"
                                .into(),
                        );
                    }
                    ports
                        .policies()
                        .put(&tenant, &disk_policy(site.clone(), &mount, 100.0)?, now())
                        .await?;
                    mark(format!(
                        "site policy relaxed: disk {mount} warning above 100 % (nothing can cross it)"
                    ));
                    phase = Phase::WaitResolve;
                }
                (Phase::WaitResolve, "resolved") => {
                    mark("the alert resolved and the recovery was delivered".into());
                    phase = Phase::Done;
                }
                _ => {}
            }
        }
        seen = received.len();
        if options.once && phase == Phase::Done {
            break;
        }
    }
    say("timeline:");
    for (t, what) in &timeline {
        say(&format!("  +{t:6.1} s  {what}"));
    }
    say(&format!(
        "summary: {batches} batches ({samples} samples) evaluated, {} webhooks delivered, metrics seen: {}",
        seen,
        metrics.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    Ok(())
}

/// The demo's escalation policy: the webhook now and every 15 minutes until acknowledged.
fn demo_escalation() -> vigie_domain::escalation::EscalationPolicy {
    use vigie_domain::escalation::{Applies, EscalationPolicy, Sev3Urgency, Step, Target};
    EscalationPolicy {
        policy_id: "demo-escalation".into(),
        name: "Demo: page the ticketing webhook until acknowledged".into(),
        description: None,
        applies: Applies::default(),
        priority: 0,
        calendar_id: None,
        time_zone: "Europe/Paris".into(),
        sev3: Sev3Urgency::Now,
        repeat: 2,
        ack_timeout_minutes: None,
        steps: vec![
            Step::Notify {
                to: vec![Target::Channel {
                    channel_id: "demo-webhook".into(),
                }],
                cc: vec![],
                say: Some("acknowledge in the tenant API, or this repeats every 15 minutes".into()),
            },
            Step::wait_minutes(15),
        ],
        template: None,
    }
}

/// A POST to the local tenant API with a bearer token; the JSON answer (an error is an error).
async fn api_post(base: &str, token: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {token}");
    tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let answer = ureq::post(&url)
            .set("authorization", &auth)
            .call()
            .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
        Ok(serde_json::from_str(&answer.into_string()?)?)
    })
    .await?
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    WaitOpen,
    /// Open; waiting for the escalation's first step (alert id, opened at).
    WaitStep(String, i64),
    WaitResolve,
    Done,
}

fn now() -> i64 {
    SystemClock.now_ms()
}

/// The root filesystem as the agent sees it (or the first one it reports), and its use in %.
fn root_filesystem() -> (String, f64) {
    let mut collector = vigie_agent::collect::Collector::new();
    let sample = collector.sample(now());
    sample
        .filesystems
        .iter()
        .find(|f| f.mount == "/")
        .or_else(|| sample.filesystems.first())
        .map_or(("/".to_owned(), 50.0), |f| (f.mount.clone(), f.used_pct))
}

/// A policy at `scope`: disk `mount` warning above `warn` %, at once.
fn disk_policy(scope: Scope, mount: &str, warn: f64) -> anyhow::Result<Policy> {
    Ok(Policy {
        scope,
        rules: vec![Rule::threshold(
            RuleId::parse("demo-disk")?,
            AlertFamily::Resources,
            Metric::FilesystemUsedPct,
            Some(mount.to_owned()),
            Threshold {
                direction: Direction::Above,
                warning: Some(Level {
                    threshold: warn,
                    for_s: 0,
                }),
                critical: None,
                hysteresis: 0.5,
                max_gap_s: 600,
            },
        )],
    })
}

fn print_batch(e: &BatchEnvelope) {
    let last = e.batch.row(e.batch.len().saturating_sub(1));
    let last = last.as_ref();
    let cpu = last
        .and_then(|s| s.cpu.as_ref())
        .map_or("-".into(), |c| format!("{:.1} %", c.total_pct));
    let mem = last
        .and_then(|s| s.memory.as_ref())
        .map_or("-".into(), |m| format!("{:.1} %", m.used_pct));
    let root_fs = last
        .and_then(|s| s.filesystems.iter().find(|f| f.mount == "/"))
        .map_or("-".into(), |f| format!("{:.1} %", f.used_pct));
    say(&format!(
        "batch #{} from {} ({}) -> {}/{}/{}: {} samples, {} bytes on the wire; cpu {cpu}, memory {mem}, / used {root_fs}; metrics: {}",
        e.seq,
        e.device_id,
        e.batch.agent.hostname,
        e.tenant_id,
        e.client_id,
        e.site_id,
        e.batch.len(),
        e.wire_bytes,
        e.batch.summary().metrics.join(", ")
    ));
}

/// Asks the agent to stop (SIGTERM), then makes sure it did.
fn stop_agent(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
