//! Rule evaluation throughput: a device with 20 rules, fed 60-sample batches.
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
    AgentInfo, CpuSample, FilesystemSample, LoadAverage, MemorySample, NetworkSample, Sample,
    SpoolReport, TelemetryBatch, TemperatureSample,
};

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
