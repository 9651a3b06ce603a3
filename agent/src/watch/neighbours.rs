//! Network neighbours: the MAC/IP pairs in the kernel's neighbour table (`/proc/net/arp`,
//! and `ip -j neigh` where `ip` is installed, which adds IPv6). A pair never seen before
//! is a `neighbour_new` event: an unknown device on the network.
//!
//! The known pairs are kept in the state directory, bounded (the least recently seen are
//! forgotten first). The first run only learns, so installing the agent reports nothing.
//! IPv6 hosts change their temporary addresses daily, so an IPv6 pair is new only when its
//! MAC itself was never seen; incomplete entries (MAC all zeros) and multicast or broadcast
//! MACs are skipped.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigie_domain::telemetry::{CollectorState, EventCount, EventKind};

use super::{Observations, RunStatus, WatchContext, Watcher};

const STATE_FILE: &str = "neighbours.json";
/// `neighbour_new` events in one run; beyond, one `*` event counts the rest.
const MAX_NEW: usize = 128;
/// How many pairs are remembered.
const MAX_KNOWN: usize = 4096;

/// The `neighbours` collector.
#[derive(Debug, Default)]
pub struct NeighboursWatcher;

impl NeighboursWatcher {
    pub fn new() -> Self {
        Self
    }
}

/// One neighbour: a MAC address (lower case) and an IP address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neighbour {
    pub mac: String,
    pub ip: IpAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Known {
    mac: String,
    ip: String,
    last_ms: i64,
}

impl Watcher for NeighboursWatcher {
    fn name(&self) -> &'static str {
        "neighbours"
    }

    fn every(&self) -> Duration {
        // Entries of a device that stays briefly expire from the table within minutes.
        Duration::from_secs(60)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        let arp_path = ctx.machine("proc/net/arp");
        let mut seen = BTreeSet::new();
        let mut status = RunStatus::ok();
        let mut read_any = false;
        match fs::read_to_string(&arp_path) {
            Ok(text) => {
                read_any = true;
                seen.extend(parse_proc_arp(&text));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                let state = if e.kind() == io::ErrorKind::PermissionDenied {
                    CollectorState::NoPermission
                } else {
                    CollectorState::Error
                };
                status = RunStatus::with(state, format!("cannot read {}: {e}", arp_path.display()));
            }
        }
        if ctx.tools.find("ip").is_some() {
            match ctx.tools.run(&["ip", "-j", "neigh", "show"]) {
                Ok(run) if run.code == Some(0) => {
                    read_any = true;
                    seen.extend(parse_ip_neigh(&run.stdout));
                }
                Ok(run) => {
                    let why = run.stderr.lines().next().unwrap_or("no output").to_owned();
                    if !read_any {
                        status = RunStatus::with(CollectorState::Error, format!("ip neigh: {why}"));
                    }
                }
                Err(e) if !read_any => status = RunStatus::with(e.state(), e.to_string()),
                Err(_) => {}
            }
        }
        if !read_any {
            if status.state == CollectorState::Ok {
                status = RunStatus::with(
                    CollectorState::NotApplicable,
                    "no /proc/net/arp and no ip command",
                );
            }
            return status;
        }

        let state_path = ctx.state_dir.join(STATE_FILE);
        let saved: Option<Vec<Known>> = super::read_state(ctx.state_dir, STATE_FILE);
        let first_run = saved.is_none();
        let mut known = saved.unwrap_or_default();
        let fresh = remember(&mut known, &seen, ctx.now_ms);
        if !first_run {
            let event = |subject: String, source: String, count| EventCount {
                kind: EventKind::NeighbourNew,
                subject,
                source,
                count,
                first_ms: ctx.now_ms,
                last_ms: ctx.now_ms,
            };
            let more = fresh.len().saturating_sub(MAX_NEW);
            out.events.extend(
                fresh
                    .into_iter()
                    .take(MAX_NEW)
                    .map(|n| event(n.mac, n.ip.to_string(), 1)),
            );
            if more > 0 {
                // A network scan or a new switch: one event counts the rest.
                let count = u32::try_from(more).unwrap_or(u32::MAX);
                out.events.push(event("*".into(), "*".into(), count));
            }
        }
        let saved = super::save_state(ctx.state_dir, STATE_FILE, &known);
        if let Err(e) = saved {
            return RunStatus::with(
                CollectorState::Error,
                format!(
                    "cannot keep known neighbours in {}: {e}",
                    state_path.display()
                ),
            );
        }
        status
    }
}

/// Marks `seen` as known at `now_ms`, returning the pairs that were new.
fn remember(known: &mut Vec<Known>, seen: &BTreeSet<Neighbour>, now_ms: i64) -> Vec<Neighbour> {
    let mut fresh = Vec::new();
    for n in seen {
        let ip = n.ip.to_string();
        if let Some(k) = known.iter_mut().find(|k| k.mac == n.mac && k.ip == ip) {
            k.last_ms = now_ms;
            continue;
        }
        let mac_known = known.iter().any(|k| k.mac == n.mac);
        if n.ip.is_ipv4() || !mac_known {
            fresh.push(n.clone());
        }
        known.push(Known {
            mac: n.mac.clone(),
            ip,
            last_ms: now_ms,
        });
    }
    if known.len() > MAX_KNOWN {
        known.sort_by_key(|k| std::cmp::Reverse(k.last_ms));
        known.truncate(MAX_KNOWN);
    }
    fresh
}

