//! Vigie's notifications: who wants which alert event, how it reads, and how it leaves.
//!
//! # Flow
//!
//! ```text
//! evaluator ──publish AlertEvent──▶ SNS alerts topic ──(filter policy per subscription)──▶
//!   notify SQS queue ──▶ notifier Lambda (later): for each event, the tenant's channels that
//!   `accepts` it ──▶ `prepare` ──▶ Http: `deliver` (webhook, Slack, Teams) │ Email: SES adapter
//! ```
//!
//! The evaluator publishes each [`AlertEvent`](vigie_domain::alert::AlertEvent) as JSON with
//! the message attributes of [`channel::message_attributes`] (`tenant_id`, `client_id`,
//! `site_id`, `severity`, `family`, `kind`, `event_id`), where `severity` is the
//! [`channel::routing_severity`] (the higher of the new and the previous severity, so a channel
//! hears an alert leave its band). [`NotificationChannel::sns_filter_policy`] is written over
//! them. The policy is a coarse pre-filter; [`NotificationChannel::accepts`] is the exact
//! rule, and never lets another tenant's event through.
//!
//! [`deliver()`] reports [`DeliveryStatus::RetryLater`] (408, 429, 5xx, timeouts, transport
//! errors) or [`DeliveryStatus::Failed`] (any other refusal, never retried); the Lambda maps
//! the first to an SQS batch item failure. Receivers deduplicate on `x-vigie-event-id`: a
//! retried or twice-computed transition keeps its event id.
//!
//! # The webhook body (version 1)
//!
//! ```json
//! {
//!   "version": 1,
//!   "event": { "event_id": "evt-…", "kind": "opened", "alert_id": "al-…",
//!              "tenant_id": "…", "client_id": "…", "site_id": "…", "device_id": "dev-…",
//!              "device_name": "srv-files-01", "rule_id": "…", "family": "resources",
//!              "subject": "/var", "metric": "filesystem_used_pct", "severity": "warning",
//!              "previous_severity": null | absent, "value": 91.2, "threshold": 85.0,
//!              "at_ms": 1740924300000, "opened_ms": 1740924300000 },
//!   "text": "[Sev 2 · WARNING] Disk /var at 91.2 % on srv-files-01 (acme · hq) — above 85 % since 14:05 UTC",
//!   "console_url": "https://console.example/t/acme-msp/alerts/al-…"
//! }
//! ```
//!
//! sent with `x-vigie-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` and
//! `x-vigie-event-id`; receivers check it with [`sign::verify`]. Fields may be added to
//! version 1; none is removed or changes meaning without a new version.

/// Channels live in the domain (storage and the API need them too).
pub use vigie_domain::notification as channel;
pub mod deliver;
pub mod escalation;
pub mod grouping;
pub mod maintenance;
pub mod render;
pub mod service;
pub mod sign;

pub use channel::{
    ChannelFilter, ChannelId, ChannelInvalid, ChannelKind, NotificationChannel, WebhookSecret,
};
pub use deliver::{
    DeliveryOutcome, DeliveryStatus, Email, HttpRequest, Notification, deliver, prepare,
};
pub use render::EmailContent;
pub use sign::{SignatureError, verify};

#[cfg(test)]
pub(crate) mod testing {
    pub use vigie_domain::fixtures::event;

    pub const CONSOLE: &str = "https://console.vigie.example";
}
