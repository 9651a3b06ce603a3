//! Notification channels, the delivery log and the notification dead-letter queue.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_sqs::types::MessageAttributeValue;
use vigie_domain::ids::TenantId;
use vigie_domain::keys::TenantKeys;
use vigie_domain::notification::NotificationChannel;
use vigie_domain::ports::{
    ChannelStore, Claim, DeadLetters, DeliveryLog, DeliveryRecord, DeliveryUsage, RetryQueue,
    StoreError,
};
use vigie_domain::usage::{Day, UsageCounters};

use crate::usage::{Transacted, count_usage, transact};

use crate::item::{ItemExt, document_item, key_of, list_documents, put_item, unavailable};

#[derive(Debug, Clone)]
pub struct DynamoChannels {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoChannels {
    /// Stores (replaces) a channel. The caller validates it first.
    pub async fn put(&self, channel: &NotificationChannel) -> Result<(), StoreError> {
        let key = TenantKeys::new(&channel.tenant_id).channel(channel.id.as_str());
        let item = document_item(&key, "channel", &channel.tenant_id, channel)?.build();
        put_item(&self.client, &self.table, item).await
    }
}

impl DynamoChannels {
    /// Removes a channel of `tenant`; `false` when there was none.
    pub async fn delete(&self, tenant: &TenantId, channel: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).channel(channel))))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some())
    }
}

impl ChannelStore for DynamoChannels {
    async fn channels(&self, tenant: &TenantId) -> Result<Vec<NotificationChannel>, StoreError> {
        let prefix = TenantKeys::new(tenant).channels_prefix();
        list_documents(&self.client, &self.table, prefix, "channel").await
    }
}

#[derive(Debug, Clone)]
pub struct DynamoDeliveryLog {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoDeliveryLog {
    /// A delivery record as JSON-ish fields (for tests and, later, the API).
    pub async fn get(
        &self,
        tenant: &TenantId,
        event_id: &str,
        channel: &str,
    ) -> Result<Option<(String, u32, Option<u16>)>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(
                &TenantKeys::new(tenant).delivery(event_id, channel),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| {
                let code = if item.contains_key("response_code") {
                    Some(item.number("response_code")?)
                } else {
                    None
                };
                Ok((
                    item.string("status")?.to_owned(),
                    item.number("attempts")?,
                    code,
                ))
            })
            .transpose()
    }
}

impl DeliveryLog for DynamoDeliveryLog {
    async fn claim(
        &self,
        tenant: &TenantId,
        event_id: &str,
        channel: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Claim, StoreError> {
        let key = TenantKeys::new(tenant).delivery(event_id, channel);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&key)))
            .update_expression("SET #status = :sending, claimed_until = :until, attempts = if_not_exists(attempts, :zero) + :one, updated_ms = :now")
            .condition_expression("attribute_not_exists(pk) OR (#status <> :delivered AND #status <> :failed AND #status <> :grouped AND claimed_until < :now)")
            .expression_attribute_values(":grouped", AttributeValue::S("grouped".into()))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", AttributeValue::S("sending".into()))
            .expression_attribute_values(":delivered", AttributeValue::S("delivered".into()))
            .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
            .expression_attribute_values(":until", AttributeValue::N((now_ms + lease_ms).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let attempt = out
                    .attributes
                    .as_ref()
                    .map(|a| a.number("attempts"))
                    .transpose()?
                    .unwrap_or(1);
                Ok(Claim::Claimed { attempt })
            }
            Err(e) if crate::devices::is_conditional_failure(&e) => {
                match self.get(tenant, event_id, channel).await? {
                    Some((status, _, _))
                        if status == "delivered" || status == "failed" || status == "grouped" =>
                    {
                        Ok(Claim::Done)
                    }
                    _ => Ok(Claim::Busy),
                }
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn record(
        &self,
        tenant: &TenantId,
        event_id: &str,
        channel: &str,
        usage: DeliveryUsage<'_>,
        record: &DeliveryRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = TenantKeys::new(tenant).delivery(event_id, channel);
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&key)))
            .update_expression(if record.response_code.is_some() {
                "SET #status = :status, claimed_until = :zero, detail = :detail, updated_ms = :now, response_code = :code"
            } else {
                "SET #status = :status, claimed_until = :zero, detail = :detail, updated_ms = :now"
            })
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(record.status.into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":detail", AttributeValue::S(record.detail.chars().take(500).collect()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()));
        if let Some(code) = record.response_code {
            update =
                update.expression_attribute_values(":code", AttributeValue::N(code.to_string()));
        }
        // First the outcome itself, on its own: once a receiver has it, the record says so,
        // whatever happens to the usage count (a failed count must never cause a second send).
        let plain = update.build().map_err(unavailable)?;
        self.client
            .update_item()
            .table_name(plain.table_name)
            .set_key(Some(plain.key))
            .update_expression(plain.update_expression)
            .set_expression_attribute_names(plain.expression_attribute_names)
            .set_expression_attribute_values(plain.expression_attribute_values)
            .send()
            .await
            .map_err(unavailable)?;
        if record.status != "delivered" {
            return Ok(());
        }
        // Then one notification in the usage, once: marking the record counted in the same
        // transaction, only if it is not counted yet.
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&key)))
            .update_expression("SET counted = :true")
            .condition_expression("attribute_not_exists(counted)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(unavailable)?;
        let mut items = vec![TransactWriteItem::builder().update(mark).build()];
        items.extend(count_usage(
            &self.table,
            tenant,
            usage.client,
            Day::of_ms(now_ms),
            &UsageCounters::notification(usage.channel_type),
        )?);
        for _ in 0..5 {
            match transact(&self.client, items.clone()).await? {
                Transacted::Committed | Transacted::ConditionFailed => return Ok(()),
                // Another transaction held the usage item: again.
                Transacted::Conflict => {}
            }
        }
        // The notification went out and is recorded; only its count is missing. Said loudly
        // (for reconciliation), never retried by sending again.
        tracing::warn!(
            event = "usage_uncounted",
            tenant_id = %tenant,
            event_id,
            channel,
            "the usage item stayed busy: this delivery is not counted"
        );
        Ok(())
    }
}

/// A consumed standard queue: failed messages come back after a delay of our choosing, and
/// poison messages go to its dead-letter queue with their reason.
#[derive(Debug, Clone)]
pub struct SqsConsumedQueue {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) url: String,
    pub(crate) dlq_url: String,
}

impl RetryQueue for SqsConsumedQueue {
    async fn retry_after(&self, receipt_handle: &str, delay_s: u32) -> Result<(), StoreError> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            // SQS's maximum visibility timeout is 12 hours.
            .visibility_timeout(delay_s.min(43_200) as i32)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl DeadLetters for SqsConsumedQueue {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        let reason = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason.chars().take(1000).collect::<String>())
            .build()
            .map_err(unavailable)?;
        self.sqs
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .message_attributes("failure_reason", reason)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
