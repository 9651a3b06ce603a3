//! `cargo xtask bench`: the figures that go into the README.
//!
//! - the ingest hot path (criterion, `shared/domain/benches/intake.rs`);
//! - the agent's static binary size;
//! - the agent's resident memory and CPU while it runs at its default cadence against the
//!   local stack, read from `/proc/<pid>/status` and `/proc/<pid>/stat`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::util::{cargo, root, run};

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut agent_seconds = 300u64;
    let mut skip_criterion = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--agent-seconds" => agent_seconds = it.next().context("value")?.parse()?,
            "--skip-criterion" => skip_criterion = true,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask bench [--agent-seconds N] [--skip-criterion]"
            ),
        }
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
