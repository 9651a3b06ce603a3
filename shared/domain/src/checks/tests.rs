//! Each kind's semantics, and the invariants every kind keeps: a replayed batch changes
//! nothing, a quiet steady input asks for no write, splitting input into batches changes
//! nothing.

use proptest::prelude::*;

use super::*;
use crate::ids::{ClientId, SiteId};
use crate::policy::{EffectivePolicy, Policy, Rule, Scope};
use crate::telemetry::batch::tests::batch;
use crate::telemetry::{
    AccountFinding, BackupFinding, BackupStatus, CertificateFinding, ServiceFinding, UpdatesFinding,
};

const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;

fn rule(json: serde_json::Value) -> Rule {
    let r: Rule = serde_json::from_value(json).expect("rule parses");
    Policy {
        scope: Scope::Tenant,
        rules: vec![r.clone()],
    }
    .validate()
    .expect("rule is valid");
    r
}

/// A device under one rule, keeping its stored states between batches like the evaluator.
struct Device {
    policy: EffectivePolicy,
    states: States,
    writes: usize,
}

impl Device {
    fn new(rules: Vec<Rule>) -> Self {
        let p = Policy {
            scope: Scope::Tenant,
            rules,
        };
        Self {
            policy: EffectivePolicy::for_device(
                [p].iter(),
                &crate::ids::DeviceId::parse("dev-a").expect("id"),
                &ClientId::parse("acme").expect("id"),
                &SiteId::parse("hq").expect("id"),
                &BTreeMap::new(),
            ),
            states: States::new(),
            writes: 0,
        }
    }

    fn feed(&mut self, b: &TelemetryBatch) -> Vec<RuleTransition> {
        let e = self.policy.evaluate(b, &self.states);
        self.writes += e.changed.len();
        self.states.extend(e.changed);
        e.transitions
    }
}

/// A one-sample batch at `at` carrying findings and events.
fn at(at: i64, findings: Vec<Finding>, events: Vec<EventCount>) -> TelemetryBatch {
    let mut b = batch(at, 1);
    b.findings = findings;
    b.events = events;
    b
}

fn service(observed_ms: i64, name: &str, state: &str, sub: &str) -> Finding {
    Finding::Service(ServiceFinding {
        observed_ms,
        name: name.into(),
        state: state.into(),
        sub_state: Some(sub.into()),
        via: "systemd".into(),
    })
}

fn cert(observed_ms: i64, days_left: f64) -> Finding {
    Finding::Certificate(CertificateFinding {
        observed_ms,
        target: "portal.example:443".into(),
        source: "endpoint".into(),
        state: "valid".into(),
        not_after_ms: Some(observed_ms + (days_left * DAY_MS as f64) as i64),
        subject: None,
        issuer: None,
        error: None,
    })
}

fn failures(source: &str, count: u32, first_ms: i64, last_ms: i64) -> EventCount {
    EventCount {
        kind: EventKind::AuthFailure,
        subject: "root".into(),
        source: source.into(),
        count,
        first_ms,
        last_ms,
    }
}

fn levels(ts: &[RuleTransition]) -> Vec<(Option<Severity>, Option<Severity>)> {
    ts.iter()
        .map(|t| (t.transition.from, t.transition.to))
        .collect()
}

use Severity::{Critical, Info, Warning};

#[test]
fn a_rule_without_kind_is_the_threshold_rule_it_always_was() {
    let old = serde_json::json!({
        "id": "disk-used", "family": "resources", "metric": "filesystem_used_pct",
        "direction": "above", "warning": {"threshold": 85.0, "for_s": 300},
        "critical": {"threshold": 95.0}, "hysteresis": 2.0
    });
    let r: Rule = serde_json::from_value(old).expect("parses");
    let t = r.as_threshold().expect("threshold rule");
    assert_eq!(t.warning.map(|l| (l.threshold, l.for_s)), Some((85.0, 300)));
    assert_eq!(t.max_gap_s, 600);
    assert!(r.enabled);
    // It is written as before (no `kind`) and round-trips.
    let json = serde_json::to_value(&r).expect("json");
    assert!(json.get("kind").is_none(), "{json}");
    assert_eq!(serde_json::from_value::<Rule>(json).expect("parses"), r);
    // Every other kind names itself and round-trips.
    for t in crate::templates::builtin() {
        for r in t.rules {
            let json = serde_json::to_value(&r).expect("json");
            let kind = r.check.kind();
            assert_eq!(
                json.get("kind").and_then(|k| k.as_str()),
                (kind != "threshold").then_some(kind)
            );
            assert_eq!(serde_json::from_value::<Rule>(json).expect("parses"), r);
        }
    }
}

