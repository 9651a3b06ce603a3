//! Logins and sudo: failed and successful SSH logins, other PAM authentication failures and
//! sudo use, read from `/var/log/auth.log` (Debian, Ubuntu) or `/var/log/secure` (RHEL,
//! SUSE), or from the journal where neither file exists, and counted on the agent per
//! (kind, user, source) so a brute-force run of ten thousand lines is one compact event.
//!
//! The read position (inode and offset, or the journal cursor) is kept in the state
//! directory, so a restart neither counts a line twice nor misses one; a rotated log is
//! finished from its rotated copy before the new file is read, and a truncated one is read
//! again from the start.
//!
//! A successful login for a (user, source) this machine never saw gives one
//! `login_new_source` event. The very first run only learns: it reads the end of the
//! existing log to know the usual sources and reports nothing, so installing the agent does
//! not flood anyone with history.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_domain::telemetry::{CollectorState, EventCount, EventKind};

use super::{Observations, RunStatus, WatchContext, Watcher};

/// The logs tried, in order, below the machine's root.
const LOGS: [&str; 2] = ["var/log/auth.log", "var/log/secure"];
const STATE_FILE: &str = "auth.json";
/// How much of an existing log the first run reads to learn the usual login sources.
const FIRST_RUN_TAIL: u64 = 8 << 20;
/// The most one run reads; the rest waits for the next run.
const MAX_READ: u64 = 16 << 20;
/// The most journal entries one run asks for (the tool's output is capped at 4 MiB).
const JOURNAL_ENTRIES: &str = "10000";
/// How many (user, source) pairs are remembered; the least recently seen go first.
const MAX_KNOWN: usize = 2048;
/// Distinct (kind, user, source) counters in one run; beyond, counts fold into `*`/`*`.
const MAX_COUNTERS: usize = 256;
/// `login_new_source` events in one run; beyond, one more event counts the rest as `*`/`*`.
const MAX_NEW_SOURCES: usize = 64;
/// Longest user or source kept (the text comes from whoever connects).
const MAX_FIELD: usize = 128;

/// The `auth` collector.
#[derive(Debug, Default)]
pub struct AuthWatcher;

impl AuthWatcher {
    pub fn new() -> Self {
        Self
    }
}

impl Watcher for AuthWatcher {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        let state_path = ctx.state_dir.join(STATE_FILE);
        let saved: Option<AuthState> = super::read_state(ctx.state_dir, STATE_FILE);
        let first_run = saved.is_none();
        let mut state = saved.unwrap_or_default();

        let log = LOGS.iter().map(|l| ctx.machine(l)).find(|p| p.exists());
        let (text, mut status) = match log {
            Some(path) => match read_file_source(&path, &mut state, first_run) {
                Ok(text) => (text, RunStatus::ok()),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return RunStatus::with(
                        CollectorState::NoPermission,
                        format!("cannot read {}: {e}", path.display()),
                    );
                }
                Err(e) => {
                    return RunStatus::with(
                        CollectorState::Error,
                        format!("cannot read {}: {e}", path.display()),
                    );
                }
            },
            None => match ctx.tools.find("journalctl") {
                None => {
                    return RunStatus::with(
                        CollectorState::NotApplicable,
                        "no /var/log/auth.log, no /var/log/secure and no journalctl",
                    );
                }
                Some(_) => match read_journal(ctx, &mut state) {
                    Ok(read) => read,
                    Err(status) => return status,
                },
            },
        };

        let entries = text.lines().filter_map(parse_line).collect::<Vec<_>>();
        let events = count(&entries, ctx.now_ms);
        let mut fresh = learn_logins(&mut state.known, &events, ctx.now_ms);
        if !first_run {
            out.events.extend(events);
            out.events.append(&mut fresh);
        }
        if let Err(e) = super::save_state(ctx.state_dir, STATE_FILE, &state) {
            status = RunStatus::with(
                CollectorState::Error,
                format!(
                    "cannot keep the read position in {}: {e}",
                    state_path.display()
                ),
            );
        }
        status
    }
}

/// What the collector remembers across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthState {
    #[serde(default)]
    log: Option<LogTail>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    known: Vec<KnownLogin>,
}

/// A (user, source) pair that logged in successfully, and when last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KnownLogin {
    user: String,
    source: String,
    last_ms: i64,
}

fn read_file_source(path: &Path, state: &mut AuthState, first_run: bool) -> io::Result<String> {
    // A log file that replaces the journal or another file is read from its end: what it
    // already holds was either counted from the old source or is history.
    let tail = state
        .log
        .clone()
        .filter(|t| t.path == path.to_string_lossy());
    let history = if first_run { FIRST_RUN_TAIL } else { 0 };
    let (text, next) = read_appended(path, tail.as_ref(), history)?;
    state.log = Some(next);
    state.cursor = None;
    Ok(text)
}

