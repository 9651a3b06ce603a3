//! `cargo xtask lambda`: every function built for AWS Lambda (arm64, provided.al2023) with
//! cargo-lambda, installed from PyPI into a project-local virtualenv on first use.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{cargo, elf_facts, root, run};

/// The function crates and the binary each produces.
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("vigie-ingest", "ingest"),
    ("vigie-evaluator", "evaluator"),
    ("vigie-sweeper", "sweeper"),
    ("vigie-notifier", "notifier"),
    ("vigie-api", "api"),
];

/// The virtualenv holding cargo-lambda and zig; installs it when missing or outdated.
pub fn tools() -> anyhow::Result<PathBuf> {
    let venv = root().join(".vigie").join("tools");
    let requirements = root().join("infra").join("build-requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).context("reading infra/build-requirements.txt")?;
    let stamp = venv.join("requirements.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv.join("bin"));
    }
    let python = std::env::var("VIGIE_PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&python).arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements))?;
    std::fs::write(&stamp, wanted)?;
    Ok(venv.join("bin"))
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
