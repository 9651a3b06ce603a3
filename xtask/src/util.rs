//! Running commands and finding things.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    vigie_emulator::project_root()
}

/// Runs a command in the workspace root, echoing it; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A project-local virtualenv at `venv` with `requirements` installed (from PyPI), created or
/// brought up to date on first use; returns its `bin` directory. A stamp of the requirements'
/// hash inside the venv skips the work when nothing changed; it is removed before an install,
/// so a failed install is retried next time.
pub fn python_tools(venv: &Path, requirements: &Path) -> anyhow::Result<PathBuf> {
    let wanted = std::fs::read(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = format!("requirements-fnv1a64 {:016x}\n", fnv1a64(&wanted));
    let stamp_path = venv.join("requirements.stamp");
    let bin = venv.join("bin");
    if bin.join("python").is_file()
        && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str())
    {
        return Ok(bin);
    }
    let python = std::env::var("VIGIE_PYTHON").unwrap_or_else(|_| "python3".into());
    if !bin.join("python").is_file() {
        run(Command::new(&python).arg("-m").arg("venv").arg(venv))?;
    }
    let _ = std::fs::remove_file(&stamp_path);
    run(Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(requirements))?;
    std::fs::write(&stamp_path, stamp)?;
    Ok(bin)
}

/// FNV-1a, 64 bits: enough to notice that a requirements file changed.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// What an ELF file is: machine and whether it needs a dynamic loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFacts {
    pub machine: &'static str,
    /// Has a `PT_INTERP` (asks for a dynamic loader) or `PT_DYNAMIC` segment.
    pub dynamic: bool,
}

/// Reads the ELF header and program headers (64-bit little-endian only).
pub fn elf_facts(path: &Path) -> anyhow::Result<ElfFacts> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        bail!("{} is not a 64-bit little-endian ELF file", path.display());
    }
    let machine = match u16_at(18) {
        Some(62) => "x86_64",
        Some(183) => "aarch64",
        _ => "other",
    };
    let phoff = u64_at(32).context("truncated ELF header")? as usize;
    let phentsize = usize::from(u16_at(54).context("truncated ELF header")?);
    let phnum = usize::from(u16_at(56).context("truncated ELF header")?);
    let mut dynamic = false;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).context("truncated program headers")?;
        // PT_DYNAMIC = 2, PT_INTERP = 3
        dynamic |= p_type == 2 || p_type == 3;
    }
    Ok(ElfFacts { machine, dynamic })
}
