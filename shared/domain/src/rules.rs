//! Threshold rules and their state machine: a value held past a threshold for a duration
//! raises a level (warning, critical); it clears only once the value is back past the
//! recovery line (hysteresis), so a value hovering at the threshold does not flap.
//!
//! The semantics, each one tested below:
//! - **Duration.** A level fires when every present sample since the first one past its
//!   threshold stayed past it, and at least `for_s` seconds separate that first sample from
//!   the current one. `for_s = 0` fires on the first sample past the line.
//! - **Missing samples.** A sample without the metric (`None`) neither advances nor resets a
//!   running duration. A gap between two present samples longer than `max_gap_s` restarts the
//!   duration at the later sample: the rule cannot claim "held for 5 minutes" across a hole it
//!   did not see. A missing metric never resolves a firing level (silence is the heartbeat
//!   rule's business).
//! - **Order.** Samples at or before the last one evaluated are ignored, so a redelivered or
//!   late batch changes nothing and can never move a state backwards.
//! - **Levels.** Critical outranks warning. A firing level steps down (critical → warning, or
//!   to nothing) as soon as the value is past that level's recovery line; stepping up needs the
//!   higher level's duration.
//! - **Policy change.** The state keeps only times and the firing level, never thresholds, so
//!   a changed rule applies from the next sample: a firing level whose new threshold is no
//!   longer crossed clears at the next present sample past the new recovery line.

use serde::{Deserialize, Serialize};

use crate::alert::Severity;

/// Which way a threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Alert when the value is above the threshold (disk used, CPU, temperature).
    Above,
    /// Alert when the value is below the threshold (free memory, battery).
    Below,
}

/// One level of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub threshold: f64,
    /// How long the value must stay past the threshold, in seconds.
    #[serde(default)]
    pub for_s: u32,
}

/// The numeric part of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub direction: Direction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Level>,
    /// How far back past the threshold the value must come before a level clears.
    #[serde(default)]
    pub hysteresis: f64,
    /// Longest gap between present samples that a duration may span, in seconds.
    #[serde(default = "default_max_gap_s")]
    pub max_gap_s: u32,
}

fn default_max_gap_s() -> u32 {
    600
}

/// Why a threshold is not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdInvalid {
    #[error("a rule needs a warning level, a critical level, or both")]
    NoLevel,
    #[error("thresholds and hysteresis must be finite numbers, and hysteresis not negative")]
    NotFinite,
    #[error("the critical threshold must be beyond the warning threshold in the rule's direction")]
    LevelsOutOfOrder,
    #[error("a duration may not exceed one day")]
    DurationTooLong,
}

impl Threshold {
    pub fn validate(&self) -> Result<(), ThresholdInvalid> {
        let levels: Vec<Level> = self
            .warning
            .iter()
            .chain(self.critical.iter())
            .copied()
            .collect();
        if levels.is_empty() {
            return Err(ThresholdInvalid::NoLevel);
        }
        if !self.hysteresis.is_finite()
            || self.hysteresis < 0.0
            || levels.iter().any(|l| !l.threshold.is_finite())
        {
            return Err(ThresholdInvalid::NotFinite);
        }
        if levels.iter().any(|l| l.for_s > 86_400) {
            return Err(ThresholdInvalid::DurationTooLong);
        }
        if let (Some(w), Some(c)) = (self.warning, self.critical)
            && !self.beyond(c.threshold, w.threshold)
            && c.threshold != w.threshold
        {
            return Err(ThresholdInvalid::LevelsOutOfOrder);
        }
        Ok(())
    }

    /// Whether `value` is past `line` in the rule's direction.
    fn beyond(&self, value: f64, line: f64) -> bool {
        match self.direction {
            Direction::Above => value > line,
            Direction::Below => value < line,
        }
    }

    /// Whether a level firing at `line` may stay firing at `value`.
    fn holds(&self, value: f64, line: f64) -> bool {
        match self.direction {
            Direction::Above => value > line - self.hysteresis,
            Direction::Below => value < line + self.hysteresis,
        }
    }

