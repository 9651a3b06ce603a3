//! `cargo xtask measure [--alerts N] [--quiet K] [--interval-ms MS]`: the pipeline's figures.
//!
//! Against the emulator and the local runtime, over real HTTP: (a) end-to-end latency from a
//! batch's 202 to the signed webhook at a local receiver, over N alert openings (N devices,
//! one crossing batch each, paced); (b) AWS requests per quiet batch and per alert opening,
//! counted by an SDK interceptor on every client, and a rough cost per device-month from them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use vigie_aws::adapters::AwsPorts;
use vigie_aws::config::{AwsClients, sdk_config_for_endpoint};
use vigie_aws::metering::RequestCounter;
use vigie_aws::provision::provision;
use vigie_aws::resources::ResourceNames;
use vigie_domain::alert::AlertFamily;
use vigie_domain::clock::{Clock, SystemClock};
use vigie_domain::device::heartbeat_slot;
use vigie_domain::directory::{ClientCompany, Site, Tenant};
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::ids::{ClientId, DeviceId, SiteId, TenantId, base32, random_bytes};
use vigie_domain::intake::gzip;
use vigie_domain::notification::{
    ChannelFilter, ChannelId, ChannelKind, NotificationChannel, WebhookSecret,
};
use vigie_domain::policy::{Metric, Policy, Rule, RuleId, Scope};
use vigie_domain::protocol::{AgentConfig, routes};
use vigie_domain::rules::{Direction, Level, Threshold};
use vigie_domain::signing::{DeviceSigningKey, SignedRequest, headers};
use vigie_domain::telemetry::{Sample, SpoolReport, TelemetryBatch};
use vigie_local::LocalRuntime;
use vigie_local::webhook_sink::WebhookSink;

use crate::demo::{say, start_emulator};

/// The whole run, provisioning to the last figure, must fit in this.
const TIME_LIMIT: Duration = Duration::from_secs(300);
const SECRET: &str = "whsec_measure_0123456789";
/// CPU of a batch that opens the alert (the policy warns above 50 %), and of a quiet one.
const CPU_HOT: f64 = 90.0;
const CPU_QUIET: f64 = 12.5;
const BATCHES_PER_MONTH: f64 = 43_200.0;
const DELETES: &str = "SQS:DeleteMessage";
const RECEIVES: &str = "SQS:ReceiveMessage";
/// Items in an opening's `TransactWriteItems`: rule state, outbox event, alert record.
const ITEMS_PER_OPENING_TRANSACTION: f64 = 3.0;
/// Alerts whose requests are counted one by one (the median is reported).
const PROFILED_ALERTS: usize = 5;

struct Options {
    alerts: usize,
    quiet: usize,
    interval: Duration,
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut o = Options {
        alerts: 200,
        quiet: 20,
        interval: Duration::from_millis(500),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().context("a value is missing");
        match a.as_str() {
            "--alerts" => o.alerts = value()?.parse()?,
            "--quiet" => o.quiet = value()?.parse()?,
            "--interval-ms" => o.interval = Duration::from_millis(value()?.parse()?),
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask measure [--alerts N] [--quiet K] [--interval-ms MS]"
            ),
        }
    }
    if o.alerts == 0 || o.quiet == 0 {
        bail!("--alerts and --quiet must be at least 1");
    }
    let emulator = start_emulator()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(&o, emulator.endpoint()));
    drop(emulator);
    result
}

/// An enrolled device, as its agent knows itself.
struct Device {
    id: DeviceId,
    key: DeviceSigningKey,
}

