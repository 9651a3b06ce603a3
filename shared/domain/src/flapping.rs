//! Flapping: a (rule, subject) that keeps changing state is announced once as flapping, then
//! kept quiet — its state still tracked — until it has been stable for a settle period, when one
//! event tells its final state (resolved, or open at its severity).
//!
//! The rules, each tested below:
//! - A transition that makes [`FlapPolicy::transitions`] transitions within
//!   [`FlapPolicy::window_ms`] (itself included) starts an episode: it is announced as
//!   `flapping` instead of its own kind. Earlier transitions were announced normally.
//! - During an episode no transition is announced.
//! - Once no transition happened for [`FlapPolicy::settle_ms`], the episode ends with one event
//!   giving the state at that time. Per episode: at most one `flapping` and one final event,
//!   and the final state is always told (proptest below).
//!
//! [`FlapState`] is small and `Copy` (a fixed ring of recent transition times), so it lives
//! inside the rule state with serde defaults: states stored before it existed read as "not
//! flapping".

use serde::{Deserialize, Serialize};

use crate::alert::Severity;

/// Most transitions a policy may count (the ring's size).
pub const MAX_TRANSITIONS: usize = 8;

/// When a (rule, subject) counts as flapping, and how long it must be stable again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlapPolicy {
    /// Transitions within the window that make it flapping (2 ..= [`MAX_TRANSITIONS`]).
    pub transitions: u8,
    pub window_ms: i64,
    /// How long without a transition ends an episode.
    pub settle_ms: i64,
}

impl Default for FlapPolicy {
    /// Five transitions in 30 minutes; settled after 15 stable minutes.
    fn default() -> Self {
        Self {
            transitions: 5,
            window_ms: 30 * 60_000,
            settle_ms: 15 * 60_000,
        }
    }
}

/// The flapping memory of one (rule, subject).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlapState {
    /// Times of the latest transitions, oldest first; 0 marks an empty place.
    #[serde(default)]
    recent: [i64; MAX_TRANSITIONS],
    /// Set while an episode lasts: when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping_since_ms: Option<i64>,
    /// The highest level of the episode: the final event is routed on it, so every channel
    /// that heard "flapping" hears how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<Severity>,
    /// The value of the latest transition, × 1000 (the final event tells it).
    #[serde(default)]
    pub value_milli: i64,
}

/// What to announce for one transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlapVerdict {
    /// Not flapping: announce the transition as usual.
    Announce,
    /// This transition starts an episode: announce `flapping` instead.
    StartsFlapping,
    /// Inside an episode: record, announce nothing.
    Quiet,
}

/// The end of an episode: the state to tell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    pub at_ms: i64,
    /// `None`: resolved; else still open at that severity.
    pub firing: Option<Severity>,
    /// The episode's highest level and start, and the latest transition's value.
    pub peak: Option<Severity>,
    pub since_ms: i64,
    pub value: f64,
}

