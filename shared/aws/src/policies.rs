//! Tenant policies in DynamoDB: one item per scope, the rules as JSON.

use vigie_domain::ids::TenantId;
use vigie_domain::keys::TenantKeys;
use vigie_domain::policy::Policy;
use vigie_domain::ports::{PolicyStore, StoreError};

use crate::item::{delete_key, document_item, list_documents, put_item};

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
        let key = TenantKeys::new(tenant).policy(&policy.scope.key());
        let item = document_item(&key, "policy", tenant, policy)?
            .n("updated_ms", now_ms)
            .build();
        put_item(&self.client, &self.table, item).await
    }

    /// Removes the tenant's policy at a scope.
    pub async fn delete(&self, tenant: &TenantId, scope_key: &str) -> Result<(), StoreError> {
        let key = TenantKeys::new(tenant).policy(scope_key);
        delete_key(&self.client, &self.table, &key).await
    }
}

impl PolicyStore for DynamoPolicies {
    async fn policies(&self, tenant: &TenantId) -> Result<Vec<Policy>, StoreError> {
        let prefix = TenantKeys::new(tenant).policies_prefix();
        list_documents(&self.client, &self.table, prefix, "policy").await
    }
}
