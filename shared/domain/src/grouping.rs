//! Grouping: alerts of one site arriving together reach a channel as one notification. The
//! first event of a (tenant, site, channel) opens a group and schedules its flush
//! `group_wait_s` later; events arriving before the flush join it; the flush delivers one
//! notification listing them. An event arriving after the flush opens the next group, so it is
//! still announced. `group_wait_s = 0` delivers each event at once.
//!
//! Exactly once under redelivery: a group's id derives from the event that opened it and the
//! channel, so the same event opening "again" names the same group; joining is idempotent
//! (an event already a member is not added twice); a closed group takes no member.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::alert::{AlertEvent, AlertEventKind, derived_id};
use crate::ids::{SiteId, TenantId};
use crate::ports::StoreError;

/// Default wait of a channel before its group is flushed.
pub const DEFAULT_GROUP_WAIT_S: u32 = 30;

/// Longest wait a channel may ask for (SQS delays reach 15 minutes).
pub const MAX_GROUP_WAIT_S: u32 = 900;

/// A group of events for one channel, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    pub group_id: String,
    pub opened_ms: i64,
    pub flush_at_ms: i64,
    /// Set by the flush: no member joins any more.
    #[serde(default)]
    pub closed: bool,
    pub members: Vec<AlertEvent>,
}

/// The message that flushes a group: sent to the notify queue with the channel's wait as its
/// delay, next to the alert events (told apart by its one key, `group_flush`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushMessage {
    pub group_flush: GroupRef,
}

/// Which group to flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRef {
    pub tenant_id: TenantId,
    pub channel_id: String,
    pub group_id: String,
}

/// The groups of the notifier: stored records, changed only by conditional writes, and the
/// delayed flush messages.
pub trait AlertGroups: Send + Sync {
    /// Whether groups are kept at all: without, every event is delivered at once.
    fn enabled(&self) -> bool {
        true
    }

    /// The current group of (tenant, site, channel), closed or not.
    fn current(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        channel: &str,
    ) -> impl Future<Output = Result<Option<AlertGroup>, StoreError>> + Send;

