//! Devices: what the server knows about an enrolled machine.

use serde::{Deserialize, Serialize};

use crate::enrollment::Placement;
use crate::ids::{DeviceId, EnrollmentTokenId};
use crate::protocol::AgentConfig;
use crate::signing::DevicePublicKey;

/// Whether a device may still send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Active,
    Revoked,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }
}

/// A device's identity record.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub placement: Placement,
    pub public_key: DevicePublicKey,
    pub status: DeviceStatus,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub enrolled_ms: i64,
    pub enrolled_with: EnrollmentTokenId,
    /// Highest batch sequence number accepted (0: none yet).
    pub last_seq: u64,
    /// When the last batch was accepted (0: never).
    pub last_seen_ms: i64,
    pub config: AgentConfig,
    /// Tags set by the MSP (`role=server`, `backup=veeam`); policies attach to them.
    pub tags: Tags,
    /// Start of the current rate window (Unix ms, a multiple of a minute) and batches in it.
    pub rate_window_ms: i64,
    pub rate_count: u32,
    /// The heartbeat slot the device's entry sits in (0: none).
    pub heartbeat_slot_ms: i64,
    /// The day being metered and its counts not yet handed to the usage items.
    pub usage: crate::usage::DeviceUsage,
    /// The latest status of each of the agent's collectors (a missing tool shows here, per
    /// device), by collector name.
    pub collectors: Vec<crate::telemetry::CollectorStatus>,
}

impl Device {
    /// The device's collector statuses updated with those of a batch: a collector's status
    /// replaces the stored one unless that one is newer; the others stay. Sorted by name.
    pub fn merged_collectors(
        &self,
        incoming: &[crate::telemetry::CollectorStatus],
    ) -> Vec<crate::telemetry::CollectorStatus> {
        let mut all = self.collectors.clone();
        for status in incoming {
            match all.iter_mut().find(|s| s.collector == status.collector) {
                Some(stored) if stored.at_ms <= status.at_ms => *stored = status.clone(),
                Some(_) => {}
                None => all.push(status.clone()),
            }
        }
        all.sort_by(|a, b| a.collector.cmp(&b.collector));
        all
    }

    /// Whether one more batch fits in the device's rate window at `now_ms`; when not, the
    /// seconds until the window turns.
    pub fn check_rate(&self, now_ms: i64) -> Result<(), u32> {
        let window = now_ms - now_ms.rem_euclid(60_000);
        if window == self.rate_window_ms && self.rate_count >= MAX_BATCHES_PER_MINUTE {
            let wait_ms = window + 60_000 - now_ms;
            Err(u32::try_from((wait_ms + 999) / 1000).unwrap_or(60).max(1))
        } else {
            Ok(())
        }
    }
}

/// A device's tags: `key=value` pairs the MSP sets (`role=server`) and policies attach to.
pub type Tags = std::collections::BTreeMap<String, String>;

/// Most tags a device carries.
pub const MAX_TAGS: usize = 20;

/// Why a set of tags is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagsInvalid {
    #[error("at most {MAX_TAGS} tags")]
    TooMany,
    #[error("tag key {0:?} must be 1 to 64 characters: lower-case letters, digits, '-', '_', '.'")]
    BadKey(String),
    #[error("the value of tag {0:?} must be 1 to 128 printable characters")]
    BadValue(String),
}

/// Checks tag keys and values (see [`TagsInvalid`]).
pub fn validate_tags(tags: &Tags) -> Result<(), TagsInvalid> {
    if tags.len() > MAX_TAGS {
        return Err(TagsInvalid::TooMany);
    }
    for (key, value) in tags {
        let key_ok = (1..=64).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !key_ok {
            return Err(TagsInvalid::BadKey(key.clone()));
        }
        if !(1..=128).contains(&value.chars().count()) || value.chars().any(char::is_control) {
            return Err(TagsInvalid::BadValue(key.clone()));
        }
    }
    Ok(())
}

/// Ingest rate limit per device: batches per fixed one-minute window. An agent emptying its
/// spool after an outage sends back to back; the limit leaves room for that while stopping a
/// runaway or hostile sender.
pub const MAX_BATCHES_PER_MINUTE: u32 = 120;

/// Width of a heartbeat slot: the sweeper reads one partition per slot that has passed.
pub const HEARTBEAT_SLOT_MS: i64 = 10_000;

/// Where a device's heartbeat entry belongs after a batch at `now_ms`: the slot of its due time,
/// with the due time rounded up to half its heartbeat. The entry moves (one transaction) only
/// when that rounded due time changes — about every other batch at the default cadence — and a
/// silent device is found between one and one and a half heartbeats (plus a slot and a sweep
/// period) after its last batch.
pub fn heartbeat_slot(now_ms: i64, heartbeat_s: u32) -> i64 {
    let granularity = (i64::from(heartbeat_s) * 500).max(1_000);
    let due = now_ms + i64::from(heartbeat_s) * 1000;
    let rounded = (due + granularity - 1) / granularity * granularity;
    rounded - rounded.rem_euclid(HEARTBEAT_SLOT_MS)
}

#[cfg(test)]
mod heartbeat_tests {
    use super::*;

    #[test]
    fn tags_are_checked() {
        let tags = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            validate_tags(&tags(&[
                ("role", "server"),
                ("backup.product", "Veeam B&R")
            ])),
            Ok(())
        );
        assert_eq!(
            validate_tags(&tags(&[("Role", "server")])),
            Err(TagsInvalid::BadKey("Role".into()))
        );
        assert_eq!(
            validate_tags(&tags(&[("role", "")])),
            Err(TagsInvalid::BadValue("role".into()))
        );
        assert_eq!(
            validate_tags(&tags(&[("role", "a\nb")])),
            Err(TagsInvalid::BadValue("role".into()))
        );
        let many: Tags = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert_eq!(validate_tags(&many), Err(TagsInvalid::TooMany));
    }

    #[test]
    fn slots_are_aligned_and_move_rarely() {
        let start = 1_790_000_000_000;
        let slots: Vec<i64> = (0..10)
            .map(|i| heartbeat_slot(start + i * 60_000, 300))
            .collect();
        assert!(slots.iter().all(|s| s % HEARTBEAT_SLOT_MS == 0));
        assert!(slots.windows(2).all(|w| w[1] >= w[0]));
        let moves = slots.windows(2).filter(|w| w[1] != w[0]).count();
        assert!(moves <= 5, "at most every other batch: {moves}");
        // The slot always ends after the device's true due time.
        for i in 0..10 {
            let now = start + i * 60_000;
            assert!(heartbeat_slot(now, 300) + HEARTBEAT_SLOT_MS > now + 300_000);
        }
    }
}