#[test]
fn bad_rules_are_refused_with_the_reason() {
    let err = |v: serde_json::Value| {
        serde_json::from_value::<Rule>(v)
            .expect_err("refused")
            .to_string()
    };
    let e = err(serde_json::json!({"id": "x", "family": "resources", "kind": "telepathy"}));
    assert!(
        e.contains("unknown rule kind `telepathy`") && e.contains("expiry"),
        "{e}"
    );
    let e = err(
        serde_json::json!({"id": "x", "family": "resources", "kind": "state",
        "finding": "service", "states": {"failed": "critical"}, "colour": "red"}),
    );
    assert!(e.contains("state rule") && e.contains("colour"), "{e}");
    let e = err(
        serde_json::json!({"id": "x", "family": "resources", "metric": "cpu_total_pct",
        "direction": "above", "warning": {"threshold": 1.0}, "colour": "red"}),
    );
    assert!(e.contains("colour"), "{e}");

    let invalid = |v: serde_json::Value| {
        Policy {
            scope: Scope::Tenant,
            rules: vec![serde_json::from_value(v).expect("parses")],
        }
        .validate()
        .expect_err("invalid")
        .to_string()
    };
    let e = invalid(
        serde_json::json!({"id": "svc", "family": "device_down", "kind": "state",
        "finding": "service", "states": {}}),
    );
    assert_eq!(
        e,
        "rule svc (state): a state rule needs at least one state mapped to a severity"
    );
    let e = invalid(
        serde_json::json!({"id": "tls", "family": "certificate_expiry",
        "kind": "expiry", "reminders": [{"days": 3, "severity": "info"}, {"days": 30, "severity": "critical"}]}),
    );
    assert!(e.contains("must not lower the severity"), "{e}");
    let e = invalid(
        serde_json::json!({"id": "brute", "family": "intrusion", "kind": "count",
        "event": "auth_failure", "per": "source", "at_least": 0, "window_s": 300, "clear_after_s": 900}),
    );
    assert!(e.contains("at_least ≥ 1"), "{e}");
    let e = invalid(
        serde_json::json!({"id": "fill", "family": "resources", "kind": "rate",
        "metric": "backup_age_h", "limit": 100, "warning_h": 24}),
    );
    assert!(e.contains("not a series a rate"), "{e}");
    let e = invalid(
        serde_json::json!({"id": "svc", "family": "device_down", "kind": "state",
        "finding": "service", "states": {"failed": "critical"},
        "sources": [{"source": "veeam", "job": "x"}]}),
    );
    assert!(e.contains("backup sources belong"), "{e}");
}

