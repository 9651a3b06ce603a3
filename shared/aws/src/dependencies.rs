//! The dependency map in DynamoDB (see `vigie_domain::dependency`): one link item per child in
//! its tenant's partition (`PARENT#<child>` → `parent_id`), read whole in one query when the map
//! changes and one item at a time by the sweeper; a version item moved by every change, so two
//! concurrent changes checked against the same map cannot both land (and make a cycle); the
//! alerts suppressed behind a parent's alert (`SUPPRESSED#<parent alert>#<child alert>`).
//!
//! Links are items of their own rather than attributes of the device identity record: the
//! identity record is rewritten by the intake path, and the map must be readable per tenant.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use vigie_domain::alert::AlertEvent;
use vigie_domain::dependency::DependencyMap;
use vigie_domain::device::HEARTBEAT_SLOT_MS;
use vigie_domain::ids::{DeviceId, TenantId};
use vigie_domain::keys::{TenantKeys, heartbeat_entry};
use vigie_domain::ports::StoreError;

use crate::item::{ItemBuilder, ItemExt, Range, key_of, query_all, unavailable};
use crate::usage::{Transacted, transact};

#[derive(Debug, Clone)]
pub struct DynamoDependencies {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

/// The tenant's map and the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedMap {
    pub map: DependencyMap,
    pub version: u64,
}

/// A child alert attached to a parent's alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressedAlert {
    pub alert_id: String,
    pub device_id: String,
    pub rule_id: String,
    pub at_ms: i64,
}

impl DynamoDependencies {
    /// The whole map of `tenant` (one query) and its version (one read).
    pub async fn map(&self, tenant: &TenantId) -> Result<VersionedMap, StoreError> {
        let keys = TenantKeys::new(tenant);
        let version = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&keys.dependency_map_version())))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item
            .map(|i| i.number::<u64>("version"))
            .transpose()?
            .unwrap_or(0);
        let (pk, prefix) = keys.device_parents_prefix();
        let links = query_all(&self.client, &self.table, false, &pk, Range::Prefix(prefix))
            .await?
            .iter()
            .map(|item| {
                Ok((
                    item.parsed("device_id", DeviceId::parse)?,
                    item.parsed("parent_id", DeviceId::parse)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(VersionedMap {
            map: DependencyMap::new(links),
            version,
        })
    }

    /// Sets (`Some`) or removes (`None`) the parent of `child`, only if the map is still at
    /// `version`. False when it moved meanwhile: read and check again.
    pub async fn set_parent(
        &self,
        tenant: &TenantId,
        child: &DeviceId,
        parent: Option<&DeviceId>,
        version: u64,
    ) -> Result<bool, StoreError> {
        let keys = TenantKeys::new(tenant);
        let bump = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&keys.dependency_map_version())))
            .update_expression("SET version = :next, kind = :kind, tenant_id = :tenant")
            .condition_expression("attribute_not_exists(pk) OR version = :read")
            .expression_attribute_values(":next", AttributeValue::N((version + 1).to_string()))
            .expression_attribute_values(":read", AttributeValue::N(version.to_string()))
            .expression_attribute_values(":kind", AttributeValue::S("dependency_map".into()))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.to_string()))
            .build()
            .map_err(unavailable)?;
        let link_key = keys.device_parent(child);
        let link = match parent {
            Some(parent) => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(
                            ItemBuilder::keyed(&link_key)
                                .s("kind", "device_parent")
                                .s("tenant_id", tenant.as_str())
                                .s("device_id", child.as_str())
                                .s("parent_id", parent.as_str())
                                .build(),
                        ))
                        .build()
                        .map_err(unavailable)?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_of(&link_key)))
                        .build()
                        .map_err(unavailable)?,
                )
                .build(),
        };
        let items = vec![TransactWriteItem::builder().update(bump).build(), link];
        Ok(matches!(
            transact(&self.client, items).await?,
            Transacted::Committed
        ))
    }

    /// The child alerts attached to `parent_alert_id`, by child alert id.
    pub async fn suppressed(
        &self,
        tenant: &TenantId,
        parent_alert_id: &str,
    ) -> Result<Vec<SuppressedAlert>, StoreError> {
        let (pk, prefix) = TenantKeys::new(tenant).suppressed_alerts_prefix(parent_alert_id);
        query_all(&self.client, &self.table, false, &pk, Range::Prefix(prefix))
            .await?
            .iter()
            .map(|item| {
                Ok(SuppressedAlert {
                    alert_id: item.string("alert_id")?.to_owned(),
                    device_id: item.string("device_id")?.to_owned(),
                    rule_id: item.string("rule_id")?.to_owned(),
                    at_ms: item.number("at_ms")?,
                })
            })
            .collect()
    }

    /// The parent of `child`, if any (one read).
    pub async fn parent(
        &self,
        tenant: &TenantId,
        child: &DeviceId,
    ) -> Result<Option<DeviceId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).device_parent(child))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|i| i.parsed("parent_id", DeviceId::parse))
            .transpose()
    }

    /// Records `child`'s alert as attached to `parent_alert_id` (idempotent: keyed by both).
    pub async fn attach(
        &self,
        parent_alert_id: &str,
        child: &AlertEvent,
    ) -> Result<(), StoreError> {
        let key =
            TenantKeys::new(&child.tenant_id).suppressed_alert(parent_alert_id, &child.alert_id);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(
                ItemBuilder::keyed(&key)
                    .s("kind", "suppressed_alert")
                    .s("tenant_id", child.tenant_id.as_str())
                    .s("alert_id", &child.alert_id)
                    .s("device_id", child.device_id.as_str())
                    .s("rule_id", &child.rule_id)
                    .n("at_ms", child.at_ms)
                    .build(),
            ))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Puts a heartbeat entry for `device` in the slot of `at_ms`: the sweeper reads it once
    /// that slot has passed and looks at the device again.
    pub async fn recheck(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let slot = at_ms - at_ms.rem_euclid(HEARTBEAT_SLOT_MS);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(
                ItemBuilder::keyed(&heartbeat_entry(slot, tenant, device))
                    .s("kind", "heartbeat")
                    .s("tenant_id", tenant.as_str())
                    .s("device_id", device.as_str())
                    .build(),
            ))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
