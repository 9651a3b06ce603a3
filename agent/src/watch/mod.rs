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
pub mod backups;
pub mod certificates;
pub mod malware;
pub mod neighbours;
pub mod services;
pub mod smart;
pub mod updates;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigie_domain::protocol::CollectPlan;
use vigie_domain::telemetry::{CollectorState, CollectorStatus, EventCount, Finding};

/// Every watcher this agent has, in the order they run. One line a watcher.
pub fn builtin() -> Vec<Box<dyn Watcher>> {
    vec![
        Box::new(services::Services),
        Box::new(backups::Backups::default()),
        Box::new(certificates::Certificates::default()),
        Box::new(updates::Updates),
        Box::new(auth::AuthWatcher::new()),
        Box::new(malware::MalwareWatcher::new()),
        Box::new(accounts::AccountsWatcher::new()),
        Box::new(smart::SmartWatcher::new()),
        Box::new(neighbours::NeighboursWatcher::new()),
    ]
}

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

    /// Adds `other`'s findings and events after this one's.
    pub fn append(&mut self, other: &mut Observations) {
        self.findings.append(&mut other.findings);
        self.events.append(&mut other.events);
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

/// One collector. `Send`: the agent runs its watchers on a thread of their own, so that a slow
/// tool never delays sampling.
pub trait Watcher: Send {
    /// Its name in collector statuses (`services`, `backups`, `certificates`, `auth`,
    /// `malware`, `updates`, `accounts`, `smart`, `neighbours`).
    fn name(&self) -> &'static str;
    /// How often it runs.
    fn every(&self) -> Duration;
    /// Runs once, adding what it saw to `out`.
    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus;
}

/// `watcher` run at least every `at_most` (`--watch-every`): what it watches and how are
/// unchanged, only its cadence.
pub fn at_most_every(watcher: Box<dyn Watcher>, at_most: Duration) -> Box<dyn Watcher> {
    Box::new(AtMostEvery {
        inner: watcher,
        at_most,
    })
}

struct AtMostEvery {
    inner: Box<dyn Watcher>,
    at_most: Duration,
}

impl Watcher for AtMostEvery {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn every(&self) -> Duration {
        self.inner.every().min(self.at_most)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        self.inner.run(ctx, out)
    }
}

/// What a round of due watchers produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    pub observations: Observations,
    /// Statuses that changed since they were last reported (all of them on the first round).
    pub changed: Vec<CollectorStatus>,
}

impl Round {
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty() && self.changed.is_empty()
    }
}

struct Slot {
    watcher: Box<dyn Watcher>,
    due_ms: i64,
    /// The last status reported, to send only changes.
    reported: Option<(CollectorState, Option<String>)>,
}

/// Runs each watcher at its own cadence over the current plan. A watcher that panics is
/// reported as `error` and runs again at its next turn; the others are not affected.
pub struct Scheduler {
    slots: Vec<Slot>,
    plan: CollectPlan,
}

impl Scheduler {
    /// All watchers are due at once: the first batch of a run carries every status.
    pub fn new(watchers: Vec<Box<dyn Watcher>>, plan: CollectPlan) -> Self {
        Self {
            slots: watchers
                .into_iter()
                .map(|watcher| Slot {
                    watcher,
                    due_ms: i64::MIN,
                    reported: None,
                })
                .collect(),
            plan,
        }
    }

    /// A new plan (the configuration was refreshed): if it differs, every watcher runs again
    /// now, so a service or backup job just added is looked at without waiting an hour.
    pub fn set_plan(&mut self, plan: CollectPlan) {
        if plan != self.plan {
            self.plan = plan;
            for slot in &mut self.slots {
                slot.due_ms = i64::MIN;
            }
        }
    }

