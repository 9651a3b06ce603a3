//! What people do with an alert: acknowledge it, assign it (or take it), comment, resolve it.
//! Each action says who and when. The evaluator owns the alert's measured state; this is the
//! human side of one episode of it (an alert id and its `opened_ms`), kept apart so neither
//! overwrites the other.

use serde::{Deserialize, Serialize};

/// Who did something, and when (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub by: String,
    pub at_ms: i64,
    pub text: String,
}

/// The human side of one alert episode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertWork {
    pub acknowledged: Option<Stamp>,
    pub assignee: Option<String>,
    pub assigned: Option<Stamp>,
    pub resolved: Option<Stamp>,
    #[serde(default)]
    pub comments: Vec<Comment>,
    /// The escalation running on this episode (see [`crate::escalation`]): kept in the same
    /// document, so an acknowledgement and a step that falls due in the same second are
    /// ordered by the one conditional write on the episode's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<crate::escalation::Escalation>,
}

/// Most comments kept on one episode, and the longest comment.
pub const MAX_COMMENTS: usize = 200;
pub const MAX_COMMENT_CHARS: usize = 4_000;

/// An action on an alert episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    /// `None` unassigns.
    Assign(Option<String>),
    Comment(String),
    Resolve,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionRefused {
    #[error("the alert is resolved")]
    Resolved,
    #[error("a comment is 1 to {MAX_COMMENT_CHARS} characters")]
    BadComment,
    #[error("the alert has {MAX_COMMENTS} comments already")]
    TooManyComments,
    #[error("an assignee is 1 to 200 characters")]
    BadAssignee,
}

impl ActionRefused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Resolved => "alert_resolved",
            Self::BadComment => "bad_comment",
            Self::TooManyComments => "too_many_comments",
            Self::BadAssignee => "bad_assignee",
        }
    }
}

impl AlertWork {
    /// Applies `action` by `by` at `now_ms`. `measured_resolved`: the evaluator has resolved
    /// the episode already. Acknowledging twice keeps the first acknowledgement.
    pub fn apply(
        &mut self,
        action: AlertAction,
        by: &str,
        now_ms: i64,
        measured_resolved: bool,
    ) -> Result<(), ActionRefused> {
        let stamp = || Stamp {
            by: by.to_owned(),
            at_ms: now_ms,
        };
        let closed = measured_resolved || self.resolved.is_some();
        match action {
            AlertAction::Comment(text) => {
                let text = text.trim();
                if text.is_empty() || text.chars().count() > MAX_COMMENT_CHARS {
                    return Err(ActionRefused::BadComment);
                }
                if self.comments.len() >= MAX_COMMENTS {
                    return Err(ActionRefused::TooManyComments);
                }
                self.comments.push(Comment {
                    by: by.to_owned(),
                    at_ms: now_ms,
                    text: text.to_owned(),
                });
            }
            _ if closed => return Err(ActionRefused::Resolved),
            AlertAction::Acknowledge => {
                if self.acknowledged.is_none() {
                    self.acknowledged = Some(stamp());
                    if let Some(e) = &mut self.escalation {
                        e.acknowledged(by, now_ms);
                    }
                }
            }
            AlertAction::Assign(assignee) => {
                if assignee
                    .as_ref()
                    .is_some_and(|a| a.trim().is_empty() || a.chars().count() > 200)
                {
                    return Err(ActionRefused::BadAssignee);
                }
                self.assignee = assignee.map(|a| a.trim().to_owned());
                self.assigned = Some(stamp());
                if let Some(e) = &mut self.escalation {
                    e.assigned(self.assignee.as_deref(), by, now_ms);
                }
            }
            AlertAction::Resolve => {
                self.resolved = Some(stamp());
                if let Some(e) = &mut self.escalation {
                    e.stop("resolved_by_hand", now_ms, format!("resolved by {by}"));
                }
            }
        }
        Ok(())
    }

    /// The episode's status as people see it: `resolved` (by the evaluator or a person),
    /// `acknowledged`, or `open`.
    pub fn status(&self, measured_resolved: bool) -> &'static str {
        if measured_resolved || self.resolved.is_some() {
            "resolved"
        } else if self.acknowledged.is_some() {
            "acknowledged"
        } else {
            "open"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_acknowledged_resolved_with_who_and_when() {
        let mut w = AlertWork::default();
        assert_eq!(w.status(false), "open");
        w.apply(AlertAction::Acknowledge, "ana", 10, false)
            .expect("ack");
        w.apply(AlertAction::Acknowledge, "bob", 20, false)
            .expect("ack again");
        assert_eq!(
            w.acknowledged,
            Some(Stamp {
                by: "ana".into(),
                at_ms: 10
            })
        );
        assert_eq!(w.status(false), "acknowledged");
        w.apply(AlertAction::Assign(Some(" bob ".into())), "ana", 30, false)
            .expect("assign");
        assert_eq!(w.assignee.as_deref(), Some("bob"));
        w.apply(
            AlertAction::Comment("disk swapped".into()),
            "bob",
            40,
            false,
        )
        .expect("comment");
        w.apply(AlertAction::Resolve, "bob", 50, false)
            .expect("resolve");
        assert_eq!(w.status(false), "resolved");
        assert_eq!(
            w.apply(AlertAction::Acknowledge, "ana", 60, false),
            Err(ActionRefused::Resolved)
        );
        // Comments stay possible after resolution (the post-mortem).
        w.apply(
            AlertAction::Comment("root cause: fan".into()),
            "ana",
            70,
            false,
        )
        .expect("comment");
        assert_eq!(w.comments.len(), 2);
    }

    #[test]
    fn a_measured_resolution_closes_the_episode() {
        let mut w = AlertWork::default();
        assert_eq!(w.status(true), "resolved");
        assert_eq!(
            w.apply(AlertAction::Resolve, "ana", 1, true),
            Err(ActionRefused::Resolved)
        );
        assert_eq!(
            w.apply(AlertAction::Comment("  ".into()), "ana", 1, true),
            Err(ActionRefused::BadComment)
        );
        assert_eq!(
            w.apply(AlertAction::Assign(Some(String::new())), "ana", 1, false),
            Err(ActionRefused::BadAssignee)
        );
    }
}