    pub fn level(&self, severity: Severity) -> Option<Level> {
        match severity {
            Severity::Critical => self.critical,
            Severity::Warning => self.warning,
            Severity::Info => None,
        }
    }
}

/// What is remembered between batches for one (rule, subject). Small and stored only when it
/// changes meaningfully (see [`Evaluation::changed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// The level firing now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing: Option<Severity>,
    /// Since when the firing level (or its first level) has been firing, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_since_ms: Option<i64>,
    /// First sample of the current run past the warning / critical threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_since_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_since_ms: Option<i64>,
    /// The firing alert is suppressed behind its parent device's outage: recorded, attached
    /// to the parent's alert, not notified (see [`crate::dependency`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
    /// Recent transitions and the flapping episode, if any (see [`crate::flapping`]).
    #[serde(default, skip_serializing_if = "crate::flapping::FlapState::is_empty")]
    pub flap: crate::flapping::FlapState,
    /// Last present sample evaluated, Unix ms (0: none).
    #[serde(default)]
    pub last_ms: i64,
    /// A kind's own memory (see `checks`): a rate rule's anchor sample (time, value × 1000);
    /// a count rule's window (start, events in it); an inventory rule's "reboot required
    /// since"; an expiry rule's reminder levels reached (`mark` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mark: i64,
    /// A rate rule's slope over its last completed window, value units per hour × 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope_milli_per_h: Option<i64>,
}

fn is_zero(x: &i64) -> bool {
    *x == 0
}

/// A change of level, at the sample that caused it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub at_ms: i64,
    pub from: Option<Severity>,
    pub to: Option<Severity>,
    /// The value that caused it.
    pub value: f64,
}

/// The result of evaluating samples against a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: RuleState,
    pub transitions: Vec<Transition>,
    /// Whether anything but `last_ms` changed: the store writes only then, so a quiet device
    /// costs no write per batch.
    pub changed: bool,
}

fn set_run(since: &mut Option<i64>, past: bool, at: i64) {
    match (past, *since) {
        (true, None) => *since = Some(at),
        (false, Some(_)) => *since = None,
        _ => {}
    }
}

impl Threshold {
    /// Evaluates samples `(time ms, value)` in time order against `state`.
    pub fn evaluate(
        &self,
        state: RuleState,
        samples: impl IntoIterator<Item = (i64, Option<f64>)>,
    ) -> Evaluation {
        let before = state;
        let mut s = state;
        let mut transitions = Vec::new();
        for (at, value) in samples {
            if at <= s.last_ms {
                continue;
            }
            let Some(value) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            if s.last_ms > 0 && at - s.last_ms > i64::from(self.max_gap_s) * 1000 {
                // A hole too long to vouch for: durations restart here.
                s.warning_since_ms = None;
                s.critical_since_ms = None;
            }
            s.last_ms = at;
            let past = |l: Option<Level>| l.is_some_and(|l| self.beyond(value, l.threshold));
            set_run(
                &mut s.warning_since_ms,
                past(self.warning) || past(self.critical),
                at,
            );
            set_run(&mut s.critical_since_ms, past(self.critical), at);

            let elapsed = |since: Option<i64>, l: Option<Level>| match (since, l) {
                (Some(since), Some(l)) => at - since >= i64::from(l.for_s) * 1000,
                _ => false,
            };
            let due = if elapsed(s.critical_since_ms, self.critical) {
                Some(Severity::Critical)
            } else if elapsed(s.warning_since_ms, self.warning) {
                Some(Severity::Warning)
            } else {
                None
            };
            // A firing level stays while the value holds within its recovery line.
            let kept = s.firing.filter(|f| {
                self.level(*f)
                    .is_some_and(|l| self.holds(value, l.threshold))
            });
            let kept = kept.or_else(|| {
                // Stepping down from critical: warning may hold.
                (s.firing == Some(Severity::Critical))
                    .then_some(Severity::Warning)
                    .filter(|w| {
                        self.level(*w)
                            .is_some_and(|l| self.holds(value, l.threshold))
                    })
            });
            let next = match (due, kept) {
                (Some(d), Some(k)) => Some(d.max(k)),
                (d, k) => d.or(k),
            };
            if next != s.firing {
                transitions.push(Transition {
                    at_ms: at,
                    from: s.firing,
                    to: next,
                    value,
                });
                s.firing_since_ms = match (s.firing, next) {
                    (_, None) => None,
                    (None, Some(_)) => Some(at),
                    (Some(_), Some(_)) => s.firing_since_ms,
                };
                s.firing = next;
            }
        }
        let changed = RuleState { last_ms: 0, ..s }
            != RuleState {
                last_ms: 0,
                ..before
            };
        Evaluation {
            state: s,
            transitions,
            changed,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Disk used: warning above 85 % for 5 min, critical above 95 % for 5 min, 3 points of
    /// hysteresis.
    fn disk() -> Threshold {
        Threshold {
            direction: Direction::Above,
            warning: Some(Level {
                threshold: 85.0,
                for_s: 300,
            }),
            critical: Some(Level {
                threshold: 95.0,
                for_s: 300,
            }),
            hysteresis: 3.0,
            max_gap_s: 600,
        }
    }

    const M: i64 = 60_000;

    fn minutes(values: &[Option<f64>]) -> Vec<(i64, Option<f64>)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| ((i as i64 + 1) * M, *v))
            .collect()
    }

