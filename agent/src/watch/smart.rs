//! Disk health through smartmontools: `smartctl --scan-open -j` lists the disks, then
//! `smartctl -j -H -A -i <disk>` reads each one's overall health, its reallocated (ATA
//! attribute 5) and pending (197) sectors, its temperature and, for NVMe, the health log.
//!
//! A disk is `failed` when SMART says so or when smartctl's exit status has bit 3 ("disk
//! failing") set, `passed` when SMART says passed, `unknown` otherwise (a USB bridge that
//! hides SMART, a virtual disk). Disks asleep are not woken (`-n standby`): they are skipped
//! until the next hourly run finds them awake. A missing smartctl is `missing_tool`, disks
//! that cannot be opened for lack of rights are `no_permission`.

use std::time::Duration;

use serde_json::Value;
use vigie_domain::telemetry::{CollectorState, Finding, SmartFinding};

use super::{Observations, RunStatus, ToolOutput, WatchContext, Watcher};

/// Bit 3 of smartctl's exit status: "SMART status check returned DISK FAILING".
const EXIT_DISK_FAILING: i32 = 1 << 3;
/// Disks read in one run, at most.
const MAX_DISKS: usize = 64;

/// The `smart` collector.
#[derive(Debug, Default)]
pub struct SmartWatcher;

impl SmartWatcher {
    pub fn new() -> Self {
        Self
    }
}

/// A disk `--scan-open` listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedDisk {
    /// `/dev/sda`.
    pub name: String,
    /// smartctl's device type (`sat`, `nvme`, `scsi`, `megaraid,0`).
    pub kind: Option<String>,
    /// Why it could not be opened, if it could not.
    pub open_error: Option<String>,
}

