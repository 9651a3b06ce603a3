//! `cargo xtask test`: every check CI runs, in one command, building once.

use std::process::Command;
use std::time::Instant;

use anyhow::bail;

use crate::util::{cargo, root, run};

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut skip_lambda = false;
    let mut skip_demo = false;
    let mut skip_api_check = false;
    for a in args {
        match a.as_str() {
            "--skip-lambda" => skip_lambda = true,
            "--skip-demo" => skip_demo = true,
            "--skip-api-check" => skip_api_check = true,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask test [--skip-api-check] [--skip-lambda] [--skip-demo]"
            ),
        }
    }
    let started = Instant::now();
    let mut steps: Vec<(&str, f64)> = Vec::new();
    let mut step =
        |name: &'static str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
            eprintln!("xtask: === {name} ===");
            let t = Instant::now();
            f()?;
            steps.push((name, t.elapsed().as_secs_f64()));
            Ok(())
        };

    step("format", &mut || {
        run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("emulator install", &mut || {
        vigie_emulator::ensure_installed(&root())?;
        Ok(())
    })?;
    step("clippy", &mut || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    let mut agent = None;
    step("static agent", &mut || {
        let path = crate::agent::build(crate::agent::HOST_TARGET)?;
        let size = std::fs::metadata(&path)?.len();
        eprintln!("xtask: static agent {} ({size} bytes)", path.display());
        if size > 3 * 1024 * 1024 {
            bail!("the agent is {size} bytes, over the 3 MB budget");
        }
        agent = Some(path);
        // An extra, never a requirement: the aarch64 agent, where this toolchain allows it.
        match crate::agent::build("aarch64-unknown-linux-musl") {
            Ok(arm) => eprintln!(
                "xtask: aarch64 agent {} ({} bytes, static)",
                arm.display(),
                std::fs::metadata(&arm).map(|m| m.len()).unwrap_or(0)
            ),
            Err(e) => eprintln!("xtask: note: no aarch64 agent on this machine: {e:#}"),
        }
        Ok(())
    })?;
    let mut totals = (0u64, 0u64);
    step("tests", &mut || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--lib", "--bins", "--tests"]);
        if let Some(path) = &agent {
            cmd.env("VIGIE_AGENT_BIN", path);
        }
        totals = run_counting(&mut cmd)?;
        Ok(())
    })?;
    if !skip_api_check {
        step("api check", &mut || crate::api_check::main(&[]))?;
    }
    if !skip_lambda {
        step("lambda build (arm64)", &mut || {
            crate::lambda::build().map(|_| ())
        })?;
    }
    if !skip_demo {
        step("demo --once", &mut || {
            let exe = std::env::current_exe()?;
            run(Command::new(exe).args(["demo", "--once"]))
        })?;
    }
    for (name, secs) in &steps {
        eprintln!("xtask: {name:<22} {secs:>7.1} s");
    }
    eprintln!(
        "xtask: all checks passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("tests: {} passed, {} failed", totals.0, totals.1);
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up its `test result:` lines.
fn run_counting(cmd: &mut Command) -> anyhow::Result<(u64, u64)> {
    use std::io::{BufRead as _, BufReader};
    eprintln!("xtask: $ {}", crate::util::describe(cmd));
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut totals = (0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .strip_suffix(word)
                        })
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                totals.0 += count(" passed");
                totals.1 += count(" failed");
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("tests: {} passed, {} failed", totals.0, totals.1.max(1));
        bail!("cargo test failed ({status})");
    }
    Ok(totals)
}