    /// Creates `group` (with its first member) and makes it the current one of (tenant,
    /// site, channel), only if the current one is still `replacing`. False when another
    /// notifier moved first.
    fn open(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        channel: &str,
        group: &AlertGroup,
        replacing: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds `event` to an open group. False when the group is closed or has it already.
    fn join(
        &self,
        tenant: &TenantId,
        group_id: &str,
        event: &AlertEvent,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Closes a group (no member joins after this) and answers it as closed, members and all;
    /// a group closed already is answered as it is (a flush retried after a failed delivery).
    fn close(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> impl Future<Output = Result<Option<AlertGroup>, StoreError>> + Send;

    /// Sends the flush message of a group, delivered `delay_s` later.
    fn schedule_flush(
        &self,
        flush: &GroupRef,
        delay_s: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// No group store: every event is delivered at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGrouping;

impl AlertGroups for NoGrouping {
    fn enabled(&self) -> bool {
        false
    }
    async fn current(
        &self,
        _: &TenantId,
        _: &SiteId,
        _: &str,
    ) -> Result<Option<AlertGroup>, StoreError> {
        Ok(None)
    }
    async fn open(
        &self,
        _: &TenantId,
        _: &SiteId,
        _: &str,
        _: &AlertGroup,
        _: Option<&str>,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn join(&self, _: &TenantId, _: &str, _: &AlertEvent) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn close(&self, _: &TenantId, _: &str) -> Result<Option<AlertGroup>, StoreError> {
        Ok(None)
    }
    async fn schedule_flush(&self, _: &GroupRef, _: u32) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What becomes of an event offered to a channel's current group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The channel does not group: deliver the event alone now.
    Immediate,
    /// Open a new group and schedule its flush at `flush_at_ms`.
    Open { group_id: String, flush_at_ms: i64 },
    /// Join the open group.
    Join { group_id: String },
    /// Already a member (a redelivery): nothing to add.
    Member { group_id: String },
}

/// The id of the group `event` opens on `channel`.
pub fn group_id(event: &AlertEvent, channel: &str) -> String {
    derived_id("grp", &[&event.event_id, channel])
}

/// Decides what to do with `event` given the channel's current group (if any).
pub fn admit(
    current: Option<&AlertGroup>,
    event: &AlertEvent,
    channel: &str,
    wait_s: u32,
    now_ms: i64,
) -> Admission {
    if wait_s == 0 {
        return Admission::Immediate;
    }
    if let Some(g) = current {
        if g.members.iter().any(|m| m.event_id == event.event_id) {
            return Admission::Member {
                group_id: g.group_id.clone(),
            };
        }
        if !g.closed {
            return Admission::Join {
                group_id: g.group_id.clone(),
            };
        }
    }
    Admission::Open {
        group_id: group_id(event, channel),
        flush_at_ms: now_ms + i64::from(wait_s.min(MAX_GROUP_WAIT_S)) * 1000,
    }
}

/// The title of a group's notification: "3 alerts on site hq (acme)".
pub fn group_title(members: &[AlertEvent]) -> String {
    let Some(first) = members.first() else {
        return "no alerts".into();
    };
    let opened = members
        .iter()
        .filter(|m| m.kind != AlertEventKind::Resolved)
        .count();
    let resolved = members.len() - opened;
    let what = match (opened, resolved) {
        (n, 0) => plural(n, "alert"),
        (0, n) => plural(n, "resolved alert"),
        (o, r) => format!("{} and {} resolved", plural(o, "alert"), r),
    };
    format!("{what} on site {} ({})", first.site_id, first.client_id)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;

    const NOW: i64 = 1_790_000_000_000;

    fn numbered(n: u32) -> AlertEvent {
        let mut e = event(AlertEventKind::Opened);
        e.event_id = format!("evt-{n}");
        e
    }

    #[test]
    fn a_window_collects_what_arrives_before_its_flush() {
        // Five events within the wait join the group the first opened; after the flush a
        // sixth opens the next group; a redelivered member is not added twice.
        let mut group: Option<AlertGroup> = None;
        let mut admissions = Vec::new();
        for (n, at) in [(1, 0), (2, 1_000), (3, 5_000), (4, 20_000), (5, 29_000)] {
            let e = numbered(n);
            let a = admit(group.as_ref(), &e, "ops", 30, NOW + at);
            match &a {
                Admission::Open {
                    group_id,
                    flush_at_ms,
                } => {
                    group = Some(AlertGroup {
                        group_id: group_id.clone(),
                        opened_ms: NOW + at,
                        flush_at_ms: *flush_at_ms,
                        closed: false,
                        members: vec![e],
                    })
                }
                Admission::Join { .. } => group.as_mut().expect("open").members.push(e),
                other => panic!("unexpected {other:?}"),
            }
            admissions.push(a);
        }
        let first = group.clone().expect("group");
        assert_eq!(first.members.len(), 5);
        assert_eq!(first.flush_at_ms, NOW + 30_000);
        assert!(matches!(admissions[0], Admission::Open { .. }));
        assert!(admissions[1..].iter().all(|a| *a
            == Admission::Join {
                group_id: first.group_id.clone()
            }));
        assert_eq!(
            admit(group.as_ref(), &numbered(3), "ops", 30, NOW + 29_500),
            Admission::Member {
                group_id: first.group_id.clone()
            }
        );
        group.as_mut().expect("group").closed = true;
        let sixth = admit(group.as_ref(), &numbered(6), "ops", 30, NOW + 31_000);
        assert_eq!(
            sixth,
            Admission::Open {
                group_id: group_id(&numbered(6), "ops"),
                flush_at_ms: NOW + 61_000
            }
        );
        assert_ne!(group_id(&numbered(6), "ops"), first.group_id);
        assert_eq!(group_title(&first.members), "5 alerts on site hq (acme)");
    }

    #[test]
    fn a_zero_wait_delivers_at_once_and_waits_are_capped() {
        assert_eq!(
            admit(None, &numbered(1), "ops", 0, NOW),
            Admission::Immediate
        );
        assert_eq!(
            admit(None, &numbered(1), "ops", 100_000, NOW),
            Admission::Open {
                group_id: group_id(&numbered(1), "ops"),
                flush_at_ms: NOW + 900_000
            }
        );
    }

    #[test]
    fn titles_count_openings_and_resolutions() {
        let mut r = numbered(2);
        r.kind = AlertEventKind::Resolved;
        assert_eq!(group_title(&[numbered(1)]), "1 alert on site hq (acme)");
        assert_eq!(
            group_title(&[r.clone()]),
            "1 resolved alert on site hq (acme)"
        );
        assert_eq!(
            group_title(&[numbered(1), numbered(3), r]),
            "2 alerts and 1 resolved on site hq (acme)"
        );
    }
}
