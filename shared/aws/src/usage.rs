//! Usage metering in DynamoDB.
//!
//! * `T#<tenant>` / `USAGE#<yyyy-mm-dd>#<client>`: what a client company used on a day. Only
//!   ever changed by `ADD` inside the transaction that does the work being counted (a device
//!   handing over its finished day, an evaluator commit opening alerts, a delivery recorded
//!   delivered), each conditioned so it happens once.
//! * `T#<tenant>` / `USAGECLOSED#<yyyy-mm>`: a closed month's summary, written once
//!   (`attribute_not_exists`), served from then on.
//! * `USAGEOPEN#<day>` / `<tenant>#<device>`: devices whose counting day is not handed over yet
//!   (the daily close job reads the days that ended).
//! * `USAGEMONTH#<yyyy-mm>` / `<tenant>`: tenants with usage in a month (whom to close).
//!
//! Platform-wide usage (every tenant, for the operator) is not here yet: it would read the
//! `USAGEMONTH#` partition, then each tenant's closed summary.

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use vigie_domain::device::Device;
use vigie_domain::ids::{ClientId, DeviceId, TenantId};
use vigie_domain::keys::{
    TenantKeys, device_identity, usage_month_partition, usage_month_tenant, usage_open_entry,
    usage_open_partition,
};
use vigie_domain::ports::{FlushOutcome, MonthUsage, OpenUsageDay, StoreError, UsageLedger};
use vigie_domain::usage::{
    Day, FinishedDay, Month, Period, UsageCounters, UsageRow, by_month, with_totals,
};

use crate::item::{Item, ItemBuilder, ItemExt, delete_key, key_of, unavailable};

/// How many times a transaction that lost a race is tried again with fresh reads.
const ATTEMPTS: usize = 5;

#[derive(Debug, Clone)]
pub struct DynamoUsage {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transacted {
    Committed,
    /// A condition failed (the reasons name `ConditionalCheckFailed`).
    ConditionFailed,
    /// Cancelled for another reason (a concurrent transaction on one of the items).
    Conflict,
}

/// Runs a transaction, telling a failed condition from a conflict.
pub(crate) async fn transact(
    client: &aws_sdk_dynamodb::Client,
    items: Vec<TransactWriteItem>,
) -> Result<Transacted, StoreError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => Ok(Transacted::Committed),
        Err(e) => match e.as_service_error() {
            Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                let condition = c
                    .cancellation_reasons()
                    .iter()
                    .any(|r| r.code() == Some("ConditionalCheckFailed"));
                Ok(if condition {
                    Transacted::ConditionFailed
                } else {
                    Transacted::Conflict
                })
            }
            _ => Err(unavailable(e)),
        },
    }
}

fn tx_update(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .update(update.build().map_err(unavailable)?)
        .build())
}

fn tx_put(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .map_err(unavailable)?,
        )
        .build())
}

fn tx_delete(table: &str, key: Item) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key))
                .build()
                .map_err(unavailable)?,
        )
        .build())
}

/// The transaction items that count `counters` in the usage of (tenant, client, day): an `ADD`
/// to the usage item, and the tenant's entry in the month's list. Nothing when all are zero.
pub(crate) fn count_usage(
    table: &str,
    tenant: &TenantId,
    client: &ClientId,
    day: Day,
    counters: &UsageCounters,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let nonzero = counters.nonzero();
    if nonzero.is_empty() {
        return Ok(Vec::new());
    }
    let adds: Vec<String> = nonzero
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("{name} :v{i}"))
        .collect();
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(key_of(
            &TenantKeys::new(tenant).usage_day(day, client),
        )))
        .update_expression(format!(
            "ADD {} SET kind = :kind, tenant_id = :tenant, client_id = :client, usage_day = :day",
            adds.join(", ")
        ))
        .expression_attribute_values(":kind", AttributeValue::S("usage".into()))
        .expression_attribute_values(":tenant", AttributeValue::S(tenant.as_str().into()))
        .expression_attribute_values(":client", AttributeValue::S(client.as_str().into()))
        .expression_attribute_values(":day", AttributeValue::S(day.to_string()));
    for (i, (_, value)) in nonzero.iter().enumerate() {
        update = update
            .expression_attribute_values(format!(":v{i}"), AttributeValue::N(value.to_string()));
    }
    let month = ItemBuilder::keyed(&usage_month_tenant(day.month(), tenant))
        .s("kind", "usage_month_tenant")
        .s("tenant_id", tenant.as_str())
        .build();
    Ok(vec![tx_update(update)?, tx_put(table, month)?])
}

