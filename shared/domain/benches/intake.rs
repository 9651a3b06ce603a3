//! The ingest hot path for a typical 60-sample batch: clock check, Ed25519 verification,
//! bounded gzip inflation, JSON parsing and schema validation.
//! Run: `cargo bench -p vigie-domain --bench intake` (or `cargo xtask bench`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigie_domain::ids::DeviceId;
use vigie_domain::intake::{BodyEncoding, SignatureHeaders, check_batch, gzip};
use vigie_domain::protocol::routes;
use vigie_domain::signing::{DeviceSigningKey, SignedRequest};
use vigie_domain::telemetry::{
    AgentInfo, CpuSample, DiskIoSample, FilesystemSample, LoadAverage, MemorySample, NetworkSample,
    Sample, SpoolReport, TelemetryBatch, TemperatureSample,
};

const NOW: i64 = 1_790_000_000_000;

/// A sample whose readings move from one sample to the next, as real ones do.
fn sample(ts: i64) -> Sample {
    let w = ((ts / 1000) % 17) as f64;
    Sample {
        ts,
        cpu: Some(CpuSample {
            total_pct: 23.4,
            per_core_pct: vec![20.1, 25.2, 22.0, 26.3],
            iowait_pct: 0.7,
        }),
        load: Some(LoadAverage {
            one: 0.61,
            five: 0.52,
            fifteen: 0.40,
        }),
        memory: Some(MemorySample {
            total_bytes: 16_777_216_000,
            available_bytes: 9_126_805_504 - (w as u64) * 4_096_000,
            used_pct: 45.6,
            swap_total_bytes: 2_147_479_552,
            swap_used_bytes: 12_582_912,
        }),
        filesystems: ["/", "/home", "/var"]
            .iter()
            .map(|m| FilesystemSample {
                mount: (*m).into(),
                fs_type: "ext4".into(),
                device: "/dev/nvme0n1p2".into(),
                total_bytes: 512_110_190_592,
                used_bytes: 301_989_888_000 + (w as u64) * 65_536,
                available_bytes: 184_000_000_000,
                used_pct: 62.1,
                inodes_used_pct: Some(8.4),
            })
            .collect(),
        disks: vec![DiskIoSample {
            device: "nvme0n1".into(),
            read_bytes_per_s: 120_422.4 * w,
            write_bytes_per_s: 880_110.9 + w * 1_000.0,
            reads_per_s: 4.2,
            writes_per_s: 31.7,
            busy_pct: 1.9,
        }],
        network: vec![NetworkSample {
            interface: "eno1".into(),
            rx_bytes_per_s: 152_044.0 + w * 3_001.7,
            tx_bytes_per_s: 48_210.0,
            rx_errors: 0,
            tx_errors: 0,
            link_speed_mbps: Some(1000),
        }],
        temperatures: vec![
            TemperatureSample {
                sensor: "coretemp/Package id 0".into(),
                celsius: 51.0 + w / 4.0,
                critical_celsius: Some(100.0),
            },
            TemperatureSample {
                sensor: "nvme/Composite".into(),
                celsius: 38.9,
                critical_celsius: Some(84.8),
            },
        ],
        uptime_s: Some(1_209_600),
    }
}

fn bench(c: &mut Criterion) {
    let rows: Vec<Sample> = (0..60).map(|i| sample(NOW - (60 - i) * 1000)).collect();
    let batch = TelemetryBatch::from_samples(
        AgentInfo {
            version: "0.1.0".into(),
            hostname: "srv-files-01".into(),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-18-amd64".into(),
            arch: "x86_64".into(),
            boot_time: NOW / 1000 - 1_209_600,
        },
        SpoolReport::default(),
        &rows,
    );
    let json = serde_json::to_vec(&batch).expect("json");
    let body = gzip(&json);
    let key = DeviceSigningKey::generate();
    let device = DeviceId::generate();
    let signature = key.sign(&SignedRequest {
        method: "POST",
        path: routes::BATCHES,
        device: &device,
        timestamp_ms: NOW,
        seq: 42,
        body: &body,
    });
    let headers = SignatureHeaders {
        device,
        timestamp_ms: NOW,
        seq: 42,
        signature,
    };
    let public = key.public_key();
    eprintln!(
        "typical batch: 60 samples, {} bytes JSON, {} bytes gzip",
        json.len(),
        body.len()
    );

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify+inflate+parse+validate (60-sample batch)", |b| {
        b.iter(|| {
            check_batch(
                black_box(&headers),
                &public,
                routes::BATCHES,
                BodyEncoding::Gzip,
                black_box(&body),
                NOW,
            )
            .expect("accepted")
        })
    });
    group.bench_function("stage: signature verify", |b| {
        b.iter(|| {
            headers
                .verify(&public, "POST", routes::BATCHES, black_box(&body))
                .expect("verifies")
        })
    });
    group.bench_function("stage: inflate", |b| {
        b.iter(|| {
            vigie_domain::intake::inflate_bounded(black_box(&body), 2 << 20).expect("inflates")
        })
    });
    group.bench_function("stage: parse", |b| {
        b.iter(|| serde_json::from_slice::<TelemetryBatch>(black_box(&json)).expect("parses"))
    });
    group.bench_function("stage: validate", |b| {
        b.iter(|| black_box(&batch).validate(NOW).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
