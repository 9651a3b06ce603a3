//! `cargo xtask test`: every check CI runs, in one command, building once.

use std::process::Command;
use std::time::Instant;

use anyhow::bail;

use crate::util::{cargo, root, run};

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut skip_lambda = false;
    let mut skip_demo = false;
    for a in args {
        match a.as_str() {
            "--skip-lambda" => skip_lambda = true,
            "--skip-demo" => skip_demo = true,
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask test [--skip-lambda] [--skip-demo]"
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
        Ok(())
    })?;
    step("tests", &mut || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace"]);
        if let Some(path) = &agent {
            cmd.env("VIGIE_AGENT_BIN", path);
        }
        run(&mut cmd)
    })?;
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
    Ok(())
}
