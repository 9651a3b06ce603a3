//! The intake queue on SQS (FIFO, grouped by device, deduplicated by device and sequence),
//! with an S3 claim check for batches too large to travel inline.

use aws_sdk_sqs::types::MessageAttributeValue;
use vigie_domain::envelope::{
    BatchEnvelope, IntakeMessage, IntakeMessageRef, MAX_INLINE_MESSAGE, SpilledBatch, attributes,
};
use vigie_domain::keys::TenantKeys;
use vigie_domain::ports::{IntakeSource, StoreError, TelemetryQueue};

use crate::item::unavailable;

/// The intake queue.
#[derive(Debug, Clone)]
pub struct SqsTelemetryQueue {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) queue_url: String,
    pub(crate) dlq_url: String,
    pub(crate) spill_bucket: String,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(unavailable)
}

/// A message taken from the intake queue.
#[derive(Debug, Clone)]
pub struct ReceivedBatch {
    pub message_id: String,
    pub receipt_handle: String,
    pub envelope: BatchEnvelope,
}

impl SqsTelemetryQueue {
    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Reads a spilled batch back from S3.
    pub async fn resolve(&self, message: IntakeMessage) -> Result<BatchEnvelope, StoreError> {
        match message {
            IntakeMessage::Batch(envelope) => Ok(*envelope),
            IntakeMessage::Spilled(s) => {
                let out = self
                    .s3
                    .get_object()
                    .bucket(&s.bucket)
                    .key(&s.key)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                serde_json::from_slice(&bytes.into_bytes())
                    .map_err(|e| StoreError::Corrupt(format!("spilled batch {}: {e}", s.key)))
            }
        }
    }

    /// Receives up to `max` messages (long polling `wait_s`), resolving spilled ones. Messages
    /// that do not parse are left on the queue: after the redrive limit they reach the DLQ.
    pub async fn receive(&self, max: i32, wait_s: i32) -> Result<Vec<ReceivedBatch>, StoreError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_s.clamp(0, 20))
            .message_attribute_names("All")
            .send()
            .await
            .map_err(unavailable)?;
        let mut batches = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let (Some(id), Some(handle), Some(body)) = (m.message_id, m.receipt_handle, m.body)
            else {
                continue;
            };
            match serde_json::from_str::<IntakeMessage>(&body) {
                Ok(message) => {
                    let envelope = self.resolve(message).await?;
                    batches.push(ReceivedBatch {
                        message_id: id,
                        receipt_handle: handle,
                        envelope,
                    });
                }
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "intake message does not parse; left for the DLQ")
                }
            }
        }
        Ok(batches)
    }

    pub async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        self.sqs
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl TelemetryQueue for SqsTelemetryQueue {
    async fn enqueue(&self, envelope: &BatchEnvelope) -> Result<String, StoreError> {
        let inline = serde_json::to_string(&IntakeMessageRef::Batch(envelope))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let body = if inline.len() <= MAX_INLINE_MESSAGE {
            inline
        } else {
            let key = TenantKeys::new(&envelope.tenant_id)
                .spilled_batch(&envelope.device_id, envelope.seq);
            let json =
                serde_json::to_vec(envelope).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.s3
                .put_object()
                .bucket(&self.spill_bucket)
                .key(&key)
                .content_type("application/json")
                .body(json.into())
                .send()
                .await
                .map_err(unavailable)?;
            serde_json::to_string(&IntakeMessage::Spilled(SpilledBatch {
                tenant_id: envelope.tenant_id.clone(),
                client_id: envelope.client_id.clone(),
                site_id: envelope.site_id.clone(),
                device_id: envelope.device_id.clone(),
                seq: envelope.seq,
                bucket: self.spill_bucket.clone(),
                key,
            }))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
        };
        let out = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(envelope.device_id.as_str())
            .message_deduplication_id(envelope.dedup_id())
            .message_attributes(attributes::TENANT, attribute(envelope.tenant_id.as_str())?)
            .message_attributes(attributes::CLIENT, attribute(envelope.client_id.as_str())?)
            .message_attributes(attributes::SITE, attribute(envelope.site_id.as_str())?)
            .message_attributes(attributes::DEVICE, attribute(envelope.device_id.as_str())?)
            .message_attributes(attributes::SEQ, attribute(&envelope.seq.to_string())?)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.message_id.unwrap_or_default())
    }
}

impl IntakeSource for SqsTelemetryQueue {
    async fn resolve(&self, message: IntakeMessage) -> Result<BatchEnvelope, StoreError> {
        SqsTelemetryQueue::resolve(self, message).await
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        let dedup = vigie_domain::alert::derived_id("poison", &[body]);
        self.sqs
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .message_group_id("poison")
            .message_deduplication_id(dedup)
            .message_attributes(
                "failure_reason",
                attribute(&reason.chars().take(1000).collect::<String>())?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
