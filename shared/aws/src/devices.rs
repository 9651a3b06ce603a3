//! Device identity records in DynamoDB.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use vigie_domain::device::{Device, DeviceStatus, heartbeat_slot};
use vigie_domain::enrollment::Placement;
use vigie_domain::ids::{ClientId, DeviceId, EnrollmentTokenId, SiteId, TenantId};
use vigie_domain::keys::{TenantKeys, device_identity, heartbeat_entry};
use vigie_domain::ports::{DeviceRegistry, SequenceOutcome, StoreError};
use vigie_domain::protocol::AgentConfig;
use vigie_domain::signing::DevicePublicKey;
use vigie_domain::telemetry::{CollectorState, CollectorStatus};
use vigie_domain::usage::{BatchUsage, Day, DeviceUsage, plan_batch};

use crate::item::{Item, ItemBuilder, ItemExt, Range, applied, key_of, query_all, unavailable};

/// Devices in the Vigie table.
#[derive(Debug, Clone)]
pub struct DynamoDevices {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

/// Collector statuses as one map attribute, keyed by collector:
/// `{smart: {state: "missing_tool", detail: "…", at_ms: 1790000000000}}`.
fn collectors_value(statuses: &[CollectorStatus]) -> AttributeValue {
    AttributeValue::M(
        statuses
            .iter()
            .map(|c| {
                let mut m = ItemBuilder::default()
                    .s("state", c.state.as_str())
                    .n("at_ms", c.at_ms);
                if let Some(d) = &c.detail {
                    m = m.s("detail", d);
                }
                (c.collector.clone(), AttributeValue::M(m.build()))
            })
            .collect(),
    )
}

fn collectors_from_item(item: &Item) -> Result<Vec<CollectorStatus>, StoreError> {
    let Some(value) = item.get("collectors") else {
        return Ok(Vec::new());
    };
    let AttributeValue::M(map) = value else {
        return Err(StoreError::Corrupt(
            "attribute collectors: not a map".into(),
        ));
    };
    let mut statuses = map
        .iter()
        .map(|(name, v)| {
            let AttributeValue::M(m) = v else {
                return Err(StoreError::Corrupt(format!(
                    "attribute collectors.{name}: not a map"
                )));
            };
            Ok(CollectorStatus {
                collector: name.clone(),
                state: m.parsed("state", |s| {
                    serde_json::from_value::<CollectorState>(serde_json::Value::String(s.into()))
                })?,
                detail: m
                    .contains_key("detail")
                    .then(|| m.string("detail").map(str::to_owned))
                    .transpose()?,
                at_ms: m.number("at_ms")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    statuses.sort_by(|a, b| a.collector.cmp(&b.collector));
    Ok(statuses)
}

pub(crate) fn device_item(d: &Device) -> Item {
    let p = &d.placement;
    let builder = ItemBuilder::keyed(&device_identity(&d.id))
        .index(&TenantKeys::new(&p.tenant).device_index(&p.client, &p.site, &d.id))
        .s("kind", "device")
        .s("device_id", d.id.as_str())
        .s("tenant_id", p.tenant.as_str())
        .s("client_id", p.client.as_str())
        .s("site_id", p.site.as_str())
        .s("public_key", d.public_key.to_base64())
        .s("status", d.status.as_str())
        .s("hostname", &d.hostname)
        .s("os", &d.os)
        .s("agent_version", &d.agent_version)
        .n("enrolled_ms", d.enrolled_ms)
        .s("enrolled_with", d.enrolled_with.as_str())
        .n("last_seq", d.last_seq)
        .n("last_seen_ms", d.last_seen_ms)
        .n("sample_interval_s", d.config.sample_interval_s)
        .n("send_interval_s", d.config.send_interval_s)
        .n("heartbeat_s", d.config.heartbeat_s)
        .n("rate_window_ms", d.rate_window_ms)
        .n("rate_count", d.rate_count)
        .string_map("tags", &d.tags)
        .n("heartbeat_slot_ms", d.heartbeat_slot_ms);
    let mut item = match d.usage.day {
        Some(day) => builder
            .s("usage_day", day.to_string())
            .n("usage_batches", d.usage.batches)
            .n("usage_bytes", d.usage.bytes)
            .build(),
        None => builder.build(),
    };
    if !d.collectors.is_empty() {
        item.insert("collectors".into(), collectors_value(&d.collectors));
    }
    if let Some(plan) = plan_value(&d.config.collect) {
        item.insert("collect_plan".into(), plan);
    }
    item
}

/// The device's own collection plan (services, backup jobs, certificates it must watch) as
/// a JSON document attribute; `None` when empty.
fn plan_value(plan: &vigie_domain::protocol::CollectPlan) -> Option<AttributeValue> {
    if plan.is_empty() {
        return None;
    }
    serde_json::to_string(plan).ok().map(AttributeValue::S)
}

fn plan_from_item(item: &Item) -> Result<vigie_domain::protocol::CollectPlan, StoreError> {
    if !item.contains_key("collect_plan") {
        return Ok(Default::default());
    }
    item.parsed("collect_plan", |s| serde_json::from_str(s))
}

pub(crate) fn device_from_item(item: &Item) -> Result<Device, StoreError> {
    Ok(Device {
        id: item.parsed("device_id", DeviceId::parse)?,
        placement: Placement {
            tenant: item.parsed("tenant_id", TenantId::parse)?,
            client: item.parsed("client_id", ClientId::parse)?,
            site: item.parsed("site_id", SiteId::parse)?,
        },
        public_key: item.parsed("public_key", DevicePublicKey::from_base64)?,
        status: item.parsed("status", |s| DeviceStatus::parse(s).ok_or("unknown status"))?,
        hostname: item.string("hostname")?.to_owned(),
        os: item.string("os")?.to_owned(),
        agent_version: item.string("agent_version")?.to_owned(),
        enrolled_ms: item.number("enrolled_ms")?,
        enrolled_with: item.parsed("enrolled_with", EnrollmentTokenId::parse)?,
        last_seq: item.number("last_seq")?,
        last_seen_ms: item.number("last_seen_ms")?,
        config: AgentConfig {
            sample_interval_s: item.number("sample_interval_s")?,
            send_interval_s: item.number("send_interval_s")?,
            heartbeat_s: item.number("heartbeat_s")?,
            collect: plan_from_item(item)?,
        },
        rate_window_ms: item.number_or("rate_window_ms", 0)?,
        rate_count: item.number_or("rate_count", 0)?,
        tags: item.string_map("tags")?,
        heartbeat_slot_ms: item.number_or("heartbeat_slot_ms", 0)?,
        usage: DeviceUsage {
            day: item
                .contains_key("usage_day")
                .then(|| item.parsed("usage_day", Day::parse))
                .transpose()?,
            batches: item.number_or("usage_batches", 0)?,
            bytes: item.number_or("usage_bytes", 0)?,
        },
        collectors: collectors_from_item(item)?,
    })
}

impl DynamoDevices {
    async fn read(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&device_identity(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item.as_ref().map(device_from_item).transpose()
    }

    /// The tenant's devices, optionally narrowed to a client company and site. Reads only the
    /// tenant's own index partition.
    pub async fn list(
        &self,
        tenant: &TenantId,
        client: Option<&ClientId>,
        site: Option<&SiteId>,
    ) -> Result<Vec<Device>, StoreError> {
        let (pk, prefix) = TenantKeys::new(tenant).devices_query(client, site);
        query_all(&self.client, &self.table, true, &pk, Range::Prefix(prefix))
            .await?
            .iter()
            .map(device_from_item)
            .collect()
    }

    /// Sets the configuration a device of `tenant` gets (intervals, heartbeat, its own
    /// collection plan). A device of another tenant is reported as not found.
    pub async fn set_config(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        config: &vigie_domain::protocol::AgentConfig,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&device_identity(id))));
        update = match plan_value(&config.collect) {
            Some(plan) => update
                .update_expression(
                    "SET sample_interval_s = :a, send_interval_s = :b, heartbeat_s = :c, \
                     collect_plan = :plan",
                )
                .expression_attribute_values(":plan", plan),
            None => update.update_expression(
                "SET sample_interval_s = :a, send_interval_s = :b, heartbeat_s = :c \
                 REMOVE collect_plan",
            ),
        };
        let result = update
            .condition_expression("attribute_exists(pk) AND tenant_id = :tenant")
            .expression_attribute_values(
                ":a",
                AttributeValue::N(config.sample_interval_s.to_string()),
            )
            .expression_attribute_values(
                ":b",
                AttributeValue::N(config.send_interval_s.to_string()),
            )
            .expression_attribute_values(":c", AttributeValue::N(config.heartbeat_s.to_string()))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .send()
            .await;
        applied(result)
    }

    /// A device of `tenant`; a device of another tenant is not found.
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
    ) -> Result<Option<Device>, StoreError> {
        Ok(self
            .read(id)
            .await?
            .filter(|d| &d.placement.tenant == tenant))
    }

    /// Moves a device of `tenant` to another client company and site (its index entry moves
    /// with it). A device of another tenant is not found (`false`).
    pub async fn move_to(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        client: &ClientId,
        site: &SiteId,
    ) -> Result<bool, StoreError> {
        let index = TenantKeys::new(tenant).device_index(client, site, id);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&device_identity(id))))
            .update_expression("SET client_id = :client, site_id = :site, gsi1sk = :sk")
            .condition_expression("attribute_exists(pk) AND tenant_id = :tenant")
            .expression_attribute_values(":client", AttributeValue::S(client.as_str().into()))
            .expression_attribute_values(":site", AttributeValue::S(site.as_str().into()))
            .expression_attribute_values(":sk", AttributeValue::S(index.gsi1sk))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .send()
            .await;
        applied(result)
    }

    /// Replaces the tags of a device of `tenant` (validated by the caller).
    pub async fn set_tags(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        tags: &vigie_domain::device::Tags,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&device_identity(id))))
            .condition_expression("attribute_exists(pk) AND tenant_id = :tenant")
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()));
        update = if tags.is_empty() {
            update.update_expression("REMOVE tags")
        } else {
            update
                .update_expression("SET tags = :tags")
                .expression_attribute_values(
                    ":tags",
                    AttributeValue::M(
                        tags.iter()
                            .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                            .collect(),
                    ),
                )
        };
        applied(update.send().await)
    }

    /// Revokes an active device of `tenant`. A device of another tenant, or one already
    /// revoked, is reported as not found (`false`).
    pub async fn revoke(&self, tenant: &TenantId, id: &DeviceId) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&device_identity(id))))
            .update_expression("SET #status = :revoked")
            .condition_expression(
                "attribute_exists(pk) AND tenant_id = :tenant AND #status = :active",
            )
            .expression_attribute_values(
                ":active",
                AttributeValue::S(DeviceStatus::Active.as_str().into()),
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":revoked",
                AttributeValue::S(DeviceStatus::Revoked.as_str().into()),
            )
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
            .send()
            .await;
        if !applied(result)? {
            return Ok(false);
        }
        // A revoked device frees its place in the plan (once: the revoke above only succeeds
        // on an active device; a count already at zero stays there).
        applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(&TenantKeys::new(tenant).device_count())))
                .update_expression("ADD device_count :minus")
                .condition_expression("device_count > :zero")
                .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .send()
                .await,
        )?;
        Ok(true)
    }
}