/// Reads new journal entries of sshd and sudo after the remembered cursor (the last
/// [`JOURNAL_ENTRIES`] on the first run), keeping the cursor journalctl prints last.
fn read_journal(
    ctx: &WatchContext<'_>,
    state: &mut AuthState,
) -> Result<(String, RunStatus), RunStatus> {
    let mut argv = vec![
        "journalctl",
        "-u",
        "ssh",
        "-u",
        "sshd",
        "_COMM=sudo",
        "--no-pager",
        "--utc",
        "-o",
        "short-iso",
        "--show-cursor",
        "-n",
        JOURNAL_ENTRIES,
    ];
    let after;
    if let Some(cursor) = &state.cursor {
        after = format!("--after-cursor={cursor}");
        argv.push(&after);
    }
    let run = ctx
        .tools
        .run(&argv)
        .map_err(|e| RunStatus::with(e.state(), e.to_string()))?;
    if run.timed_out {
        return Err(RunStatus::with(
            CollectorState::Error,
            "journalctl timed out",
        ));
    }
    let mut text = String::new();
    for line in run.stdout.lines() {
        if let Some(cursor) = line.strip_prefix("-- cursor: ") {
            state.cursor = Some(cursor.trim().to_owned());
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    let status = if run.stderr.contains("not seeing messages") {
        // journalctl shows a user only their own entries unless they are in adm or
        // systemd-journal: what was read is real but partial.
        RunStatus::with(
            CollectorState::NoPermission,
            "journalctl shows only part of the journal (not in adm or systemd-journal)",
        )
    } else if run.code.is_some_and(|c| c != 0) && !run.stdout.contains("-- No entries --") {
        let why = run.stderr.lines().next().unwrap_or("no reason given");
        if run.stderr.contains("No journal files") {
            RunStatus::with(CollectorState::NotApplicable, why)
        } else {
            RunStatus::with(CollectorState::Error, format!("journalctl failed: {why}"))
        }
    } else {
        RunStatus::ok()
    };
    Ok((text, status))
}

/// Where reading a log stopped: the file (path and inode) and the offset of the first byte
/// not yet read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogTail {
    pub path: String,
    pub inode: u64,
    pub offset: u64,
}

/// The complete lines appended to `path` since `tail`, and where the next read starts.
///
/// Without a `tail` (first read), the last `first_tail` bytes are read, from the first
/// line boundary on. A different inode means the log was rotated: the rest of the old file
/// is read from its rotated copy next to it (`auth.log.1`, `secure-20261121`), if still
/// uncompressed, then the new file from its start. A file shorter than the offset was
/// truncated in place and is read from its start. A partial last line is left for the next
/// read, which sees it once the writer finishes it.
pub(crate) fn read_appended(
    path: &Path,
    tail: Option<&LogTail>,
    first_tail: u64,
) -> io::Result<(String, LogTail)> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let (inode, len) = (meta.ino(), meta.len());
    let mut text = Vec::new();
    let start = match tail {
        None => len.saturating_sub(first_tail),
        Some(t) if t.inode == inode => {
            if len < t.offset {
                0
            } else {
                t.offset
            }
        }
        Some(t) => {
            if let Some(rotated) = rotated_copy(path, t.inode)
                && let Ok(mut old) = File::open(rotated)
            {
                old.seek(SeekFrom::Start(t.offset))?;
                old.take(MAX_READ).read_to_end(&mut text)?;
                if text.last().is_some_and(|b| *b != b'\n') {
                    text.push(b'\n');
                }
            }
            0
        }
    };
    file.seek(SeekFrom::Start(start))?;
    let mut fresh = Vec::new();
    file.take(MAX_READ).read_to_end(&mut fresh)?;
    let mut skip = 0;
    if tail.is_none() && start > 0 {
        // Started mid-file: the first line is a fragment.
        skip = fresh
            .iter()
            .position(|b| *b == b'\n')
            .map_or(fresh.len(), |i| i + 1);
    }
    let end = fresh.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let end = end.max(skip);
    text.extend_from_slice(&fresh[skip..end]);
    let next = LogTail {
        path: path.to_string_lossy().into_owned(),
        inode,
        offset: start + end as u64,
    };
    Ok((String::from_utf8_lossy(&text).into_owned(), next))
}

/// The rotated copy of `path` that still has inode `inode`, if any.
fn rotated_copy(path: &Path, inode: u64) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let dir = path.parent()?;
    fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let other = entry.file_name();
        let other = other.to_str()?;
        let compressed = [".gz", ".xz", ".bz2", ".zst"]
            .iter()
            .any(|ext| other.ends_with(ext));
        let sibling = other != name && other.starts_with(name);
        (sibling && !compressed && entry.metadata().ok()?.ino() == inode).then(|| entry.path())
    })
}

/// When a log line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// An RFC 3339 time with its offset (newer rsyslog, journalctl's `short-iso`), Unix ms.
    Unix(i64),
    /// A classic syslog time: local time, no year.
    Local {
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    },
}