/// The device's entry in the open list of `day`.
pub(crate) fn open_day_entry(
    table: &str,
    day: Day,
    device: &Device,
) -> Result<TransactWriteItem, StoreError> {
    let tenant = &device.placement.tenant;
    let item = ItemBuilder::keyed(&usage_open_entry(day, tenant, &device.id))
        .s("kind", "usage_open")
        .s("tenant_id", tenant.as_str())
        .s("device_id", device.id.as_str())
        .build();
    tx_put(table, item)
}

/// Hands a device's finished day over: counts it in the usage item and removes the device from
/// the day's open list. The caller adds the device update whose condition makes it happen once.
pub(crate) fn hand_over(
    table: &str,
    device: &Device,
    finished: &FinishedDay,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let p = &device.placement;
    let mut items = count_usage(
        table,
        &p.tenant,
        &p.client,
        finished.day,
        &finished.counters(),
    )?;
    items.push(tx_delete(
        table,
        key_of(&usage_open_entry(finished.day, &p.tenant, &device.id)),
    )?);
    Ok(items)
}

fn counters_of(item: &Item) -> Result<UsageCounters, StoreError> {
    let mut values = [0u64; 8];
    for (v, name) in values.iter_mut().zip(UsageCounters::FIELDS) {
        *v = item.number_or(name, 0)?;
    }
    Ok(UsageCounters::from_values(values))
}

fn day_row(item: &Item) -> Result<UsageRow, StoreError> {
    Ok(UsageRow {
        tenant: item.parsed("tenant_id", TenantId::parse)?,
        client: item.parsed("client_id", ClientId::parse)?.to_string(),
        period: Period::Day(item.parsed("usage_day", Day::parse)?),
        counters: counters_of(item)?,
    })
}

impl DynamoUsage {
    async fn query(
        &self,
        pk: String,
        condition: &str,
        values: &[(&str, String)],
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            for (k, v) in values {
                q = q.expression_attribute_values(*k, AttributeValue::S(v.clone()));
            }
            let page = q.send().await.map_err(unavailable)?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Day rows of `from..=to` (UTC days): one per client company and day with usage, and a
    /// tenant total (client `*`) per day. One query on the tenant's partition.
    pub async fn day_rows(
        &self,
        tenant: &TenantId,
        from: Day,
        to: Day,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let (pk, lo, hi) = TenantKeys::new(tenant).usage_days_range(from, to);
        let items = self
            .query(
                pk,
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                &[(":lo", lo), (":hi", hi)],
            )
            .await?;
        let rows = items.iter().map(day_row).collect::<Result<Vec<_>, _>>()?;
        Ok(with_totals(&rows))
    }

    /// The month per client company and in total: its closed summary once closed, else summed
    /// from the day items (one query on the tenant's partition).
    pub async fn month_rows(
        &self,
        tenant: &TenantId,
        month: Month,
    ) -> Result<MonthUsage, StoreError> {
        if let Some(rows) = self.closed_summary(tenant, month).await? {
            return Ok(MonthUsage { closed: true, rows });
        }
        Ok(MonthUsage {
            closed: false,
            rows: self.live_month(tenant, month).await?,
        })
    }

    async fn live_month(
        &self,
        tenant: &TenantId,
        month: Month,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let (pk, prefix) = TenantKeys::new(tenant).usage_month_prefix(month);
        let items = self
            .query(
                pk,
                "pk = :pk AND begins_with(sk, :prefix)",
                &[(":prefix", prefix)],
            )
            .await?;
        let rows = items.iter().map(day_row).collect::<Result<Vec<_>, _>>()?;
        Ok(by_month(&rows))
    }

    async fn closed_summary(
        &self,
        tenant: &TenantId,
        month: Month,
    ) -> Result<Option<Vec<UsageRow>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(
                &TenantKeys::new(tenant).usage_closed_month(month),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| {
                serde_json::from_str(item.string("rows")?)
                    .map_err(|e| StoreError::Corrupt(format!("usage summary: {e}")))
            })
            .transpose()
    }