    fn run(rule: &Threshold, values: &[Option<f64>]) -> Evaluation {
        rule.evaluate(RuleState::default(), minutes(values))
    }

    fn levels(e: &Evaluation) -> Vec<(i64, Option<Severity>)> {
        e.transitions.iter().map(|t| (t.at_ms / M, t.to)).collect()
    }

    #[test]
    fn a_level_fires_only_after_its_duration() {
        let v: Vec<Option<f64>> = [86.0; 7].iter().map(|v| Some(*v)).collect();
        let e = run(&disk(), &v);
        // First past the line at minute 1; five minutes later is minute 6.
        assert_eq!(levels(&e), vec![(6, Some(Severity::Warning))]);
        assert_eq!(e.state.firing_since_ms, Some(6 * M));
    }

    #[test]
    fn dipping_below_the_line_restarts_the_duration() {
        let v = [86.0, 86.0, 86.0, 80.0, 86.0, 86.0, 86.0, 86.0, 86.0, 86.0].map(Some);
        assert_eq!(
            levels(&run(&disk(), &v)),
            vec![(10, Some(Severity::Warning))]
        );
    }

    #[test]
    fn hysteresis_keeps_a_hovering_value_from_flapping() {
        let mut v = vec![Some(86.0); 6];
        v.extend([84.0, 86.0, 84.0, 83.0, 82.5, 81.9].map(Some));
        // Fires at 6; 84 and 83 are within 3 points of 85 and hold; 81.9 is past 82 and clears.
        assert_eq!(
            levels(&run(&disk(), &v)),
            vec![(6, Some(Severity::Warning)), (12, None)]
        );
    }

    #[test]
    fn critical_outranks_warning_and_steps_down_through_it() {
        let mut v = vec![Some(97.0); 6];
        v.extend([93.0, 86.0, 80.0].map(Some));
        let e = run(&disk(), &v);
        // Both durations start at minute 1; critical wins at 6. 93 is within 3 points of 95:
        // critical holds; 86 is past 92 (95 − 3): down to warning; 80 is past 82: clears.
        assert_eq!(
            levels(&e),
            vec![
                (6, Some(Severity::Critical)),
                (8, Some(Severity::Warning)),
                (9, None)
            ]
        );
        assert_eq!(e.transitions[1].from, Some(Severity::Critical));
    }

