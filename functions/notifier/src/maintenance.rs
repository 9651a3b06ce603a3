//! Maintenance windows at the notifier: an event the evaluator stamped as decided under a
//! window that silences notifications (`unannounced`, `quiet`) is not sent; each channel that
//! would have received it gets a delivery record `suppressed_maintenance`, so the delivery log
//! shows who was not told and why.
//!
//! The notifier does not read the windows itself: the evaluator decided once, and the same
//! decision also keeps the alert held until it is announced when the window ends (a separate
//! `opened` event stamped `raised_after_window`, with its own event id, which is sent). Two
//! readers of the windows, each with its own cache, could disagree at a window's edge and
//! lose or double that announcement. Redelivered, a suppressed event is recorded again the
//! same way and still sends nothing.

use vigie_domain::alert::AlertEvent;
use vigie_domain::maintenance::SUPPRESSED_MAINTENANCE;
use vigie_domain::ports::DeliveryRecord;

/// The delivery record for a channel when `event` is not to be sent because of maintenance;
/// `None` when it is to be sent.
pub fn suppressed(event: &AlertEvent) -> Option<DeliveryRecord> {
    let note = event.maintenance.as_ref()?;
    if note.effect.notifies() {
        return None;
    }
    Some(DeliveryRecord {
        status: SUPPRESSED_MAINTENANCE,
        response_code: None,
        detail: format!(
            "not sent: maintenance window {} ({}) until {} ms",
            note.window_id,
            note.effect.as_str(),
            note.window_end_ms
        ),
    })
}

#[cfg(test)]
mod tests {
    use vigie_domain::alert::AlertEventKind;
    use vigie_domain::fixtures::event;
    use vigie_domain::maintenance::{MaintenanceEffect, MaintenanceNote};

    use super::*;

    #[test]
    fn only_notified_effects_are_sent() {
        let mut e = event(AlertEventKind::Opened);
        assert!(suppressed(&e).is_none());
        for (effect, sent) in [
            (MaintenanceEffect::Unannounced, false),
            (MaintenanceEffect::Quiet, false),
            (MaintenanceEffect::Hidden, false),
            (MaintenanceEffect::RaisedAfterWindow, true),
        ] {
            e.maintenance = Some(MaintenanceNote {
                effect,
                window_id: "patch-night".into(),
                window_end_ms: 1,
            });
            let r = suppressed(&e);
            assert_eq!(r.is_none(), sent, "{effect:?}");
            if let Some(r) = r {
                assert_eq!(r.status, "suppressed_maintenance");
                assert!(r.detail.contains("patch-night"));
            }
        }
    }
}
