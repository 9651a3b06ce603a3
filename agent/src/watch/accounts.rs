//! Local accounts: who can log in, who is an administrator, when passwords last changed.
//!
//! Reads `/etc/passwd`, `/etc/group` and, when readable, `/etc/shadow`. One finding per
//! human account (uid 0, or a uid from `UID_MIN` of `/etc/login.defs`, 1000 by default, with
//! a login shell) and per administrator of any uid (members of sudo, wheel or admin), sent
//! when the inventory changes and once a day otherwise. The inventory is diffed against the
//! previous one kept in the state directory: `account_added`, `account_removed`,
//! `admin_added`, `admin_removed` and `password_changed` events. The first run learns
//! without events (but sends its findings).
//!
//! Without read access to the shadow file the collector says `no_permission` and still sends
//! the findings, without password data; password changes are then not reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_domain::telemetry::{AccountFinding, CollectorState, EventCount, EventKind, Finding};

use super::{Observations, RunStatus, WatchContext, Watcher};

const STATE_FILE: &str = "accounts.json";
const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];
const DAY_MS: i64 = 86_400_000;
/// Bounds what one inventory may hold (a directory-backed machine may list thousands).
const MAX_ACCOUNTS: usize = 256;
/// Events of one run, at most (a directory wipe must not overflow a batch).
const MAX_EVENTS: usize = 256;
/// Longest user name kept.
const MAX_NAME: usize = 128;

/// The `accounts` collector.
#[derive(Debug, Default)]
pub struct AccountsWatcher;

impl AccountsWatcher {
    pub fn new() -> Self {
        Self
    }
}

/// One account as the inventory keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub uid: u32,
    pub admin: bool,
    /// `active`, `locked` or `expired`.
    pub state: String,
    /// Last password change, in days since the epoch (shadow's own unit).
    #[serde(default)]
    pub changed_day: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Inventory {
    accounts: BTreeMap<String, Account>,
    sent_ms: i64,
}

/// `/etc/passwd` entry fields this collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub shell: String,
}

pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('+') && !l.starts_with('-'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() || f[0].len() > MAX_NAME {
                return None;
            }
            Some(PasswdEntry {
                user: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                shell: f[6].trim().to_owned(),
            })
        })
        .collect()
}

/// Group name → (gid, members).
pub fn parse_group(text: &str) -> BTreeMap<String, (u32, BTreeSet<String>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            Some((f[0].to_owned(), (f[2].parse().ok()?, members)))
        })
        .collect()
}

/// Shadow fields this collector uses, per user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub locked: bool,
    /// Days since the epoch; `None` when empty or 0 (change forced at next login).
    pub changed_day: Option<i64>,
    /// The account's expiry date, days since the epoch.
    pub expire_day: Option<i64>,
}

pub fn parse_shadow(text: &str) -> BTreeMap<String, ShadowEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 8 || f[0].is_empty() {
                return None;
            }
            let day = |s: &str| s.parse::<i64>().ok().filter(|d| *d > 0);
            Some((
                f[0].to_owned(),
                ShadowEntry {
                    locked: f[1].starts_with('!') || f[1].starts_with('*'),
                    changed_day: day(f[2]),
                    expire_day: day(f[7]),
                },
            ))
        })
        .collect()
}

fn login_shell(shell: &str) -> bool {
    let name = shell.rsplit('/').next().unwrap_or(shell);
    !matches!(name, "nologin" | "false" | "sync" | "shutdown" | "halt")
}

/// `UID_MIN` from login.defs, 1000 when absent.
fn uid_min(login_defs: &str) -> u32 {
    login_defs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("UID_MIN"))
        .filter_map(|v| v.trim().parse().ok())
        .next_back()
        .unwrap_or(1000)
}