    #[test]
    fn missing_samples_neither_advance_nor_reset_a_duration_nor_resolve() {
        let v = [
            Some(86.0),
            None,
            None,
            Some(86.0),
            None,
            Some(86.0),
            Some(86.0),
            None,
            None,
        ];
        let e = run(&disk(), &v);
        // Present at 1, 4, 6, 7: 6 − 1 = 5 minutes → fires at 6, and stays through the gaps.
        assert_eq!(levels(&e), vec![(6, Some(Severity::Warning))]);
        assert_eq!(e.state.firing, Some(Severity::Warning));
    }

    #[test]
    fn a_gap_longer_than_max_gap_restarts_the_duration() {
        let rule = Threshold {
            max_gap_s: 120,
            ..disk()
        };
        let v = [
            Some(86.0),
            None,
            None,
            None,
            Some(86.0),
            Some(86.0),
            Some(86.0),
            Some(86.0),
            Some(86.0),
            Some(86.0),
        ];
        // 1 → 5 is a 4-minute hole: the run restarts at 5 and fires at 10.
        assert_eq!(levels(&run(&rule, &v)), vec![(10, Some(Severity::Warning))]);
    }

    #[test]
    fn late_and_replayed_samples_change_nothing() {
        let rule = disk();
        let first = rule.evaluate(RuleState::default(), minutes(&[Some(86.0); 7]));
        // The same batch again, then an older one with other values.
        let again = rule.evaluate(first.state, minutes(&[Some(86.0); 7]));
        assert!(again.transitions.is_empty() && !again.changed);
        let late = rule.evaluate(first.state, minutes(&[Some(10.0); 5]));
        assert!(late.transitions.is_empty());
        assert_eq!(late.state, first.state);
    }

    #[test]
    fn a_relaxed_policy_clears_an_open_level_at_the_next_sample() {
        let e = run(&disk(), &[Some(90.0); 7]);
        assert_eq!(e.state.firing, Some(Severity::Warning));
        let relaxed = Threshold {
            warning: Some(Level {
                threshold: 95.0,
                for_s: 300,
            }),
            critical: None,
            ..disk()
        };
        let next = relaxed.evaluate(e.state, [(8 * M, Some(90.0))]);
        assert_eq!(
            next.transitions.iter().map(|t| t.to).collect::<Vec<_>>(),
            vec![None]
        );
    }

    #[test]
    fn below_rules_mirror_above_rules() {
        let free = Threshold {
            direction: Direction::Below,
            warning: Some(Level {
                threshold: 10.0,
                for_s: 0,
            }),
            critical: Some(Level {
                threshold: 5.0,
                for_s: 0,
            }),
            hysteresis: 2.0,
            max_gap_s: 600,
        };
        assert_eq!(free.validate(), Ok(()));
        // 6 is within 2 of 5: critical holds; 11 is past 7 but within 2 of 10: warning; 12.5 clears.
        let v = [20.0, 9.0, 4.0, 6.0, 11.0, 12.5].map(Some);
        assert_eq!(
            levels(&run(&free, &v)),
            vec![
                (2, Some(Severity::Warning)),
                (3, Some(Severity::Critical)),
                (5, Some(Severity::Warning)),
                (6, None)
            ]
        );
    }

    #[test]
    fn quiet_samples_do_not_ask_for_a_write() {
        let e = run(&disk(), &[Some(40.0); 10]);
        assert!(!e.changed && e.transitions.is_empty());
    }

    #[test]
    fn validation() {
        assert_eq!(disk().validate(), Ok(()));
        assert_eq!(
            Threshold {
                warning: None,
                critical: None,
                ..disk()
            }
            .validate(),
            Err(ThresholdInvalid::NoLevel)
        );
        let swapped = Threshold {
            warning: Some(Level {
                threshold: 95.0,
                for_s: 0,
            }),
            critical: Some(Level {
                threshold: 85.0,
                for_s: 0,
            }),
            ..disk()
        };
        assert_eq!(swapped.validate(), Err(ThresholdInvalid::LevelsOutOfOrder));
        assert_eq!(
            Threshold {
                hysteresis: f64::NAN,
                ..disk()
            }
            .validate(),
            Err(ThresholdInvalid::NotFinite)
        );
    }