#[test]
fn a_failed_service_opens_with_its_detail_and_recovers() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "svc", "family": "device_down", "kind": "state", "finding": "service",
        "states": {"failed": "critical", "inactive": "warning", "not_found": "warning"},
        "subjects": ["nginx"]
    }))]);
    let failed = at(
        T0,
        vec![
            service(T0, "nginx", "failed", "dead"),
            service(T0, "cron", "failed", "dead"),
        ],
        vec![],
    );
    let t = d.feed(&failed);
    assert_eq!(
        levels(&t),
        vec![(None, Some(Critical))],
        "cron is not watched"
    );
    assert_eq!(t[0].subject, "nginx");
    assert_eq!(t[0].metric, "finding:service");
    assert_eq!(
        t[0].detail.as_deref(),
        Some("nginx is failed (systemd: dead)")
    );
    // Replayed: nothing. A batch without the finding: nothing.
    assert!(d.feed(&failed).is_empty());
    let writes = d.writes;
    assert!(d.feed(&at(T0 + MIN, vec![], vec![])).is_empty());
    // Still failed, minutes later: no event and no write.
    assert!(
        d.feed(&at(
            T0 + 2 * MIN,
            vec![service(T0 + 2 * MIN, "nginx", "failed", "dead")],
            vec![]
        ))
        .is_empty()
    );
    assert_eq!(d.writes, writes);
    // Down to inactive: lowered; running: resolved.
    let t = d.feed(&at(
        T0 + 3 * MIN,
        vec![service(T0 + 3 * MIN, "nginx", "inactive", "dead")],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(Some(Critical), Some(Warning))]);
    let t = d.feed(&at(
        T0 + 4 * MIN,
        vec![service(T0 + 4 * MIN, "nginx", "active", "running")],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(Some(Warning), None)]);
    assert_eq!(
        t[0].detail.as_deref(),
        Some("nginx is active (systemd: running)")
    );
}

#[test]
fn a_state_waits_out_for_s() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "svc", "family": "device_down", "kind": "state", "finding": "service",
        "states": {"failed": "critical"}, "for_s": 180
    }))]);
    for m in 0..3 {
        assert!(
            d.feed(&at(
                T0 + m * MIN,
                vec![service(T0 + m * MIN, "db", "failed", "dead")],
                vec![]
            ))
            .is_empty()
        );
    }
    let t = d.feed(&at(
        T0 + 3 * MIN,
        vec![service(T0 + 3 * MIN, "db", "failed", "dead")],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(None, Some(Critical))]);
}

#[test]
fn leavers_still_active_are_raised() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "leavers", "family": "accounts", "kind": "state", "finding": "account",
        "states": {"active": "warning"}, "subjects": ["bob"]
    }))]);
    let account = |user: &str, state: &str| {
        Finding::Account(AccountFinding {
            observed_ms: T0,
            user: user.into(),
            uid: 1001,
            admin: false,
            state: state.into(),
            password_changed_ms: None,
        })
    };
    let t = d.feed(&at(
        T0,
        vec![account("alice", "active"), account("bob", "active")],
        vec![],
    ));
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].subject, "bob");
    assert_eq!(t[0].detail.as_deref(), Some("account bob is active"));
}

#[test]
fn a_backup_without_success_is_infinitely_old_and_says_why() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "backup-age", "family": "backup_failure", "kind": "absence",
        "warning_h": 26, "critical_h": 50
    }))]);
    let backup = |observed_ms: i64, status, last_success_ms| {
        Finding::Backup(BackupFinding {
            observed_ms,
            job: "nas-nightly".into(),
            source: "status_file".into(),
            status,
            last_run_ms: Some(observed_ms - MIN),
            last_success_ms,
            message: Some("repository locked".into()),
        })
    };
    let t = d.feed(&at(
        T0,
        vec![backup(T0, BackupStatus::Failed, None)],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(None, Some(Critical))]);
    assert_eq!(t[0].metric, "backup_age_h");
    assert_eq!(t[0].threshold, 50.0);
    assert_eq!(
        t[0].detail.as_deref(),
        Some("backup nas-nightly failed: repository locked; no successful run on record")
    );
    // A success now: resolved.
    let t = d.feed(&at(
        T0 + MIN,
        vec![backup(T0 + MIN, BackupStatus::Success, Some(T0 + MIN))],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(Some(Critical), None)]);
    // 30 h later without a new success: warning.
    let later = T0 + 30 * HOUR_MS;
    let t = d.feed(&at(
        later,
        vec![backup(later, BackupStatus::Success, Some(T0 + MIN))],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(None, Some(Warning))]);
}