/// The accounts worth watching, keyed by name.
pub fn inventory(
    passwd: &[PasswdEntry],
    groups: &BTreeMap<String, (u32, BTreeSet<String>)>,
    shadow: Option<&BTreeMap<String, ShadowEntry>>,
    uid_min: u32,
    today: i64,
) -> BTreeMap<String, Account> {
    let admin_gids: BTreeSet<u32> = ADMIN_GROUPS
        .iter()
        .filter_map(|g| groups.get(*g).map(|(gid, _)| *gid))
        .collect();
    let admin_members: BTreeSet<&str> = ADMIN_GROUPS
        .iter()
        .filter_map(|g| groups.get(*g))
        .flat_map(|(_, m)| m.iter().map(String::as_str))
        .collect();
    let mut out = BTreeMap::new();
    for p in passwd {
        let admin =
            p.uid == 0 || admin_gids.contains(&p.gid) || admin_members.contains(p.user.as_str());
        let human = p.uid == 0 || (p.uid >= uid_min && p.uid != 65534 && login_shell(&p.shell));
        if !(human || admin) || out.len() >= MAX_ACCOUNTS {
            continue;
        }
        let s = shadow.and_then(|s| s.get(&p.user));
        let state = match s {
            Some(s) if s.expire_day.is_some_and(|d| d <= today) => "expired",
            Some(s) if s.locked => "locked",
            _ => "active",
        };
        out.insert(
            p.user.clone(),
            Account {
                uid: p.uid,
                admin,
                state: state.to_owned(),
                changed_day: s.and_then(|s| s.changed_day),
            },
        );
    }
    out
}

/// What changed from `before` to `after`, as events at `now_ms`. Password changes are
/// reported only when both inventories know the date.
pub fn diff(
    before: &BTreeMap<String, Account>,
    after: &BTreeMap<String, Account>,
    now_ms: i64,
) -> Vec<EventCount> {
    let event = |kind, user: &str| EventCount {
        kind,
        subject: user.to_owned(),
        source: String::new(),
        count: 1,
        first_ms: now_ms,
        last_ms: now_ms,
    };
    let mut out = Vec::new();
    for (user, a) in after {
        match before.get(user) {
            None => {
                out.push(event(EventKind::AccountAdded, user));
                if a.admin {
                    out.push(event(EventKind::AdminAdded, user));
                }
            }
            Some(b) => {
                if a.admin && !b.admin {
                    out.push(event(EventKind::AdminAdded, user));
                }
                if !a.admin && b.admin {
                    out.push(event(EventKind::AdminRemoved, user));
                }
                if let (Some(x), Some(y)) = (b.changed_day, a.changed_day)
                    && x != y
                {
                    out.push(event(EventKind::PasswordChanged, user));
                }
            }
        }
    }
    for (user, b) in before {
        if !after.contains_key(user) {
            out.push(event(EventKind::AccountRemoved, user));
            if b.admin {
                out.push(event(EventKind::AdminRemoved, user));
            }
        }
    }
    out
}

impl Watcher for AccountsWatcher {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        let read = |name: &str| fs::read_to_string(ctx.machine(name));
        let passwd = match read("etc/passwd") {
            Ok(t) => parse_passwd(&t),
            Err(e) => {
                let state = match e.kind() {
                    io::ErrorKind::PermissionDenied => CollectorState::NoPermission,
                    io::ErrorKind::NotFound => CollectorState::NotApplicable,
                    _ => CollectorState::Error,
                };
                return RunStatus::with(state, format!("cannot read /etc/passwd: {e}"));
            }
        };
        let groups = read("etc/group")
            .map(|t| parse_group(&t))
            .unwrap_or_default();
        let uid_min = read("etc/login.defs").map_or(1000, |t| uid_min(&t));
        let mut status = RunStatus::ok();
        let shadow = match read("etc/shadow") {
            Ok(t) => Some(parse_shadow(&t)),
            Err(e) => {
                status = RunStatus::with(
                    CollectorState::NoPermission,
                    format!("cannot read /etc/shadow ({e}): no password dates"),
                );
                None
            }
        };
        let today = ctx.now_ms.div_euclid(DAY_MS);
        let mut now = inventory(&passwd, &groups, shadow.as_ref(), uid_min, today);