impl FlapState {
    /// Nothing remembered (stored states leave it out).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn is_flapping(&self) -> bool {
        self.flapping_since_ms.is_some()
    }

    /// The latest transition's time (0: none).
    pub fn last_transition_ms(&self) -> i64 {
        self.recent[MAX_TRANSITIONS - 1]
    }

    /// Records a transition at `at_ms` to `level` (caused by `value`) and says what to
    /// announce.
    pub fn on_transition(
        &mut self,
        policy: &FlapPolicy,
        at_ms: i64,
        level: Option<Severity>,
        value: f64,
    ) -> FlapVerdict {
        self.recent.rotate_left(1);
        self.recent[MAX_TRANSITIONS - 1] = at_ms;
        self.value_milli = if value.is_finite() {
            (value * 1000.0).round() as i64
        } else {
            0
        };
        if self.is_flapping() {
            self.peak = self.peak.max(level);
            return FlapVerdict::Quiet;
        }
        let n = usize::from(policy.transitions).clamp(2, MAX_TRANSITIONS);
        let in_window = self
            .recent
            .iter()
            .filter(|t| **t > 0 && at_ms - **t < policy.window_ms)
            .count();
        if in_window >= n {
            self.flapping_since_ms = Some(at_ms);
            self.peak = level;
            FlapVerdict::StartsFlapping
        } else {
            FlapVerdict::Announce
        }
    }

    /// At `now_ms`, with the rule's current level `firing`: ends the episode when it has been
    /// stable long enough. The ring is cleared so the next episode counts afresh.
    pub fn settle(
        &mut self,
        policy: &FlapPolicy,
        now_ms: i64,
        firing: Option<Severity>,
    ) -> Option<Settled> {
        if !self.is_flapping() || now_ms - self.last_transition_ms() < policy.settle_ms {
            return None;
        }
        let settled = Settled {
            at_ms: now_ms,
            firing,
            peak: self.peak.max(firing),
            since_ms: self.flapping_since_ms.unwrap_or(now_ms),
            value: self.value_milli as f64 / 1000.0,
        };
        *self = Self::default();
        Some(settled)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: i64 = 1_790_000_000_000;
    const MIN: i64 = 60_000;

    #[test]
    fn the_fifth_transition_in_the_window_starts_an_episode() {
        let p = FlapPolicy::default();
        let mut s = FlapState::default();
        let verdicts: Vec<FlapVerdict> = (0..7)
            .map(|i| {
                let level = (i % 2 == 0).then_some(Severity::Critical);
                s.on_transition(&p, T0 + i * 2 * MIN, level, 96.5)
            })
            .collect();
        use FlapVerdict::*;
        assert_eq!(
            verdicts,
            [
                Announce,
                Announce,
                Announce,
                Announce,
                StartsFlapping,
                Quiet,
                Quiet
            ]
        );
        // Not yet stable for 15 minutes, then stable: one final event, still open.
        let last = T0 + 12 * MIN;
        assert_eq!(
            s.settle(&p, last + 14 * MIN, Some(Severity::Critical)),
            None
        );
        assert_eq!(
            s.settle(&p, last + 15 * MIN, Some(Severity::Critical)),
            Some(Settled {
                at_ms: last + 15 * MIN,
                firing: Some(Severity::Critical),
                peak: Some(Severity::Critical),
                since_ms: T0 + 8 * MIN,
                value: 96.5,
            })
        );
        assert!(!s.is_flapping());
        assert_eq!(s.settle(&p, last + 30 * MIN, None), None, "told once");
    }

    #[test]
    fn transitions_spread_wider_than_the_window_do_not_flap() {
        let p = FlapPolicy::default();
        let mut s = FlapState::default();
        for i in 0..20 {
            assert_eq!(
                s.on_transition(&p, T0 + i * 8 * MIN, None, 1.0),
                FlapVerdict::Announce,
                "transition {i}"
            );
        }
    }

    #[test]
    fn stored_states_without_flap_fields_read_as_not_flapping() {
        let s: FlapState = serde_json::from_str("{}").expect("json");
        assert_eq!(s, FlapState::default());
        let round: FlapState =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("json");
        assert_eq!(round, s);
    }

    proptest! {
        /// A consumer that applies every announcement knows the true state once things
        /// settle, and hears at most one `flapping` and one final event per episode.
        #[test]
        fn episodes_announce_twice_at_most_and_always_tell_the_final_state(
            steps in proptest::collection::vec((1i64..20 * MIN, 0u8..3), 1..60),
            transitions in 2u8..8,
        ) {
            let p = FlapPolicy { transitions, window_ms: 30 * MIN, settle_ms: 15 * MIN };
            let mut s = FlapState::default();
            let mut at = T0;
            let mut truth: Option<Severity> = None;
            let mut heard: Option<Severity> = None;
            let mut in_episode = 0;
            let level = |n: u8| match n {
                0 => None,
                1 => Some(Severity::Warning),
                _ => Some(Severity::Critical),
            };
            for (gap, next) in steps {
                // Time passes; the evaluator offers a settle check at each batch.
                if let Some(end) = s.settle(&p, at + gap, truth) {
                    heard = end.firing;
                    in_episode += 1;
                    prop_assert!(in_episode <= 2);
                    in_episode = 0;
                }
                at += gap;
                let next = level(next);
                if next == truth {
                    continue;
                }
                truth = next;
                match s.on_transition(&p, at, truth, 1.0) {
                    FlapVerdict::Announce => heard = truth,
                    FlapVerdict::StartsFlapping => {
                        in_episode += 1;
                    }
                    FlapVerdict::Quiet => {}
                }
                prop_assert!(in_episode <= 1);
            }
            if let Some(end) = s.settle(&p, at + p.settle_ms, truth) {
                heard = end.firing;
            }
            prop_assert_eq!(heard, truth);
        }
    }
}
