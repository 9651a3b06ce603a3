//! The heartbeat slots in DynamoDB: one partition per 10-second slot, holding the devices whose
//! due time falls in it; and the sweeper's cursor.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::device::HEARTBEAT_SLOT_MS;
use vigie_domain::ids::{DeviceId, TenantId};
use vigie_domain::keys::{heartbeat_entry, heartbeat_slot_partition, sweeper_cursor};
use vigie_domain::ports::{HeartbeatEntry, HeartbeatIndex, StoreError};

use crate::item::{ItemBuilder, ItemExt, Range, delete_key, key_of, query_all, unavailable};

#[derive(Debug, Clone)]
pub struct DynamoHeartbeats {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl HeartbeatIndex for DynamoHeartbeats {
    async fn due(&self, from_ms: i64, to_ms: i64) -> Result<Vec<HeartbeatEntry>, StoreError> {
        let mut out = Vec::new();
        let mut slot = from_ms;
        while slot < to_ms {
            let partition = heartbeat_slot_partition(slot);
            for item in query_all(&self.client, &self.table, false, &partition, Range::All).await? {
                out.push(HeartbeatEntry {
                    slot_ms: slot,
                    tenant: item.parsed("tenant_id", TenantId::parse)?,
                    device: item.parsed("device_id", DeviceId::parse)?,
                });
            }
            slot += HEARTBEAT_SLOT_MS;
        }
        Ok(out)
    }

    async fn remove(&self, entry: &HeartbeatEntry) -> Result<(), StoreError> {
        let key = heartbeat_entry(entry.slot_ms, &entry.tenant, &entry.device);
        delete_key(&self.client, &self.table, &key).await
    }

    async fn schedule(&self, entry: &HeartbeatEntry) -> Result<(), StoreError> {
        let key = heartbeat_entry(entry.slot_ms, &entry.tenant, &entry.device);
        let item = ItemBuilder::keyed(&key)
            .s("kind", "heartbeat")
            .s("tenant_id", entry.tenant.as_str())
            .s("device_id", entry.device.as_str())
            .build();
        crate::item::put_item(&self.client, &self.table, item).await
    }

    async fn cursor(&self) -> Result<i64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&sweeper_cursor())))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.map_or(Ok(0), |item| item.number("next_slot_ms"))
    }

    async fn advance(&self, from: i64, to: i64) -> Result<bool, StoreError> {
        let item = ItemBuilder::keyed(&sweeper_cursor())
            .s("kind", "sweeper_cursor")
            .n("next_slot_ms", to)
            .build();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR next_slot_ms = :from")
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
            .send()
            .await;
        crate::item::applied(result)
    }
}