pub(crate) fn is_conditional_failure<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        R,
    >,
) -> bool {
    e.as_service_error()
        .is_some_and(|s| s.is_conditional_check_failed_exception())
}

impl DeviceRegistry for DynamoDevices {
    async fn device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.read(id).await
    }

    async fn record_batch(
        &self,
        device: &Device,
        seq: u64,
        wire_bytes: u64,
        now_ms: i64,
    ) -> Result<SequenceOutcome, StoreError> {
        self.record_batch_observed(device, seq, wire_bytes, now_ms, &[])
            .await
    }

    async fn record_batch_observed(
        &self,
        device: &Device,
        seq: u64,
        wire_bytes: u64,
        now_ms: i64,
        collectors: &[CollectorStatus],
    ) -> Result<SequenceOutcome, StoreError> {
        let mut current = std::borrow::Cow::Borrowed(device);
        for _ in 0..ATTEMPTS {
            if self
                .try_record(&current, seq, wire_bytes, now_ms, collectors)
                .await?
            {
                return Ok(SequenceOutcome::Recorded);
            }
            match self.read(&device.id).await? {
                Some(d) if d.status == DeviceStatus::Revoked => {
                    return Ok(SequenceOutcome::Revoked);
                }
                Some(d) if d.last_seq >= seq => {
                    return Ok(SequenceOutcome::AlreadyAccepted { last: d.last_seq });
                }
                // Only its usage day (or heartbeat slot) changed under us: a batch of the same
                // device or the daily close job. Again, over the fresh record.
                Some(d) => current = std::borrow::Cow::Owned(d),
                None => return Ok(SequenceOutcome::Revoked),
            }
        }
        Err(StoreError::Unavailable(format!(
            "device {} kept changing while batch {seq} was recorded",
            device.id
        )))
    }
}

