//! `updates`: pending updates from the package manager (apt, dnf or zypper), how many fix
//! security issues, how many need someone to act, and whether a reboot is required.
//!
//! Everything is asked as a simulation or a listing, never an installation: `apt-get -s`
//! (without taking apt's lock, so it never waits for a running apt), `dnf check-update`,
//! `zypper list-patches`. It runs hourly: reading package lists costs seconds of CPU.
//! Since when security updates have been pending is kept in the state directory, so "security
//! updates pending for 7 days" holds across restarts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_domain::telemetry::limits::MAX_SAMPLE_PACKAGES;
use vigie_domain::telemetry::{CollectorState, Finding, UpdatesFinding};

use super::{Observations, RunStatus, WatchContext, Watcher, load_state, save_state, shorten};

const STATE_FILE: &str = "updates.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Memory {
    #[serde(default)]
    security_since_ms: Option<i64>,
}

/// The `updates` watcher.
#[derive(Debug, Default)]
pub struct Updates;

/// What a package manager says is pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub pending: u32,
    pub security: u32,
    pub manual: u32,
    /// Package names, security ones first.
    pub sample: Vec<String>,
}

impl Watcher for Updates {
    fn name(&self) -> &'static str {
        "updates"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(3_600)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        let tools = ctx.tools;
        let (manager, read) = if tools.find("apt-get").is_some() {
            ("apt", read_apt(ctx))
        } else if tools.find("dnf").is_some() {
            ("dnf", read_dnf(ctx))
        } else if tools.find("zypper").is_some() {
            ("zypper", read_zypper(ctx))
        } else {
            return RunStatus::with(
                CollectorState::MissingTool,
                "no package manager found (apt-get, dnf, zypper)",
            );
        };
        let pending = match read {
            Ok(p) => p,
            Err(status) => return status,
        };
        let mut memory: Memory = load_state(ctx.state_dir, STATE_FILE);
        let before = memory.clone();
        memory.security_since_ms = match (pending.security, memory.security_since_ms) {
            (0, _) => None,
            (_, Some(since)) => Some(since),
            (_, None) => Some(ctx.now_ms),
        };
        let mut status = RunStatus::ok();
        if memory != before
            && let Err(e) = save_state(ctx.state_dir, STATE_FILE, &memory)
        {
            status = RunStatus::with(
                CollectorState::Error,
                format!("cannot keep since when security updates are pending: {e}"),
            );
        }
        out.findings.push(Finding::Updates(UpdatesFinding {
            observed_ms: ctx.now_ms,
            manager: manager.into(),
            pending: pending.pending,
            security: pending.security,
            manual: pending.manual,
            security_since_ms: memory.security_since_ms,
            reboot_required: reboot_required(ctx),
            sample: pending.sample,
        }));
        status
    }
}

/// Debian's flag file, or `needs-restarting -r` (RHEL family: exit 1 means a reboot is needed).
fn reboot_required(ctx: &WatchContext<'_>) -> bool {
    if ctx.machine("var/run/reboot-required").exists()
        || ctx.machine("run/reboot-required").exists()
    {
        return true;
    }
    ctx.tools.find("needs-restarting").is_some()
        && matches!(ctx.tools.run(&["needs-restarting", "-r"]), Ok(o) if o.code == Some(1))
}

fn failed(tool: &str, stderr: &str, code: Option<i32>) -> RunStatus {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    let state = if stderr.contains("ermission denied") {
        CollectorState::NoPermission
    } else {
        CollectorState::Error
    };
    RunStatus::with(
        state,
        format!(
            "{tool} failed ({}): {}",
            code.map_or("killed".into(), |c| format!("exit {c}")),
            shorten(last.trim(), 200)
        ),
    )
}

fn read_apt(ctx: &WatchContext<'_>) -> Result<Pending, RunStatus> {
    let argv = ["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"];
    let o = ctx
        .tools
        .run(&argv)
        .map_err(|e| RunStatus::with(e.state(), e.to_string()))?;
    if o.code != Some(0) {
        return Err(failed("apt-get -s upgrade", &o.stderr, o.code));
    }
    Ok(parse_apt(&o.stdout))
}

