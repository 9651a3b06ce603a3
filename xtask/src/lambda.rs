//! `cargo xtask lambda`: every function built for AWS Lambda (arm64, provided.al2023) with
//! cargo-lambda, installed from PyPI into a project-local virtualenv on first use.

use std::path::PathBuf;
use std::process::Command;

use anyhow::bail;

use crate::util::{cargo, elf_facts, python_tools, root, run};

/// The function crates and the binary each produces.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("vigie-ingest", "ingest"),
    ("vigie-evaluator", "evaluator"),
    ("vigie-sweeper", "sweeper"),
    ("vigie-notifier", "notifier"),
    ("vigie-escalator", "escalator"),
    ("vigie-api", "api"),
];

/// The virtualenv holding cargo-lambda and zig; installs it when missing or outdated.
pub fn tools() -> anyhow::Result<PathBuf> {
    python_tools(
        &root().join(".vigie").join("tools"),
        &root().join("infra").join("build-requirements.txt"),
    )
}

/// Builds every function for arm64; returns the bootstrap paths.
pub fn build() -> anyhow::Result<Vec<PathBuf>> {
    let bin = tools()?;
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let target_added = Command::new("rustup")
        .args(["target", "add", "aarch64-unknown-linux-gnu"])
        .status()
        .is_ok_and(|s| s.success());
    if !target_added {
        bail!(
            "the aarch64-unknown-linux-gnu standard library is not installed and `rustup target add` failed"
        );
    }
    let mut cmd = cargo();
    cmd.env("PATH", path)
        .args(["lambda", "build", "--release", "--arm64"]);
    for (package, _) in FUNCTIONS {
        cmd.args(["--package", package]);
    }
    run(&mut cmd)?;
    let mut out = Vec::new();
    for (_, binary) in FUNCTIONS {
        let bootstrap = root()
            .join("target")
            .join("lambda")
            .join(binary)
            .join("bootstrap");
        let facts = elf_facts(&bootstrap)?;
        if facts.machine != "aarch64" {
            bail!(
                "{} is built for {}, not aarch64",
                bootstrap.display(),
                facts.machine
            );
        }
        let size = std::fs::metadata(&bootstrap)?.len();
        eprintln!(
            "xtask: {binary}: {} ({:.1} MiB, aarch64)",
            bootstrap.display(),
            size as f64 / 1_048_576.0
        );
        out.push(bootstrap);
    }
    Ok(out)
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    if let Some(a) = args.first() {
        bail!("unknown argument {a:?}; usage: cargo xtask lambda");
    }
    for path in build()? {
        println!("{}", path.display());
    }
    Ok(())
}
