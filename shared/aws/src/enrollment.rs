//! Enrolment tokens in DynamoDB, and the enrolment transaction.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use vigie_domain::device::Device;
use vigie_domain::directory::Plan;
use vigie_domain::enrollment::{EnrollmentToken, Placement};
use vigie_domain::ids::{ClientId, EnrollmentTokenId, SiteId, TenantId};
use vigie_domain::keys::{TenantKeys, enrollment_token};
use vigie_domain::ports::{EnrollmentStore, RedeemOutcome, StoreError};

use crate::devices::device_item;
use crate::item::{Item, ItemBuilder, ItemExt, key_of, unavailable};

/// How long an expired token stays listable before DynamoDB's TTL removes it.
const EXPIRED_TOKEN_GRACE_S: i64 = 30 * 86_400;

/// Enrolment tokens in the Vigie table.
#[derive(Debug, Clone)]
pub struct DynamoEnrollment {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

fn token_item(t: &EnrollmentToken) -> Item {
    let p = &t.placement;
    ItemBuilder::keyed(&enrollment_token(&t.id))
        .index(&TenantKeys::new(&p.tenant).enrollment_token_index(t.created_ms, &t.id))
        .s("kind", "enrollment_token")
        .s("token_id", t.id.as_str())
        .s("tenant_id", p.tenant.as_str())
        .s("client_id", p.client.as_str())
        .s("site_id", p.site.as_str())
        .s("secret_hash", &t.secret_hash)
        .n("created_ms", t.created_ms)
        .n("expires_ms", t.expires_ms)
        .n("max_uses", t.max_uses)
        .n("uses", t.uses)
        .b("revoked", t.revoked)
        .s("label", &t.label)
        .string_map("tags", &t.tags)
        .n("expires_at", t.expires_ms / 1000 + EXPIRED_TOKEN_GRACE_S)
        .build()
}

fn token_from_item(item: &Item) -> Result<EnrollmentToken, StoreError> {
    Ok(EnrollmentToken {
        id: item.parsed("token_id", EnrollmentTokenId::parse)?,
        placement: Placement {
            tenant: item.parsed("tenant_id", TenantId::parse)?,
            client: item.parsed("client_id", ClientId::parse)?,
            site: item.parsed("site_id", SiteId::parse)?,
        },
        secret_hash: item.string("secret_hash")?.to_owned(),
        created_ms: item.number("created_ms")?,
        expires_ms: item.number("expires_ms")?,
        max_uses: item.number("max_uses")?,
        uses: item.number("uses")?,
        revoked: item.boolean("revoked")?,
        label: item.string("label")?.to_owned(),
        tags: item.string_map("tags")?,
    })
}

impl DynamoEnrollment {
    /// Stores a freshly issued token.
    pub async fn create(&self, token: &EnrollmentToken) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(token_item(token)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Revokes a token of `tenant`. A token of another tenant is reported as not found.
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        id: &EnrollmentTokenId,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&enrollment_token(id))))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(pk) AND tenant_id = :tenant")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .send()
            .await;
        crate::item::applied(result)
    }

    /// The tenant's tokens, newest first.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<EnrollmentToken>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(TenantKeys::new(tenant).enrollment_tokens_partition()),
            )
            .scan_index_forward(false)
            .send()
            .await
            .map_err(unavailable)?;
        out.items().iter().map(token_from_item).collect()
    }
}

impl EnrollmentStore for DynamoEnrollment {
    async fn token(&self, id: &EnrollmentTokenId) -> Result<Option<EnrollmentToken>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&enrollment_token(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(token_from_item).transpose()
    }

    async fn redeem(
        &self,
        token: &EnrollmentToken,
        device: &Device,
    ) -> Result<RedeemOutcome, StoreError> {
        let count_use = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&enrollment_token(&token.id))))
            .update_expression("SET uses = uses + :one")
            .condition_expression("uses = :read AND revoked = :false AND uses < max_uses")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":read", AttributeValue::N(token.uses.to_string()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .build()
            .map_err(unavailable)?;
        let create_device = Put::builder()
            .table_name(&self.table)
            .set_item(Some(device_item(device)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        // The tenant's plan limit, counted in the same transaction.
        let tenant = &device.placement.tenant;
        let keys = TenantKeys::new(tenant);
        let max = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&keys.tenant())))
            .projection_expression("max_devices")
            .send()
            .await
            .map_err(unavailable)?
            .item
            .map(|item| item.number_or("max_devices", Plan::default().max_devices))
            .transpose()?
            .unwrap_or(Plan::default().max_devices);
        let count_device = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&keys.device_count())))
            .update_expression("ADD device_count :one SET kind = :kind, tenant_id = :tenant")
            .condition_expression("attribute_not_exists(device_count) OR device_count < :max")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
            .expression_attribute_values(":kind", AttributeValue::S("device_count".into()))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .build()
            .map_err(unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(count_use).build())
            .transact_items(TransactWriteItem::builder().put(create_device).build())
            .transact_items(TransactWriteItem::builder().update(count_device).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(RedeemOutcome::Enrolled),
            Err(e) => {
                let limit_reached = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                        c.cancellation_reasons().get(2).and_then(|r| r.code())
                            == Some("ConditionalCheckFailed")
                    }
                    Some(_) | None => {
                        if !e
                            .as_service_error()
                            .is_some_and(|s| s.is_transaction_canceled_exception())
                        {
                            return Err(unavailable(e));
                        }
                        false
                    }
                };
                if limit_reached {
                    Ok(RedeemOutcome::DeviceLimit { max })
                } else if e
                    .as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception())
                {
                    Ok(RedeemOutcome::TokenChanged)
                } else {
                    Err(unavailable(e))
                }
            }
        }
    }
}
