//! Rule evaluation throughput: a device with 20 rules, fed 60-sample batches; and a device
//! with every built-in template applied, fed a 60-sample batch that also holds findings and
//! events (what a server sends when all collectors run).
//! Run: `cargo bench -p vigie-domain --bench rules`. Throughput is in samples per second.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigie_domain::alert::AlertFamily;
use vigie_domain::checks::States;
use vigie_domain::ids::{ClientId, DeviceId, SiteId};
use vigie_domain::policy::{EffectivePolicy, Metric, Policy, Rule, RuleId, Scope};
use vigie_domain::rules::{Direction, Level, Threshold};
use vigie_domain::telemetry::{
    AccountFinding, AgentInfo, AntivirusFinding, BackupFinding, BackupStatus, CertificateFinding,
    CpuSample, EventCount, EventKind, FilesystemSample, Finding, LoadAverage, MemorySample,
    NetworkSample, Sample, ServiceFinding, SmartFinding, SpoolReport, TelemetryBatch,
    TemperatureSample, UpdatesFinding,
};
use vigie_domain::templates::{Overrides, builtin};

const NOW: i64 = 1_790_000_000_000;

fn sample(i: i64) -> Sample {
    let w = (i % 13) as f64;
    Sample {
        ts: NOW - (60 - i) * 60_000,
        cpu: Some(CpuSample {
            total_pct: 40.0 + 4.0 * w,
            per_core_pct: vec![30.0 + w; 4],
            iowait_pct: w / 2.0,
        }),
        load: Some(LoadAverage {
            one: 0.5 + w / 10.0,
            five: 0.5,
            fifteen: 0.4,
        }),
        memory: Some(MemorySample {
            total_bytes: 16 << 30,
            available_bytes: 4 << 30,
            used_pct: 70.0 + w,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
        }),
        filesystems: ["/", "/home", "/var"]
            .iter()
            .map(|m| FilesystemSample {
                mount: (*m).into(),
                fs_type: "ext4".into(),
                device: "/dev/sda1".into(),
                total_bytes: 100 << 30,
                used_bytes: 80 << 30,
                available_bytes: 20 << 30,
                used_pct: 80.0 + w / 2.0,
                inodes_used_pct: Some(10.0),
            })
            .collect(),
        disks: vec![],
        network: vec![NetworkSample {
            interface: "eth0".into(),
            rx_bytes_per_s: 1e7 * w,
            tx_bytes_per_s: 1e6,
            rx_errors: 0,
            tx_errors: 0,
            link_speed_mbps: Some(1000),
        }],
        temperatures: vec![TemperatureSample {
            sensor: "cpu".into(),
            celsius: 60.0 + w,
            critical_celsius: None,
        }],
        uptime_s: Some(1000),
    }
}

fn rule(n: usize, metric: Metric, warn: f64, crit: f64) -> Rule {
    Rule::threshold(
        RuleId::parse(&format!("rule-{n}")).expect("id"),
        AlertFamily::Resources,
        metric,
        None,
        Threshold {
            direction: Direction::Above,
            warning: Some(Level {
                threshold: warn,
                for_s: 300,
            }),
            critical: Some(Level {
                threshold: crit,
                for_s: 300,
            }),
            hysteresis: 2.0,
            max_gap_s: 600,
        },
    )
}

fn bench(c: &mut Criterion) {
    let rows: Vec<Sample> = (0..60).map(sample).collect();
    let agent = AgentInfo {
        version: "0.1.0".into(),
        hostname: "srv".into(),
        os: "Debian".into(),
        kernel: "6.1".into(),
        arch: "x86_64".into(),
        boot_time: 0,
    };
    let batch = TelemetryBatch::from_samples(agent, SpoolReport::default(), &rows);
    let metrics = [
        Metric::CpuTotalPct,
        Metric::CpuIowaitPct,
        Metric::MemoryUsedPct,
        Metric::Load1,
        Metric::FilesystemUsedPct,
        Metric::FilesystemInodesUsedPct,
        Metric::NetworkUtilisationPct,
        Metric::TemperatureCelsius,
    ];
    // 20 rules: the eight metrics at two or three threshold pairs each.
    let rules: Vec<Rule> = (0..20)
        .map(|n| {
            rule(
                n,
                metrics[n % metrics.len()],
                60.0 + (n / 8) as f64 * 10.0,
                90.0 + (n / 8) as f64,
            )
        })
        .collect();
    let policy = Policy {
        scope: Scope::Tenant,
        rules,
    };
    let eff = EffectivePolicy::for_device(
        [policy].iter(),
        &DeviceId::parse("dev-bench").expect("id"),
        &ClientId::parse("c").expect("id"),
        &SiteId::parse("s").expect("id"),
        &BTreeMap::new(),
    );
    let probe = eff.evaluate(&batch, &States::new());
    eprintln!(
        "20 rules, 60 samples: {} (rule, item) series checks per batch",
        probe.checks
    );

    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("evaluate 60-sample batch, 20 rules", |b| {
        b.iter(|| eff.evaluate(black_box(&batch), &States::new()))
    });
    group.finish();
    templates(c, &batch);
}