pub fn parse_scan(json: &str) -> Option<Vec<ScannedDisk>> {
    let v: Value = serde_json::from_str(json).ok()?;
    let devices = match v.get("devices") {
        Some(Value::Array(d)) => d.as_slice(),
        _ => &[],
    };
    Some(
        devices
            .iter()
            .filter_map(|d| {
                Some(ScannedDisk {
                    name: d.get("name")?.as_str()?.to_owned(),
                    kind: d.get("type").and_then(Value::as_str).map(str::to_owned),
                    open_error: d
                        .get("open_error")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            })
            .take(MAX_DISKS)
            .collect(),
    )
}

/// What one disk's report said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskReport {
    Read(SmartFinding),
    /// Asleep: not woken, nothing to report this time.
    Standby,
    /// It could not be opened or read; the message, and whether rights were lacking.
    Unreadable {
        why: String,
        permission: bool,
    },
}

/// Reads `smartctl -j -H -A -i` output for `disk`, with the process's exit code.
pub fn parse_report(disk: &str, json: &str, code: Option<i32>, now_ms: i64) -> DiskReport {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let exit = code
        .or_else(|| {
            v.pointer("/smartctl/exit_status")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok())
        })
        .unwrap_or(0);
    let messages: Vec<&str> = v
        .pointer("/smartctl/messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|m| m.get("string").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if messages.iter().any(|m| m.contains("STANDBY")) {
        return DiskReport::Standby;
    }
    let passed = v.pointer("/smart_status/passed").and_then(Value::as_bool);
    // Bit 1: the device could not be opened; nothing else in the report is meaningful.
    if exit & 0b10 != 0 || v.is_null() {
        let why = messages.first().map_or_else(
            || format!("smartctl exit status {exit}"),
            |m| (*m).to_owned(),
        );
        let permission = why.contains("ermission");
        return DiskReport::Unreadable { why, permission };
    }
    let state = if exit & EXIT_DISK_FAILING != 0 || passed == Some(false) {
        "failed"
    } else if passed == Some(true) {
        "passed"
    } else {
        "unknown"
    };
    let attribute = |id: u64| {
        v.pointer("/ata_smart_attributes/table")
            .and_then(Value::as_array)?
            .iter()
            .find(|a| a.get("id").and_then(Value::as_u64) == Some(id))?
            .pointer("/raw/value")
            .and_then(Value::as_u64)
    };
    let nvme = v.get("nvme_smart_health_information_log");
    let temperature = v
        .pointer("/temperature/current")
        .or_else(|| nvme.and_then(|n| n.get("temperature")))
        .and_then(Value::as_i64)
        .and_then(|t| i32::try_from(t).ok());
    let model = ["model_name", "scsi_model_name", "model_family"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(|m| m.chars().take(128).collect());
    DiskReport::Read(SmartFinding {
        observed_ms: now_ms,
        disk: disk.to_owned(),
        state: state.to_owned(),
        model,
        reallocated_sectors: attribute(5),
        pending_sectors: attribute(197),
        temperature_celsius: temperature,
    })
}

/// `/dev/sda` → `sda`. Disks behind one RAID controller share a device path (`/dev/bus/0`),
/// so their type is kept in the name: `bus/0-megaraid,3`.
fn disk_name(scanned: &ScannedDisk) -> String {
    let base = scanned
        .name
        .strip_prefix("/dev/")
        .unwrap_or(&scanned.name)
        .to_owned();
    let name = match scanned.kind.as_deref() {
        Some(k) if k.contains(',') => format!("{base}-{k}"),
        _ => base,
    };
    name.chars().take(128).collect()
}

impl Watcher for SmartWatcher {
    fn name(&self) -> &'static str {
        "smart"
    }

    fn every(&self) -> Duration {
        Duration::from_secs(3600)
    }

    fn run(&mut self, ctx: &WatchContext<'_>, out: &mut Observations) -> RunStatus {
        let scan = match ctx.tools.run(&["smartctl", "--scan-open", "-j"]) {
            Ok(ToolOutput {
                timed_out: true, ..
            }) => return RunStatus::with(CollectorState::Error, "smartctl --scan-open timed out"),
            Ok(run) => run,
            Err(e) => return RunStatus::with(e.state(), e.to_string()),
        };
        let Some(disks) = parse_scan(&scan.stdout) else {
            let why = scan.stderr.lines().next().unwrap_or("no JSON output");
            return RunStatus::with(
                CollectorState::Error,
                format!("smartctl --scan-open: {why}"),
            );
        };
        if disks.is_empty() {
            return RunStatus::with(CollectorState::NotApplicable, "smartctl sees no disk");
        }
        let (mut read, mut denied, mut failures) = (0, 0, Vec::new());
        for disk in &disks {
            if let Some(why) = &disk.open_error {
                if why.contains("ermission") {
                    denied += 1;
                } else {
                    failures.push(why.clone());
                }
                continue;
            }
            let mut argv = vec!["smartctl", "-j", "-H", "-A", "-i", "-n", "standby"];
            if let Some(kind) = &disk.kind {
                argv.extend(["-d", kind.as_str()]);
            }
            argv.push(&disk.name);
            let report = match ctx.tools.run(&argv) {
                Ok(run) if run.timed_out => DiskReport::Unreadable {
                    why: format!("{}: smartctl timed out", disk.name),
                    permission: false,
                },
                Ok(run) => parse_report(&disk_name(disk), &run.stdout, run.code, ctx.now_ms),
                Err(e) => return RunStatus::with(e.state(), e.to_string()),
            };
            match report {
                DiskReport::Read(f) => {
                    read += 1;
                    out.findings.push(Finding::Smart(f));
                }
                DiskReport::Standby => read += 1,
                DiskReport::Unreadable {
                    permission: true, ..
                } => denied += 1,
                DiskReport::Unreadable { why, .. } => failures.push(why),
            }
        }
        if denied > 0 && read == 0 && failures.is_empty() {
            RunStatus::with(
                CollectorState::NoPermission,
                format!("smartctl may not open {denied} disk(s): run the agent as root"),
            )
        } else if read == 0 && !failures.is_empty() {
            RunStatus::with(CollectorState::Error, failures.join("; "))
        } else if denied > 0 {
            RunStatus::with(
                CollectorState::NoPermission,
                format!("{denied} disk(s) could not be opened for lack of rights"),
            )
        } else {
            RunStatus::ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::Tools;
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::{Path, PathBuf};
    use vigie_domain::protocol::CollectPlan;

    const NOW: i64 = 1_795_262_400_000;

    const SCAN: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "svn_revision": "5338", "platform_info": "x86_64-linux-6.1.0", "build_info": "(local build)", "argv": ["smartctl", "--scan-open", "-j"], "exit_status": 0},
  "devices": [
    {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
    {"name": "/dev/sdb", "info_name": "/dev/sdb [SAT]", "type": "sat", "protocol": "ATA"},
    {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"}
  ]
}"#;

    /// A healthy SATA SSD as smartctl 7.3 reports it.
    const SDA: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "argv": ["smartctl", "-j", "-H", "-A", "-i", "-n", "standby", "-d", "sat", "/dev/sda"], "exit_status": 0},
  "device": {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
  "model_family": "Samsung based SSDs",
  "model_name": "Samsung SSD 860 EVO 500GB",
  "serial_number": "S3Z1NB0K123456A",
  "smart_status": {"passed": true},
  "ata_smart_attributes": {"revision": 1, "table": [
    {"id": 5, "name": "Reallocated_Sector_Ct", "value": 100, "worst": 100, "thresh": 10, "when_failed": "", "flags": {"value": 51, "string": "PO--CK ", "prefailure": true}, "raw": {"value": 0, "string": "0"}},
    {"id": 9, "name": "Power_On_Hours", "value": 95, "worst": 95, "thresh": 0, "when_failed": "", "flags": {"value": 50, "string": "-O--CK "}, "raw": {"value": 21034, "string": "21034"}},
    {"id": 190, "name": "Airflow_Temperature_Cel", "value": 65, "worst": 49, "thresh": 0, "when_failed": "", "flags": {"value": 50, "string": "-O--CK "}, "raw": {"value": 35, "string": "35"}}
  ]},
  "temperature": {"current": 35},
  "power_on_time": {"hours": 21034}
}"#;

    /// A dying hard disk: SMART fails, sectors reallocated and pending; exit status 8|16|64.
    const SDB: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "exit_status": 88},
  "device": {"name": "/dev/sdb", "info_name": "/dev/sdb [SAT]", "type": "sat", "protocol": "ATA"},
  "model_family": "Western Digital Blue",
  "model_name": "WDC WD10EZEX-08WN4A0",
  "smart_status": {"passed": false},
  "ata_smart_attributes": {"revision": 16, "table": [
    {"id": 5, "name": "Reallocated_Sector_Ct", "value": 3, "worst": 3, "thresh": 140, "when_failed": "now", "raw": {"value": 1784, "string": "1784"}},
    {"id": 194, "name": "Temperature_Celsius", "value": 108, "worst": 94, "thresh": 0, "when_failed": "", "raw": {"value": 39, "string": "39"}},
    {"id": 197, "name": "Current_Pending_Sector", "value": 200, "worst": 200, "thresh": 0, "when_failed": "", "raw": {"value": 12, "string": "12"}}
  ]},
  "temperature": {"current": 39}
}"#;

    const NVME: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "exit_status": 0},
  "device": {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
  "model_name": "Samsung SSD 970 EVO Plus 1TB",
  "smart_status": {"passed": true, "nvme": {"value": 0}},
  "nvme_smart_health_information_log": {"critical_warning": 0, "temperature": 41, "available_spare": 100, "available_spare_threshold": 10, "percentage_used": 2, "media_errors": 0, "num_err_log_entries": 12}
}"#;

    const DENIED: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "messages": [{"string": "Smartctl open device: /dev/sda failed: Permission denied", "severity": "error"}], "exit_status": 2}
}"#;

    const STANDBY: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 3], "messages": [{"string": "Device is in STANDBY mode, exit(2)", "severity": "information"}], "exit_status": 2}
}"#;

    fn scratch(name: &str) -> PathBuf {
        super::super::auth::tests::scratch(name)
    }

    /// A `smartctl` standing in for the real one: prints the fixture for the disk named
    /// last on its command line (or the scan), with that fixture's exit code.
    fn fake_smartctl(dir: &Path, scan: &str, disks: &[(&str, &str, i32)]) -> Tools {
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("mkdir");
        fs::write(bin.join("scan.json"), scan).expect("scan");
        let mut script = format!(
            "#!/bin/sh\nfor last; do :; done\nif [ \"$1\" = --scan-open ]; then cat {}/scan.json; exit 0; fi\n",
            bin.display()
        );
        for (name, json, code) in disks {
            fs::write(bin.join(format!("{name}.json")), json).expect("fixture");
            script.push_str(&format!(
                "if [ \"$last\" = /dev/{name} ]; then cat {}/{name}.json; exit {code}; fi\n",
                bin.display()
            ));
        }
        script.push_str("exit 2\n");
        let path = bin.join("smartctl");
        fs::write(&path, script).expect("script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        Tools::on_path([bin])
    }

    fn run(tools: &Tools) -> (RunStatus, Observations) {
        let plan = CollectPlan::default();
        let root = Path::new("/");
        let ctx = WatchContext {
            root,
            tools,
            plan: &plan,
            state_dir: Path::new("/nonexistent-state"),
            now_ms: NOW,
        };
        let mut out = Observations::default();
        (SmartWatcher::new().run(&ctx, &mut out), out)
    }

    #[test]
    fn reports_parse() {
        let scan = parse_scan(SCAN).expect("scan");
        assert_eq!(scan.len(), 3);
        assert_eq!(scan[2].kind.as_deref(), Some("nvme"));
        assert_eq!(
            parse_scan(r#"{"smartctl":{"exit_status":0}}"#),
            Some(vec![])
        );
        assert_eq!(parse_scan("garbage"), None);

        let DiskReport::Read(sda) = parse_report("sda", SDA, Some(0), NOW) else {
            panic!("sda")
        };
        assert_eq!(
            (
                sda.state.as_str(),
                sda.reallocated_sectors,
                sda.pending_sectors,
                sda.temperature_celsius
            ),
            ("passed", Some(0), None, Some(35))
        );
        assert_eq!(sda.model.as_deref(), Some("Samsung SSD 860 EVO 500GB"));
        let DiskReport::Read(sdb) = parse_report("sdb", SDB, Some(88), NOW) else {
            panic!("sdb")
        };
        assert_eq!(
            (
                sdb.state.as_str(),
                sdb.reallocated_sectors,
                sdb.pending_sectors
            ),
            ("failed", Some(1784), Some(12))
        );
        let DiskReport::Read(nvme) = parse_report("nvme0", NVME, Some(0), NOW) else {
            panic!("nvme")
        };
        assert_eq!(
            (nvme.state.as_str(), nvme.temperature_celsius),
            ("passed", Some(41))
        );

        // Exit bit 3 alone marks the disk failing even if the JSON lacks a verdict.
        let no_verdict = SDA.replace(r#""smart_status": {"passed": true},"#, "");
        let DiskReport::Read(f) = parse_report("sda", &no_verdict, Some(8), NOW) else {
            panic!("sda")
        };
        assert_eq!(f.state, "failed");
        let DiskReport::Read(f) = parse_report("sda", &no_verdict, Some(0), NOW) else {
            panic!("sda")
        };
        assert_eq!(f.state, "unknown");
        assert!(matches!(
            parse_report("sda", DENIED, Some(2), NOW),
            DiskReport::Unreadable {
                permission: true,
                ..
            }
        ));
        assert_eq!(
            parse_report("sda", STANDBY, Some(2), NOW),
            DiskReport::Standby
        );
        assert!(matches!(
            parse_report("sda", "", None, NOW),
            DiskReport::Unreadable {
                permission: false,
                ..
            }
        ));
        assert!(matches!(
            parse_report("sda", "[1,", Some(1), NOW),
            DiskReport::Unreadable {
                permission: false,
                ..
            }
        ));
    }

    #[test]
    fn every_disk_is_read_through_smartctl() {
        let dir = scratch("smart");
        let tools = fake_smartctl(
            &dir,
            SCAN,
            &[("sda", SDA, 0), ("sdb", SDB, 88), ("nvme0", NVME, 0)],
        );
        let (status, out) = run(&tools);
        assert_eq!(status, RunStatus::ok());
        let states: Vec<(&str, &str)> = out
            .findings
            .iter()
            .map(|f| (f.subject(), f.state()))
            .collect();
        assert_eq!(
            states,
            [("sda", "passed"), ("sdb", "failed"), ("nvme0", "passed")]
        );
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn permission_denied_standby_and_no_disk() {
        let dir = scratch("smart-perm");
        let scan =
            r#"{"devices":[{"name":"/dev/sda","type":"sat"},{"name":"/dev/sdb","type":"sat"}]}"#;
        let tools = fake_smartctl(&dir, scan, &[("sda", DENIED, 2), ("sdb", STANDBY, 2)]);
        let (status, out) = run(&tools);
        assert_eq!(status.state, CollectorState::NoPermission, "{status:?}");
        assert!(out.findings.is_empty());

        let scan_denied = r#"{"devices":[{"name":"/dev/sda","type":"sat","open_error":"/dev/sda: Permission denied"}]}"#;
        let dir2 = dir.join("two");
        let (status, _) = run(&fake_smartctl(&dir2, scan_denied, &[]));
        assert_eq!(status.state, CollectorState::NoPermission, "{status:?}");

        let dir3 = dir.join("three");
        let (status, _) = run(&fake_smartctl(
            &dir3,
            r#"{"smartctl":{"exit_status":0}}"#,
            &[],
        ));
        assert_eq!(status.state, CollectorState::NotApplicable);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn this_machine_has_smartctl_or_says_it_is_missing() {
        let dir = scratch("smart-real");
        let (status, _) = run(&Tools::on_path([dir.clone()]));
        assert_eq!(status.state, CollectorState::MissingTool);
        let tools = Tools::default();
        let (status, out) = run(&tools);
        if tools.find("smartctl").is_none() {
            assert_eq!(status.state, CollectorState::MissingTool);
        } else {
            // Whatever the disks (none in a container), the real tool's output is understood.
            assert_ne!(status.state, CollectorState::MissingTool, "{status:?}");
            assert!(
                out.findings
                    .iter()
                    .all(|f| ["passed", "failed", "unknown"].contains(&f.state()))
            );
        }
        fs::remove_dir_all(&dir).ok();
    }
}
