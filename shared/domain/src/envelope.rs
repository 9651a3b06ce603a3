//! What travels on the intake queue: a verified batch with the placement the server looked up.

use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, DeviceId, SiteId, TenantId};
use crate::telemetry::TelemetryBatch;

/// A verified batch, with tenant, client company and site taken from the device's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEnvelope {
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub site_id: SiteId,
    pub device_id: DeviceId,
    pub seq: u64,
    /// When the ingestion function accepted it, Unix ms.
    pub received_ms: i64,
    /// Size of the compressed body as received (metering).
    pub wire_bytes: u64,
    /// The device's tags (e.g. `role=server`), from its record: policies attach to them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    pub batch: TelemetryBatch,
}

impl BatchEnvelope {
    /// The queue's deduplication id: one message per (device, seq).
    pub fn dedup_id(&self) -> String {
        format!("{}:{}", self.device_id, self.seq)
    }
}

/// A batch too large to travel inline, parked in the spill bucket (claim check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpilledBatch {
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    pub site_id: SiteId,
    pub device_id: DeviceId,
    pub seq: u64,
    pub bucket: String,
    pub key: String,
}

/// The body of an intake queue message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IntakeMessage {
    Batch(Box<BatchEnvelope>),
    Spilled(SpilledBatch),
}

/// Serialises exactly as [`IntakeMessage::Batch`], without copying the envelope.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IntakeMessageRef<'a> {
    Batch(&'a BatchEnvelope),
}

/// Largest message body sent inline; larger batches are spilled to S3.
pub const MAX_INLINE_MESSAGE: usize = 240 * 1024;

/// Names of the SQS message attributes every intake message carries.
pub mod attributes {
    pub const TENANT: &str = "tenant_id";
    pub const CLIENT: &str = "client_id";
    pub const SITE: &str = "site_id";
    pub const DEVICE: &str = "device_id";
    pub const SEQ: &str = "seq";
}
