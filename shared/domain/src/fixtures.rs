//! Fixed, realistic values for tests across crates (feature `fixtures`).

use crate::alert::{AlertEvent, AlertEventKind, AlertFamily, Severity};
use crate::ids::{ClientId, DeviceId, SiteId, TenantId};

/// 2025-03-02 14:05 UTC.
const OPENED_MS: i64 = 1_740_924_300_000;
const MINUTE_MS: i64 = 60_000;

/// A disk alert on `/var` of srv-files-01: opened at warning, raised to critical 35 min
/// later, lowered back at 57 min, resolved after 1 h 20 min.
pub fn event(kind: AlertEventKind) -> AlertEvent {
    use Severity::{Critical, Warning};
    let (severity, previous_severity, value, threshold, after_min) = match kind {
        AlertEventKind::Opened => (Warning, None, 91.2, 85.0, 0),
        AlertEventKind::SeverityRaised => (Critical, Some(Warning), 96.4, 95.0, 35),
        AlertEventKind::SeverityLowered => (Warning, Some(Critical), 90.1, 85.0, 57),
        AlertEventKind::Resolved => (Warning, None, 62.0, 85.0, 80),
        AlertEventKind::Flapping => (Critical, Some(Warning), 96.1, 95.0, 40),
        AlertEventKind::Settled => (Critical, None, 96.8, 95.0, 70),
        AlertEventKind::Reminder => (Critical, Some(Critical), 96.8, 95.0, 50),
    };
    let id = |s: &str| s.to_owned();
    AlertEvent {
        event_id: crate::alert::derived_id("evt", &["al-1", kind.as_str()]),
        kind,
        alert_id: id("al-disk-var-srv-files-01"),
        tenant_id: TenantId::parse("acme-msp").expect("id"),
        client_id: ClientId::parse("acme").expect("id"),
        site_id: SiteId::parse("hq").expect("id"),
        device_id: DeviceId::parse("dev-7kq2m4x9p3t8w6z5b1c0d2e4f6").expect("id"),
        device_name: id("srv-files-01"),
        rule_id: id("disk-used"),
        family: AlertFamily::Resources,
        subject: id("/var"),
        metric: id("filesystem_used_pct"),
        severity,
        previous_severity,
        value,
        threshold,
        at_ms: OPENED_MS + after_min * MINUTE_MS,
        opened_ms: OPENED_MS,
        maintenance: None,
        detail: None,
    }
}