/// How many times recording a batch is tried over a fresh read of the device.
const ATTEMPTS: usize = 5;

impl DynamoDevices {
    /// One attempt at recording a batch over the device as read: true when recorded, false
    /// when a condition failed (replayed, revoked, or the record changed meanwhile).
    ///
    /// The usual batch is one conditional `UpdateItem`. The first batch of a device's day, and a
    /// batch whose heartbeat due time moves to another slot, is one `TransactWriteItems`: the
    /// same update plus the usage hand-over / open-day entry and the heartbeat entry moves.
    /// Collector statuses the batch carries are merged over the record as read and set in
    /// the same update (its condition on `last_seq` keeps a stale merge from landing).
    async fn try_record(
        &self,
        device: &Device,
        seq: u64,
        wire_bytes: u64,
        now_ms: i64,
        collectors: &[CollectorStatus],
    ) -> Result<bool, StoreError> {
        let window = now_ms - now_ms.rem_euclid(60_000);
        let count = if window == device.rate_window_ms {
            device.rate_count.saturating_add(1)
        } else {
            1
        };
        let slot = heartbeat_slot(now_ms, device.config.heartbeat_s);
        let mut values = vec![
            (":seq", AttributeValue::N(seq.to_string())),
            (":now", AttributeValue::N(now_ms.to_string())),
            (":window", AttributeValue::N(window.to_string())),
            (":count", AttributeValue::N(count.to_string())),
            (":slot", AttributeValue::N(slot.to_string())),
            (
                ":active",
                AttributeValue::S(DeviceStatus::Active.as_str().into()),
            ),
            (":one", AttributeValue::N("1".into())),
            (":bytes", AttributeValue::N(wire_bytes.to_string())),
        ];
        let mut set = String::from(
            "SET last_seq = :seq, last_seen_ms = :now, rate_window_ms = :window, \
             rate_count = :count, heartbeat_slot_ms = :slot",
        );
        if !collectors.is_empty() {
            set.push_str(", collectors = :collectors");
            values.push((
                ":collectors",
                collectors_value(&device.merged_collectors(collectors)),
            ));
        }
        let mut condition = String::from("#status = :active AND last_seq < :seq");
        let mut others: Vec<TransactWriteItem> = Vec::new();
        match plan_batch(&device.usage, now_ms) {
            BatchUsage::Add { day } => {
                set.push_str(
                    ", usage_batches = usage_batches + :one, usage_bytes = usage_bytes + :bytes",
                );
                condition.push_str(" AND usage_day = :day");
                values.push((":day", AttributeValue::S(day.to_string())));
            }
            BatchUsage::Open {
                day,
                previous,
                previous_batches,
                flush,
            } => {
                set.push_str(", usage_day = :day, usage_batches = :one, usage_bytes = :bytes");
                values.push((":day", AttributeValue::S(day.to_string())));
                match previous {
                    None => condition.push_str(" AND attribute_not_exists(usage_day)"),
                    Some(previous) => {
                        condition.push_str(
                            " AND usage_day = :previous AND usage_batches = :previous_batches",
                        );
                        values.push((":previous", AttributeValue::S(previous.to_string())));
                        values.push((
                            ":previous_batches",
                            AttributeValue::N(previous_batches.to_string()),
                        ));
                    }
                }
                others.push(crate::usage::open_day_entry(&self.table, day, device)?);
                if let Some(finished) = flush {
                    others.extend(crate::usage::hand_over(&self.table, device, &finished)?);
                }
            }
        }
        if slot != device.heartbeat_slot_ms {
            // The due time moved to another slot: move the heartbeat entry with the update.
            let p = &device.placement;
            let entry = ItemBuilder::keyed(&heartbeat_entry(slot, &p.tenant, &device.id))
                .s("kind", "heartbeat")
                .s("tenant_id", p.tenant.as_str())
                .s("device_id", device.id.as_str())
                .build();
            others.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(entry))
                            .build()
                            .map_err(unavailable)?,
                    )
                    .build(),
            );
            if device.heartbeat_slot_ms != 0 {
                let old = heartbeat_entry(device.heartbeat_slot_ms, &p.tenant, &device.id);
                others.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_of(&old)))
                                .build()
                                .map_err(unavailable)?,
                        )
                        .build(),
                );
            }
        }
        if others.is_empty() {
            // The usual case: one conditional update.
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(&device_identity(&device.id))))
                .update_expression(set)
                .condition_expression(condition)
                .expression_attribute_names("#status", "status");
            for (k, v) in values {
                update = update.expression_attribute_values(k, v);
            }
            return applied(update.send().await);
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(&device_identity(&device.id))))
            .update_expression(set)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status");
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .update(update.build().map_err(unavailable)?)
                .build(),
        ];
        items.extend(others);
        Ok(crate::usage::transact(&self.client, items).await?
            == crate::usage::Transacted::Committed)
    }
}
