//! `cargo xtask demo [--once]`: the product's main job on this machine.
//!
//! Brings up the emulator, provisions every resource, creates a demo tenant, client company and
//! site with an enrolment token, enrols the real agent running on this machine, and shows the
//! batches it sends arriving on the intake queue. `--once` stops after a few batches.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use vigie_aws::adapters::AwsPorts;
use vigie_aws::config::{AwsClients, sdk_config_for_endpoint};
use vigie_aws::provision::provision;
use vigie_aws::resources::ResourceNames;
use vigie_domain::clock::{Clock, SystemClock};
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::envelope::BatchEnvelope;
use vigie_domain::ids::{ClientId, SiteId, TenantId};
use vigie_emulator::Emulator;
use vigie_local::LocalRuntime;

use crate::util::root;

/// Batches to see before `--once` stops.
const BATCHES_FOR_ONCE: usize = 3;

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
}

pub async fn setup(endpoint: &str, prefix: &str) -> anyhow::Result<DemoStack> {
    let clients = AwsClients::from_config(&sdk_config_for_endpoint(endpoint).await);
    let names = ResourceNames::new(prefix);
    let provisioned = provision(&clients, &names).await.context("provisioning")?;
    say(&format!(
        "provisioned table {}, queues {} (+DLQ) and {} (+DLQ), topic {}, buckets {}, {}, {} (Object Lock)",
        provisioned.table_name,
        names.telemetry_queue(),
        names.notify_queue(),
        names.alerts_topic(),
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
    dir.put_tenant(&Tenant {
        id: placement.tenant.clone(),
        name: "Demo MSP".into(),
        created_ms: now,
    })
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

    let server = LocalRuntime::start(&ports, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    say(&format!(
        "local runtime serving the ingestion function at {}",
        server.url()
    ));

    Ok(DemoStack {
        ports,
        server,
        token: plaintext,
    })
}

async fn demo(options: &Options, endpoint: &str, agent: &std::path::Path) -> anyhow::Result<()> {
    let DemoStack {
        ports,
        server,
        token: plaintext,
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

    let outcome = watch(&ports, options, &mut child).await;
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

/// Reads the intake queue and prints what arrives.
async fn watch(ports: &AwsPorts, options: &Options, child: &mut Child) -> anyhow::Result<()> {
    let queue = ports.telemetry_queue();
    let mut batches = 0usize;
    let mut samples = 0usize;
    let mut metrics = BTreeSet::new();
    let mut devices = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(u64::from(options.send_interval) * 10 + 60);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the agent exited unexpectedly ({status})");
        }
        if options.once && Instant::now() > deadline {
            bail!("only {batches} batches arrived in time");
        }
        let received = tokio::select! {
            r = queue.receive(10, 2) => r?,
            _ = &mut ctrl_c => {
                say("Ctrl-C: stopping");
                break;
            }
        };
        for m in received {
            print_batch(&m.envelope);
            batches += 1;
            samples += m.envelope.batch.len();
            metrics.extend(m.envelope.batch.summary().metrics);
            devices.insert(m.envelope.device_id.to_string());
            queue.delete(&m.receipt_handle).await?;
        }
        if options.once && batches >= BATCHES_FOR_ONCE {
            break;
        }
    }
    say(&format!(
        "summary: {} device(s) [{}], {batches} batches, {samples} samples, metrics seen: {}",
        devices.len(),
        devices.iter().cloned().collect::<Vec<_>>().join(", "),
        metrics.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    Ok(())
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
