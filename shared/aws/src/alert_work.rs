//! Alerts as people work them: the evaluator's current records, and the human side of each
//! episode (acknowledgement, assignee, comments, manual resolution, the escalation running on
//! it) with optimistic versions.
//!
//! The escalation timer index: an episode whose escalation has something due carries
//! `gsi1pk = ESCDUE#<shard>`, `gsi1sk = <due ms, 15 digits>#…` (see
//! `TenantKeys::escalation_timer`), written in the same `PutItem` as the episode, so a timer
//! can never disagree with the escalation it belongs to; an episode with nothing due has no
//! index attributes and costs the sweeper nothing. The sweeper asks each shard for
//! `gsi1sk <= now`: it reads what is due, never what is merely pending.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::ids::TenantId;
use vigie_domain::keys::{
    ESCALATION_SHARDS, TenantKeys, escalation_timer_bound, escalation_timer_partition,
};
use vigie_domain::ports::StoreError;
use vigie_domain::workflow::AlertWork;

use crate::item::{ItemBuilder, ItemExt, key_of, query_prefix, unavailable};

#[derive(Debug, Clone)]
pub struct DynamoAlertWork {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl DynamoAlertWork {
    /// The tenant's current alert records (one per alert identity), as JSON.
    pub async fn records(&self, tenant: &TenantId) -> Result<Vec<serde_json::Value>, StoreError> {
        query_prefix(
            &self.client,
            &self.table,
            TenantKeys::new(tenant).alerts_prefix(),
        )
        .await?
        .iter()
        .map(|item| serde_json::from_str(item.string("record")?).map_err(corrupt))
        .collect()
    }

    /// The human side of an episode and its version (0: nothing yet).
    pub async fn work(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        opened_ms: i64,
    ) -> Result<(AlertWork, u64), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(
                &TenantKeys::new(tenant).alert_work(alert_id, opened_ms),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item {
            None => Ok((AlertWork::default(), 0)),
            Some(item) => Ok((
                serde_json::from_str(item.string("work")?).map_err(corrupt)?,
                item.number("version")?,
            )),
        }
    }

    /// Stores `work` if the stored version is still `read_version`; `false` when someone
    /// changed it in between (read again and retry).
    pub async fn save(
        &self,
        tenant: &TenantId,
        alert_id: &str,
        opened_ms: i64,
        work: &AlertWork,
        read_version: u64,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(work).map_err(corrupt)?;
        let keys = TenantKeys::new(tenant);
        let mut builder = ItemBuilder::keyed(&keys.alert_work(alert_id, opened_ms));
        if let Some(due) = work.escalation.as_ref().and_then(|e| e.timer_ms()) {
            builder = builder.index(&keys.escalation_timer(alert_id, opened_ms, due));
        }
        let item = builder
            .s("kind", "alert_work")
            .s("tenant_id", tenant.as_str())
            .s("alert_id", alert_id)
            .n("opened_ms", opened_ms)
            .n("version", read_version + 1)
            .s("work", json)
            .build();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put = if read_version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :read")
                .expression_attribute_values(":read", AttributeValue::N(read_version.to_string()))
        };
        crate::item::applied(put.send().await)
    }

    /// Episodes whose escalation timer is due at or before `due_by_ms`, oldest first per
    /// shard, as the index holds them (eventually consistent: the version decides). At most
    /// `limit` (the sweep's budget; the rest waits for the next sweep).
    pub async fn due_timers(
        &self,
        due_by_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueEpisode>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..ESCALATION_SHARDS {
            let mut start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name("gsi1")
                    .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :due")
                    .expression_attribute_values(
                        ":pk",
                        AttributeValue::S(escalation_timer_partition(shard)),
                    )
                    .expression_attribute_values(
                        ":due",
                        AttributeValue::S(escalation_timer_bound(due_by_ms)),
                    )
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in page.items() {
                    out.push(DueEpisode::of(item)?);
                }
                start = page.last_evaluated_key;
                if start.is_none() || out.len() >= limit {
                    break;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        out.sort_by_key(|e| e.due_ms);
        out.truncate(limit);
        Ok(out)
    }
}

/// An episode found in the escalation timer index.
#[derive(Debug, Clone)]
pub struct DueEpisode {
    pub tenant: TenantId,
    pub alert_id: String,
    pub opened_ms: i64,
    pub due_ms: i64,
    pub work: AlertWork,
    pub version: u64,
}

impl DueEpisode {
    fn of(item: &crate::item::Item) -> Result<Self, StoreError> {
        let due = item.string("gsi1sk")?;
        let due_ms = due
            .split('#')
            .next()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| corrupt("escalation timer without a due time"))?;
        Ok(Self {
            tenant: item.parsed("tenant_id", TenantId::parse)?,
            alert_id: item.string("alert_id")?.to_owned(),
            opened_ms: item.number("opened_ms")?,
            due_ms,
            work: serde_json::from_str(item.string("work")?).map_err(corrupt)?,
            version: item.number("version")?,
        })
    }
}