    /// When the next watcher is due, Unix ms.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.slots.iter().map(|s| s.due_ms).min()
    }

    /// Runs the watcher most overdue at `now_ms`, if one is due. One at a time, so that
    /// what a quick watcher saw is not held back behind a slow one.
    pub fn run_due(&mut self, root: &Path, tools: &Tools, state_dir: &Path, now_ms: i64) -> Round {
        let mut round = Round::default();
        let Some(slot) = self
            .slots
            .iter_mut()
            .filter(|s| s.due_ms <= now_ms)
            .min_by_key(|s| s.due_ms)
        else {
            return round;
        };
        let name = slot.watcher.name();
        let every_ms = i64::try_from(slot.watcher.every().as_millis()).unwrap_or(i64::MAX);
        slot.due_ms = now_ms.saturating_add(every_ms.max(1_000));
        let status = if self.plan.disabled.iter().any(|d| d == name) {
            RunStatus::with(
                CollectorState::NotApplicable,
                "switched off by the device's policy",
            )
        } else {
            let ctx = WatchContext {
                root,
                tools,
                plan: &self.plan,
                state_dir,
                now_ms,
            };
            let mut out = Observations::default();
            let watcher = &mut slot.watcher;
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                watcher.run(&ctx, &mut out)
            }));
            match ran {
                Ok(status) => {
                    round.observations.append(&mut out);
                    status
                }
                // What it added before panicking is not trusted.
                Err(panic) => RunStatus::with(
                    CollectorState::Error,
                    format!("the watcher panicked: {}", panic_message(panic.as_ref())),
                ),
            }
        };
        let now = (status.state, status.detail);
        if slot.reported.as_ref() != Some(&now) {
            round.changed.push(CollectorStatus {
                collector: name.to_owned(),
                state: now.0,
                detail: now.1.clone().map(|d| shorten(&d, 500)),
                at_ms: now_ms,
            });
            slot.reported = Some(now);
        }
        round
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

