//! Users and invitations: records found by their own id (derived from a verified identity,
//! or named in an invitation code) that carry their tenant, listed per tenant on `gsi1`.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vigie_auth::{Invitation, UserRecord};
use vigie_domain::ids::TenantId;
use vigie_domain::keys::{IndexKey, TableKey, TenantKeys, invitation, user_record};
use vigie_domain::ports::StoreError;

use crate::item::{Item, ItemBuilder, ItemExt, Range, key_of, query_all, unavailable};

#[derive(Debug, Clone)]
pub struct DynamoUsers {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

/// What accepting an invitation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Joined,
    /// The invitation was accepted, revoked or changed meanwhile.
    InvitationGone,
    /// This identity is already a member of a tenant.
    AlreadyMember,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn document<T: Serialize>(
    key: &TableKey,
    index: &IndexKey,
    kind: &str,
    tenant: &TenantId,
    value: &T,
) -> Result<Item, StoreError> {
    Ok(ItemBuilder::keyed(key)
        .index(index)
        .s("kind", kind)
        .s("tenant_id", tenant.as_str())
        .s("doc", serde_json::to_string(value).map_err(corrupt)?)
        .build())
}

impl DynamoUsers {
    async fn get<T: DeserializeOwned>(&self, key: &TableKey) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| serde_json::from_str(item.string("doc")?).map_err(corrupt))
            .transpose()
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list<T: DeserializeOwned>(
        &self,
        tenant: &TenantId,
        kind: &str,
    ) -> Result<Vec<T>, StoreError> {
        let (pk, prefix) = TenantKeys::new(tenant).index_prefix(kind);
        query_all(&self.client, &self.table, true, &pk, Range::Prefix(prefix))
            .await?
            .iter()
            .map(|item| serde_json::from_str(item.string("doc")?).map_err(corrupt))
            .collect()
    }

    /// The user record of `user_id`, whatever its tenant (the caller compares).
    pub async fn user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.get(&user_record(user_id)).await
    }

    /// A user of `tenant`; another tenant's is not found.
    pub async fn tenant_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.user(user_id).await?.filter(|u| &u.tenant_id == tenant))
    }

    pub async fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let tenant = &user.tenant_id;
        self.put(document(
            &user_record(&user.user_id),
            &TenantKeys::new(tenant).user_index(&user.user_id),
            "user",
            tenant,
            user,
        )?)
        .await
    }

    pub async fn users(&self, tenant: &TenantId) -> Result<Vec<UserRecord>, StoreError> {
        self.list(tenant, "USER").await
    }

    pub async fn put_invitation(&self, inv: &Invitation) -> Result<(), StoreError> {
        let tenant = &inv.tenant_id;
        self.put(document(
            &invitation(&inv.invitation_id),
            &TenantKeys::new(tenant).invitation_index(&inv.invitation_id),
            "invitation",
            tenant,
            inv,
        )?)
        .await
    }

    pub async fn invitation(&self, invitation_id: &str) -> Result<Option<Invitation>, StoreError> {
        self.get(&invitation(invitation_id)).await
    }

    pub async fn invitations(&self, tenant: &TenantId) -> Result<Vec<Invitation>, StoreError> {
        self.list(tenant, "INVITE").await
    }

    /// Marks `inv` (as read) accepted by `user` and creates the user, in one transaction:
    /// only if the invitation is unchanged and the identity is nobody's member yet.
    pub async fn accept(
        &self,
        inv: &Invitation,
        user: &UserRecord,
    ) -> Result<Accepted, StoreError> {
        let mut accepted = inv.clone();
        accepted.accepted_by = Some(user.user_id.clone());
        let read = serde_json::to_string(inv).map_err(corrupt)?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&invitation(&inv.invitation_id))))
            .update_expression("SET doc = :doc")
            .condition_expression("doc = :read")
            .expression_attribute_values(
                ":doc",
                AttributeValue::S(serde_json::to_string(&accepted).map_err(corrupt)?),
            )
            .expression_attribute_values(":read", AttributeValue::S(read))
            .build()
            .map_err(unavailable)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(document(
                &user_record(&user.user_id),
                &TenantKeys::new(&user.tenant_id).user_index(&user.user_id),
                "user",
                &user.tenant_id,
                user,
            )?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Accepted::Joined),
            Err(e) => {
                let reasons: Vec<Option<String>> = e
                    .as_service_error()
                    .and_then(|s| match s {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(
                            c.cancellation_reasons()
                                .iter()
                                .map(|r| r.code().map(str::to_owned))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .unwrap_or_default();
                let failed = |i: usize| {
                    reasons.get(i).and_then(Option::as_deref) == Some("ConditionalCheckFailed")
                };
                if failed(0) {
                    Ok(Accepted::InvitationGone)
                } else if failed(1) {
                    Ok(Accepted::AlreadyMember)
                } else {
                    Err(unavailable(e))
                }
            }
        }
    }
}