    /// Adds `counters` to the usage of (tenant, client, day) outside any other write. Only for
    /// corrections and tests: every counter of the product is added by the transaction of the
    /// work it counts.
    pub async fn add(
        &self,
        tenant: &TenantId,
        client: &ClientId,
        day: Day,
        counters: &UsageCounters,
    ) -> Result<(), StoreError> {
        let items = count_usage(&self.table, tenant, client, day, counters)?;
        if items.is_empty() {
            return Ok(());
        }
        match transact(&self.client, items).await? {
            Transacted::Committed => Ok(()),
            _ => Err(StoreError::Unavailable("usage item busy".into())),
        }
    }

    async fn remove_open(&self, entry: &OpenUsageDay) -> Result<(), StoreError> {
        let key = usage_open_entry(entry.day, &entry.tenant, &entry.device);
        delete_key(&self.client, &self.table, &key).await
    }
}

impl UsageLedger for DynamoUsage {
    async fn open_days(&self, day: Day) -> Result<Vec<OpenUsageDay>, StoreError> {
        let items = self
            .query(usage_open_partition(day), "pk = :pk", &[])
            .await?;
        items
            .iter()
            .map(|item| {
                Ok(OpenUsageDay {
                    day,
                    tenant: item.parsed("tenant_id", TenantId::parse)?,
                    device: item.parsed("device_id", DeviceId::parse)?,
                })
            })
            .collect()
    }

    async fn flush(&self, entry: &OpenUsageDay, today: Day) -> Result<FlushOutcome, StoreError> {
        for _ in 0..ATTEMPTS {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key_of(&device_identity(&entry.device))))
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            let device = match out
                .item
                .as_ref()
                .map(crate::devices::device_from_item)
                .transpose()?
            {
                Some(d) if d.placement.tenant == entry.tenant => d,
                _ => {
                    self.remove_open(entry).await?;
                    return Ok(FlushOutcome::AlreadyFlushed);
                }
            };
            let finished = match device.usage.unflushed() {
                Some(f) if f.day == entry.day && f.day < today => f,
                // Still the device's day: not finished, the entry stays.
                Some(f) if f.day == entry.day => return Ok(FlushOutcome::AlreadyFlushed),
                // The device handed the day over itself (its next batch did).
                _ => {
                    self.remove_open(entry).await?;
                    return Ok(FlushOutcome::AlreadyFlushed);
                }
            };
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(&device_identity(&device.id))))
                .update_expression(
                    "SET usage_day = :today, usage_batches = :zero, usage_bytes = :zero",
                )
                .condition_expression("usage_day = :day AND usage_batches = :batches")
                .expression_attribute_values(":today", AttributeValue::S(today.to_string()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":day", AttributeValue::S(finished.day.to_string()))
                .expression_attribute_values(
                    ":batches",
                    AttributeValue::N(finished.batches.to_string()),
                );
            let mut items = vec![tx_update(update)?];
            items.extend(hand_over(&self.table, &device, &finished)?);
            if transact(&self.client, items).await? == Transacted::Committed {
                return Ok(FlushOutcome::Flushed);
            }
            // A batch of the device (or another close job) changed it: read it again.
        }
        Err(StoreError::Unavailable(format!(
            "device {} kept changing while its day {} was handed over",
            entry.device, entry.day
        )))
    }

    async fn tenants_in(&self, month: Month) -> Result<Vec<TenantId>, StoreError> {
        let items = self
            .query(usage_month_partition(month), "pk = :pk", &[])
            .await?;
        items
            .iter()
            .map(|item| item.parsed("tenant_id", TenantId::parse))
            .collect()
    }

    async fn close_month(
        &self,
        tenant: &TenantId,
        month: Month,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let rows = self.live_month(tenant, month).await?;
        let json = serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let item = ItemBuilder::keyed(&TenantKeys::new(tenant).usage_closed_month(month))
            .s("kind", "usage_closed")
            .s("tenant_id", tenant.as_str())
            .s("month", month.to_string())
            .n("closed_ms", now_ms)
            .s("rows", json)
            .build();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        crate::item::applied(result)
    }
}