/// `apt-get -s upgrade`: one `Inst name [old] (new origins [arch])` line an upgrade, security
/// when an origin is a `-security` suite; packages "kept back" (they need a new dependency or
/// a removal, so plain upgrades never install them) are pending and manual.
pub fn parse_apt(stdout: &str) -> Pending {
    let mut security = Vec::new();
    let mut other = Vec::new();
    let mut kept = Vec::new();
    let mut in_kept = false;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("Inst ") {
            in_kept = false;
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let origins = rest.split_once('(').map_or("", |(_, o)| o);
            if origins.contains("-security") {
                security.push(name);
            } else {
                other.push(name);
            }
        } else if line.starts_with("The following packages have been kept back") {
            in_kept = true;
        } else if in_kept && line.starts_with("  ") {
            kept.extend(line.split_whitespace().map(str::to_owned));
        } else {
            in_kept = false;
        }
    }
    let count = |v: &Vec<String>| u32::try_from(v.len()).unwrap_or(u32::MAX);
    Pending {
        pending: count(&security) + count(&other) + count(&kept),
        security: count(&security),
        manual: count(&kept),
        sample: security
            .into_iter()
            .chain(kept)
            .chain(other)
            .take(MAX_SAMPLE_PACKAGES)
            .collect(),
    }
}

fn read_dnf(ctx: &WatchContext<'_>) -> Result<Pending, RunStatus> {
    let run = |argv: &[&str]| {
        ctx.tools
            .run(argv)
            .map_err(|e| RunStatus::with(e.state(), e.to_string()))
    };
    // check-update: exit 100 when updates are pending, 0 when none, anything else is an error.
    let all = run(&["dnf", "-q", "check-update"])?;
    if !matches!(all.code, Some(0 | 100)) {
        return Err(failed("dnf check-update", &all.stderr, all.code));
    }
    let sec = run(&["dnf", "-q", "updateinfo", "list", "--security"])?;
    if sec.code != Some(0) {
        return Err(failed("dnf updateinfo", &sec.stderr, sec.code));
    }
    Ok(parse_dnf(&all.stdout, &sec.stdout))
}