/// `text` cut to at most `max` characters (batch texts are bounded).
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// Reads a small JSON state file of a watcher; `None` when absent or unreadable (a first run,
/// for watchers that learn before they report).
pub fn read_state<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    std::fs::read(dir.join(name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// [`read_state`], with "nothing known" as the default.
pub fn load_state<T: serde::de::DeserializeOwned + Default>(dir: &Path, name: &str) -> T {
    read_state(dir, name).unwrap_or_default()
}

/// Writes a watcher's state file atomically (a crash leaves the old one or the new one).
pub fn save_state<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    crate::state::write_atomically(&dir.join(name), &bytes)
}

/// Days from 1970-01-01 to a date (proleptic Gregorian): the inverse of
/// [`crate::civil::civil_from_days`], by the same March-based eras.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time as tools print it, as Unix ms: RFC 3339 (`2026-09-21T14:13:20.5+02:00`), the same
/// with a space or without an offset (then taken as UTC), a date and minutes
/// (`2026-09-21 14:13`), or plain Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return secs.checked_mul(1000);
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Some((secs * 1000.0) as i64);
    }
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &t[16..];
    let mut ms = 0i64;
    if let Some(r) = rest.strip_prefix(':') {
        let secs = r.get(..2)?;
        ms = secs.parse::<i64>().ok()? * 1000;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix(['.', ',']) {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            let frac = &r[..digits];
            let first3: String = frac.chars().chain("000".chars()).take(3).collect();
            ms += first3.parse::<i64>().ok()?;
            rest = &r[digits..];
        }
    }
    let offset_min = match rest.trim() {
        "" | "Z" | "z" | "UTC" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let h: i64 = o.get(1..3)?.parse().ok()?;
            let m: i64 = o.get(4..6)?.parse().ok()?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400_000 + (hour * 60 + minute - offset_min) * 60_000 + ms)
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
    /// When set, a running tool is stopped at once (the agent is stopping).
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
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
            cancel: None,
        }
    }

    /// Tools looked up in `first`, then in the usual system directories (`--tools-path`).
    pub fn with_first(first: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut tools = Self::default();
        let system = std::mem::take(&mut tools.path);
        tools.path = first.into_iter().chain(system).collect();
        tools
    }

    /// The directories searched, in order.
    pub fn search_path(&self) -> &[PathBuf] {
        &self.path
    }

    /// The time limit of every run (30 s by default).
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Tools whose runs stop as soon as `flag` is set (the agent is stopping): the run ends
    /// like one past its time limit, so nothing waits for a slow `apt-get` on shutdown.
    pub fn cancelled_by(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
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
                Ok(None) if Instant::now() >= deadline || self.cancelled() => {
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
    fn timestamps_as_tools_print_them() {
        let at = 1_790_000_000_000; // 2026-09-21T14:13:20Z
        assert_eq!(parse_timestamp("2026-09-21T14:13:20Z"), Some(at));
        assert_eq!(
            parse_timestamp("2026-09-21T16:13:20.250+02:00"),
            Some(at + 250)
        );
        assert_eq!(
            parse_timestamp("2026-09-21T14:13:20.123456789-00:00"),
            Some(at + 123)
        );
        assert_eq!(parse_timestamp("2026-09-21 14:13"), Some(at - 20_000));
        assert_eq!(parse_timestamp("1790000000"), Some(at));
        assert_eq!(parse_timestamp("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        for days in [-800_000i64, -1, 0, 59, 10_957, 20_000, 2_000_000] {
            let (y, m, d) = crate::civil::civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[derive(Default)]
    struct Flaky {
        runs: u32,
    }

    impl Watcher for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn every(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
            self.runs += 1;
            out.events.push(EventCount {
                kind: vigie_domain::telemetry::EventKind::Sudo,
                subject: "x".into(),
                source: String::new(),
                count: 1,
                first_ms: ctx.now_ms,
                last_ms: ctx.now_ms,
            });
            if self.runs == 2 {
                panic!("boom");
            }
            RunStatus::ok()
        }
    }

    #[test]
    fn the_scheduler_keeps_cadence_reports_changes_only_and_survives_a_panic() {
        let dir = std::env::temp_dir();
        let tools = Tools::default();
        let mut s = Scheduler::new(vec![Box::new(Flaky::default())], CollectPlan::default());
        let t = 1_790_000_000_000;
        let first = s.run_due(&dir, &tools, &dir, t);
        assert_eq!(first.observations.events.len(), 1);
        assert_eq!(
            first.changed.len(),
            1,
            "the first round reports every status"
        );
        assert_eq!(first.changed[0].state, CollectorState::Ok);
        assert_eq!(s.next_due_ms(), Some(t + 10_000));
        assert!(
            s.run_due(&dir, &tools, &dir, t + 5_000).is_empty(),
            "not due"
        );
        let panicked = s.run_due(&dir, &tools, &dir, t + 10_000);
        assert!(
            panicked.observations.is_empty(),
            "a panicking run's output is dropped"
        );
        assert_eq!(panicked.changed[0].state, CollectorState::Error);
        assert!(
            panicked.changed[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("boom")),
            "{panicked:?}"
        );
        let recovered = s.run_due(&dir, &tools, &dir, t + 20_000);
        assert_eq!(recovered.changed[0].state, CollectorState::Ok);
        let same = s.run_due(&dir, &tools, &dir, t + 30_000);
        assert!(same.changed.is_empty() && same.observations.events.len() == 1);
        // Switched off by the plan: runs no more, says so once.
        s.set_plan(CollectPlan {
            disabled: vec!["flaky".into()],
            ..CollectPlan::default()
        });
        let off = s.run_due(&dir, &tools, &dir, t + 31_000);
        assert_eq!(off.changed[0].state, CollectorState::NotApplicable);
        assert!(off.observations.is_empty());
    }

    #[test]
    fn a_capped_watcher_runs_at_the_cap_unless_its_own_cadence_is_shorter() {
        let dir = std::env::temp_dir();
        let tools = Tools::default();
        let capped = at_most_every(Box::new(Flaky::default()), Duration::from_secs(2));
        assert_eq!(capped.name(), "flaky");
        assert_eq!(capped.every(), Duration::from_secs(2));
        let loose = at_most_every(Box::new(Flaky::default()), Duration::from_secs(60));
        assert_eq!(loose.every(), Duration::from_secs(10));
        let mut s = Scheduler::new(vec![capped], CollectPlan::default());
        let t = 1_790_000_000_000;
        assert_eq!(
            s.run_due(&dir, &tools, &dir, t).observations.events.len(),
            1
        );
        assert_eq!(s.next_due_ms(), Some(t + 2_000));
    }

    #[test]
    fn tools_on_a_given_path_come_before_the_system_ones() {
        let dir = std::env::temp_dir().join(format!("vigie-tools-first-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let own = dir.join("sh");
        std::fs::write(&own, "#!/bin/sh\necho own\n").expect("tool");
        let tools = Tools::with_first([dir.clone()]);
        assert_eq!(tools.find("sh"), Some(own));
        assert_eq!(tools.search_path()[0], dir);
        assert!(
            tools.find("env").is_some(),
            "the system directories are still searched"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_cancelled_tool_stops_at_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let flag = Arc::new(AtomicBool::new(false));
        let tools = Tools::default().cancelled_by(flag.clone());
        let setter = {
            let flag = flag.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                flag.store(true, Ordering::SeqCst);
            })
        };
        let started = Instant::now();
        let out = tools.run(&["sh", "-c", "sleep 20"]).expect("runs");
        setter.join().expect("setter");
        assert!(out.timed_out && out.code.is_none(), "{out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

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
