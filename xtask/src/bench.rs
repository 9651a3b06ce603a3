//! `cargo xtask bench`: the figures that go into the README.
//!
//! - the ingest hot path (criterion, `shared/domain/benches/intake.rs`);
//! - the agent's static binary size;
//! - the agent's resident memory and CPU while it runs at its default cadence against the
//!   local stack, read from `/proc/<pid>/status` and `/proc/<pid>/stat`.
//!
//! `--escalation` measures the escalation sweep (see `escalation_bench`).
//!
//! `--api` measures the tenant API instead: warm `GET /v1/clients` (JWT verification and one
//! DynamoDB Query) over real HTTP against the local runtime and the emulator, and JWT
//! verification alone, in process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::util::{cargo, root, run};

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut agent_seconds = 300u64;
    let mut skip_criterion = false;
    let mut api_requests = None;
    let mut escalation: Option<(usize, usize)> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--agent-seconds" => agent_seconds = it.next().context("value")?.parse()?,
            "--skip-criterion" => skip_criterion = true,
            "--api" => api_requests = Some(1000),
            "--api-requests" => api_requests = Some(it.next().context("value")?.parse()?),
            "--escalation" => escalation = Some(escalation.unwrap_or((10_000, 100))),
            "--pending" => {
                let n = it.next().context("value")?.parse()?;
                escalation = Some((n, escalation.map_or(100, |e| e.1)));
            }
            "--due" => {
                let n = it.next().context("value")?.parse()?;
                escalation = Some((escalation.map_or(10_000, |e| e.0), n));
            }
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench [--agent-seconds N] [--skip-criterion] | --api [--api-requests N] | --escalation [--pending N] [--due M]"
            ),
        }
    }
    if let Some((pending, due)) = escalation {
        return crate::escalation_bench::main(pending, due);
    }
    if let Some(requests) = api_requests {
        return api(requests);
    }
    if !skip_criterion {
        run(cargo().args(["bench", "--package", "vigie-domain", "--bench", "intake"]))?;
    }
    let agent = crate::agent::build(crate::agent::HOST_TARGET)?;
    let size = std::fs::metadata(&agent)?.len();
    println!(
        "agent binary: {size} bytes ({:.2} MiB), static",
        size as f64 / 1_048_576.0
    );

    let emulator = crate::demo::start_emulator()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = rt.block_on(crate::demo::setup(emulator.endpoint(), "vigie-bench"))?;
    let state = root().join(".vigie").join("bench-agent");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    let out = Command::new(&agent)
        .args([
            "enroll",
            "--url",
            &stack.server.url(),
            "--token",
            stack.token.expose(),
            "--state-dir",
        ])
        .arg(&state)
        .output()?;
    if !out.status.success() {
        bail!("enrolment failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Default cadence: the agent's own defaults (60 s sampling, 60 s sending).
    let mut child = Command::new(&agent)
        .args(["run", "--state-dir"])
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let clk_tck: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let started = Instant::now();
    let mut max_rss_kib = 0u64;
    let mut last_ticks = 0u64;
    while started.elapsed() < Duration::from_secs(agent_seconds) {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("VmRSS:") {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    max_rss_kib = max_rss_kib.max(kib);
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields after the command name: utime is field 14, stime 15 (1-based).
            if let Some(rest) = stat.rsplit(')').next() {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
                let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
                last_ticks = utime + stime;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let status = Command::new(&agent)
        .args(["status", "--state-dir"])
        .arg(&state)
        .output()?;
    let cpu_pct = last_ticks as f64 / clk_tck / elapsed * 100.0;
    println!(
        "agent at default cadence for {elapsed:.0} s: max RSS {:.2} MiB, CPU {:.3} % of one core ({last_ticks} ticks)",
        max_rss_kib as f64 / 1024.0,
        cpu_pct
    );
    print!("{}", String::from_utf8_lossy(&status.stdout));
    rt.block_on(stack.server.stop());
    drop(emulator);
    Ok(())
}

/// Warm API requests: `requests` sequential `GET /v1/clients` as an `msp_admin` on one kept-alive
/// connection (after 50 unmeasured ones), end to end over HTTP; then `Verifier::verify` alone
/// on the same token.
fn api(requests: usize) -> anyhow::Result<()> {
    let emulator = crate::demo::start_emulator()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = rt.block_on(crate::api_check::start_seeded(
        emulator.endpoint(),
        &crate::api_check::fresh_prefix("apibench"),
    ))?;
    let token = stack.token(vigie_auth::Role::MspAdmin)?;
    let url = format!("{}/v1/clients", stack.runtime.url());
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let get = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let response = agent
            .get(&url)
            .set("authorization", &format!("Bearer {token}"))
            .call()?;
        let body = response.into_string()?;
        let elapsed = t.elapsed();
        if !body.contains("\"client_id\"") {
            bail!("unexpected answer: {body}");
        }
        Ok(elapsed)
    };
    for _ in 0..50 {
        get()?;
    }
    let mut latencies = Vec::with_capacity(requests);
    let started = Instant::now();
    for _ in 0..requests {
        latencies.push(get()?);
    }
    let wall = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
            .as_secs_f64()
            * 1000.0
    };
    println!(
        "warm GET /v1/clients (JWT verify + one DynamoDB Query against the emulator), {requests} requests over HTTP on one connection: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0} requests/s)",
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0),
        requests as f64 / wall.as_secs_f64()
    );

    // The same Query alone, from this process to the emulator: what the emulator costs.
    let query = rt.block_on(async {
        let directory = stack.ports.directory();
        let mut times = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            directory.clients(&stack.tenant).await?;
            times.push(t.elapsed());
        }
        times.sort();
        Ok::<_, anyhow::Error>(times[times.len() / 2])
    })?;
    println!(
        "the DynamoDB Query alone (list client companies, SDK to the emulator): p50 {:.2} ms",
        query.as_secs_f64() * 1000.0
    );

    let verifier = vigie_auth::Verifier::new(
        vec![stack.issuer.issuer_config()],
        std::sync::Arc::new(vigie_domain::clock::SystemClock),
    )?;
    let rounds = 20_000u32;
    let per_verify = rt.block_on(async {
        for _ in 0..1000 {
            verifier.verify(&token).await?;
        }
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(verifier.verify(std::hint::black_box(&token)).await?);
        }
        Ok::<_, anyhow::Error>(t.elapsed() / rounds)
    })?;
    println!(
        "JWT verification alone (Ed25519, Vigie's own issuer, Verifier::verify in process): {:.1} µs per token ({rounds} rounds)",
        per_verify.as_secs_f64() * 1e6
    );
    rt.block_on(stack.runtime.stop());
    drop(emulator);
    Ok(())
}