#[test]
fn certificate_reminders_fire_once_each_and_renewal_resolves() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "tls", "family": "certificate_expiry", "kind": "expiry",
        "reminders": [{"days": 30, "severity": "info"}, {"days": 14, "severity": "warning"},
                      {"days": 3, "severity": "critical"}]
    }))]);
    let not_after = T0 + 40 * DAY_MS;
    let day = |n: i64| {
        let observed = T0 + n * DAY_MS;
        at(
            observed,
            vec![cert(
                observed,
                (not_after - observed) as f64 / DAY_MS as f64,
            )],
            vec![],
        )
    };
    let mut seen = Vec::new();
    for n in 0..45 {
        for t in d.feed(&day(n)) {
            seen.push((
                n,
                t.transition.from,
                t.transition.to,
                t.threshold,
                t.transition.value,
            ));
        }
    }
    assert_eq!(
        seen,
        vec![
            (10, None, Some(Info), 30.0, 30.0),
            (26, Some(Info), Some(Warning), 14.0, 14.0),
            (37, Some(Warning), Some(Critical), 3.0, 3.0),
        ],
        "expired (day 40 on) stays critical without more events"
    );
    let renewed = T0 + 46 * DAY_MS;
    let t = d.feed(&at(renewed, vec![cert(renewed, 90.0)], vec![]));
    assert_eq!(levels(&t), vec![(Some(Critical), None)]);
    assert!(
        t[0].detail
            .as_deref()
            .is_some_and(|d| d.contains("renewed")),
        "{t:?}"
    );
}

#[test]
fn a_reminder_at_unchanged_severity_is_flagged_and_detail_names_the_date() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "tls", "family": "certificate_expiry", "kind": "expiry",
        "reminders": [{"days": 30, "severity": "warning"}, {"days": 14, "severity": "warning"}]
    }))]);
    let t = d.feed(&at(T0, vec![cert(T0, 20.5)], vec![]));
    assert_eq!(levels(&t), vec![(None, Some(Warning))]);
    assert!(!t[0].reminder);
    let t = d.feed(&at(
        T0 + 7 * DAY_MS,
        vec![cert(T0 + 7 * DAY_MS, 13.5)],
        vec![],
    ));
    assert_eq!(levels(&t), vec![(Some(Warning), Some(Warning))]);
    assert!(t[0].reminder);
    assert_eq!(
        t[0].detail.as_deref(),
        Some(
            format!(
                "certificate of portal.example:443 expires in 13 days ({})",
                date(T0 + 7 * DAY_MS + 13 * DAY_MS + DAY_MS / 2)
            )
            .as_str()
        )
    );
    assert_eq!(date(1_796_342_400_000), "2026-12-04");
}

#[test]
fn failed_logins_counted_across_batches_open_per_source_and_clear() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "brute", "family": "intrusion", "kind": "count", "event": "auth_failure",
        "per": "source", "at_least": 10, "window_s": 300, "clear_after_s": 900
    }))]);
    let b1 = at(
        T0,
        vec![],
        vec![
            failures("203.0.113.9", 6, T0 - 50_000, T0 - 1_000),
            failures("198.51.100.7", 2, T0 - 40_000, T0 - 2_000),
        ],
    );
    assert!(d.feed(&b1).is_empty());
    let b2 = at(
        T0 + MIN,
        vec![],
        vec![failures("203.0.113.9", 6, T0 + 1_000, T0 + 59_000)],
    );
    let t = d.feed(&b2);
    assert_eq!(levels(&t), vec![(None, Some(Warning))]);
    assert_eq!(t[0].subject, "203.0.113.9");
    assert_eq!((t[0].transition.value, t[0].threshold), (12.0, 10.0));
    assert_eq!(t[0].metric, "event:auth_failure");
    assert_eq!(
        t[0].detail.as_deref(),
        Some("12 failed logins from 203.0.113.9 within 5 min")
    );
    // Replays count nothing twice.
    assert!(d.feed(&b1).is_empty() && d.feed(&b2).is_empty());
    // Quiet batches: still open until 15 min after the last failure.
    assert!(d.feed(&at(T0 + 10 * MIN, vec![], vec![])).is_empty());
    let t = d.feed(&at(T0 + 16 * MIN, vec![], vec![]));
    assert_eq!(levels(&t), vec![(Some(Warning), None)]);
    assert_eq!(t[0].subject, "203.0.113.9");
    assert!(d.feed(&at(T0 + 17 * MIN, vec![], vec![])).is_empty());
}

