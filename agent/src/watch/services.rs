//! `services`: whether the services the policy names are running.
//!
//! With systemd (`/run/systemd/system` exists, which is systemd's own test for "booted with
//! systemd"), each name is a unit: `systemctl show` gives its load, active and sub state. Without
//! systemd (containers, Alpine with OpenRC, old SysV machines), the name is looked for among
//! the running processes: a process whose name or program file matches is `active`.

use std::time::Duration;

use vigie_domain::telemetry::{CollectorState, Finding, ServiceFinding};

use super::{Observations, RunStatus, WatchContext, Watcher, shorten};

/// The `services` watcher.
#[derive(Debug, Default)]
pub struct Services;

impl Watcher for Services {
    fn name(&self) -> &'static str {
        "services"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        let names = &ctx.plan.services;
        if names.is_empty() {
            return RunStatus::with(CollectorState::NotApplicable, "no service to watch");
        }
        if ctx.machine("run/systemd/system").is_dir() {
            return with_systemd(ctx, out);
        }
        let processes = match running_processes(ctx) {
            Ok(p) => p,
            Err(e) => {
                return RunStatus::with(
                    CollectorState::NoPermission,
                    format!("cannot list processes: {e}"),
                );
            }
        };
        for name in names {
            let running = processes.iter().any(|p| p.matches(name));
            out.findings.push(Finding::Service(ServiceFinding {
                observed_ms: ctx.now_ms,
                name: name.clone(),
                state: if running { "active" } else { "inactive" }.into(),
                sub_state: None,
                via: "process".into(),
            }));
        }
        RunStatus::ok()
    }
}

fn with_systemd(ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
    let mut status = RunStatus::ok();
    for name in &ctx.plan.services {
        let unit = if name.contains('.') {
            name.clone()
        } else {
            format!("{name}.service")
        };
        let argv = [
            "systemctl",
            "show",
            unit.as_str(),
            "-p",
            "ActiveState",
            "-p",
            "SubState",
            "-p",
            "LoadState",
        ];
        match ctx.tools.run(&argv) {
            Err(e) => return RunStatus::with(e.state(), e.to_string()),
            Ok(o) if o.code != Some(0) => {
                status = RunStatus::with(
                    CollectorState::Error,
                    format!(
                        "systemctl show {unit} failed: {}",
                        shorten(o.stderr.trim(), 200)
                    ),
                );
            }
            Ok(o) => match parse_show(&o.stdout) {
                Some(unit_state) => out.findings.push(Finding::Service(ServiceFinding {
                    observed_ms: ctx.now_ms,
                    name: name.clone(),
                    state: unit_state.state,
                    sub_state: unit_state.sub_state,
                    via: "systemd".into(),
                })),
                None => {
                    status = RunStatus::with(
                        CollectorState::Error,
                        format!("systemctl show {unit}: no ActiveState in its output"),
                    );
                }
            },
        }
    }
    status
}

/// A unit's state as `systemctl show` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub state: String,
    pub sub_state: Option<String>,
}

/// Reads `Key=value` lines of `systemctl show`. A unit systemd does not know
/// (`LoadState=not-found`) is `not_found`, whatever its (meaningless) active state says.
pub fn parse_show(text: &str) -> Option<UnitState> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if get("LoadState") == Some("not-found") {
        return Some(UnitState {
            state: "not_found".into(),
            sub_state: None,
        });
    }
    Some(UnitState {
        state: get("ActiveState")?.to_owned(),
        sub_state: get("SubState").map(str::to_owned),
    })
}

/// A running process: its short name (`comm`, at most 15 bytes) and its program.
#[derive(Debug, Clone)]
struct Process {
    comm: String,
    argv0: String,
}

impl Process {
    fn matches(&self, name: &str) -> bool {
        // The kernel cuts `comm` to 15 bytes: "vigie-long-service-name" shows as its first 15.
        let cut = name.get(..15).unwrap_or(name);
        let program = self.argv0.rsplit('/').next().unwrap_or("");
        self.comm == name || (name.len() > 15 && self.comm == cut) || program == name
    }
}