/// A MAC address as six lower-case hex pairs, if it is a unicast address of a real device.
fn unicast_mac(s: &str) -> Option<String> {
    let mac = s.trim().to_ascii_lowercase();
    let octets: Vec<u8> = mac
        .split(':')
        .map(|o| u8::from_str_radix(o, 16).ok().filter(|_| o.len() == 2))
        .collect::<Option<_>>()?;
    if octets.len() != 6 || octets.iter().all(|o| *o == 0) || octets[0] & 1 == 1 {
        return None;
    }
    Some(mac)
}

/// `/proc/net/arp`: a header, then `IP HW-type Flags HW-address Mask Device`. Flags 0x0
/// is an incomplete entry.
pub fn parse_proc_arp(text: &str) -> Vec<Neighbour> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 || cols[2] == "0x0" {
                return None;
            }
            Some(Neighbour {
                ip: cols[0].parse().ok()?,
                mac: unicast_mac(cols[3])?,
            })
        })
        .collect()
}

/// `ip -j neigh show`: `[{"dst":…,"dev":…,"lladdr":…,"state":[…]}]`; entries without a
/// link-layer address or in state FAILED/INCOMPLETE are skipped.
pub fn parse_ip_neigh(json: &str) -> Vec<Neighbour> {
    let Ok(serde_json::Value::Array(entries)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| {
            let states = e.get("state").and_then(|s| s.as_array());
            let dead = states.is_some_and(|s| {
                s.iter()
                    .any(|v| matches!(v.as_str(), Some("FAILED" | "INCOMPLETE")))
            });
            if dead {
                return None;
            }
            Some(Neighbour {
                ip: e.get("dst")?.as_str()?.parse().ok()?,
                mac: unicast_mac(e.get("lladdr")?.as_str()?)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Tools;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::{Path, PathBuf};
    use vigie_domain::protocol::CollectPlan;

    const NOW: i64 = 1_795_262_400_000;

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.168.1.1      0x1         0x2         AA:bb:cc:00:11:22     *        eth0
192.168.1.20     0x1         0x0         00:00:00:00:00:00     *        eth0
192.168.1.30     0x1         0x2         00:00:00:00:00:00     *        eth0
192.168.1.255    0x1         0x2         ff:ff:ff:ff:ff:ff     *        eth0
192.168.1.40     0x1         0x6         02:42:ac:11:00:02     *        docker0
garbage line
";

    fn scratch(name: &str) -> PathBuf {
        super::super::auth::tests::scratch(name)
    }

    fn run(root: &Path, tools: &Tools, state: &Path, now_ms: i64) -> (RunStatus, Observations) {
        let plan = CollectPlan::default();
        let ctx = WatchContext {
            root,
            tools,
            plan: &plan,
            state_dir: state,
            now_ms,
        };
        let mut out = Observations::default();
        (NeighboursWatcher::new().run(&ctx, &mut out), out)
    }

    #[test]
    fn proc_arp_and_ip_neigh_parse() {
        let n = parse_proc_arp(ARP);
        assert_eq!(
            n.iter()
                .map(|n| (n.mac.as_str(), n.ip.to_string()))
                .collect::<Vec<_>>(),
            [
                ("aa:bb:cc:00:11:22", "192.168.1.1".to_owned()),
                ("02:42:ac:11:00:02", "192.168.1.40".to_owned())
            ]
        );
        let json = r#"[{"dst":"192.0.2.1","dev":"eth0","lladdr":"02:fc:00:00:00:05","state":["STALE"]},
            {"dst":"fd00::1","dev":"eth0","state":["FAILED"]},
            {"dst":"fe80::1","dev":"eth0","lladdr":"02:fc:00:00:00:05","router":null,"state":["REACHABLE"]},
            {"dst":"192.0.2.9","dev":"eth0","lladdr":"02:fc:00:00:00:09","state":["INCOMPLETE"]}]"#;
        let n = parse_ip_neigh(json);
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(n[1].ip.to_string(), "fe80::1");
        assert!(parse_ip_neigh("not json").is_empty());
        assert!(parse_ip_neigh(r#"[{"dst":5}]"#).is_empty());
    }

    #[test]
    fn new_pairs_are_events_after_a_first_run_that_only_learns() {
        let root = scratch("neigh");
        let state = root.join("state");
        fs::create_dir_all(root.join("proc/net")).expect("mkdir");
        fs::write(root.join("proc/net/arp"), ARP).expect("arp");
        let tools = Tools::on_path([root.join("no-tools")]);
        let (status, out) = run(&root, &tools, &state, NOW);
        assert_eq!(status, RunStatus::ok());
        assert!(out.is_empty(), "{out:?}");
        let (_, out) = run(&root, &tools, &state, NOW + 60_000);
        assert!(out.is_empty(), "nothing new: {out:?}");

        fs::write(
            root.join("proc/net/arp"),
            format!("{ARP}192.168.1.77     0x1         0x2         de:ad:be:ef:00:01     *        eth0\n"),
        )
        .expect("arp");
        let (_, out) = run(&root, &tools, &state, NOW + 120_000);
        assert_eq!(out.events.len(), 1, "{out:?}");
        let e = &out.events[0];
        assert_eq!(
            (
                e.kind,
                e.subject.as_str(),
                e.source.as_str(),
                e.count,
                e.first_ms
            ),
            (
                EventKind::NeighbourNew,
                "de:ad:be:ef:00:01",
                "192.168.1.77",
                1,
                NOW + 120_000
            )
        );

        // `ip -j neigh` stands in here with the output format of iproute2; an IPv6 address
        // of a known MAC is not a new device, an unknown MAC is.
        let bin = root.join("bin");
        fs::create_dir_all(&bin).expect("mkdir");
        let ip = bin.join("ip");
        fs::write(
            &ip,
            "#!/bin/sh\n[ \"$*\" = '-j neigh show' ] || exit 1\n\
             echo '[{\"dst\":\"fe80::dead\",\"dev\":\"eth0\",\"lladdr\":\"de:ad:be:ef:00:01\",\"state\":[\"STALE\"]},\
             {\"dst\":\"fe80::9\",\"dev\":\"eth0\",\"lladdr\":\"02:00:00:00:00:99\",\"state\":[\"REACHABLE\"]}]'\n",
        )
        .expect("ip");
        fs::set_permissions(&ip, fs::Permissions::from_mode(0o755)).expect("chmod");
        let (status, out) = run(&root, &Tools::on_path([bin]), &state, NOW + 180_000);
        assert_eq!(status, RunStatus::ok());
        assert_eq!(out.events.len(), 1, "{out:?}");
        assert_eq!(out.events[0].subject, "02:00:00:00:00:99");
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn a_network_scan_is_bounded_in_events() {
        let root = scratch("neigh-scan");
        let state = root.join("state");
        fs::create_dir_all(root.join("proc/net")).expect("mkdir");
        fs::write(root.join("proc/net/arp"), ARP).expect("arp");
        let tools = Tools::on_path([root.join("no-tools")]);
        run(&root, &tools, &state, NOW);
        let mut arp = ARP.to_owned();
        for i in 0..300 {
            arp.push_str(&format!(
                "10.1.{}.{}  0x1  0x2  02:00:00:01:{:02x}:{:02x}  *  eth0\n",
                i / 256,
                i % 256,
                i / 256,
                i % 256
            ));
        }
        fs::write(root.join("proc/net/arp"), arp).expect("arp");
        let (_, out) = run(&root, &tools, &state, NOW + 60_000);
        assert_eq!(out.events.len(), MAX_NEW + 1);
        let rest = out.events.last().expect("rest");
        assert_eq!(
            (rest.subject.as_str(), rest.count),
            ("*", 300 - MAX_NEW as u32)
        );
        fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn bounded_memory_forgets_the_least_recently_seen() {
        let mut known = Vec::new();
        for i in 0..(MAX_KNOWN + 10) {
            let seen = BTreeSet::from([Neighbour {
                mac: format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
                ip: IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]),
            }]);
            remember(&mut known, &seen, i as i64);
        }
        assert_eq!(known.len(), MAX_KNOWN);
        assert!(known.iter().all(|k| k.last_ms >= 10));
    }

    #[test]
    fn unreadable_missing_and_the_real_table() {
        let root = scratch("neigh-perm");
        let empty = Tools::on_path([root.join("no-tools")]);
        let (status, _) = run(&root, &empty, &root.join("state"), NOW);
        assert_eq!(status.state, CollectorState::NotApplicable);
        fs::create_dir_all(root.join("proc/net")).expect("mkdir");
        // Refused by the kernel even to root: a write-only sysctl.
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", root.join("proc/net/arp"))
            .expect("symlink");
        let (status, _) = run(&root, &empty, &root.join("state"), NOW);
        assert_eq!(status.state, CollectorState::NoPermission, "{status:?}");

        // This machine's own table and `ip`, where present.
        let state = root.join("real-state");
        let (status, out) = run(Path::new("/"), &Tools::default(), &state, NOW);
        assert_eq!(status, RunStatus::ok());
        assert!(out.is_empty(), "first run learns");
        let learnt = fs::read_to_string(state.join(STATE_FILE)).expect("state");
        let real = parse_proc_arp(&fs::read_to_string("/proc/net/arp").expect("arp"));
        for n in real {
            assert!(learnt.contains(&n.mac), "{learnt} lacks {n:?}");
        }
        fs::remove_dir_all(&root).ok();
    }
}
