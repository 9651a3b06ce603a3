//! `status`: what the state directory says, as text or JSON. Reads without taking the lock,
//! so it works while `run` is running.

use std::fmt;

use serde::Serialize;
use vigie_domain::telemetry::CollectorStatus;

use crate::civil::iso8601_utc;
use crate::spool::pending_on_disk;
use crate::state::{StateDir, StateError, write_atomically};

const COLLECTORS_FILE: &str = "collectors.json";

/// The last known state of each collector, as `run` keeps it for `status` (empty when the
/// agent never ran or the file is unreadable: it is a display aid, not a record).
pub fn read_collectors(dir: &StateDir) -> Vec<CollectorStatus> {
    std::fs::read(dir.root().join(COLLECTORS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Replaces the collectors' states shown by `status`.
pub fn write_collectors(dir: &StateDir, statuses: &[CollectorStatus]) -> Result<(), StateError> {
    let path = dir.root().join(COLLECTORS_FILE);
    let bytes = serde_json::to_vec_pretty(statuses).map_err(|source| StateError::Corrupt {
        path: path.clone(),
        source,
    })?;
    write_atomically(&path, &bytes).map_err(StateError::io(&path))
}

/// A snapshot of the agent's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub state_dir: String,
    pub enrolled: bool,
    pub device_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub site_id: Option<String>,
    pub server_url: Option<String>,
    pub enrolled_at: Option<String>,
    /// ISO-8601 UTC.
    pub last_successful_send: Option<String>,
    pub last_error: Option<String>,
    pub revoked: bool,
    pub spool_batches: usize,
    pub spool_bytes: u64,
    pub next_seq: u64,
    pub sent: u64,
    pub replay_acknowledged: u64,
    pub rejected: u64,
    pub dropped_total: u64,
    pub dropped_not_yet_reported: u64,
    pub dropped_seq_range: Option<(u64, u64)>,
    /// Each watcher's last state (services, backups, certificates, updates, …).
    pub collectors: Vec<CollectorStatus>,
}

impl Status {
    pub fn read(dir: &StateDir) -> Result<Self, StateError> {
        let identity = match dir.read_identity() {
            Ok(identity) => Some(identity),
            Err(StateError::NotEnrolled(_)) => None,
            Err(e) => return Err(e),
        };
        let state = dir.read_state()?;
        let spool = pending_on_disk(dir)?;
        let id = |f: fn(&crate::state::Identity) -> String| identity.as_ref().map(f);
        Ok(Self {
            state_dir: dir.root().display().to_string(),
            enrolled: identity.is_some(),
            device_id: id(|i| i.device_id.to_string()),
            tenant_id: id(|i| i.tenant_id.to_string()),
            client_id: id(|i| i.client_id.to_string()),
            site_id: id(|i| i.site_id.to_string()),
            server_url: id(|i| i.server_url.clone()),
            enrolled_at: id(|i| iso8601_utc(i.enrolled_at_ms)),
            last_successful_send: state.last_success_ms.map(iso8601_utc),
            last_error: state.last_error,
            revoked: state.revoked,
            spool_batches: spool.batches,
            spool_bytes: spool.bytes,
            next_seq: state.next_seq.max(spool.highest.map_or(1, |s| s + 1)),
            sent: state.sent,
            replay_acknowledged: state.replay_acknowledged,
            rejected: state.rejected,
            dropped_total: state.dropped_total,
            dropped_not_yet_reported: state.dropped_unreported,
            dropped_seq_range: state.dropped_seq_range,
            collectors: read_collectors(dir),
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or = |v: &Option<String>, none: &'static str| v.clone().unwrap_or_else(|| none.into());
        writeln!(f, "state dir:        {}", self.state_dir)?;
        if !self.enrolled {
            writeln!(f, "enrolled:         no (run `vigie-agent enroll`)")?;
        } else {
            writeln!(f, "device:           {}", or(&self.device_id, "-"))?;
            writeln!(f, "tenant:           {}", or(&self.tenant_id, "-"))?;
            writeln!(f, "client:           {}", or(&self.client_id, "-"))?;
            writeln!(f, "site:             {}", or(&self.site_id, "-"))?;
            writeln!(f, "server:           {}", or(&self.server_url, "-"))?;
            writeln!(f, "enrolled at:      {}", or(&self.enrolled_at, "-"))?;
        }
        if self.revoked {
            writeln!(
                f,
                "REVOKED:          the server revoked this device; nothing is sent (enroll --force)"
            )?;
        }
        writeln!(
            f,
            "last send:        {}",
            or(&self.last_successful_send, "never")
        )?;
        if let Some(e) = &self.last_error {
            writeln!(f, "last error:       {e}")?;
        }
        writeln!(
            f,
            "spool:            {} batch(es), {} bytes",
            self.spool_batches, self.spool_bytes
        )?;
        writeln!(f, "next seq:         {}", self.next_seq)?;
        writeln!(
            f,
            "delivered:        {} accepted, {} already on the server",
            self.sent, self.replay_acknowledged
        )?;
        writeln!(f, "rejected:         {}", self.rejected)?;
        write!(
            f,
            "dropped:          {} in all, {} not yet reported",
            self.dropped_total, self.dropped_not_yet_reported
        )?;
        if let Some((first, last)) = self.dropped_seq_range {
            write!(f, " (seq {first}-{last})")?;
        }
        writeln!(f)?;
        if self.collectors.is_empty() {
            return writeln!(f, "collectors:       none reported yet");
        }
        writeln!(f, "collectors:")?;
        for c in &self.collectors {
            write!(
                f,
                "  {:<14}  {:<14}  since {}",
                c.collector,
                c.state.as_str(),
                iso8601_utc(c.at_ms)
            )?;
            match &c.detail {
                Some(d) => writeln!(f, "  {d}")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::tests::identity;
    use crate::spool::tests::{agent, sample};
    use crate::spool::{Spool, SpoolLimits};
    use crate::state::tests::scratch;

    #[test]
    fn status_reports_identity_spool_and_counters() {
        let dir = scratch("status");
        let before = Status::read(&dir).expect("status");
        assert!(!before.enrolled);
        assert_eq!((before.next_seq, before.spool_batches), (1, 0));
        assert!(before.to_string().contains("enrolled:         no"));

        let mut id = identity("https://vigie.example");
        id.enrolled_at_ms = 1_790_000_000_000;
        dir.write_identity(&id).expect("identity");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        spool.append(&agent(), &[sample(1)]).expect("append");
        spool.append(&agent(), &[sample(2)]).expect("append");
        spool
            .delivered(1, 1_790_000_060_000, false)
            .expect("delivered");

        // Readable while the spool (and its lock) is held.
        let s = Status::read(&dir).expect("status");
        assert_eq!(s.device_id.as_deref(), Some(id.device_id.as_str()));
        assert_eq!(s.server_url.as_deref(), Some("https://vigie.example/"));
        assert_eq!(s.enrolled_at.as_deref(), Some("2026-09-21T14:13:20.000Z"));
        assert_eq!(
            s.last_successful_send.as_deref(),
            Some("2026-09-21T14:14:20.000Z")
        );
        assert_eq!((s.spool_batches, s.next_seq, s.sent), (1, 3, 1));
        let text = s.to_string();
        assert!(
            text.contains("last send:        2026-09-21T14:14:20.000Z"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&s).expect("json");
        assert_eq!(json["spool_batches"], 1);
        assert_eq!(json["tenant_id"], "acme");
        assert!(
            text.contains("collectors:       none reported yet"),
            "{text}"
        );

        // What `run` remembers of its collectors shows, as text and JSON.
        use vigie_domain::telemetry::CollectorState;
        let smart = CollectorStatus {
            collector: "smart".into(),
            state: CollectorState::MissingTool,
            detail: Some("smartctl is not installed".into()),
            at_ms: 1_790_000_000_000,
        };
        write_collectors(&dir, std::slice::from_ref(&smart)).expect("write");
        let s = Status::read(&dir).expect("status");
        assert_eq!(s.collectors, [smart]);
        let text = s.to_string();
        assert!(
            text.contains("  smart           missing_tool    since 2026-09-21T14:13:20.000Z  smartctl is not installed"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&s).expect("json");
        assert_eq!(json["collectors"][0]["state"], "missing_tool");
        std::fs::remove_dir_all(dir.root()).ok();
    }
}