        let state_path = ctx.state_dir.join(STATE_FILE);
        let saved: Option<Inventory> = super::read_state(ctx.state_dir, STATE_FILE);
        if shadow.is_none() {
            // Keep what was known of password dates rather than forget them.
            if let Some(saved) = &saved {
                for (user, a) in &mut now {
                    a.changed_day = saved.accounts.get(user).and_then(|s| s.changed_day);
                }
            }
        }
        let (changed, due) = match &saved {
            None => (true, true),
            Some(s) => (s.accounts != now, ctx.now_ms - s.sent_ms >= DAY_MS),
        };
        if let Some(saved) = &saved {
            out.events.extend(
                diff(&saved.accounts, &now, ctx.now_ms)
                    .into_iter()
                    .take(MAX_EVENTS),
            );
        }
        if !(changed || due) {
            return status;
        }
        for (user, a) in &now {
            out.findings.push(Finding::Account(AccountFinding {
                observed_ms: ctx.now_ms,
                user: user.clone(),
                uid: a.uid,
                admin: a.admin,
                state: a.state.clone(),
                password_changed_ms: if shadow.is_some() {
                    a.changed_day.map(|d| d * DAY_MS)
                } else {
                    None
                },
            }));
        }
        let inventory = Inventory {
            accounts: now,
            sent_ms: ctx.now_ms,
        };
        let saved = super::save_state(ctx.state_dir, STATE_FILE, &inventory);
        if let Err(e) = saved {
            return RunStatus::with(
                CollectorState::Error,
                format!("cannot keep the inventory in {}: {e}", state_path.display()),
            );
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Tools;
    use std::path::Path;
    use vigie_domain::protocol::CollectPlan;

    /// 2026-11-21T12:00:00Z, day 20413.
    const NOW: i64 = 1_795_262_400_000;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
postgres:x:105:110:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/sh
svc:x:1002:1002::/srv:/usr/sbin/nologin
deploy:x:998:27::/home/deploy:/bin/bash
broken line
";
    const GROUP: &str = "\
root:x:0:
sudo:x:27:alice
adm:x:4:syslog,alice
alice:x:1000:
";
    const SHADOW: &str = "\
root:*:20000:0:99999:7:::
daemon:*:19000:0:99999:7:::
alice:$y$j9T$abc$def:20400:0:99999:7:::
bob:!$y$j9T$x$y:20300:0:99999:7:::
deploy:$6$salt$hash:0:0:99999:7::20000:
";

    fn scratch(name: &str) -> std::path::PathBuf {
        super::super::auth::tests::scratch(name)
    }

    fn write_etc(root: &Path, passwd: &str, group: &str, shadow: Option<&str>) {
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        fs::write(root.join("etc/passwd"), passwd).expect("passwd");
        fs::write(root.join("etc/group"), group).expect("group");
        if let Some(s) = shadow {
            fs::write(root.join("etc/shadow"), s).expect("shadow");
        }
    }

    fn run(root: &Path, state: &Path, now_ms: i64) -> (RunStatus, Observations) {
        let plan = CollectPlan::default();
        let tools = Tools::on_path([root.join("no-tools")]);
        let ctx = WatchContext {
            root,
            tools: &tools,
            plan: &plan,
            state_dir: state,
            now_ms,
        };
        let mut out = Observations::default();
        (AccountsWatcher::new().run(&ctx, &mut out), out)
    }

    #[test]
    fn the_inventory_keeps_humans_and_admins() {
        let inv = inventory(
            &parse_passwd(PASSWD),
            &parse_group(GROUP),
            Some(&parse_shadow(SHADOW)),
            1000,
            NOW / DAY_MS,
        );
        assert_eq!(
            inv.keys().map(String::as_str).collect::<Vec<_>>(),
            ["alice", "bob", "deploy", "root"]
        );
        assert!(inv["root"].admin && inv["alice"].admin && inv["deploy"].admin);
        assert!(!inv["bob"].admin);
        assert_eq!(inv["root"].state, "locked");
        assert_eq!(inv["bob"].state, "locked");
        assert_eq!(inv["alice"].state, "active");
        assert_eq!(inv["deploy"].state, "expired");
        assert_eq!(inv["alice"].changed_day, Some(20400));
        assert_eq!(
            inv["deploy"].changed_day, None,
            "0 means: change at next login"
        );
        assert_eq!(uid_min("# x\nUID_MIN\t\t\t 500\n"), 500);
        assert_eq!(uid_min(""), 1000);
        assert!(parse_shadow("a:b").is_empty() && parse_group(":::").is_empty());
    }

    #[test]
    fn changes_become_events_after_a_first_run_that_only_learns() {
        let root = scratch("accounts");
        let state = root.join("state");
        write_etc(&root, PASSWD, GROUP, Some(SHADOW));
        let (status, out) = run(&root, &state, NOW);
        assert_eq!(status, RunStatus::ok());
        assert!(out.events.is_empty(), "{:?}", out.events);
        assert_eq!(out.findings.len(), 4);
        let Some(Finding::Account(alice)) = out.findings.iter().find(|f| f.subject() == "alice")
        else {
            panic!("alice in {:?}", out.findings)
        };
        assert_eq!(alice.password_changed_ms, Some(20400 * DAY_MS));

        let (_, out) = run(&root, &state, NOW + 300_000);
        assert!(out.is_empty(), "unchanged within the day: {out:?}");

        // bob joins sudo, alice changes her password, carol is added, deploy is removed.
        let passwd = PASSWD.replace("deploy:x:998:27::/home/deploy:/bin/bash\n", "")
            + "carol:x:1003:1003::/home/carol:/bin/zsh\n";
        let group = GROUP.replace("sudo:x:27:alice", "sudo:x:27:alice,bob");
        let shadow = SHADOW.replace("alice:$y$j9T$abc$def:20400", "alice:$y$j9T$new$new:20413");
        write_etc(&root, &passwd, &group, Some(&shadow));
        let (_, out) = run(&root, &state, NOW + 600_000);
        let mut events: Vec<(&str, &str)> = out
            .events
            .iter()
            .map(|e| (e.kind.as_str(), e.subject.as_str()))
            .collect();
        events.sort();
        assert_eq!(
            events,
            [
                ("account_added", "carol"),
                ("account_removed", "deploy"),
                ("admin_added", "bob"),
                ("admin_removed", "deploy"),
                ("password_changed", "alice"),
            ]
        );
        assert_eq!(
            out.findings.len(),
            4,
            "the inventory changed: findings again"
        );

        let (_, out) = run(&root, &state, NOW + 600_000 + DAY_MS);
        assert!(out.events.is_empty());
        assert_eq!(out.findings.len(), 4, "once a day even when unchanged");
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn unreadable_shadow_is_no_permission_with_findings_and_missing_passwd_is_not_applicable() {
        let root = scratch("accounts-perm");
        let state = root.join("state");
        let (status, out) = run(&root, &state, NOW);
        assert_eq!(status.state, CollectorState::NotApplicable);
        assert!(out.is_empty());
        write_etc(&root, PASSWD, GROUP, None);
        // Refused by the kernel even to root: a write-only sysctl.
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", root.join("etc/shadow"))
            .expect("symlink");
        let (status, out) = run(&root, &state, NOW);
        assert_eq!(status.state, CollectorState::NoPermission, "{status:?}");
        assert_eq!(out.findings.len(), 4);
        assert!(out.findings.iter().all(|f| matches!(
            f,
            Finding::Account(AccountFinding {
                password_changed_ms: None,
                ..
            })
        )));
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn this_machine_has_root() {
        let state = scratch("accounts-real");
        let (status, out) = run(Path::new("/"), &state, NOW);
        assert_ne!(status.state, CollectorState::Error, "{status:?}");
        assert!(
            out.findings.iter().any(|f| f.subject() == "root"),
            "{:?}",
            out.findings
        );
        fs::remove_dir_all(&state).ok();
    }
}