#[test]
fn failures_spread_wider_than_the_window_do_not_open() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "brute", "family": "intrusion", "kind": "count", "event": "auth_failure",
        "per": "source", "at_least": 10, "window_s": 300, "clear_after_s": 900
    }))]);
    for m in 0..20 {
        let t = T0 + m * 2 * MIN;
        assert!(
            d.feed(&at(
                t,
                vec![],
                vec![failures("203.0.113.9", 3, t - 1_000, t)]
            ))
            .is_empty(),
            "minute {m}"
        );
    }
}

#[test]
fn a_new_admin_opens_per_subject_and_the_users_filter_applies() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "new-admin", "family": "accounts", "kind": "event",
        "events": ["admin_added", "password_changed"], "users": ["alice", "mallory"],
        "clear_after_s": 3600
    }))]);
    let ev = |kind, subject: &str, t: i64| EventCount {
        kind,
        subject: subject.into(),
        source: String::new(),
        count: 1,
        first_ms: t,
        last_ms: t,
    };
    let t = d.feed(&at(
        T0,
        vec![],
        vec![
            ev(EventKind::AdminAdded, "mallory", T0),
            ev(EventKind::AdminAdded, "bob", T0),
            ev(EventKind::Sudo, "alice", T0),
        ],
    ));
    assert_eq!(levels(&t), vec![(None, Some(Warning))]);
    assert_eq!(t[0].subject, "mallory");
    assert_eq!(t[0].detail.as_deref(), Some("new administrator: mallory"));
    // More of the same while open: no new event.
    assert!(
        d.feed(&at(
            T0 + MIN,
            vec![],
            vec![ev(EventKind::PasswordChanged, "mallory", T0 + MIN)]
        ))
        .is_empty()
    );
    assert!(d.feed(&at(T0 + HOUR_MS, vec![], vec![])).is_empty());
    let t = d.feed(&at(T0 + 2 * MIN + HOUR_MS, vec![], vec![]));
    assert_eq!(levels(&t), vec![(Some(Warning), None)]);
}

fn updates(observed_ms: i64, security: u32, since: Option<i64>, reboot: bool) -> Finding {
    Finding::Updates(UpdatesFinding {
        observed_ms,
        manager: "apt".into(),
        pending: security + 2,
        security,
        manual: 0,
        security_since_ms: since,
        reboot_required: reboot,
        sample: vec![],
    })
}

#[test]
fn inventory_security_updates_pending_too_long_and_reboot_pending_too_long() {
    let mut d = Device::new(vec![
        rule(
            serde_json::json!({"id": "sec", "family": "updates", "kind": "inventory",
            "condition": "security_pending_days", "warning": 7}),
        ),
        rule(
            serde_json::json!({"id": "reboot", "family": "updates", "kind": "inventory",
            "condition": "reboot_required_days", "warning": 3}),
        ),
    ]);
    let since = T0 - 6 * DAY_MS;
    let mut opened = Vec::new();
    for day in 0..6 {
        let t = T0 + day * DAY_MS;
        for tr in d.feed(&at(t, vec![updates(t, 2, Some(since), day >= 1)], vec![])) {
            opened.push((day, tr.rule.to_string(), tr.transition.to, tr.metric));
        }
    }
    assert_eq!(
        opened,
        vec![
            // Pending 8 days (> 7) on day 2; reboot required from day 1, 4 days (> 3) on day 5.
            (
                2,
                "sec".to_owned(),
                Some(Warning),
                "updates_security_pending_days".to_owned()
            ),
            (
                5,
                "reboot".to_owned(),
                Some(Warning),
                "updates_reboot_required_days".to_owned()
            ),
        ]
    );
    // Installed and rebooted: both resolve.
    let t = T0 + 6 * DAY_MS;
    let got = d.feed(&at(t, vec![updates(t, 0, None, false)], vec![]));
    assert_eq!(got.iter().filter(|t| t.transition.to.is_none()).count(), 2);
}