async fn measure(o: &Options, endpoint: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + TIME_LIMIT;
    let counter = RequestCounter::new();
    let clients =
        AwsClients::from_config_counted(&sdk_config_for_endpoint(endpoint).await, &counter);
    let names = ResourceNames::new(&format!("measure-{}", base32(&random_bytes::<5>())));
    provision(&clients, &names).await.context("provisioning")?;
    let ports = AwsPorts::connect(clients, names).await?;
    let placement = Placement {
        tenant: TenantId::parse("measure-msp")?,
        client: ClientId::parse("acme")?,
        site: SiteId::parse("hq")?,
    };
    let sink = WebhookSink::start(SECRET, 200).await?;
    let enrolled = o.alerts + 2 + PROFILED_ALERTS;
    let token = seed(&ports, &placement, &sink, enrolled).await?;
    // Caches last the whole run: their refreshes are a per-tenant cost, stated separately.
    let server = LocalRuntime::start_all(
        &ports,
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Duration::from_secs(3600),
    )
    .await?;
    let pipeline = Pipeline {
        http: ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build(),
        url: server.url(),
        counter: counter.clone(),
        deadline,
    };
    say(&format!(
        "stack up under prefix {}; enrolling {enrolled} devices over HTTP",
        ports.names().prefix()
    ));
    let devices = {
        let (http, url) = (pipeline.http.clone(), pipeline.url.clone());
        tokio::task::spawn_blocking(move || {
            (0..enrolled)
                .map(|i| enroll(&http, &url, token.expose(), i).map(Arc::new))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??
    };
    let (measured, rest) = devices.split_at(o.alerts);
    let (warm_up, quiet_device, profiled) = (&rest[0], &rest[1], &rest[2..]);

    // Warm-up: one round trip loads the evaluator's policies and the notifier's channels.
    let accepted = pipeline
        .send_paced(std::slice::from_ref(warm_up), o.interval)
        .await?;
    let cold = latencies(&sink, &accepted, deadline).await?;
    say(&format!("warm-up alert delivered in {} ms", cold[0]));

    // (a) Latency over N openings, paced.
    say(&format!(
        "sending {} crossing batches (one per device), one every {} ms",
        o.alerts,
        o.interval.as_millis()
    ));
    let accepted = pipeline.send_paced(measured, o.interval).await?;
    let mut lat = latencies(&sink, &accepted, deadline).await?;
    lat.sort_unstable();
    pipeline.settle(&counter.snapshot(), 0).await?;

    // (b) Requests, one batch at a time, each counted until its messages are deleted. The
    // median per operation leaves out the silence sweeper, which runs beside on a schedule.
    say(&format!(
        "profiling {} quiet batches and {PROFILED_ALERTS} alerts",
        o.quiet
    ));
    // A device's first batch files its heartbeat entry: counted apart.
    let mut first = vec![pipeline.profile(quiet_device, 1, CPU_QUIET, 1).await?];
    let mut quiet = Vec::new();
    for seq in 2..=o.quiet as u64 + 1 {
        quiet.push(pipeline.profile(quiet_device, seq, CPU_QUIET, 1).await?);
    }
    let mut opening = Vec::new();
    for d in profiled {
        first.push(pipeline.profile(d, 1, CPU_QUIET, 1).await?);
        opening.push(pipeline.profile(d, 2, CPU_HOT, 2).await?);
    }
    let webhooks = sink.received().len();
    if webhooks != o.alerts + 1 + PROFILED_ALERTS {
        bail!(
            "{webhooks} webhooks arrived where {} were expected",
            o.alerts + 1 + PROFILED_ALERTS
        );
    }
    server.stop().await;
    report(o, &lat, &median(&first), &median(&quiet), &median(&opening));
    Ok(())
}

/// The local stack as an agent sees it, and the request counter.
struct Pipeline {
    http: ureq::Agent,
    url: String,
    counter: RequestCounter,
    deadline: Instant,
}

impl Pipeline {
    /// One crossing batch (seq 1) per device, one every `interval`; device id → 202 instant.
    async fn send_paced(
        &self,
        devices: &[Arc<Device>],
        interval: Duration,
    ) -> anyhow::Result<BTreeMap<String, i64>> {
        let start = tokio::time::Instant::now();
        let mut sends = Vec::with_capacity(devices.len());
        for (i, d) in devices.iter().enumerate() {
            tokio::time::sleep_until(start + interval * u32::try_from(i)?).await;
            let (http, url, d) = (self.http.clone(), self.url.clone(), Arc::clone(d));
            sends.push(tokio::task::spawn_blocking(move || {
                post_batch(&http, &url, &d, 1, CPU_HOT).map(|at| (d.id.as_str().to_owned(), at))
            }));
        }
        let mut accepted = BTreeMap::new();
        for s in sends {
            let (device, at) = s.await??;
            accepted.insert(device, at);
        }
        Ok(accepted)
    }

    /// Sends one batch and waits until the pollers deleted `messages` messages: the requests
    /// of that batch (and whatever else ran meanwhile).
    async fn profile(
        &self,
        d: &Arc<Device>,
        seq: u64,
        cpu: f64,
        messages: u64,
    ) -> anyhow::Result<BTreeMap<String, u64>> {
        let before = self.counter.snapshot();
        let (http, url, d) = (self.http.clone(), self.url.clone(), Arc::clone(d));
        tokio::task::spawn_blocking(move || post_batch(&http, &url, &d, seq, cpu)).await??;
        self.settle(&before, messages).await?;
        // The local pollers' long polls (empty ones included) stand for Lambda's: count one
        // receive per message consumed instead.
        let mut counts = RequestCounter::diff(&before, &self.counter.snapshot());
        counts.remove(RECEIVES);
        let consumed = counts.get(DELETES).copied().unwrap_or(0);
        counts.insert(format!("{RECEIVES}*"), consumed);
        Ok(counts)
    }

    /// Waits until `messages` more messages than at `before` were deleted and the queues are
    /// idle (no delete for 300 ms): every handler has finished, its requests are counted.
    async fn settle(&self, before: &BTreeMap<String, u64>, messages: u64) -> anyhow::Result<()> {
        let target = before.get(DELETES).copied().unwrap_or(0) + messages;
        let (mut last, mut since) = (self.counter.count(DELETES), Instant::now());
        loop {
            let now = self.counter.count(DELETES);
            if now != last {
                (last, since) = (now, Instant::now());
            }
            if now >= target && since.elapsed() > Duration::from_millis(300) {
                return Ok(());
            }
            if Instant::now() > self.deadline {
                bail!(
                    "the queues did not drain within the {} s limit",
                    TIME_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The median count of each operation over `runs`.
fn median(runs: &[BTreeMap<String, u64>]) -> BTreeMap<String, f64> {
    let ops: BTreeSet<&String> = runs.iter().flat_map(BTreeMap::keys).collect();
    ops.into_iter()
        .filter_map(|op| {
            let mut v: Vec<u64> = runs
                .iter()
                .map(|r| r.get(op).copied().unwrap_or(0))
                .collect();
            v.sort_unstable();
            let m = v[v.len() / 2];
            (m > 0).then(|| (op.clone(), m as f64))
        })
        .collect()
}

/// Tenant, client company, site, a webhook channel to `sink`, the CPU policy, and a token
/// good for `uses` enrolments.
async fn seed(
    ports: &AwsPorts,
    p: &Placement,
    sink: &WebhookSink,
    uses: usize,
) -> anyhow::Result<vigie_domain::enrollment::TokenPlaintext> {
    let now = SystemClock.now_ms();
    let dir = ports.directory();
    dir.put_tenant(&Tenant::new(
        p.tenant.clone(),
        "Measure MSP",
        now,
        Default::default(),
    ))
    .await?;
    dir.put_client(&ClientCompany {
        tenant: p.tenant.clone(),
        id: p.client.clone(),
        name: "ACME".into(),
        created_ms: now,
    })
    .await?;
    dir.put_site(&Site {
        tenant: p.tenant.clone(),
        client: p.client.clone(),
        id: p.site.clone(),
        name: "HQ".into(),
        time_zone: "Europe/Paris".into(),
        created_ms: now,
    })
    .await?;
    let channel = NotificationChannel {
        id: ChannelId::parse("ticketing")?,
        tenant_id: p.tenant.clone(),
        name: "Ticketing webhook".into(),
        kind: ChannelKind::Webhook {
            url: sink.url(),
            secret: WebhookSecret::new(SECRET),
        },
        filter: ChannelFilter::default(),
        group_wait_s: 0,
    };
    channel.validate()?;
    ports.save_channel(&channel).await?;
    let warning = Level {
        threshold: 50.0,
        for_s: 0,
    };
    let policy = Policy {
        scope: Scope::Tenant,
        rules: vec![Rule::threshold(
            RuleId::parse("cpu-busy")?,
            AlertFamily::Resources,
            Metric::CpuTotalPct,
            None,
            Threshold {
                direction: Direction::Above,
                warning: Some(warning),
                critical: None,
                hysteresis: 2.0,
                max_gap_s: 600,
            },
        )],
    };
    ports.policies().put(&p.tenant, &policy, now).await?;
    let uses = u32::try_from(uses)?;
    let (token, plain) = EnrollmentToken::issue(p.clone(), now, now + 3_600_000, uses, "measure")?;
    ports.enrollment().create(&token).await?;
    Ok(plain)
}

/// Enrols one device over HTTP with a fresh key.
fn enroll(http: &ureq::Agent, url: &str, token: &str, i: usize) -> anyhow::Result<Device> {
    let key = DeviceSigningKey::generate();
    let body = serde_json::json!({
        "token": token,
        "public_key": key.public_key().to_base64(),
        "hostname": format!("measure-host-{i}"),
        "os": "Debian GNU/Linux 12",
        "agent_version": "0.1.0",
    });
    let answer = http
        .post(&format!("{url}{}", routes::ENROLL))
        .set("content-type", "application/json")
        .send_bytes(&serde_json::to_vec(&body)?)
        .map_err(refusal)?
        .into_string()?;
    let json: serde_json::Value = serde_json::from_str(&answer)?;
    let id = json["device_id"].as_str().context("no device_id")?;
    Ok(Device {
        id: DeviceId::parse(id)?,
        key,
    })
}

/// Posts one signed gzip batch (one sample at `cpu` %); the 202's instant, Unix ms.
fn post_batch(
    http: &ureq::Agent,
    url: &str,
    d: &Device,
    seq: u64,
    cpu: f64,
) -> anyhow::Result<i64> {
    let now = SystemClock.now_ms();
    let sample: Sample = serde_json::from_value(serde_json::json!({
        "ts": now - 1000,
        "cpu": {"total_pct": cpu, "per_core_pct": [cpu, cpu]},
        "memory": {"total_bytes": 8_000_000_000u64, "available_bytes": 4_000_000_000u64, "used_pct": 50.0, "swap_total_bytes": 0, "swap_used_bytes": 0},
        "filesystems": [{"mount": "/", "fs_type": "ext4", "device": "/dev/sda1", "total_bytes": 102_400, "used_bytes": 61_440, "available_bytes": 40_960, "used_pct": 60.0}],
    }))?;
    let agent = serde_json::from_value(serde_json::json!({
        "version": "0.1.0", "hostname": "measure-host", "os": "Debian", "kernel": "6.1",
        "arch": "x86_64", "boot_time": now / 1000 - 3600,
    }))?;
    let batch = TelemetryBatch::from_samples(agent, SpoolReport::default(), &[sample]);
    let body = gzip(&serde_json::to_vec(&batch)?);
    let signature = d.key.sign(&SignedRequest {
        method: "POST",
        path: routes::BATCHES,
        device: &d.id,
        timestamp_ms: now,
        seq,
        body: &body,
    });
    let response = http
        .post(&format!("{url}{}", routes::BATCHES))
        .set(headers::DEVICE, d.id.as_str())
        .set(headers::TIMESTAMP, &now.to_string())
        .set(headers::SEQUENCE, &seq.to_string())
        .set(headers::SIGNATURE, &signature)
        .set("content-type", "application/json")
        .set("content-encoding", "gzip")
        .send_bytes(&body)
        .map_err(refusal)?;
    let accepted = SystemClock.now_ms();
    if response.status() != 202 {
        bail!("batch answered {} instead of 202", response.status());
    }
    Ok(accepted)
}

fn refusal(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, r) => {
            anyhow::anyhow!("refused ({code}): {}", r.into_string().unwrap_or_default())
        }
        other => other.into(),
    }
}

/// Waits for the opening webhook of every device in `accepted`; the latencies in ms.
async fn latencies(
    sink: &WebhookSink,
    accepted: &BTreeMap<String, i64>,
    deadline: Instant,
) -> anyhow::Result<Vec<i64>> {
    loop {
        let mut found = BTreeMap::new();
        for r in sink.received() {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let device = body["event"]["device_id"].as_str().unwrap_or_default();
            if let Some(at) = accepted.get(device) {
                if !r.signature_valid || body["event"]["kind"] != "opened" {
                    bail!("unexpected webhook for {device}: {body}");
                }
                if found
                    .insert(device.to_owned(), r.received_ms - at)
                    .is_some()
                {
                    bail!("two webhooks for the one opening of {device}");
                }
            }
        }
        if found.len() == accepted.len() {
            return Ok(found.into_values().collect());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {} opening webhooks arrived within the {} s limit",
                found.len(),
                accepted.len(),
                TIME_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// On-demand list price of one request (USD), or `None` for an operation not priced here.
pub(crate) fn price(op: &str) -> Option<f64> {
    const RRU: f64 = 0.125e-6;
    const WRU: f64 = 0.625e-6;
    Some(match op {
        "DynamoDB:GetItem" | "DynamoDB:Query" => RRU,
        "DynamoDB:PutItem" | "DynamoDB:UpdateItem" | "DynamoDB:DeleteItem" => WRU,
        "DynamoDB:TransactWriteItems" => 2.0 * ITEMS_PER_OPENING_TRANSACTION * WRU,
        o if o.starts_with("SQS:") => 0.50e-6,
        "SNS:Publish" => 0.50e-6,
        "S3:PutObject" => 5.0e-6,
        "S3:GetObject" => 0.4e-6,
        _ => return None,
    })
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(
    o: &Options,
    lat: &[i64],
    first: &BTreeMap<String, f64>,
    quiet: &BTreeMap<String, f64>,
    opening: &BTreeMap<String, f64>,
) {
    let (p50, p95, p99, max) = (
        percentile(lat, 50.0),
        percentile(lat, 95.0),
        percentile(lat, 99.0),
        lat[lat.len() - 1],
    );
    println!("\n== end-to-end latency: ingestion's 202 -> signed webhook at the local receiver");
    println!(
        "{} alert openings (one device, one batch, one webhook each), one sent every {} ms: p50 {p50} ms, p95 {p95} ms, p99 {p99} ms, max {max} ms (target p95 < 2 s: {})",
        lat.len(),
        o.interval.as_millis(),
        if p95 < 2000 { "met" } else { "NOT met" }
    );

    // The slot of a device's heartbeat entry moves with its batches: at the default cadence,
    // this share of batches pays the first batch's extra writes.
    let config = AgentConfig::default();
    let t0 = SystemClock.now_ms();
    let step = i64::from(config.send_interval_s) * 1000;
    let moves = (1..=1440)
        .filter(|i| {
            heartbeat_slot(t0 + i * step, config.heartbeat_s)
                != heartbeat_slot(t0 + (i - 1) * step, config.heartbeat_s)
        })
        .count() as f64
        / 1440.0;
    let ops: BTreeSet<&String> = first
        .keys()
        .chain(quiet.keys())
        .chain(opening.keys())
        .collect();
    let get = |m: &BTreeMap<String, f64>, op: &str| m.get(op).copied().unwrap_or(0.0);
    println!(
        "\n== AWS requests, counted by an SDK interceptor on every client ({} quiet batches and {PROFILED_ALERTS} alerts one at a time; median per operation)",
        o.quiet
    );
    println!(
        "{:<30} {:>12} {:>12} {:>14} {:>12} {:>12}",
        "service:operation",
        "first batch",
        "quiet batch",
        "quiet @1/min",
        "opening+hook",
        "extra/alert"
    );
    let (mut cost_q, mut cost_a) = (0.0, 0.0);
    let mut totals = [0.0; 5];
    for op in ops {
        let (f, q, a) = (get(first, op), get(quiet, op), get(opening, op));
        let steady = q + moves * (f - q);
        let row = [f, q, steady, a, a - q];
        println!(
            "{op:<30} {:>12} {:>12} {:>14.2} {:>12} {:>12}",
            row[0], row[1], row[2], row[3], row[4]
        );
        for (t, v) in totals.iter_mut().zip(row) {
            *t += v;
        }
        match price(op) {
            Some(unit) => {
                cost_q += steady * unit;
                cost_a += (a - q) * unit;
            }
            None => println!("  ({op} has no price here; left out of the estimate)"),
        }
    }
    println!(
        "{:<30} {:>12} {:>12} {:>14.2} {:>12} {:>12}",
        "total", totals[0], totals[1], totals[2], totals[3], totals[4]
    );
    println!(
        "first batch: a device's first batch files its heartbeat entry (TransactWriteItems instead of UpdateItem); at the default cadence ({} s batches, {} s heartbeat) {:.0} % of batches move that entry, hence \"quiet @1/min\". *: one receive per message consumed, as Lambda's poller does at low traffic (the local pollers' empty long polls are not per batch).",
        config.send_interval_s,
        config.heartbeat_s,
        moves * 100.0
    );

    let month = cost_q * BATCHES_PER_MONTH;
    println!("\n== estimated AWS request cost (an estimate from counted requests, not a bill)");
    println!(
        "assumptions: on-demand list prices (us-east-1): DynamoDB $0.125 per million read request units, $0.625 per million write request units; every read strongly consistent and <= 4 KB (1 RRU), every write <= 1 KB (1 WRU), each TransactWriteItems {ITEMS_PER_OPENING_TRANSACTION} items x 2 WRU; SQS $0.50 per million requests (the FIFO price, also for the standard notification queue at $0.40), messages < 64 KB; SNS $0.50 per million publishes, SNS to SQS delivery free. Not included: Lambda, storage, data transfer, CloudWatch, the silence sweeper's schedule and the per-tenant cache refreshes (1 policy Query and 1 channel Query per tenant per 30 s per warm function)."
    );
    println!(
        "per device-month at 1 batch/min (43,200 batches, no alert): ${month:.4} (${:.2} per million batches)",
        cost_q * 1e6
    );
    println!(
        "per alert opening delivered to one webhook channel, over a quiet batch: ${:.2} per million alerts",
        cost_a * 1e6
    );
    println!(
        "for scale, not included: the ingestion function's invocations alone ($0.20 per million) would add ${:.4} per device-month before duration",
        0.20e-6 * BATCHES_PER_MONTH
    );

    println!("\n== for the README (measured figures table)");
    println!(
        "| alert latency, ingestion's 202 → signed webhook received, {} openings sent every {} ms (local runtime + moto) | **p95 {p95} ms** (p50 {p50}, p99 {p99}, max {max}) | p95 < 2 s | `cargo xtask measure --alerts {}` |",
        lat.len(),
        o.interval.as_millis(),
        lat.len()
    );
    println!(
        "| AWS requests per quiet batch (ingestion + evaluator), counted by an SDK interceptor | **{}**: {} | | same |",
        totals[1],
        summary(quiet)
    );
    println!(
        "| extra AWS requests per alert opening + its webhook, counted | **{}**: {} | | same |",
        totals[4],
        summary(
            &opening
                .iter()
                .map(|(k, v)| (k.clone(), v - get(quiet, k)))
                .collect()
        )
    );
    println!(
        "| estimated AWS request cost per device-month at 1 batch/min (on-demand list prices, {:.0} % of batches moving the heartbeat entry; Lambda excluded) | **${month:.3}** (+${:.2} per million alerts) | | same |",
        moves * 100.0,
        cost_a * 1e6
    );
}

/// `op n` for every operation with a count, e.g. `DynamoDB:GetItem 1, SQS:SendMessage 1`.
fn summary(per_batch: &BTreeMap<String, f64>) -> String {
    per_batch
        .iter()
        .filter(|&(_, &v)| v > 0.0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
