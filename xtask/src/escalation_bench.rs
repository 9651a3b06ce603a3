//! `cargo xtask bench --escalation`: the escalation sweep's cost and duration with many
//! pending timers of which a few are due, against the emulator, AWS requests counted by the
//! SDK interceptor. Three sweeps over the same 10,000 pending escalations: with 100 due, with
//! 10 due, and with none due — the requests follow the due timers, not the pending ones.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use vigie_aws::adapters::AwsPorts;
use vigie_aws::config::{AwsClients, sdk_config_for_endpoint};
use vigie_aws::metering::RequestCounter;
use vigie_aws::provision::provision;
use vigie_aws::resources::ResourceNames;
use vigie_domain::alert::{AlertFamily, Severity};
use vigie_domain::clock::ManualClock;
use vigie_domain::escalation::{
    AlertFacts, Applies, Escalation, EscalationPolicy, Sev3Urgency, Step, Target,
};
use vigie_domain::ids::{ClientId, DeviceId, SiteId, TenantId, base32, random_bytes};
use vigie_domain::workflow::AlertWork;
use vigie_escalator::Escalator;
use vigie_escalator::resolver::{DynamoRosters, TenantRoster};

use crate::demo::{say, start_emulator};

const MIN: i64 = 60_000;

pub fn main(pending: usize, due: usize) -> anyhow::Result<()> {
    let emulator = start_emulator()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(run(emulator.endpoint(), pending, due));
    drop(emulator);
    result
}

fn policy() -> EscalationPolicy {
    EscalationPolicy {
        policy_id: "bench".into(),
        name: "Bench chain".into(),
        description: None,
        applies: Applies::default(),
        priority: 0,
        calendar_id: None,
        time_zone: "Europe/Paris".into(),
        sev3: Sev3Urgency::Now,
        repeat: 0,
        ack_timeout_minutes: None,
        steps: vec![
            Step::Notify {
                to: vec![Target::Channel {
                    channel_id: "noc".into(),
                }],
                cc: vec![],
                say: Some("bench".into()),
            },
            Step::wait_minutes(30),
            Step::Notify {
                to: vec![Target::Channel {
                    channel_id: "noc".into(),
                }],
                cc: vec![],
                say: None,
            },
        ],
        template: None,
    }
}

async fn store(
    ports: &AwsPorts,
    tenant: &TenantId,
    n: usize,
    label: &str,
    at: i64,
) -> anyhow::Result<()> {
    let policy = policy();
    let mut tasks = tokio::task::JoinSet::new();
    let per = n.div_ceil(8).max(1);
    for chunk in 0..n.div_ceil(per) {
        let (ports, tenant, policy) = (ports.clone(), tenant.clone(), policy.clone());
        let label = label.to_owned();
        tasks.spawn(async move {
            let work = ports.alert_work();
            for i in chunk * per..((chunk + 1) * per).min(n) {
                let alert = format!("al-{label}-{i:05}");
                let facts = AlertFacts {
                    tenant_id: tenant.clone(),
                    alert_id: alert.clone(),
                    opened_ms: at,
                    client_id: ClientId::parse("acme").expect("id"),
                    site_id: SiteId::parse("hq").expect("id"),
                    device_id: DeviceId::parse("dev-bench").expect("id"),
                    device_name: "srv-bench".into(),
                    family: AlertFamily::BackupFailure,
                    severity: Severity::Critical,
                    subject: "nightly".into(),
                    detail: None,
                    role: None,
                };
                let w = AlertWork {
                    escalation: Some(Escalation::start(
                        &policy,
                        facts,
                        at,
                        &TenantRoster::default(),
                    )),
                    ..AlertWork::default()
                };
                work.save(&tenant, &alert, at, &w, 0).await?;
            }
            Ok::<_, vigie_domain::ports::StoreError>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn run(endpoint: &str, pending: usize, due: usize) -> anyhow::Result<()> {
    let counter = RequestCounter::new();
    let clients =
        AwsClients::from_config_counted(&sdk_config_for_endpoint(endpoint).await, &counter);
    let names = ResourceNames::new(&format!("escbench-{}", base32(&random_bytes::<5>())));
    provision(&clients, &names).await.context("provisioning")?;
    let ports = AwsPorts::connect(clients, names).await?;
    let tenant = TenantId::parse("bench-msp")?;
    let now = vigie_domain::clock::Clock::now_ms(&vigie_domain::clock::SystemClock);
    let started = Instant::now();
    // Pending: their first step is due in an hour.
    store(&ports, &tenant, pending, "pending", now + 60 * MIN).await?;
    say(&format!(
        "{pending} pending escalations stored in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let clock = Arc::new(ManualClock::at(now));
    let escalator = Escalator::new(
        &ports,
        DynamoRosters {
            ports: ports.clone(),
        },
        Arc::clone(&clock),
    );
    let mut rows = Vec::new();
    for (label, n) in [("due-a", due), ("due-b", due / 10), ("none", 0)] {
        store(&ports, &tenant, n, label, now).await?;
        clock.set_ms(now + 1_000);
        counter.reset();
        let t = Instant::now();
        let report = escalator.sweep().await?;
        let elapsed = t.elapsed();
        let requests = counter.snapshot();
        let cost: f64 = requests
            .iter()
            .map(|(op, k)| crate::measure::price(op).unwrap_or(0.0) * *k as f64)
            .sum();
        anyhow::ensure!(
            report.due == n,
            "the sweep found {} due, expected {n}",
            report.due
        );
        rows.push((n, report, elapsed, requests, cost));
    }
    println!(
        "\n== escalation sweep: {pending} pending escalations (due in 1 h), sweeps with some due now"
    );
    println!(
        "| due now | steps run | notices | sweep duration | AWS requests (by operation) | request cost of the sweep |"
    );
    println!("|---|---|---|---|---|---|");
    for (n, report, elapsed, requests, cost) in &rows {
        let total: u64 = requests.values().sum();
        let by: Vec<String> = requests.iter().map(|(op, k)| format!("{op} {k}")).collect();
        println!(
            "| {n} | {} | {} | {} ms | {total}: {} | ${cost:.6} |",
            report.steps,
            report.notices,
            elapsed.as_millis(),
            by.join(", ")
        );
    }
    println!(
        "\nAssumptions: the prices of `cargo xtask measure` (one request unit per read or write; \
         an escalation item is ~2-3 KB, so a real Query of 100 due items reads ~60 RRU, still priced by the due items)."
    );
    Ok(())
}