#[test]
fn a_filling_disk_is_raised_hours_ahead_and_a_steady_one_writes_once_per_window() {
    let fill = rule(serde_json::json!({
        "id": "disk-fill", "family": "resources", "kind": "rate", "metric": "filesystem_used_pct",
        "subject": "/", "limit": 100, "window_s": 3600, "warning_h": 24, "critical_h": 6
    }));
    // The root filesystem of the test sample sits steady: one anchor write, then one per hour.
    let mut steady = Device::new(vec![fill.clone()]);
    for m in 0..180 {
        assert!(steady.feed(&batch(T0 + m * MIN, 1)).is_empty());
    }
    assert!(steady.writes <= 4, "{} writes", steady.writes);
    // Filling 2 points an hour from 61 %: 19.5 h left after the first hour → warning.
    let mut filling = Device::new(vec![fill]);
    let mut got = Vec::new();
    for m in 0..=120 {
        let t = T0 + m * MIN;
        let mut b = batch(t, 1);
        let mut row = b.rows().pop().expect("row");
        row.filesystems[0].used_pct = 60.0 + 2.0 * m as f64 / 60.0;
        b = TelemetryBatch::from_samples(b.agent.clone(), Default::default(), &[row]);
        for tr in filling.feed(&b) {
            got.push((m, tr.transition.to, tr.metric.clone()));
        }
    }
    assert_eq!(
        got,
        vec![(60, Some(Warning), "rate:filesystem_used_pct".to_owned())]
    );
}

#[test]
fn threshold_over_finding_metrics() {
    let mut d = Device::new(vec![rule(serde_json::json!({
        "id": "cert-days", "family": "certificate_expiry", "metric": "certificate_days_left",
        "direction": "below", "warning": {"threshold": 14}, "critical": {"threshold": 3}
    }))]);
    let t = d.feed(&at(T0, vec![cert(T0, 10.0)], vec![]));
    assert_eq!(levels(&t), vec![(None, Some(Warning))]);
    assert_eq!(t[0].subject, "portal.example:443");
    assert!(
        t[0].detail
            .as_deref()
            .is_some_and(|d| d.contains("expires in 10 days"))
    );
}

#[test]
fn collect_plan_is_the_union_of_what_rules_watch() {
    let d = Device::new(vec![
        rule(
            serde_json::json!({"id": "svc", "family": "device_down", "kind": "state",
            "finding": "service", "states": {"failed": "critical"}, "subjects": ["nginx", "postgresql"]}),
        ),
        rule(
            serde_json::json!({"id": "svc2", "family": "device_down", "kind": "state",
            "finding": "service", "states": {"failed": "critical"}, "subjects": ["nginx", "sshd"]}),
        ),
        rule(
            serde_json::json!({"id": "backup", "family": "backup_failure", "kind": "absence",
            "warning_h": 26, "sources": [{"source": "status_file", "job": "nightly", "path": "/var/backup/status.json"}]}),
        ),
        rule(
            serde_json::json!({"id": "tls", "family": "certificate_expiry", "kind": "expiry",
            "reminders": [{"days": 30, "severity": "warning"}],
            "targets": [{"source": "endpoint", "host": "portal.example", "port": 443}]}),
        ),
    ]);
    let plan = d.policy.collect_plan();
    assert_eq!(plan.services, ["nginx", "postgresql", "sshd"]);
    assert_eq!(plan.backups.len(), 1);
    assert_eq!(plan.backups[0].job(), "nightly");
    assert_eq!(plan.certificates[0].target(), "portal.example:443");
}

// ---------------------------------------------------------------------------------------------
// Invariants under random input.

const SERVICE_STATES: [&str; 4] = ["active", "failed", "inactive", "activating"];

