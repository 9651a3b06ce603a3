//! Watchers: the collectors behind the ten alert families beyond plain metrics (services,
//! backups, certificates, logins, antivirus, updates, accounts, SMART, network neighbours).
//!
//! Each watcher is a [`Watcher`]: it runs at its own cadence, reads its real input (a file, a
//! log, a command's output, a TLS handshake), adds [`Finding`]s and [`EventCount`]s to the
//! [`Observations`] of the next batch, and says how it fared as a [`CollectorState`]. A
//! missing tool or permission is a state, never a panic and never silence.
//!
//! Inputs are reached through a [`WatchContext`]: a root directory (so tests feed fixture
//! trees, as the metric collectors do) and [`Tools`] (the programs a watcher may run, looked
//! up on a search path, always with a time limit). Platform-specific parts live behind this
//! interface so Windows watchers can implement the same trait later.

pub mod accounts;
pub mod auth;
pub mod malware;
pub mod neighbours;
pub mod smart;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigie_domain::protocol::CollectPlan;
use vigie_domain::telemetry::{CollectorState, EventCount, Finding};

/// What watchers observed since the last batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    pub findings: Vec<Finding>,
    pub events: Vec<EventCount>,
}

impl Observations {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.events.is_empty()
    }
}

/// How a watcher's run went: its state and, unless `Ok`, a short reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    pub state: CollectorState,
    pub detail: Option<String>,
}

impl RunStatus {
    pub fn ok() -> Self {
        Self {
            state: CollectorState::Ok,
            detail: None,
        }
    }

    pub fn with(state: CollectorState, detail: impl Into<String>) -> Self {
        Self {
            state,
            detail: Some(detail.into()),
        }
    }
}

/// What a watcher may read: the machine (below `root`), its tools, its own small state.
pub struct WatchContext<'a> {
    /// `/` on a real machine; a fixture tree in tests.
    pub root: &'a Path,
    pub tools: &'a Tools,
    /// What the device's policy asks to watch.
    pub plan: &'a CollectPlan,
    /// A directory where a watcher keeps what it must remember across restarts (known
    /// neighbours, a log's read position, since when updates are pending).
    pub state_dir: &'a Path,
    pub now_ms: i64,
}

impl WatchContext<'_> {
    /// A path on the machine: `machine("etc/passwd")` is `<root>/etc/passwd`.
    pub fn machine(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.root.join(relative)
    }
}

/// One collector.
pub trait Watcher {
    /// Its name in collector statuses (`services`, `backups`, `certificates`, `auth`,
    /// `malware`, `updates`, `accounts`, `smart`, `neighbours`).
    fn name(&self) -> &'static str;
    /// How often it runs.
    fn every(&self) -> Duration;
    /// Runs once, adding what it saw to `out`.
    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus;
}

/// A program's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Exit code; `None` when killed by a signal or by the time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

/// Why a program could not be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("{0} is not installed")]
    Missing(String),
    #[error("{tool} could not be started: {reason}")]
    Spawn { tool: String, reason: String },
}

impl ToolError {
    /// The collector state this error stands for.
    pub fn state(&self) -> CollectorState {
        match self {
            Self::Missing(_) => CollectorState::MissingTool,
            Self::Spawn { reason, .. } if reason.contains("ermission") => {
                CollectorState::NoPermission
            }
            Self::Spawn { .. } => CollectorState::Error,
        }
    }
}

/// The programs watchers may run, found on a search path (the usual system directories by
/// default; tests put their own directory first).
#[derive(Debug, Clone)]
pub struct Tools {
    path: Vec<PathBuf>,
    limit: Duration,
}

impl Default for Tools {
    fn default() -> Self {
        Self::on_path(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
    }
}

impl Tools {
    /// Tools looked up in `dirs`, in order.
    pub fn on_path(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            path: dirs.into_iter().collect(),
            limit: Duration::from_secs(30),
        }
    }

    /// The time limit of every run (30 s by default).
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Where `name` is installed, if it is. A name with a `/` is taken as a path.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            let p = PathBuf::from(name);
            return p.is_file().then_some(p);
        }
        self.path.iter().map(|d| d.join(name)).find(|p| p.is_file())
    }

    /// Runs `argv` with no input, within the time limit; output is read lossily as UTF-8
    /// and capped at 4 MiB per stream.
    pub fn run(&self, argv: &[&str]) -> Result<ToolOutput, ToolError> {
        self.run_env(argv, &[])
    }

    /// [`Tools::run`] with extra environment variables.
    pub fn run_env(&self, argv: &[&str], env: &[(&str, &str)]) -> Result<ToolOutput, ToolError> {
        let Some((name, args)) = argv.split_first() else {
            return Err(ToolError::Missing(String::new()));
        };
        let program = self
            .find(name)
            .ok_or_else(|| ToolError::Missing((*name).to_owned()))?;
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(&program)
            .args(args)
            // Its own process group, so the time limit also stops what it started.
            .process_group(0)
            .envs(env.iter().copied())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ToolError::Spawn {
                tool: (*name).to_owned(),
                reason: e.to_string(),
            })?;
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(p) = pipe {
                    use std::io::Read as _;
                    let _ = p.take(4 << 20).read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = read(child.stdout.take().map(|p| Box::new(p) as _));
        let err = read(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + self.limit;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(child.id());
                    let _ = child.kill();
                    timed_out = true;
                    break child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break None,
            }
        };
        Ok(ToolOutput {
            code: status.and_then(|s| s.code()),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            timed_out,
        })
    }
}

/// Kills a process group (the tool and whatever it started).
#[allow(unsafe_code)]
fn kill_group(leader: u32) {
    if let Ok(pid) = i32::try_from(leader) {
        // SAFETY: `kill` takes plain integers and touches no memory of ours.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_report_missing_programs_exit_codes_and_time_limits() {
        let tools = Tools::default().with_limit(Duration::from_millis(300));
        assert_eq!(
            tools.run(&["no-such-tool-vigie"]),
            Err(ToolError::Missing("no-such-tool-vigie".into()))
        );
        let out = tools
            .run(&["sh", "-c", "echo hi; echo err >&2; exit 3"])
            .expect("runs");
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "hi\n", "err\n")
        );
        let slow = tools.run(&["sh", "-c", "sleep 5"]).expect("runs");
        assert!(slow.timed_out && slow.code.is_none(), "{slow:?}");
    }
}