/// Findings and events of a busy server: 6 services, 2 backup jobs, 3 certificates, the
/// antivirus, updates, 12 accounts, 2 disks; failed logins from 20 sources, a new admin, a
/// new neighbour.
fn findings_and_events(batch: &TelemetryBatch) -> TelemetryBatch {
    let mut b = batch.clone();
    let at = NOW - 60_000;
    for (i, name) in ["nginx", "postgresql", "sshd", "cron", "redis", "exim"]
        .iter()
        .enumerate()
    {
        b.findings.push(Finding::Service(ServiceFinding {
            observed_ms: at,
            name: (*name).into(),
            state: if i == 5 { "failed" } else { "active" }.into(),
            sub_state: Some("running".into()),
            via: "systemd".into(),
        }));
    }
    for job in ["nas-nightly", "offsite"] {
        b.findings.push(Finding::Backup(BackupFinding {
            observed_ms: at,
            job: job.into(),
            source: "restic".into(),
            status: BackupStatus::Success,
            last_run_ms: Some(at - 3_600_000),
            last_success_ms: Some(at - 3_600_000),
            message: None,
        }));
    }
    for (i, target) in [
        "portal.example:443",
        "mail.example:993",
        "/etc/ssl/site.pem",
    ]
    .iter()
    .enumerate()
    {
        b.findings.push(Finding::Certificate(CertificateFinding {
            observed_ms: at,
            target: (*target).into(),
            source: "endpoint".into(),
            state: "valid".into(),
            not_after_ms: Some(at + (10 + 30 * i as i64) * 86_400_000),
            subject: None,
            issuer: None,
            error: None,
        }));
    }
    b.findings.push(Finding::Antivirus(AntivirusFinding {
        observed_ms: at,
        product: "clamav".into(),
        state: "clean".into(),
        threats: vec![],
        signatures_ms: Some(at - 86_400_000),
        last_scan_ms: Some(at - 3_600_000),
    }));
    b.findings.push(Finding::Updates(UpdatesFinding {
        observed_ms: at,
        manager: "apt".into(),
        pending: 12,
        security: 3,
        manual: 1,
        security_since_ms: Some(at - 9 * 86_400_000),
        reboot_required: true,
        sample: vec!["openssl".into()],
    }));
    for i in 0..12 {
        b.findings.push(Finding::Account(AccountFinding {
            observed_ms: at,
            user: format!("user{i}"),
            uid: 1000 + i,
            admin: i < 2,
            state: "active".into(),
            password_changed_ms: Some(at - 40 * 86_400_000),
        }));
    }
    for disk in ["sda", "sdb"] {
        b.findings.push(Finding::Smart(SmartFinding {
            observed_ms: at,
            disk: disk.into(),
            state: "passed".into(),
            model: None,
            reallocated_sectors: Some(0),
            pending_sectors: Some(0),
            temperature_celsius: Some(35),
        }));
    }
    for i in 0..20 {
        b.events.push(EventCount {
            kind: EventKind::AuthFailure,
            subject: "root".into(),
            source: format!("203.0.113.{i}"),
            count: 1 + i % 12,
            first_ms: at - 50_000,
            last_ms: at - 1_000,
        });
    }
    for (kind, subject, source) in [
        (EventKind::AdminAdded, "mallory", ""),
        (EventKind::NeighbourNew, "aa:bb:cc:dd:ee:ff", "192.168.1.77"),
        (EventKind::LoginNewSource, "alice", "198.51.100.4"),
    ] {
        b.events.push(EventCount {
            kind,
            subject: subject.into(),
            source: source.into(),
            count: 1,
            first_ms: at - 10_000,
            last_ms: at - 10_000,
        });
    }
    b
}

fn templates(c: &mut Criterion, metrics: &TelemetryBatch) {
    let batch = findings_and_events(metrics);
    let overrides: Overrides = serde_json::from_value(serde_json::json!({
        "service": {"subjects": ["nginx", "postgresql", "sshd", "cron", "redis", "exim"]}
    }))
    .expect("overrides");
    let mut rules = Vec::new();
    for t in builtin() {
        let o = if t.id == "device-down" {
            overrides.clone()
        } else {
            Overrides::new()
        };
        rules = t.apply(&rules, &o).expect("template applies");
    }
    let n_rules = rules.len();
    let policy = Policy {
        scope: Scope::Tenant,
        rules,
    };
    policy.validate().expect("valid");
    let eff = EffectivePolicy::for_device(
        [policy].iter(),
        &DeviceId::parse("dev-bench").expect("id"),
        &ClientId::parse("c").expect("id"),
        &SiteId::parse("s").expect("id"),
        &BTreeMap::new(),
    );
    let first = eff.evaluate(&batch, &States::new());
    // Steady state: the states the first batch left, as the evaluator would have stored them.
    let stored: States = first.changed.clone();
    eprintln!(
        "all templates ({n_rules} rules), 60 samples + {} findings + {} events: {} checks, \
         {} transitions and {} state writes on a fresh device",
        batch.findings.len(),
        batch.events.len(),
        first.checks,
        first.transitions.len(),
        first.changed.len()
    );
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function(
        "all templates, fresh device, batch with findings and events",
        |b| b.iter(|| eff.evaluate(black_box(&batch), &States::new())),
    );
    group.bench_function(
        "all templates, stored states, batch with findings and events",
        |b| b.iter(|| eff.evaluate(black_box(&batch), &stored)),
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