/// Every process of `<root>/proc` whose files are readable (a process may end while read).
fn running_processes(ctx: &WatchContext<'_>) -> std::io::Result<Vec<Process>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(ctx.machine("proc"))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        found.push(Process {
            comm: comm.trim_end_matches('\n').to_owned(),
            argv0: String::from_utf8_lossy(argv0).into_owned(),
        });
    }
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::watch::Tools;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use vigie_domain::protocol::CollectPlan;

    pub(crate) fn scratch(name: &str) -> PathBuf {
        super::super::auth::tests::scratch(name)
    }

    fn run(root: &Path, tools: &Tools, services: &[&str]) -> (RunStatus, Vec<ServiceFinding>) {
        let plan = CollectPlan {
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            ..CollectPlan::default()
        };
        let ctx = WatchContext {
            root,
            tools,
            plan: &plan,
            state_dir: root,
            now_ms: 1_790_000_000_000,
        };
        let mut out = Observations::default();
        let status = Services.run(&ctx, &mut out);
        let found = out
            .findings
            .into_iter()
            .map(|f| match f {
                Finding::Service(s) => s,
                other => panic!("not a service finding: {other:?}"),
            })
            .collect();
        (status, found)
    }

    #[test]
    fn without_systemd_a_real_process_is_found_by_its_name() {
        let dir = scratch("services-proc");
        // A machine without systemd whose processes are this machine's.
        std::os::unix::fs::symlink("/proc", dir.join("proc")).expect("proc link");
        let program = dir.join("vigie-svc-test");
        std::fs::copy("/bin/sleep", &program).expect("copy sleep");
        let mut child = Command::new(&program).arg("30").spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(100));
        let (status, found) = run(&dir, &Tools::default(), &["vigie-svc-test", "vigie-absent"]);
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert_eq!(status, RunStatus::ok());
        assert_eq!(
            found
                .iter()
                .map(|f| (f.name.as_str(), f.state.as_str(), f.via.as_str()))
                .collect::<Vec<_>>(),
            [
                ("vigie-svc-test", "active", "process"),
                ("vigie-absent", "inactive", "process")
            ]
        );
        // Gone once stopped.
        let (_, found) = run(&dir, &Tools::default(), &["vigie-svc-test"]);
        assert_eq!(found[0].state, "inactive");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn systemctl_show_output_is_read_including_unknown_units() {
        // As printed by systemd 252 for a running, a failed and an unknown unit.
        let running = "ActiveState=active\nSubState=running\nLoadState=loaded\n";
        let failed = "LoadState=loaded\nActiveState=failed\nSubState=failed\n";
        let unknown = "ActiveState=inactive\nSubState=dead\nLoadState=not-found\n";
        assert_eq!(
            parse_show(running),
            Some(UnitState {
                state: "active".into(),
                sub_state: Some("running".into())
            })
        );
        assert_eq!(parse_show(failed).map(|u| u.state), Some("failed".into()));
        assert_eq!(
            parse_show(unknown),
            Some(UnitState {
                state: "not_found".into(),
                sub_state: None
            })
        );
        assert_eq!(parse_show("garbage\n"), None);
    }

    #[test]
    fn with_systemd_each_unit_is_asked_to_systemctl() {
        let dir = scratch("services-systemd");
        std::fs::create_dir_all(dir.join("run/systemd/system")).expect("systemd dir");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        // A systemctl that answers like the real one, from the unit it was asked about.
        let script = "#!/bin/sh\ncase \"$2\" in\n\
            nginx.service) printf 'ActiveState=active\\nSubState=running\\nLoadState=loaded\\n';;\n\
            *) printf 'ActiveState=inactive\\nSubState=dead\\nLoadState=not-found\\n';;\nesac\n";
        let systemctl = bin.join("systemctl");
        std::fs::write(&systemctl, script).expect("script");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let tools = Tools::on_path([bin, PathBuf::from("/bin"), PathBuf::from("/usr/bin")]);
        let (status, found) = run(&dir, &tools, &["nginx", "postgresql"]);
        assert_eq!(status, RunStatus::ok());
        assert_eq!(
            found
                .iter()
                .map(|f| (f.state.as_str(), f.sub_state.as_deref(), f.via.as_str()))
                .collect::<Vec<_>>(),
            [
                ("active", Some("running"), "systemd"),
                ("not_found", None, "systemd")
            ]
        );
        // No systemctl at all on a systemd machine: the collector says so.
        let (status, found) = run(&dir, &Tools::on_path([dir.join("none")]), &["nginx"]);
        assert_eq!(status.state, CollectorState::MissingTool);
        assert!(found.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