impl Stamp {
    /// Unix ms; a syslog time takes the year of `now_ms`, or the year before if that would
    /// put it more than a day in the future (December lines read in January).
    pub fn resolve(self, now_ms: i64) -> Option<i64> {
        match self {
            Self::Unix(ms) => Some(ms),
            Self::Local {
                month,
                day,
                hour,
                minute,
                second,
            } => {
                let (year, _, _) = crate::civil::civil_from_days(now_ms.div_euclid(86_400_000));
                let at = |y| local_to_unix_ms(y, month, day, hour, minute, second);
                match at(year) {
                    Some(ms) if ms > now_ms + 86_400_000 => at(year - 1),
                    other => other,
                }
            }
        }
    }
}

/// A local civil time as Unix ms, through the C library's `mktime` (which knows the
/// machine's time zone and its daylight-saving rules).
#[allow(unsafe_code)]
pub(crate) fn local_to_unix_ms(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // SAFETY: `tm` is plain old data; zeroed is a valid value for every field.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(year - 1900).ok()?;
    tm.tm_mon = month as i32 - 1;
    tm.tm_mday = day as i32;
    tm.tm_hour = hour as i32;
    tm.tm_min = minute as i32;
    tm.tm_sec = second.min(60) as i32;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a valid, exclusively borrowed struct for the duration of the call.
    let secs = unsafe { libc::mktime(&mut tm) };
    // `time_t` is 32 bits on some targets the agent is built for.
    #[allow(clippy::useless_conversion)]
    (secs != -1).then(|| i64::from(secs) * 1000)
}

/// One authentication-related log line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEntry {
    pub stamp: Stamp,
    /// The process id in `prog[pid]:`, which ties sshd's lines about one connection.
    pub pid: Option<u32>,
    pub what: AuthWhat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthWhat {
    /// sshd: `Failed <method> for [invalid user ]<user> from <ip> port …`.
    Failed {
        user: String,
        source: String,
        invalid_user: bool,
    },
    /// sshd: `Invalid user <user> from <ip> port …`.
    InvalidUser { user: String, source: String },
    /// sshd: `Accepted <method> for <user> from <ip> port …`.
    Accepted {
        user: String,
        source: String,
        method: String,
    },
    /// `pam_…(<service>:auth): authentication failure; … rhost=<ip> user=<user>`, for
    /// services other than sshd (which logs its own `Failed` line for the same attempt).
    PamFailure {
        service: String,
        user: String,
        source: String,
    },
    /// sudo: `<user> : TTY=… ; PWD=… ; USER=… ; COMMAND=…`.
    Sudo { user: String, command: String },
    /// sudo: `<user> : user NOT in sudoers ; …` (the password was right, the right was not).
    SudoRefused { user: String },
}

/// Parses one syslog or journal line; `None` for anything that is not an authentication
/// line this collector counts. Never panics, whatever the bytes.
pub fn parse_line(line: &str) -> Option<AuthEntry> {
    let (stamp, rest) = parse_stamp(line)?;
    // `host prog[pid]: message`
    let rest = rest.trim_start();
    let (_host, rest) = rest.split_once(' ')?;
    let (tag, message) = rest.split_once(": ")?;
    let (program, pid) = match tag.split_once('[') {
        Some((p, pid)) => (p, pid.strip_suffix(']').and_then(|n| n.parse().ok())),
        None => (tag, None),
    };
    let what = if program.starts_with("sshd") {
        parse_sshd(message).or_else(|| parse_pam(message))?
    } else if program == "sudo" {
        parse_sudo(message).or_else(|| parse_pam(message))?
    } else {
        parse_pam(message)?
    };
    Some(AuthEntry { stamp, pid, what })
}

fn parse_stamp(line: &str) -> Option<(Stamp, &str)> {
    let b = line.as_bytes();
    if b.len() > 19 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T' {
        let (head, rest) = line.split_once(' ')?;
        return Some((Stamp::Unix(parse_rfc3339(head)?), rest));
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| line.starts_with(m))? as u32 + 1;
    let rest = line.get(3..)?.trim_start();
    let (day, rest) = rest.split_once(' ')?;
    let (time, rest) = rest.split_once(' ')?;
    let mut hms = time.split(':').map(|n| n.parse::<u32>().ok());
    let (Some(Some(hour)), Some(Some(minute)), Some(Some(second)), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    let stamp = Stamp::Local {
        month,
        day: day.parse().ok()?,
        hour,
        minute,
        second,
    };
    Some((stamp, rest))
}

