//! `cargo xtask agent`: the agent's static release binary.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util::{cargo, elf_facts, root, run};

/// The agent shipped for x86_64 machines: musl, fully static, smallest (about 25 % smaller
/// than glibc's static runtime).
pub const HOST_TARGET: &str = "x86_64-unknown-linux-musl";

/// The host's glibc target, still buildable (`--target x86_64-unknown-linux-gnu`) where zig is
/// not wanted.
pub const GLIBC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the static agent for `target` and returns its path.
///
/// On a `*-linux-musl` target (the default, and aarch64): musl, with zig (from the build tools
/// virtualenv) as the C compiler and linker. On the glibc target: glibc's static C runtime with a non-PIE executable, so the
/// binary has no dynamic loader at all; the agent resolves names itself, so glibc's NSS is
/// never needed at run time.
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
    ]);
    if target == GLIBC_TARGET {
        cmd.env(
            "RUSTFLAGS",
            "-C target-feature=+crt-static -C relocation-model=static",
        );
    } else if let Some(arch) = target.strip_suffix("-unknown-linux-musl") {
        let added = Command::new("rustup")
            .args(["target", "add", target])
            .status()
            .is_ok_and(|s| s.success());
        if !added {
            bail!("the {target} standard library is not installed and `rustup target add` failed");
        }
        let zig = crate::lambda::tools()?.join("python-zig");
        let wrapper = root().join(".vigie").join(format!("zig-cc-{target}"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n# zig's clang as C compiler and linker for {target}; zig takes its own -target.\n\
                 for a in \"$@\"; do shift; case \"$a\" in --target=*) ;; *) set -- \"$@\" \"$a\" ;; esac; done\n\
                 exec '{}' cc -target {arch}-linux-musl \"$@\"\n",
                zig.display()
            ),
        )?;
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let var = target.to_uppercase().replace('-', "_");
        let env_target = target.replace('-', "_");
        cmd.env(format!("CARGO_TARGET_{var}_LINKER"), &wrapper)
            .env(
                format!("CARGO_TARGET_{var}_RUSTFLAGS"),
                "-C link-self-contained=no -C target-feature=+crt-static",
            )
            .env(format!("CC_{env_target}"), &wrapper)
            .env(format!("AR_{env_target}"), format!("{} ar", zig.display()));
    } else {
        bail!(
            "unsupported agent target {target}: use {GLIBC_TARGET} or a *-unknown-linux-musl target"
        );
    }
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
