//! Rule states, the event outbox and alert records in DynamoDB.
//!
//! A device's states and outbox share one partition (`T#<tenant>#D#<device>`), so the
//! evaluator reads them with one query. Commits are transactions: each state write is
//! conditioned on the version read; each event lands in the outbox; each alert's record is
//! replaced by its latest state.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use vigie_domain::alert::{AlertEvent, AlertEventKind};
use vigie_domain::ids::{ClientId, DeviceId, TenantId};
use vigie_domain::keys::TenantKeys;
use vigie_domain::maintenance::MaintenanceEffect;
use vigie_domain::policy::RuleId;
use vigie_domain::ports::{
    CommitOutcome, DeviceEvaluationState, EvaluationStore, PendingEvent, StateChange, StoreError,
    Versioned,
};
use vigie_domain::usage::{Day, UsageCounters};

use crate::item::{ItemBuilder, ItemExt, Range, key_of, query_all, unavailable};
use crate::usage::count_usage;

/// DynamoDB's limit of actions in one transaction.
const MAX_TRANSACTION: usize = 100;

#[derive(Debug, Clone)]
pub struct DynamoEvaluation {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn put(
    item: crate::item::Item,
    condition: Option<(&str, Option<u64>)>,
    table: &str,
) -> Result<TransactWriteItem, StoreError> {
    let mut p = Put::builder().table_name(table).set_item(Some(item));
    if let Some((expr, version)) = condition {
        p = p.condition_expression(expr);
        if let Some(v) = version {
            p = p.expression_attribute_values(":read", AttributeValue::N(v.to_string()));
        }
    }
    Ok(TransactWriteItem::builder()
        .put(p.build().map_err(unavailable)?)
        .build())
}

impl DynamoEvaluation {
    fn dependencies(&self) -> crate::dependencies::DynamoDependencies {
        crate::dependencies::DynamoDependencies {
            client: self.client.clone(),
            table: self.table.clone(),
        }
    }