/// `dnf check-update` lists `name.arch  version  repo` (then possibly "Obsoleting Packages");
/// `dnf updateinfo list --security` lists `ADVISORY  Severity/Sec.  name-version.arch`.
pub fn parse_dnf(check_update: &str, security: &str) -> Pending {
    let mut names = Vec::new();
    for line in check_update.lines() {
        if line.starts_with("Obsoleting") {
            break;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 3 && !line.starts_with(' ') {
            let name = cols[0].rsplit_once('.').map_or(cols[0], |(n, _)| n);
            names.push(name.to_owned());
        }
    }
    let mut secure: Vec<String> = Vec::new();
    for line in security.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 3 && cols[1].contains("Sec") {
            // name-version-release.arch: the name is the part before the version.
            let nvr = cols[2].rsplit_once('.').map_or(cols[2], |(n, _)| n);
            let mut parts: Vec<&str> = nvr.rsplitn(3, '-').collect();
            parts.reverse();
            let name = if parts.len() == 3 { parts[0] } else { nvr };
            if !secure.iter().any(|s| s == name) {
                secure.push(name.to_owned());
            }
        }
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut sample: Vec<String> = secure.clone();
    sample.extend(names.iter().filter(|n| !secure.contains(n)).cloned());
    sample.truncate(MAX_SAMPLE_PACKAGES);
    Pending {
        pending: count(names.len().max(secure.len())),
        security: count(secure.len()),
        manual: 0,
        sample,
    }
}

fn read_zypper(ctx: &WatchContext<'_>) -> Result<Pending, RunStatus> {
    let o = ctx
        .tools
        .run(&["zypper", "--non-interactive", "--xmlout", "list-patches"])
        .map_err(|e| RunStatus::with(e.state(), e.to_string()))?;
    // zypper's informational exit codes (100-103: patches pending) are not failures.
    if !matches!(o.code, Some(0 | 100..=103)) {
        return Err(failed("zypper list-patches", &o.stderr, o.code));
    }
    Ok(parse_zypper(&o.stdout))
}

/// `zypper --xmlout list-patches`: one `<update kind="patch" name=… category=…>` element a
/// needed patch; `interactive` or `restart` patches need someone.
pub fn parse_zypper(xml: &str) -> Pending {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let start = tag.find(&key)? + key.len();
        let len = tag[start..].find('"')?;
        Some(tag[start..start + len].to_owned())
    };
    let mut p = Pending::default();
    let mut rest = xml;
    while let Some(i) = rest.find("<update ") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let tag = &rest[i..tag_end];
        rest = &rest[tag_end..];
        if attr(tag, "kind").is_some_and(|k| k != "patch") {
            continue;
        }
        p.pending += 1;
        let name = attr(tag, "name").unwrap_or_default();
        if attr(tag, "category").as_deref() == Some("security") {
            p.security += 1;
            p.sample.insert(0, name);
        } else {
            p.sample.push(name);
        }
        let flag = |n| attr(tag, n).is_some_and(|v| v != "false");
        if flag("interactive") || flag("restart") {
            p.manual += 1;
        }
    }
    p.sample.truncate(MAX_SAMPLE_PACKAGES);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Tools;
    use crate::watch::services::tests::scratch;
    use std::path::Path;
    use vigie_domain::protocol::CollectPlan;

    /// Lines of `apt-get -s -o Debug::NoLocking=1 upgrade` on a Debian 12 machine, with a
    /// kept-back section as apt prints it.
    const APT: &str = "Reading package lists...\n\
Building dependency tree...\n\
Reading state information...\n\
Calculating upgrade...\n\
The following packages have been kept back:\n  linux-image-amd64 openjdk-17-jdk\n\
The following packages will be upgraded:\n  base-files bash libgcrypt20 liblzma-dev\n\
4 upgraded, 0 newly installed, 0 to remove and 2 not upgraded.\n\
Inst libgcrypt20 [1.10.1-3] (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])\n\
Inst liblzma-dev [5.4.1-1] (5.4.1-1+deb12u2 Debian-Security:12/oldstable-security [amd64]) []\n\
Inst base-files [12.4+deb12u11] (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n\
Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])\n\
Conf libgcrypt20 (1.10.1-3+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])\n";

    #[test]
    fn apt_simulation_counts_security_and_kept_back_packages() {
        let p = parse_apt(APT);
        assert_eq!((p.pending, p.security, p.manual), (6, 2, 2));
        assert_eq!(
            p.sample,
            [
                "libgcrypt20",
                "liblzma-dev",
                "linux-image-amd64",
                "openjdk-17-jdk",
                "base-files",
                "bash"
            ]
        );
        assert_eq!(
            parse_apt("0 upgraded, 0 newly installed\n"),
            Pending::default()
        );
    }

    #[test]
    fn dnf_and_zypper_listings_are_read() {
        let check = "\nopenssl-libs.x86_64   1:3.0.9-2.fc38   updates\n\
            kernel.x86_64         6.5.6-200.fc38   updates\n\
            tzdata.noarch         2023c-2.fc38     updates\n\
            Obsoleting Packages\n\
            grub2-tools.x86_64    1:2.06-100.fc38  updates\n";
        let sec = "FEDORA-2023-1a2b3c4d5e Important/Sec. openssl-libs-1:3.0.9-2.fc38.x86_64\n\
            FEDORA-2023-9f8e7d6c5b Moderate/Sec.  kernel-6.5.6-200.fc38.x86_64\n\
            FEDORA-2023-9f8e7d6c5c Moderate/Sec.  kernel-6.5.6-200.fc38.x86_64\n";
        let p = parse_dnf(check, sec);
        assert_eq!((p.pending, p.security), (3, 2));
        assert_eq!(p.sample, ["openssl-libs", "kernel", "tzdata"]);

        let xml = r#"<?xml version='1.0'?>
<stream>
<update-status version="0.6">
<update-list>
<update kind="patch" name="openSUSE-SLE-15.5-2023-4010" edition="1" arch="noarch" status="needed" category="security" severity="important" pkgmanager="false" restart="false" interactive="false"><summary>Security update for openssl</summary></update>
<update kind="patch" name="openSUSE-SLE-15.5-2023-3999" edition="1" arch="noarch" status="needed" category="recommended" severity="moderate" pkgmanager="false" restart="true" interactive="false"><summary>Recommended update for kernel</summary></update>
</update-list>
</update-status>
</stream>"#;
        let z = parse_zypper(xml);
        assert_eq!((z.pending, z.security, z.manual), (2, 1, 1));
        assert_eq!(z.sample[0], "openSUSE-SLE-15.5-2023-4010");
    }

    fn run(
        root: &Path,
        state: &Path,
        tools: &Tools,
        now_ms: i64,
    ) -> (RunStatus, Vec<UpdatesFinding>) {
        let plan = CollectPlan::default();
        let ctx = WatchContext {
            root,
            tools,
            plan: &plan,
            state_dir: state,
            now_ms,
        };
        let mut out = Observations::default();
        let status = Updates.run(&ctx, &mut out);
        let found = out
            .findings
            .into_iter()
            .map(|f| match f {
                Finding::Updates(u) => u,
                other => panic!("{other:?}"),
            })
            .collect();
        (status, found)
    }

    #[test]
    fn security_since_is_kept_across_runs_and_cleared_when_up_to_date() {
        let dir = scratch("updates-since");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(dir.join("var/run")).expect("var/run");
        let listing = dir.join("listing");
        // An apt-get that prints what the test chose, as the real one prints it.
        let script = format!("#!/bin/sh\ncat {}\n", listing.display());
        let apt = bin.join("apt-get");
        std::fs::write(&apt, script).expect("script");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&apt, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let tools = Tools::on_path([bin, "/bin".into(), "/usr/bin".into()]);
        let state = dir.join("state");
        let t = 1_790_000_000_000;

        std::fs::write(&listing, APT).expect("listing");
        let (status, found) = run(&dir, &state, &tools, t);
        assert_eq!(status, RunStatus::ok());
        assert_eq!(found[0].security_since_ms, Some(t));
        assert!(!found[0].reboot_required);
        std::fs::write(
            dir.join("var/run/reboot-required"),
            "*** System restart required ***\n",
        )
        .expect("flag");
        let (_, found) = run(&dir, &state, &tools, t + 3_600_000);
        assert_eq!(found[0].security_since_ms, Some(t), "kept, not restarted");
        assert!(found[0].reboot_required);
        assert_eq!(
            Finding::Updates(found[0].clone()).state(),
            "reboot_required"
        );

        std::fs::write(
            &listing,
            "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n",
        )
        .expect("listing");
        let (_, found) = run(&dir, &state, &tools, t + 7_200_000);
        assert_eq!((found[0].pending, found[0].security_since_ms), (0, None));
        std::fs::write(&listing, APT).expect("listing");
        let (_, found) = run(&dir, &state, &tools, t + 10_800_000);
        assert_eq!(
            found[0].security_since_ms,
            Some(t + 10_800_000),
            "a new episode"
        );

        let (status, found) = run(&dir, &state, &Tools::on_path([dir.join("none")]), t);
        assert_eq!(status.state, CollectorState::MissingTool);
        assert!(found.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn this_machines_package_manager_is_read_for_real() {
        let tools = Tools::default().with_limit(Duration::from_secs(120));
        if tools.find("apt-get").is_none() {
            return; // Not a Debian-family machine: the parser tests above still ran.
        }
        let dir = scratch("updates-real");
        let (status, found) = run(Path::new("/"), &dir, &tools, 1_790_000_000_000);
        assert_eq!(status, RunStatus::ok());
        let u = &found[0];
        assert_eq!(u.manager, "apt");
        // Counted independently from apt's own summary line: "N upgraded, … and K not upgraded."
        let out = std::process::Command::new("apt-get")
            .args(["-s", "-o", "Debug::NoLocking=1", "upgrade"])
            .env("LC_ALL", "C")
            .output()
            .expect("apt-get");
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains(" upgraded, "))
            .expect("summary line");
        let upgraded: u32 = summary
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("n");
        assert_eq!(u.pending - u.manual, upgraded, "{summary}");
        assert!(u.security <= u.pending && u.sample.len() <= MAX_SAMPLE_PACKAGES);
        assert_eq!(u.security_since_ms.is_some(), u.security > 0);
        std::fs::remove_dir_all(&dir).ok();
    }
}