    fn arb_rule() -> impl Strategy<Value = Threshold> {
        (
            50.0..90.0f64,
            0.0..10.0f64,
            0u32..600,
            0u32..600,
            0.0..5.0f64,
        )
            .prop_map(|(w, gap, fw, fc, h)| Threshold {
                direction: Direction::Above,
                warning: Some(Level {
                    threshold: w,
                    for_s: fw,
                }),
                critical: Some(Level {
                    threshold: w + gap,
                    for_s: fc,
                }),
                hysteresis: h,
                max_gap_s: 600,
            })
    }

    fn arb_stream() -> impl Strategy<Value = Vec<(i64, Option<f64>)>> {
        proptest::collection::vec(
            (1i64..120, proptest::option::weighted(0.9, 0.0..100.0f64)),
            1..200,
        )
        .prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(dt, v)| {
                    t += dt * 1000;
                    (t, v)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn never_a_transition_without_its_condition(rule in arb_rule(), stream in arb_stream()) {
            let e = rule.evaluate(RuleState::default(), stream.clone());
            let mut current = None;
            for t in &e.transitions {
                prop_assert_eq!(t.from, current, "transitions chain");
                prop_assert_ne!(t.from, t.to);
                match t.to {
                    // Raising or keeping a level needs the value past (or within hysteresis of) it.
                    Some(Severity::Critical) => prop_assert!(t.value > rule.critical.expect("c").threshold - rule.hysteresis),
                    Some(Severity::Warning) => prop_assert!(t.value > rule.warning.expect("w").threshold - rule.hysteresis),
                    Some(Severity::Info) => prop_assert!(false, "threshold rules never raise info"),
                    // Clearing needs the value back past the recovery line.
                    None => prop_assert!(t.value <= rule.warning.expect("w").threshold - rule.hysteresis),
                }
                if t.from.is_none() {
                    // Opening needs the level's full duration of present samples past the line.
                    let level = rule.level(t.to.expect("opened")).expect("level");
                    let start = t.at_ms - i64::from(level.for_s) * 1000;
                    for (at, v) in &stream {
                        if *at >= start && *at <= t.at_ms
                            && let Some(v) = v {
                                prop_assert!(*v > rule.warning.expect("w").threshold, "a present sample under the line during the duration");
                            }
                    }
                }
                current = t.to;
            }
            prop_assert_eq!(e.state.firing, current);
        }

        #[test]
        fn splitting_a_stream_into_batches_changes_nothing(rule in arb_rule(), stream in arb_stream(), cut in 0usize..200) {
            let whole = rule.evaluate(RuleState::default(), stream.clone());
            let cut = cut.min(stream.len());
            let first = rule.evaluate(RuleState::default(), stream[..cut].to_vec());
            let second = rule.evaluate(first.state, stream[cut..].to_vec());
            prop_assert_eq!(second.state, whole.state);
            let mut joined = first.transitions;
            joined.extend(second.transitions);
            prop_assert_eq!(joined, whole.transitions);
        }

        #[test]
        fn one_open_per_run_and_redelivery_is_inert(rule in arb_rule(), stream in arb_stream()) {
            let e = rule.evaluate(RuleState::default(), stream.clone());
            let replay = rule.evaluate(e.state, stream);
            prop_assert!(replay.transitions.is_empty());
            prop_assert_eq!(replay.state, e.state);
            // Between two opens there is always a resolve.
            let opens = e.transitions.iter().filter(|t| t.from.is_none()).count();
            let resolves = e.transitions.iter().filter(|t| t.to.is_none()).count();
            prop_assert!(opens == resolves || opens == resolves + 1);
        }
    }
}
