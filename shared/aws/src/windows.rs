//! Maintenance windows in DynamoDB: one item per window (`T#<tenant>` / `WINDOW#<id>`), the
//! window as a JSON document (`vigie-calendar`'s `MaintenanceWindow`; this crate stores it
//! without knowing its shape). A tenant's windows are one query, cached by their readers
//! together with the policies.

use vigie_domain::ids::TenantId;
use vigie_domain::keys::TenantKeys;
use vigie_domain::ports::{StoreError, WindowStore};

use crate::item::{ItemExt, document_item, key_of, list_documents, unavailable};

const KIND: &str = "window";

#[derive(Debug, Clone)]
pub struct DynamoWindows {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoWindows {
    /// Stores (replaces) a window; the caller validates it first.
    pub async fn put<W: serde::Serialize>(
        &self,
        tenant: &TenantId,
        window_id: &str,
        window: &W,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = TenantKeys::new(tenant).maintenance_window(window_id);
        let item = document_item(&key, KIND, tenant, window)?
            .n("updated_ms", now_ms)
            .build();
        crate::item::put_item(&self.client, &self.table, item).await
    }

    /// One window of the tenant (another tenant's is simply absent under this key).
    pub async fn get<W: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
        window_id: &str,
    ) -> Result<Option<W>, StoreError> {
        let key = TenantKeys::new(tenant).maintenance_window(window_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| {
                serde_json::from_str(item.string(KIND)?)
                    .map_err(|e| StoreError::Corrupt(format!("window: {e}")))
            })
            .transpose()
    }

    /// Removes a window; false when there was none.
    pub async fn delete(&self, tenant: &TenantId, window_id: &str) -> Result<bool, StoreError> {
        let key = TenantKeys::new(tenant).maintenance_window(window_id);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| a.contains_key("pk")))
    }
}

/// The tenant's windows: `Query pk = T#<tenant> AND begins_with(sk, WINDOW#)`.
async fn tenant_windows<W: serde::de::DeserializeOwned>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &TenantId,
) -> Result<Vec<W>, StoreError> {
    let prefix = TenantKeys::new(tenant).maintenance_windows_prefix();
    list_documents(client, table, prefix, KIND).await
}

impl WindowStore for DynamoWindows {
    async fn windows<W: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<W>, StoreError> {
        tenant_windows(&self.client, &self.table, tenant).await
    }
}

/// The evaluator reads windows with the policies (same cache), through its policy store.
impl WindowStore for crate::policies::DynamoPolicies {
    async fn windows<W: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<W>, StoreError> {
        tenant_windows(&self.client, &self.table, tenant).await
    }
}

/// The silence sweeper reads windows through the device registry it already has.
impl WindowStore for crate::devices::DynamoDevices {
    async fn windows<W: serde::de::DeserializeOwned + Send>(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<W>, StoreError> {
        tenant_windows(&self.client, &self.table, tenant).await
    }
}