/// Batches of service findings for two services, at increasing times.
fn arb_service_stream() -> impl Strategy<Value = Vec<(i64, Vec<Finding>)>> {
    proptest::collection::vec(
        (
            1i64..300,
            proptest::collection::vec((0usize..2, 0usize..4), 0..3),
        ),
        1..60,
    )
    .prop_map(|steps| {
        let mut t = T0;
        steps
            .into_iter()
            .map(|(dt, fs)| {
                t += dt * 1000;
                let findings = fs
                    .into_iter()
                    .map(|(who, st)| service(t, ["nginx", "db"][who], SERVICE_STATES[st], "x"))
                    .collect();
                (t, findings)
            })
            .collect()
    })
}

fn arb_auth_stream() -> impl Strategy<Value = Vec<(i64, Vec<EventCount>)>> {
    proptest::collection::vec(
        (
            1i64..240,
            proptest::collection::vec((0usize..3, 1u32..8), 0..3),
        ),
        1..60,
    )
    .prop_map(|steps| {
        let mut t = T0;
        steps
            .into_iter()
            .map(|(dt, evs)| {
                let first = t + 1;
                t += dt * 1000;
                let events = evs
                    .into_iter()
                    .map(|(src, n)| failures(["a", "b", "c"][src], n, first, t))
                    .collect();
                (t, events)
            })
            .collect()
    })
}

fn state_rule(for_s: u32) -> Rule {
    rule(serde_json::json!({
        "id": "svc", "family": "device_down", "kind": "state", "finding": "service",
        "states": {"failed": "critical", "inactive": "warning"}, "for_s": for_s
    }))
}

fn count_rule() -> Rule {
    rule(serde_json::json!({
        "id": "brute", "family": "intrusion", "kind": "count", "event": "auth_failure",
        "per": "source", "at_least": 10, "window_s": 300, "clear_after_s": 600
    }))
}