/// `2026-11-21T11:15:29.123456+01:00`, `…+0100` or `…Z` as Unix ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let bytes = s.as_bytes();
    if bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<3}", frac.get(..digits.min(3))?);
        millis = padded.parse::<i64>().ok()?;
        rest = frac.get(digits..)?;
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(year, month as u32, day as u32);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60) * 1000) + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`crate::civil::civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A user name or address from a log line: printable, bounded.
fn field(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD)
        .collect()
}

/// Splits `<user> from <ip> port …` at the last ` from ` (a user name chosen by an
/// attacker may itself contain ` from `).
fn user_from(s: &str) -> Option<(String, String)> {
    let (user, after) = s.rsplit_once(" from ")?;
    let source = after.split_whitespace().next()?;
    Some((field(user), field(source)))
}

fn parse_sshd(message: &str) -> Option<AuthWhat> {
    if let Some(rest) = message.strip_prefix("Failed ") {
        let (_method, rest) = rest.split_once(" for ")?;
        let (invalid_user, rest) = match rest.strip_prefix("invalid user ") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (user, source) = user_from(rest)?;
        return Some(AuthWhat::Failed {
            user,
            source,
            invalid_user,
        });
    }
    if let Some(rest) = message.strip_prefix("Invalid user ") {
        let (user, source) = user_from(rest)?;
        return Some(AuthWhat::InvalidUser { user, source });
    }
    if let Some(rest) = message.strip_prefix("Accepted ") {
        let (method, rest) = rest.split_once(" for ")?;
        let (user, source) = user_from(rest)?;
        return Some(AuthWhat::Accepted {
            user,
            source,
            method: field(method),
        });
    }
    None
}

fn parse_pam(message: &str) -> Option<AuthWhat> {
    let (head, fields) = message.split_once("): authentication failure;")?;
    let (_module, service) = head.rsplit_once('(')?;
    let service = service.split(':').next()?;
    if service.starts_with("sshd") {
        return None;
    }
    let mut user = "";
    let mut ruser = "";
    let mut logname = "";
    let mut rhost = "";
    for kv in fields.split_whitespace() {
        match kv.split_once('=') {
            Some(("user", v)) => user = v,
            Some(("ruser", v)) => ruser = v,
            Some(("logname", v)) => logname = v,
            Some(("rhost", v)) => rhost = v,
            _ => {}
        }
    }
    let user = [user, ruser, logname]
        .into_iter()
        .find(|u| !u.is_empty())
        .unwrap_or("");
    Some(AuthWhat::PamFailure {
        service: field(service),
        user: field(user),
        source: field(rhost),
    })
}

fn parse_sudo(message: &str) -> Option<AuthWhat> {
    let (user, rest) = message.split_once(" : ")?;
    let user = field(user.trim());
    let mut segments = rest.split(" ; ").map(str::trim);
    let first = segments.next()?;
    if first.contains("NOT in sudoers")
        || first.contains("NOT authorized")
        || first.contains("command not allowed")
    {
        return Some(AuthWhat::SudoRefused { user });
    }
    if !first.contains('=') {
        // "3 incorrect password attempts": PAM already logged each failure.
        return None;
    }
    let command = std::iter::once(first)
        .chain(segments)
        .find_map(|s| s.strip_prefix("COMMAND="))?;
    Some(AuthWhat::Sudo {
        user,
        command: field(command),
    })
}

/// Counts entries per (kind, user, source). An sshd `Invalid user` line followed, in the
/// same connection, by `Failed … for invalid user` is one attempt, not two.
pub fn count(entries: &[AuthEntry], now_ms: i64) -> Vec<EventCount> {
    let mut counted: Vec<Option<(EventKind, &str, &str, i64)>> = Vec::new();
    let mut pending_invalid: HashMap<u32, usize> = HashMap::new();
    for e in entries {
        let at = e.stamp.resolve(now_ms).unwrap_or(now_ms);
        let item = match &e.what {
            AuthWhat::Failed {
                user,
                source,
                invalid_user,
            } => {
                if *invalid_user && let Some(i) = e.pid.and_then(|p| pending_invalid.remove(&p)) {
                    counted[i] = None;
                }
                (EventKind::AuthFailure, user.as_str(), source.as_str())
            }
            AuthWhat::InvalidUser { user, source } => {
                if let Some(pid) = e.pid {
                    pending_invalid.insert(pid, counted.len());
                }
                (EventKind::AuthFailure, user.as_str(), source.as_str())
            }
            AuthWhat::Accepted { user, source, .. } => {
                (EventKind::AuthSuccess, user.as_str(), source.as_str())
            }
            AuthWhat::PamFailure { user, source, .. } => {
                (EventKind::AuthFailure, user.as_str(), source.as_str())
            }
            AuthWhat::Sudo { user, .. } => (EventKind::Sudo, user.as_str(), ""),
            AuthWhat::SudoRefused { user } => (EventKind::AuthFailure, user.as_str(), ""),
        };
        counted.push(Some((item.0, item.1, item.2, at)));
    }
    let mut by_key: BTreeMap<(EventKind, String, String), EventCount> = BTreeMap::new();
    for (kind, user, source, at) in counted.into_iter().flatten() {
        let mut key = (kind, user.to_owned(), source.to_owned());
        if !by_key.contains_key(&key) && by_key.len() >= MAX_COUNTERS {
            key = (kind, "*".into(), "*".into());
        }
        let e = by_key.entry(key.clone()).or_insert_with(|| EventCount {
            kind,
            subject: key.1,
            source: key.2,
            count: 0,
            first_ms: at,
            last_ms: at,
        });
        e.count = e.count.saturating_add(1);
        e.first_ms = e.first_ms.min(at);
        e.last_ms = e.last_ms.max(at);
    }
    by_key.into_values().collect()
}

/// Records the successful logins in `events` as known and returns a `login_new_source`
/// event for each (user, source) that was not known yet.
fn learn_logins(
    known: &mut Vec<KnownLogin>,
    events: &[EventCount],
    now_ms: i64,
) -> Vec<EventCount> {
    let mut fresh = Vec::new();
    for e in events.iter().filter(|e| e.kind == EventKind::AuthSuccess) {
        if e.subject == "*" && e.source == "*" {
            continue;
        }
        match known
            .iter_mut()
            .find(|k| k.user == e.subject && k.source == e.source)
        {
            Some(k) => k.last_ms = k.last_ms.max(e.last_ms),
            None => {
                known.push(KnownLogin {
                    user: e.subject.clone(),
                    source: e.source.clone(),
                    last_ms: e.last_ms.min(now_ms),
                });
                if fresh.len() < MAX_NEW_SOURCES {
                    fresh.push(EventCount {
                        kind: EventKind::LoginNewSource,
                        subject: e.subject.clone(),
                        source: e.source.clone(),
                        count: 1,
                        first_ms: e.first_ms,
                        last_ms: e.first_ms,
                    });
                } else if let Some(more) = fresh.get_mut(MAX_NEW_SOURCES) {
                    more.count += 1;
                    more.first_ms = more.first_ms.min(e.first_ms);
                    more.last_ms = more.last_ms.max(e.first_ms);
                } else {
                    fresh.push(EventCount {
                        kind: EventKind::LoginNewSource,
                        subject: "*".into(),
                        source: "*".into(),
                        count: 1,
                        first_ms: e.first_ms,
                        last_ms: e.first_ms,
                    });
                }
            }
        }
    }
    if known.len() > MAX_KNOWN {
        known.sort_by_key(|k| std::cmp::Reverse(k.last_ms));
        known.truncate(MAX_KNOWN);
    }
    fresh
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::watch::Tools;
    use std::io::Write as _;
    use std::time::{SystemTime, UNIX_EPOCH};
    use vigie_domain::protocol::CollectPlan;

    /// 2026-11-21T12:00:00Z.
    const NOW: i64 = 1_795_262_400_000;

    pub(crate) fn scratch(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("vigie-watch-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn append(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open log");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn run(root: &Path, tools: &Tools, state: &Path) -> (RunStatus, Observations) {
        let plan = CollectPlan::default();
        let ctx = WatchContext {
            root,
            tools,
            plan: &plan,
            state_dir: state,
            now_ms: NOW,
        };
        let mut out = Observations::default();
        let status = AuthWatcher::new().run(&ctx, &mut out);
        (status, out)
    }

    fn find<'a>(out: &'a Observations, kind: EventKind, user: &str) -> Option<&'a EventCount> {
        out.events
            .iter()
            .find(|e| e.kind == kind && e.subject == user)
    }

    const DEBIAN: &str = "\
Nov 21 11:58:01 web1 sshd[4101]: Invalid user admin from 203.0.113.9 port 52311
Nov 21 11:58:03 web1 sshd[4101]: Failed password for invalid user admin from 203.0.113.9 port 52311 ssh2
Nov 21 11:58:05 web1 sshd[4101]: Failed password for invalid user admin from 203.0.113.9 port 52311 ssh2
Nov 21 11:58:06 web1 sshd[4102]: Invalid user oracle from 203.0.113.9 port 52400
Nov 21 11:58:07 web1 sshd[4103]: Failed password for root from 198.51.100.4 port 40022 ssh2
Nov 21 11:58:07 web1 sshd[4103]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.4  user=root
Nov 21 11:59:00 web1 sshd[4200]: Accepted publickey for alice from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:abc
Nov 21 11:59:10 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt upgrade
Nov 21 11:59:20 web1 sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1001 euid=0 tty=/dev/pts/1 ruser=bob rhost=  user=bob
Nov 21 11:59:30 web1 sudo:      bob : 1 incorrect password attempt ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls
Nov 21 11:59:40 web1 sudo:  mallory : user NOT in sudoers ; TTY=pts/2 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh
Nov 21 11:59:50 web1 CRON[5000]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
";

    #[test]
    fn sshd_pam_and_sudo_lines_parse() {
        let e = parse_line(
            "Nov  1 01:02:03 web1 sshd[77]: Failed password for invalid user x from y from 203.0.113.9 port 22 ssh2",
        )
        .expect("parses");
        assert_eq!(e.pid, Some(77));
        assert_eq!(
            e.stamp,
            Stamp::Local {
                month: 11,
                day: 1,
                hour: 1,
                minute: 2,
                second: 3
            }
        );
        assert_eq!(
            e.what,
            AuthWhat::Failed {
                user: "x from y".into(),
                source: "203.0.113.9".into(),
                invalid_user: true
            }
        );
        let e = parse_line(
            "2026-11-21T11:15:29.123456+01:00 web1 sshd-session[9]: Accepted password for bob from 2001:db8::7 port 5 ssh2",
        )
        .expect("parses");
        assert_eq!(e.stamp, Stamp::Unix(1_795_256_129_123));
        assert!(
            matches!(e.what, AuthWhat::Accepted { ref source, ref method, .. } if source == "2001:db8::7" && method == "password")
        );
        // journalctl -o short-iso --utc
        let e = parse_line("2026-11-21T10:15:29+0000 web1 sudo[12]:     carol : PWD=/ ; USER=root ; COMMAND=/usr/bin/id")
            .expect("parses");
        assert_eq!(e.stamp, Stamp::Unix(1_795_256_129_000));
        assert_eq!(
            e.what,
            AuthWhat::Sudo {
                user: "carol".into(),
                command: "/usr/bin/id".into()
            }
        );
        let lines: Vec<_> = DEBIAN.lines().map(parse_line).collect();
        assert!(
            lines[5].is_none(),
            "sshd's own PAM line is not counted twice"
        );
        assert!(
            lines[9].is_none(),
            "sudo's summary of PAM failures is not counted"
        );
        assert!(
            lines[11].is_none(),
            "sessions are not authentication failures"
        );
        assert_eq!(
            lines[8].as_ref().map(|e| &e.what),
            Some(&AuthWhat::PamFailure {
                service: "sudo".into(),
                user: "bob".into(),
                source: String::new()
            })
        );
        assert_eq!(
            lines[10].as_ref().map(|e| &e.what),
            Some(&AuthWhat::SudoRefused {
                user: "mallory".into()
            })
        );
        for odd in [
            "",
            "Nov",
            "Nov 99 99:99:99 h p: x",
            "2026-13-01T00:00:00Z h sshd: Failed x",
            "Feb 30 1:2:3 h sshd[x]: Failed  for  from ",
            "é\u{0}T",
        ] {
            let _ = parse_line(odd);
        }
    }

    #[test]
    fn rfc3339_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00.5+01:00"), Some(500));
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00-0130"),
            Some(951_787_800_000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00"), None);
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00+1"), None);
    }

    #[test]
    fn syslog_years_come_from_now() {
        let dec31 = Stamp::Local {
            month: 12,
            day: 31,
            hour: 23,
            minute: 0,
            second: 0,
        };
        let jan2 = 1_798_848_000_000; // 2027-01-02T00:00:00Z
        let resolved = dec31.resolve(jan2).expect("resolves");
        let year = crate::civil::civil_from_days(resolved.div_euclid(86_400_000)).0;
        assert_eq!(year, 2026, "a December line read in January is last year's");
        let same = Stamp::Local {
            month: 11,
            day: 21,
            hour: 11,
            minute: 0,
            second: 0,
        };
        assert!((same.resolve(NOW).expect("resolves") - NOW).abs() < 86_400_000);
    }

    #[test]
    fn counts_fold_by_kind_user_and_source() {
        let entries: Vec<_> = DEBIAN.lines().filter_map(parse_line).collect();
        let events = count(&entries, NOW);
        let get = |kind, user: &str| {
            events
                .iter()
                .find(|e| e.kind == kind && e.subject == user)
                .unwrap_or_else(|| panic!("{kind:?} {user} in {events:#?}"))
        };
        let admin = get(EventKind::AuthFailure, "admin");
        assert_eq!((admin.count, admin.source.as_str()), (2, "203.0.113.9"));
        assert_eq!(admin.last_ms - admin.first_ms, 2_000);
        assert_eq!(get(EventKind::AuthFailure, "oracle").count, 1);
        assert_eq!(get(EventKind::AuthFailure, "root").count, 1);
        assert_eq!(get(EventKind::AuthFailure, "bob").source, "");
        assert_eq!(get(EventKind::AuthFailure, "mallory").count, 1);
        assert_eq!(get(EventKind::AuthSuccess, "alice").source, "192.0.2.10");
        assert_eq!(get(EventKind::Sudo, "alice").count, 1);
        assert_eq!(events.len(), 7, "{events:#?}");
    }

    #[test]
    fn too_many_distinct_sources_fold_into_one_counter() {
        let entries: Vec<AuthEntry> = (0..600)
            .map(|i| AuthEntry {
                stamp: Stamp::Unix(NOW - 1000 + i),
                pid: None,
                what: AuthWhat::Failed {
                    user: "root".into(),
                    source: format!("10.0.{}.{}", i / 256, i % 256),
                    invalid_user: false,
                },
            })
            .collect();
        let events = count(&entries, NOW);
        assert_eq!(events.len(), MAX_COUNTERS + 1);
        let other = events.iter().find(|e| e.subject == "*").expect("overflow");
        assert_eq!(other.count, 600 - MAX_COUNTERS as u32);
        assert_eq!(events.iter().map(|e| e.count).sum::<u32>(), 600);
    }

    #[test]
    fn new_sources_are_bounded_per_run_and_remembered() {
        let mut known = Vec::new();
        let successes: Vec<EventCount> = (0..100)
            .map(|i| EventCount {
                kind: EventKind::AuthSuccess,
                subject: "deploy".into(),
                source: format!("198.51.100.{i}"),
                count: 1,
                first_ms: NOW - 100 + i,
                last_ms: NOW - 100 + i,
            })
            .collect();
        let fresh = learn_logins(&mut known, &successes, NOW);
        assert_eq!(fresh.len(), MAX_NEW_SOURCES + 1);
        let rest = fresh.last().expect("rest");
        assert_eq!(
            (rest.subject.as_str(), rest.count),
            ("*", 100 - MAX_NEW_SOURCES as u32)
        );
        assert_eq!(known.len(), 100);
        assert!(learn_logins(&mut known, &successes, NOW).is_empty());
    }

    #[test]
    fn auth_log_end_to_end_first_run_learns_then_counts_rotation_and_truncation() {
        let root = scratch("auth-root");
        let state = root.join("state");
        let log = root.join("var/log/auth.log");
        let tools = Tools::on_path([root.join("no-tools")]);
        append(
            &log,
            "Nov 21 10:00:00 web1 sshd[1]: Accepted publickey for alice from 192.0.2.10 port 1 ssh2\n\
             Nov 21 10:00:05 web1 sshd[2]: Failed password for root from 203.0.113.9 port 2 ssh2\n",
        );
        let (status, out) = run(&root, &tools, &state);
        assert_eq!(status, RunStatus::ok());
        assert!(out.is_empty(), "the first run only learns: {out:?}");

        append(&log, DEBIAN);
        append(
            &log,
            "Nov 21 11:59:59 web1 sshd[9]: Accepted password for alice from 192.0.2.66 port 9 ssh2\n",
        );
        append(&log, "Nov 21 11:59:59 web1 sshd[9]: Failed password for ro"); // being written
        let (status, out) = run(&root, &tools, &state);
        assert_eq!(status, RunStatus::ok());
        assert_eq!(
            find(&out, EventKind::AuthFailure, "admin").map(|e| e.count),
            Some(2)
        );
        assert_eq!(
            find(&out, EventKind::AuthFailure, "root").map(|e| e.count),
            Some(1)
        );
        let news: Vec<_> = out
            .events
            .iter()
            .filter(|e| e.kind == EventKind::LoginNewSource)
            .collect();
        assert_eq!(news.len(), 1, "alice from 192.0.2.10 was learnt: {news:?}");
        assert_eq!(news[0].source, "192.0.2.66");

        // A restart reads nothing twice; the half-written line is read once finished.
        append(&log, "ot from 203.0.113.9 port 3 ssh2\n");
        let (_, out) = run(&root, &tools, &state);
        assert_eq!(out.events.len(), 1, "{out:?}");
        assert_eq!(
            find(&out, EventKind::AuthFailure, "root").map(|e| e.count),
            Some(1)
        );
        let (_, out) = run(&root, &tools, &state);
        assert!(out.is_empty());

        // Rotation: lines written to the old file after our last read, then a new file.
        append(
            &log,
            "Nov 21 11:59:59 web1 sshd[10]: Failed password for carol from 203.0.113.7 port 3 ssh2\n",
        );
        fs::rename(&log, root.join("var/log/auth.log.1")).expect("rotate");
        append(
            &log,
            "Nov 21 11:59:59 web1 sshd[11]: Failed password for dave from 203.0.113.7 port 3 ssh2\n",
        );
        let (_, out) = run(&root, &tools, &state);
        assert!(
            find(&out, EventKind::AuthFailure, "carol").is_some(),
            "{out:?}"
        );
        assert!(
            find(&out, EventKind::AuthFailure, "dave").is_some(),
            "{out:?}"
        );
        assert_eq!(out.events.len(), 2);

        // copytruncate: the same inode, shorter than where we stopped.
        fs::write(
            &log,
            "Nov 21 11:59:59 web1 sshd[12]: Invalid user eve from 203.0.113.8 port 4\n",
        )
        .expect("truncate");
        let (_, out) = run(&root, &tools, &state);
        assert_eq!(
            find(&out, EventKind::AuthFailure, "eve").map(|e| e.source.as_str()),
            Some("203.0.113.8")
        );
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn secure_log_unreadable_is_no_permission_and_nothing_is_not_applicable() {
        let root = scratch("auth-perm");
        let state = root.join("state");
        fs::create_dir_all(root.join("var/log")).expect("mkdir");
        let tools = Tools::on_path([root.join("no-tools")]);
        let (status, out) = run(&root, &tools, &state);
        assert_eq!(status.state, CollectorState::NotApplicable);
        assert!(out.is_empty());
        // A file the kernel refuses to read, even to root: a write-only sysctl.
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", root.join("var/log/secure"))
            .expect("symlink");
        let (status, _) = run(&root, &tools, &state);
        assert_eq!(status.state, CollectorState::NoPermission, "{status:?}");
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn journal_is_read_after_its_cursor() {
        let root = scratch("auth-journal");
        let state = root.join("state");
        let bin = root.join("bin");
        fs::create_dir_all(&bin).expect("mkdir");
        let args = root.join("args");
        let feed = root.join("feed");
        // Stands in for journalctl: records its arguments, prints what the test feeds it
        // in journalctl's `short-iso` format followed by the cursor line.
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> {}\ncat {}\necho \"-- cursor: s=abc;i=$(wc -l < {})\"\n",
            args.display(),
            feed.display(),
            args.display()
        );
        let jc = bin.join("journalctl");
        fs::write(&jc, script).expect("script");
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&jc, fs::Permissions::from_mode(0o755)).expect("chmod");
        let tools = Tools::on_path([bin.clone()]);
        fs::write(&feed, "2026-11-21T11:00:00+0000 web1 sshd[1]: Accepted password for alice from 192.0.2.10 port 1 ssh2\n").expect("feed");
        let (status, out) = run(&root, &tools, &state);
        assert_eq!(status, RunStatus::ok());
        assert!(out.is_empty());
        fs::write(&feed, "2026-11-21T11:50:00+0000 web1 sshd[2]: Failed password for root from 203.0.113.9 port 2 ssh2\n\
                          2026-11-21T11:50:02+0000 web1 sshd[2]: Failed password for root from 203.0.113.9 port 2 ssh2\n\
                          2026-11-21T11:51:00+0000 web1 sshd[3]: Accepted password for alice from 192.0.2.10 port 1 ssh2\n").expect("feed");
        let (status, out) = run(&root, &tools, &state);
        assert_eq!(status, RunStatus::ok());
        let root_fail = find(&out, EventKind::AuthFailure, "root").expect("failures");
        assert_eq!(
            (root_fail.count, root_fail.first_ms, root_fail.last_ms),
            (2, 1_795_261_800_000, 1_795_261_802_000)
        );
        assert!(find(&out, EventKind::LoginNewSource, "alice").is_none());
        let argv = fs::read_to_string(&args).expect("args");
        let calls: Vec<&str> = argv.lines().collect();
        assert!(!calls[0].contains("--after-cursor"), "{argv}");
        assert!(calls[1].contains("--after-cursor=s=abc;i=1"), "{argv}");
        assert!(calls[1].contains("-u ssh -u sshd _COMM=sudo"), "{argv}");

        // rsyslog installed later: the new auth.log's history is not counted, its new lines are.
        let log = root.join("var/log/auth.log");
        append(
            &log,
            "Nov 21 11:00:00 web1 sshd[5]: Failed password for old from 203.0.113.1 port 1 ssh2\n",
        );
        let (_, out) = run(&root, &tools, &state);
        assert!(out.is_empty(), "{out:?}");
        append(
            &log,
            "Nov 21 11:59:00 web1 sshd[6]: Failed password for new from 203.0.113.1 port 1 ssh2\n",
        );
        let (_, out) = run(&root, &tools, &state);
        assert_eq!(out.events.len(), 1, "{out:?}");
        assert!(find(&out, EventKind::AuthFailure, "new").is_some());
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn this_machine_without_auth_log_reads_its_real_journalctl() {
        let root = scratch("auth-real");
        let tools = Tools::default();
        let (status, _) = run(&root, &tools, &root.join("state"));
        if tools.find("journalctl").is_some() {
            assert_ne!(status.state, CollectorState::MissingTool, "{status:?}");
            assert_ne!(status.state, CollectorState::Error, "{status:?}");
        } else {
            assert_eq!(status.state, CollectorState::NotApplicable);
        }
        fs::remove_dir_all(&root).ok();
    }

    proptest::proptest! {
        #[test]
        fn parse_line_never_panics(line in "\\PC{0,200}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn parse_line_never_panics_on_near_misses(
            stamp in proptest::sample::select(vec!["Nov 21 11:58:01", "2026-11-21T11:15:29.1+01:00", "Feb  3 1:2:3", "2026-11-21T", "Dec 31 23:59:60"]),
            prog in proptest::sample::select(vec!["sshd[1]", "sshd", "sudo", "sudo[", "su[3]", "sshd-session[x]"]),
            body in "(Failed |Invalid user |Accepted |pam_unix\\(|\\): authentication failure;| for | from |invalid user | : |COMMAND=| ; |user=|rhost=|[a-z0-9. :;=]){0,12}",
        ) {
            let line = format!("{stamp} host {prog}: {body}");
            if let Some(e) = parse_line(&line) {
                let _ = e.stamp.resolve(NOW);
                let _ = count(&[e], NOW);
            }
        }
    }
}
