//! Names of every AWS resource, derived from one prefix so parallel tests never collide.

use vigie_domain::ids::TenantId;

/// The name of every resource of one Vigie installation (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    prefix: String,
}

impl ResourceNames {
    /// `prefix` must be lower-case letters, digits and '-' (it becomes part of bucket names).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The single DynamoDB table (single-table design; see ARCHITECTURE.md).
    pub fn table(&self) -> String {
        format!("{}-vigie", self.prefix)
    }

    /// FIFO intake queue: verified telemetry batches, grouped by device.
    pub fn telemetry_queue(&self) -> String {
        format!("{}-telemetry.fifo", self.prefix)
    }

    pub fn telemetry_dlq(&self) -> String {
        format!("{}-telemetry-dlq.fifo", self.prefix)
    }

    /// Standard queue subscribed to every tenant's alerts topic (filtered on the tenant's
    /// channels), consumed by the notifier.
    pub fn notify_queue(&self) -> String {
        format!("{}-notify", self.prefix)
    }

    pub fn notify_dlq(&self) -> String {
        format!("{}-notify-dlq", self.prefix)
    }

    /// Standard queue subscribed, unfiltered, to every tenant's alerts topic: every alert
    /// transition, for the audit trail.
    pub fn events_queue(&self) -> String {
        format!("{}-alert-events", self.prefix)
    }

    /// Standard queue subscribed to every tenant's alerts topic (openings, raises and
    /// resolutions only), consumed by the escalator; also carries its delayed wake-ups.
    pub fn escalate_queue(&self) -> String {
        format!("{}-escalate", self.prefix)
    }

    pub fn escalate_dlq(&self) -> String {
        format!("{}-escalate-dlq", self.prefix)
    }

    /// What every tenant's alerts topic name starts with.
    pub fn alerts_topic_prefix(&self) -> String {
        format!("{}-alerts-", self.prefix)
    }

    /// The SNS topic a tenant's alert transitions are published to (one per tenant: SNS
    /// allows one subscription per topic and queue, and the tenant's subscription filters on
    /// the tenant's channels).
    pub fn tenant_alerts_topic(&self, tenant: &TenantId) -> String {
        format!("{}{}", self.alerts_topic_prefix(), tenant.as_str())
    }

    /// Immutable audit trail (versioning + Object Lock).
    pub fn audit_bucket(&self) -> String {
        format!("{}-audit", self.prefix)
    }

    /// Compliance reports and usage exports.
    pub fn reports_bucket(&self) -> String {
        format!("{}-reports", self.prefix)
    }

    /// Batches too large to travel inline on SQS (claim-check).
    pub fn spill_bucket(&self) -> String {
        format!("{}-spill", self.prefix)
    }
}