proptest! {
    #[test]
    fn state_rules_ignore_replays_and_batch_boundaries(stream in arb_service_stream(), for_s in 0u32..400) {
        let mut one = Device::new(vec![state_rule(for_s)]);
        let mut replayed = Device::new(vec![state_rule(for_s)]);
        let mut all = Vec::new();
        let mut all_replayed = Vec::new();
        for (t, findings) in &stream {
            let b = at(*t, findings.clone(), vec![]);
            all.extend(one.feed(&b));
            all_replayed.extend(replayed.feed(&b));
            let writes = replayed.writes;
            prop_assert!(replayed.feed(&b).is_empty(), "a replay raised something");
            prop_assert_eq!(replayed.writes, writes, "a replay wrote");
        }
        prop_assert_eq!(levels(&all), levels(&all_replayed));
        // All findings in one batch: same transitions.
        let mut merged = Device::new(vec![state_rule(for_s)]);
        let every: Vec<Finding> = stream.iter().flat_map(|(_, f)| f.clone()).collect();
        let last = stream.last().map_or(T0, |(t, _)| *t);
        let whole = merged.feed(&at(last, every, vec![]));
        let key = |ts: &[RuleTransition]| {
            let mut v: Vec<_> = ts.iter().map(|t| (t.subject.clone(), t.transition.at_ms, t.transition.to)).collect();
            v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            v
        };
        prop_assert_eq!(key(&whole), key(&all));
        // Transitions chain per subject.
        for subject in ["nginx", "db"] {
            let mut current = None;
            for t in all.iter().filter(|t| t.subject == subject) {
                prop_assert_eq!(t.transition.from, current);
                current = t.transition.to;
            }
        }
    }

    #[test]
    fn count_rules_never_open_without_enough_events_in_one_window(stream in arb_auth_stream()) {
        let mut d = Device::new(vec![count_rule()]);
        let mut events: Vec<EventCount> = Vec::new();
        for (t, evs) in &stream {
            let b = at(*t, vec![], evs.clone());
            let got = d.feed(&b);
            events.extend(evs.clone());
            let writes = d.writes;
            prop_assert!(d.feed(&b).is_empty(), "a replay raised something");
            prop_assert_eq!(d.writes, writes, "a replay wrote");
            for tr in got.iter().filter(|t| t.transition.from.is_none()) {
                // Some window of 300 s ending at the opening holds ≥ 10 of this source's events.
                let best = events
                    .iter()
                    .filter(|e| e.source == tr.subject && e.last_ms <= tr.transition.at_ms)
                    .map(|start| {
                        events
                            .iter()
                            .filter(|e| e.source == tr.subject && e.first_ms >= start.first_ms
                                && e.last_ms <= start.first_ms + 300_000 && e.last_ms <= tr.transition.at_ms)
                            .map(|e| e.count)
                            .sum::<u32>()
                    })
                    .max()
                    .unwrap_or(0);
                prop_assert!(best >= 10, "opened with {best} events in the best window");
            }
        }
    }

    #[test]
    fn expiry_reminders_are_monotone_and_replays_inert(days in proptest::collection::vec(-5.0..60.0f64, 1..40)) {
        let r = rule(serde_json::json!({
            "id": "tls", "family": "certificate_expiry", "kind": "expiry",
            "reminders": [{"days": 30, "severity": "info"}, {"days": 14, "severity": "warning"},
                          {"days": 3, "severity": "critical"}]
        }));
        let mut d = Device::new(vec![r]);
        for (i, left) in days.iter().enumerate() {
            let t = T0 + i as i64 * HOUR_MS;
            let b = at(t, vec![cert(t, *left)], vec![]);
            for tr in d.feed(&b) {
                // Expired (≤ 0 days) is critical, like the last reminder.
                let expect = if *left <= 3.0 { Some(Critical) }
                    else if *left <= 14.0 { Some(Warning) }
                    else if *left <= 30.0 { Some(Info) } else { None };
                prop_assert_eq!(tr.transition.to, expect);
            }
            prop_assert!(d.feed(&b).is_empty());
        }
    }

    #[test]
    fn rate_rules_ignore_replays_and_batch_boundaries(
        steps in proptest::collection::vec((30i64..400, -0.5..1.5f64), 1..150),
        cut in 0usize..150,
    ) {
        let r = rule(serde_json::json!({
            "id": "fill", "family": "resources", "kind": "rate", "metric": "cpu_total_pct",
            "limit": 100, "window_s": 900, "warning_h": 2, "critical_h": 0.5
        }));
        // A CPU series drifting by the given steps (one sample per batch).
        let mut t = T0;
        let mut v: f64 = 20.0;
        let points: Vec<(i64, f64)> = steps
            .iter()
            .map(|(dt, dv)| {
                t += dt * 1000;
                v = (v + dv).clamp(0.0, 100.0);
                (t, v)
            })
            .collect();
        let one_batch = |pts: &[(i64, f64)]| {
            let rows: Vec<_> = pts
                .iter()
                .map(|(t, v)| {
                    let mut row = batch(*t, 1).rows().pop().expect("row");
                    row.ts = *t;
                    if let Some(c) = row.cpu.as_mut() {
                        c.total_pct = *v;
                    }
                    row
                })
                .collect();
            TelemetryBatch::from_samples(batch(T0, 1).agent, Default::default(), &rows)
        };
        let mut whole = Device::new(vec![r.clone()]);
        let all = whole.feed(&one_batch(&points));
        let cut = cut.min(points.len());
        let mut split = Device::new(vec![r]);
        let mut parts = Vec::new();
        for part in [&points[..cut], &points[cut..]] {
            if part.is_empty() {
                continue;
            }
            let b = one_batch(part);
            parts.extend(split.feed(&b));
            let writes = split.writes;
            prop_assert!(split.feed(&b).is_empty(), "a replay raised something");
            prop_assert_eq!(split.writes, writes, "a replay wrote");
        }
        prop_assert_eq!(levels(&all), levels(&parts));
        // Equal but for `last_ms`, which is written only along with a real change.
        let strip = |s: &States| {
            s.iter()
                .map(|(k, v)| (k.clone(), RuleState { last_ms: 0, ..*v }))
                .collect::<BTreeMap<_, _>>()
        };
        prop_assert_eq!(strip(&whole.states), strip(&split.states));
    }
}
