//! Alert groups (see `vigie_domain::grouping`) in DynamoDB, and their flush messages on the
//! notify queue.
//!
//! A group is one item (`GROUP#<group id>`: members as JSON, their event ids as a string set,
//! `closed`); a pointer item per (site, channel) (`GROUPCUR#<site>#<channel>`) names the current
//! group. Every change is conditional: opening creates the group only if it does not exist and
//! moves the pointer only from the group read; joining appends only to an open group not holding
//! the event yet; the flush closes the group and gets its members in the same write. The flush
//! message is an SQS message to the notify queue delayed by the channel's wait (at most 15
//! minutes, SQS's limit), so no scheduler is needed and a quiet tenant costs nothing.

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use vigie_domain::alert::AlertEvent;
use vigie_domain::grouping::{AlertGroup, AlertGroups, GroupRef};
use vigie_domain::ids::{SiteId, TenantId};
use vigie_domain::keys::TenantKeys;
use vigie_domain::ports::StoreError;

use crate::item::{Item, ItemBuilder, ItemExt, applied, key_of, unavailable};
use crate::usage::{Transacted, transact};

#[derive(Debug, Clone)]
pub struct DynamoAlertGroups {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) queue_url: String,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn group_of(item: &Item) -> Result<AlertGroup, StoreError> {
    let members = match item.get("members") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(s) => serde_json::from_str(s).map_err(corrupt),
                _ => Err(corrupt("a group member is not a string")),
            })
            .collect::<Result<Vec<AlertEvent>, _>>()?,
        _ => Vec::new(),
    };
    Ok(AlertGroup {
        group_id: item.string("group_id")?.to_owned(),
        opened_ms: item.number("opened_ms")?,
        flush_at_ms: item.number("flush_at_ms")?,
        closed: item.boolean("closed")?,
        members,
    })
}

impl DynamoAlertGroups {
    async fn get(&self, key: &vigie_domain::keys::TableKey) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?
            .item)
    }
}

impl AlertGroups for DynamoAlertGroups {
    async fn current(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        channel: &str,
    ) -> Result<Option<AlertGroup>, StoreError> {
        let keys = TenantKeys::new(tenant);
        let Some(pointer) = self.get(&keys.current_group(site, channel)).await? else {
            return Ok(None);
        };
        let id = pointer.string("group_id")?;
        self.get(&keys.alert_group(id))
            .await?
            .as_ref()
            .map(group_of)
            .transpose()
    }

    async fn open(
        &self,
        tenant: &TenantId,
        site: &SiteId,
        channel: &str,
        group: &AlertGroup,
        replacing: Option<&str>,
    ) -> Result<bool, StoreError> {
        let keys = TenantKeys::new(tenant);
        let members: Vec<AttributeValue> = group
            .members
            .iter()
            .map(|m| {
                serde_json::to_string(m)
                    .map(AttributeValue::S)
                    .map_err(corrupt)
            })
            .collect::<Result<_, _>>()?;
        let ids: Vec<String> = group.members.iter().map(|m| m.event_id.clone()).collect();
        let mut item = ItemBuilder::keyed(&keys.alert_group(&group.group_id))
            .s("kind", "alert_group")
            .s("tenant_id", tenant.as_str())
            .s("group_id", &group.group_id)
            .s("site_id", site.as_str())
            .s("channel_id", channel)
            .n("opened_ms", group.opened_ms)
            .n("flush_at_ms", group.flush_at_ms)
            .b("closed", false)
            .build();
        item.insert("members".into(), AttributeValue::L(members));
        item.insert("member_ids".into(), AttributeValue::Ss(ids));
        let create = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        let pointer_item = ItemBuilder::keyed(&keys.current_group(site, channel))
            .s("kind", "alert_group_pointer")
            .s("tenant_id", tenant.as_str())
            .s("group_id", &group.group_id)
            .build();
        let mut pointer = Put::builder()
            .table_name(&self.table)
            .set_item(Some(pointer_item));
        pointer = match replacing {
            None => pointer.condition_expression("attribute_not_exists(pk)"),
            Some(read) => pointer
                .condition_expression("group_id = :read")
                .expression_attribute_values(":read", AttributeValue::S(read.to_owned())),
        };
        let items = vec![
            TransactWriteItem::builder().put(create).build(),
            TransactWriteItem::builder()
                .put(pointer.build().map_err(unavailable)?)
                .build(),
        ];
        Ok(transact(&self.client, items).await? == Transacted::Committed)
    }

    async fn join(
        &self,
        tenant: &TenantId,
        group_id: &str,
        event: &AlertEvent,
    ) -> Result<bool, StoreError> {
        let member = serde_json::to_string(event).map_err(corrupt)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).alert_group(group_id))))
            .update_expression("SET members = list_append(members, :m) ADD member_ids :ids")
            .condition_expression(
                "attribute_exists(pk) AND closed = :open AND NOT contains(member_ids, :eid)",
            )
            .expression_attribute_values(":m", AttributeValue::L(vec![AttributeValue::S(member)]))
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![event.event_id.clone()]))
            .expression_attribute_values(":eid", AttributeValue::S(event.event_id.clone()))
            .expression_attribute_values(":open", AttributeValue::Bool(false))
            .send()
            .await;
        applied(result)
    }

    async fn close(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Option<AlertGroup>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).alert_group(group_id))))
            .update_expression("SET closed = :closed")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":closed", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.as_ref().map(group_of).transpose(),
            Err(e) if crate::devices::is_conditional_failure(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn schedule_flush(&self, flush: &GroupRef, delay_s: u32) -> Result<(), StoreError> {
        let body = serde_json::to_string(&vigie_domain::grouping::FlushMessage {
            group_flush: flush.clone(),
        })
        .map_err(corrupt)?;
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay_s.min(900)).unwrap_or(900))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
