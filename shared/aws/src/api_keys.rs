//! API keys (machine credentials): records found by their key id, holding only the secret's
//! hash.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_auth::{ApiKeyRecord, ApiKeyScope};
use vigie_domain::keys::api_key;
use vigie_domain::ports::StoreError;

use crate::item::{ItemBuilder, ItemExt, key_of, put_item, unavailable};

/// How stale `last_used_ms` may get before a use writes it again (one write per key a minute,
/// not one per request).
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub struct DynamoApiKeys {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoApiKeys {
    pub async fn put(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let tenant = match &record.scope {
            ApiKeyScope::Tenant { tenant_id } => tenant_id.to_string(),
            ApiKeyScope::Platform => String::new(),
        };
        let item = ItemBuilder::keyed(&api_key(record.key_id.as_str()))
            .s("kind", "api_key")
            .s("tenant_id", tenant)
            .s("api_key", json)
            .build();
        put_item(&self.client, &self.table, item).await
    }

    pub async fn get(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&api_key(key_id))))
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| {
                serde_json::from_str(item.string("api_key")?)
                    .map_err(|e| StoreError::Corrupt(format!("api_key: {e}")))
            })
            .transpose()
    }

    /// Notes a use of `record` at `now_ms` when the stored time is a minute old or more.
    pub async fn touch(&self, record: &ApiKeyRecord, now_ms: i64) -> Result<(), StoreError> {
        if record
            .last_used_ms
            .is_some_and(|t| now_ms - t < LAST_USED_GRANULARITY_MS)
        {
            return Ok(());
        }
        let mut updated = record.clone();
        updated.last_used_ms = Some(now_ms);
        let json =
            serde_json::to_string(&updated).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&api_key(record.key_id.as_str()))))
            .update_expression("SET api_key = :json")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":json", AttributeValue::S(json))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
