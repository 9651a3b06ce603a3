//! `cargo xtask agent`: the agent's static release binary.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{cargo, elf_facts, root, run};

/// The host target every machine here has.
pub const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the static agent for `target` and returns its path. glibc's static C runtime with a
/// non-PIE executable gives a binary with no dynamic loader at all; the agent resolves names
/// itself, so glibc's NSS is never needed at run time.
pub fn build(target: &str) -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--package",
        "vigie-agent",
        "--bin",
        "vigie-agent",
        "--profile",
        "agent",
        "--target",
        target,
    ])
    .env(
        "RUSTFLAGS",
        "-C target-feature=+crt-static -C relocation-model=static",
    );
    run(&mut cmd)?;
    let path = root()
        .join("target")
        .join(target)
        .join("agent")
        .join("vigie-agent");
    let facts = elf_facts(&path)?;
    if facts.dynamic {
        bail!("{} is not statically linked", path.display());
    }
    Ok(path)
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let mut targets = vec![HOST_TARGET.to_owned()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => targets = vec![it.next().context("--target needs a value")?.clone()],
            other => {
                bail!("unknown argument {other:?}; usage: cargo xtask agent [--target TRIPLE]")
            }
        }
    }
    let mut last = None;
    for target in &targets {
        let path = build(target)?;
        let size = std::fs::metadata(&path)?.len();
        let facts = elf_facts(&path)?;
        if let Ok(out) = Command::new("file").arg(&path).output() {
            eprint!("xtask: {}", String::from_utf8_lossy(&out.stdout));
        }
        eprintln!(
            "xtask: agent for {target}: {} bytes ({:.2} MiB), {}, statically linked",
            size,
            size as f64 / 1_048_576.0,
            facts.machine
        );
        last = Some(path);
    }
    if let Some(path) = last {
        println!("{}", path.display());
    }
    Ok(())
}
