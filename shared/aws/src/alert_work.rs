//! Alerts as people work them: the evaluator's current records, and the human side of each
//! episode (acknowledgement, assignee, comments, manual resolution) with optimistic versions.

use aws_sdk_dynamodb::types::AttributeValue;
use vigie_domain::ids::TenantId;
use vigie_domain::keys::TenantKeys;
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
        let item = ItemBuilder::keyed(&TenantKeys::new(tenant).alert_work(alert_id, opened_ms))
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
}
