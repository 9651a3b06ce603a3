//! What maintenance did to an alert event: the note the evaluator stamps on an event it
//! decided about under a maintenance window, read by the store (what to record, what to hold)
//! and by the notifier (what to send).
//!
//! The windows themselves (schedules in local time) live in `vigie-calendar`, which depends
//! on this crate; the domain only knows their effect. One decision point — the evaluator (and
//! the silence sweeper) — stamps every event, so the store, the notifier and the "raise once
//! when the window ends" bookkeeping can never disagree about whether a window was open.

use serde::{Deserialize, Serialize};

/// How a maintenance window touched one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceEffect {
    /// Inside a window that silences alerts: the transition is recorded on the alert record
    /// (status `suppressed`) and held, but never published. A resolution with this effect
    /// ends the hold: the problem came and went inside the window, nobody hears of it.
    Hidden,
    /// Inside a window that silences notifications only: the alert is open and published,
    /// the notifier records `suppressed_maintenance` per channel and sends nothing; the alert
    /// is held until it is announced (or resolves inside the window).
    Unannounced,
    /// A change of an alert that was already announced, inside a window that silences
    /// notifications: recorded and published, not sent; no hold (its end will be sent).
    Quiet,
    /// The one announcement of a problem that began inside a window and was still there when
    /// it ended (`opened_ms` is the real start). Sent normally; ends the hold.
    RaisedAfterWindow,
}

impl MaintenanceEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hidden => "hidden",
            Self::Unannounced => "unannounced",
            Self::Quiet => "quiet",
            Self::RaisedAfterWindow => "raised_after_window",
        }
    }

    /// Whether the event goes to the outbox and the alerts topic.
    pub fn published(self) -> bool {
        self != Self::Hidden
    }

    /// Whether the notifier sends it (otherwise it records `suppressed_maintenance`).
    pub fn notifies(self) -> bool {
        matches!(self, Self::RaisedAfterWindow)
    }
}

/// The note on an [`crate::alert::AlertEvent`] decided under maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceNote {
    pub effect: MaintenanceEffect,
    /// The window that was open (for [`MaintenanceEffect::RaisedAfterWindow`]: the one the
    /// problem began in).
    pub window_id: String,
    /// When that window's occurrence ends (ended), Unix ms.
    pub window_end_ms: i64,
}

/// What the delivery log records for a channel that was not sent an event because of
/// maintenance.
pub const SUPPRESSED_MAINTENANCE: &str = "suppressed_maintenance";