    /// The tenant's current record of an alert, as JSON (for tests and, later, the API).
    pub async fn alert(
        &self,
        tenant: &TenantId,
        alert_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&TenantKeys::new(tenant).alert(alert_id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| serde_json::from_str(item.string("record")?).map_err(corrupt))
            .transpose()
    }
}

impl DynamoEvaluation {
    /// The tenant's alert episodes opened in `[from_ms, to_ms)`, oldest first, as JSON.
    pub async fn episodes(
        &self,
        tenant: &TenantId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let (pk, lo, hi) = TenantKeys::new(tenant).alert_episodes_range(from_ms, to_ms);
        query_all(
            &self.client,
            &self.table,
            false,
            &pk,
            Range::Between(lo, hi),
        )
        .await?
        .iter()
        .map(|item| serde_json::from_str(item.string("record")?).map_err(corrupt))
        .collect()
    }
}

/// The alert record an event leaves behind.
fn alert_record(e: &AlertEvent) -> serde_json::Value {
    let status = if e.kind == AlertEventKind::Resolved {
        "resolved"
    } else if e.maintenance_effect() == Some(MaintenanceEffect::Hidden) {
        // Known to Vigie, held back by a maintenance window: not an open alert.
        "suppressed"
    } else {
        "open"
    };
    serde_json::json!({
        "alert_id": e.alert_id,
        "status": status,
        "severity": e.severity,
        "sev": e.severity.sev_level(),
        "tenant_id": e.tenant_id,
        "client_id": e.client_id,
        "site_id": e.site_id,
        "device_id": e.device_id,
        "device_name": e.device_name,
        "rule_id": e.rule_id,
        "family": e.family,
        "subject": e.subject,
        "metric": e.metric,
        "value": e.value,
        "threshold": e.threshold,
        "opened_ms": e.opened_ms,
        "updated_ms": e.at_ms,
        "resolved_ms": (e.kind == AlertEventKind::Resolved).then_some(e.at_ms),
        "last_event_id": e.event_id,
        "maintenance": e.maintenance,
        // What happened in words ("nginx is failed (systemd: dead)"), as of this event.
        "detail": e.detail,
    })
}

impl EvaluationStore for DynamoEvaluation {
    async fn load(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
    ) -> Result<DeviceEvaluationState, StoreError> {
        let pk = TenantKeys::new(tenant).device_state_partition(device);
        let mut out = DeviceEvaluationState::default();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                match item.string("kind")? {
                    "rule_state" => {
                        let rule = item.parsed("rule_id", RuleId::parse)?;
                        let subject = item.string("subject")?.to_owned();
                        let state = serde_json::from_str(item.string("state")?).map_err(corrupt)?;
                        out.states.insert(
                            (rule, subject),
                            Versioned {
                                state,
                                version: item.number("version")?,
                            },
                        );
                    }
                    "held" => {
                        let event: AlertEvent =
                            serde_json::from_str(item.string("event")?).map_err(corrupt)?;
                        out.held.insert(event.alert_id.clone(), event);
                    }
                    "outbox" => out.outbox.push(PendingEvent {
                        event: serde_json::from_str(item.string("event")?).map_err(corrupt)?,
                        committed_ms: item.number_or("committed_ms", 0)?,
                    }),
                    _ => {}
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                out.outbox.sort_by_key(|p| p.event.at_ms);
                return Ok(out);
            }
        }
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        changes: &[StateChange],
        events: &[AlertEvent],
        now_ms: i64,
    ) -> Result<CommitOutcome, StoreError> {
        let keys = TenantKeys::new(tenant);
        // Group each state change with the events of its (rule, item) and the alert records
        // they leave; groups are packed into transactions of at most 100 actions.
        let mut groups: Vec<(Vec<TransactWriteItem>, BTreeMap<&ClientId, u64>)> = Vec::new();
        for change in changes {
            let (rule, subject) = &change.key;
            let mut group = Vec::new();
            let version = change.read_version.map_or(1, |v| v + 1);
            let item = ItemBuilder::keyed(&keys.rule_state(device, rule.as_str(), subject))
                .s("kind", "rule_state")
                .s("rule_id", rule.as_str())
                .s("subject", subject)
                .s(
                    "state",
                    serde_json::to_string(&change.state).map_err(corrupt)?,
                )
                .n("version", version)
                .build();
            group.push(match change.read_version {
                None => put(item, Some(("attribute_not_exists(pk)", None)), &self.table)?,
                Some(v) => put(item, Some(("version = :read", Some(v))), &self.table)?,
            });
            let mine: Vec<&AlertEvent> = events
                .iter()
                .filter(|e| e.rule_id == rule.as_str() && &e.subject == subject)
                .collect();
            let mut opened: BTreeMap<&ClientId, u64> = BTreeMap::new();
            for e in mine.iter().filter(|e| {
                e.kind == AlertEventKind::Opened
                    && e.maintenance_effect() != Some(MaintenanceEffect::Hidden)
            }) {
                *opened.entry(&e.client_id).or_default() += 1;
            }
            for e in mine
                .iter()
                .filter(|e| e.maintenance_effect().is_none_or(|m| m.published()))
            {
                let item = ItemBuilder::keyed(&keys.outbox_event(device, &e.event_id))
                    .s("kind", "outbox")
                    .s("event", serde_json::to_string(e).map_err(corrupt)?)
                    .n("committed_ms", now_ms)
                    .build();
                group.push(put(item, None, &self.table)?);
            }
            // One write per alert: its latest record; and its maintenance hold, if the events
            // change it (see `DeviceEvaluationState::held`).
            let mut latest: BTreeMap<&str, &AlertEvent> = BTreeMap::new();
            let mut holds: BTreeMap<&str, Option<&AlertEvent>> = BTreeMap::new();
            for e in mine {
                latest.insert(&e.alert_id, e);
                match e.maintenance_effect() {
                    Some(MaintenanceEffect::Hidden | MaintenanceEffect::Unannounced)
                        if e.kind != AlertEventKind::Resolved =>
                    {
                        holds.insert(&e.alert_id, Some(e));
                    }
                    Some(
                        MaintenanceEffect::Hidden
                        | MaintenanceEffect::Unannounced
                        | MaintenanceEffect::RaisedAfterWindow,
                    ) => {
                        holds.insert(&e.alert_id, None);
                    }
                    _ => {}
                }
            }
            for (alert_id, hold) in holds {
                let key = keys.held_alert(device, alert_id);
                group.push(match hold {
                    Some(e) => {
                        let item = ItemBuilder::keyed(&key)
                            .s("kind", "held")
                            .s("event", serde_json::to_string(e).map_err(corrupt)?)
                            .build();
                        put(item, None, &self.table)?
                    }
                    None => TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.table)
                                .set_key(Some(key_of(&key)))
                                .build()
                                .map_err(unavailable)?,
                        )
                        .build(),
                });
            }
            for e in latest.values() {
                let record = alert_record(e).to_string();
                let item = ItemBuilder::keyed(&keys.alert(&e.alert_id))
                    .s("kind", "alert")
                    .s("tenant_id", tenant.as_str())
                    .s("record", &record)
                    .build();
                group.push(put(item, None, &self.table)?);
                // The episode, kept for the history once the alert record moves on.
                let episode = ItemBuilder::keyed(&keys.alert_episode(e.opened_ms, &e.alert_id))
                    .s("kind", "alert_episode")
                    .s("tenant_id", tenant.as_str())
                    .s("record", record)
                    .build();
                group.push(put(episode, None, &self.table)?);
            }
            groups.push((group, opened));
        }
        // Alerts opened count in the usage of the commit's day, in the transaction that opens
        // them (so once): two actions per client company, kept free in every transaction.
        let day = Day::of_ms(now_ms);
        let mut transaction: Vec<TransactWriteItem> = Vec::new();
        let mut opened: BTreeMap<&ClientId, u64> = BTreeMap::new();
        let mut batches = Vec::new();
        let close = |transaction: &mut Vec<TransactWriteItem>,
                     opened: &mut BTreeMap<&ClientId, u64>|
         -> Result<Vec<TransactWriteItem>, StoreError> {
            let mut items = std::mem::take(transaction);
            for (client, n) in std::mem::take(opened) {
                let counters = UsageCounters {
                    alerts_opened: n,
                    ..UsageCounters::default()
                };
                items.extend(count_usage(&self.table, tenant, client, day, &counters)?);
            }
            Ok(items)
        };
        for (group, group_opened) in groups {
            let reserved = 2 * (opened.len() + group_opened.len());
            if transaction.len() + group.len() + reserved > MAX_TRANSACTION
                && !transaction.is_empty()
            {
                batches.push(close(&mut transaction, &mut opened)?);
            }
            transaction.extend(group);
            for (client, n) in group_opened {
                *opened.entry(client).or_default() += n;
            }
        }
        if !transaction.is_empty() {
            batches.push(close(&mut transaction, &mut opened)?);
        }
        for items in batches {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_transaction_canceled_exception()) =>
                {
                    return Ok(CommitOutcome::Conflict);
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(CommitOutcome::Committed)
    }

    async fn parent_of(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
    ) -> Result<Option<DeviceId>, StoreError> {
        self.dependencies().parent(tenant, device).await
    }

    async fn children_of(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
    ) -> Result<Vec<DeviceId>, StoreError> {
        let map = self.dependencies().map(tenant).await?.map;
        Ok(map.children(device).into_iter().cloned().collect())
    }

    async fn attach_suppressed(
        &self,
        parent_alert_id: &str,
        child: &AlertEvent,
    ) -> Result<(), StoreError> {
        self.dependencies().attach(parent_alert_id, child).await
    }

    async fn recheck(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.dependencies().recheck(tenant, device, at_ms).await
    }

    async fn published(
        &self,
        tenant: &TenantId,
        device: &DeviceId,
        event_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(
                &TenantKeys::new(tenant).outbox_event(device, event_id),
            )))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
