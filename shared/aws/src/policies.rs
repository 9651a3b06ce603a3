//! Tenant policies in DynamoDB: one item per scope, the rules as JSON.

use vigie_domain::ids::TenantId;
use vigie_domain::keys::TenantKeys;
use vigie_domain::policy::Policy;
use vigie_domain::ports::{PolicyStore, StoreError};

use crate::item::{ItemBuilder, ItemExt, key_of, query_prefix, unavailable};

#[derive(Debug, Clone)]
pub struct DynamoPolicies {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl DynamoPolicies {
    /// Stores (replaces) the tenant's policy at `policy.scope`. The caller validates it first.
    pub async fn put(
        &self,
        tenant: &TenantId,
        policy: &Policy,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(policy).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = ItemBuilder::keyed(&TenantKeys::new(tenant).policy(&policy.scope.key()))
            .s("kind", "policy")
            .s("tenant_id", tenant.as_str())
            .s("policy", json)
            .n("updated_ms", now_ms)
            .build();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Removes the tenant's policy at a scope.
    pub async fn delete(&self, tenant: &TenantId, scope_key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).policy(scope_key))))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl PolicyStore for DynamoPolicies {
    async fn policies(&self, tenant: &TenantId) -> Result<Vec<Policy>, StoreError> {
        query_prefix(
            &self.client,
            &self.table,
            TenantKeys::new(tenant).policies_prefix(),
        )
        .await?
        .iter()
        .map(|item| {
            serde_json::from_str(item.string("policy")?)
                .map_err(|e| StoreError::Corrupt(format!("policy: {e}")))
        })
        .collect()
    }
}
