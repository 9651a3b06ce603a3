//! API keys (machine credentials): records found by their key id, holding only the secret's
//! hash.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_auth::{ApiKeyRecord, ApiKeyScope};
use vigie_domain::ids::TenantId;
use vigie_domain::keys::{TenantKeys, api_key, platform_api_key_index};
use vigie_domain::ports::StoreError;

use crate::item::{ItemBuilder, ItemExt, Range, key_of, put_item, query_all, unavailable};

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
        let index = match &record.scope {
            ApiKeyScope::Tenant { tenant_id } => {
                TenantKeys::new(tenant_id).api_key_index(record.key_id.as_str())
            }
            ApiKeyScope::Platform => platform_api_key_index(record.key_id.as_str()),
        };
        let item = ItemBuilder::keyed(&api_key(record.key_id.as_str()))
            .index(&index)
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

    /// The tenant's API keys (records only: secrets are never stored).
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let (pk, prefix) = TenantKeys::new(tenant).api_keys_index_prefix();
        query_all(&self.client, &self.table, true, &pk, Range::Prefix(prefix))
            .await?
            .iter()
            .map(|item| {
                serde_json::from_str(item.string("api_key")?)
                    .map_err(|e| StoreError::Corrupt(format!("api_key: {e}")))
            })
            .collect()
    }

    /// Revokes a key of `tenant` from `now_ms` on; a key of another tenant (or the platform)
    /// is not found.
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_ms: i64,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let Some(mut record) = self.get(key_id).await? else {
            return Ok(None);
        };
        if !matches!(&record.scope, ApiKeyScope::Tenant { tenant_id } if tenant_id == tenant) {
            return Ok(None);
        }
        if record.revoked_ms.is_none() {
            record.revoked_ms = Some(now_ms);
            self.put(&record).await?;
        }
        Ok(Some(record))
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
        let as_read =
            serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let json =
            serde_json::to_string(&updated).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Only over the record as read: a revocation in between is never undone.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&api_key(record.key_id.as_str()))))
            .update_expression("SET api_key = :json")
            .condition_expression("api_key = :read")
            .expression_attribute_values(":json", AttributeValue::S(json))
            .expression_attribute_values(":read", AttributeValue::S(as_read))
            .send()
            .await;
        // A condition that failed: someone else wrote it first, which is as good.
        crate::item::applied(result).map(|_| ())
    }
}
