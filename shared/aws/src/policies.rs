//! Tenant policies in DynamoDB: one item per scope, the rules as JSON.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::ids::TenantId;
use vigie_domain::keys::TenantKeys;
use vigie_domain::policy::{Policy, Scope};
use vigie_domain::ports::{PolicyStore, StoreError};

use crate::item::{
    ItemExt, applied, delete_key, document_item, key_of, list_documents, put_item, unavailable,
};

const KIND: &str = "policy";

/// A policy as read, with the document it was stored as: the token of a conditional
/// [`DynamoPolicies::replace`], so two edits of the same scope at once cannot lose one.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPolicy {
    pub policy: Policy,
    stored_as: String,
}

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
        let item = document_item(&key, KIND, tenant, policy)?
            .n("updated_ms", now_ms)
            .build();
        put_item(&self.client, &self.table, item).await
    }

    /// The tenant's policy at `scope`, read consistently (another tenant's is simply absent
    /// under this key).
    pub async fn get(
        &self,
        tenant: &TenantId,
        scope: &Scope,
    ) -> Result<Option<StoredPolicy>, StoreError> {
        let key = TenantKeys::new(tenant).policy(&scope.key());
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
                let stored_as = item.string(KIND)?.to_owned();
                let policy = serde_json::from_str(&stored_as)
                    .map_err(|e| StoreError::Corrupt(format!("policy: {e}")))?;
                Ok(StoredPolicy { policy, stored_as })
            })
            .transpose()
    }

    /// Stores `policy` at its scope if the scope still holds what `read` saw (`None`: still
    /// no policy). `Ok(false)`: someone changed it in between; read again and redo the edit.
    pub async fn replace(
        &self,
        tenant: &TenantId,
        read: Option<&StoredPolicy>,
        policy: &Policy,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = TenantKeys::new(tenant).policy(&policy.scope.key());
        let item = document_item(&key, KIND, tenant, policy)?
            .n("updated_ms", now_ms)
            .build();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match read {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(read) => put
                .condition_expression("#doc = :read")
                .expression_attribute_names("#doc", KIND)
                .expression_attribute_values(":read", AttributeValue::S(read.stored_as.clone())),
        };
        applied(put.send().await)
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
        list_documents(&self.client, &self.table, prefix, KIND).await
    }
}
