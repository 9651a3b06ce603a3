//! Escalation policies and user groups in DynamoDB (documents in the tenant partition:
//! `ESCPOLICY#<id>`, `USERGROUP#<id>`), and the escalation queue: notices handed to the
//! notifier (the notify queue) and delayed wake-ups (the escalate queue).

use vigie_domain::escalation::{EscalationPolicy, Notice, UserGroup};
use vigie_domain::ids::TenantId;
use vigie_domain::keys::{TableKey, TenantKeys};
use vigie_domain::ports::StoreError;

use crate::item::{ItemExt, document_item, key_of, list_documents, unavailable};

const POLICY: &str = "escalation_policy";
const GROUP: &str = "user_group";

#[derive(Debug, Clone)]
pub struct DynamoEscalations {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl DynamoEscalations {
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &TableKey,
        kind: &str,
    ) -> Result<Option<T>, StoreError> {
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
            .map(|item| serde_json::from_str(item.string(kind)?).map_err(corrupt))
            .transpose()
    }

    /// Stores a document; with `create_only`, only if none has that id (`false` then).
    async fn put<T: serde::Serialize>(
        &self,
        tenant: &TenantId,
        key: &TableKey,
        kind: &str,
        value: &T,
        now_ms: i64,
        create_only: bool,
    ) -> Result<bool, StoreError> {
        let item = document_item(key, kind, tenant, value)?
            .n("updated_ms", now_ms)
            .build();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if create_only {
            put = put.condition_expression("attribute_not_exists(pk)");
        }
        crate::item::applied(put.send().await)
    }

    async fn delete(&self, key: &TableKey) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.is_some_and(|a| a.contains_key("pk")))
    }

    /// The tenant's escalation policies (one query).
    pub async fn policies(&self, tenant: &TenantId) -> Result<Vec<EscalationPolicy>, StoreError> {
        let prefix = TenantKeys::new(tenant).escalation_policies_prefix();
        list_documents(&self.client, &self.table, prefix, POLICY).await
    }

    pub async fn policy(
        &self,
        tenant: &TenantId,
        policy_id: &str,
    ) -> Result<Option<EscalationPolicy>, StoreError> {
        self.get(
            &TenantKeys::new(tenant).escalation_policy(policy_id),
            POLICY,
        )
        .await
    }

    /// Stores a validated policy (replacing one of the same id unless `create_only`).
    /// Escalations already running keep the copy they started with.
    pub async fn put_policy(
        &self,
        tenant: &TenantId,
        policy: &EscalationPolicy,
        now_ms: i64,
        create_only: bool,
    ) -> Result<bool, StoreError> {
        let key = TenantKeys::new(tenant).escalation_policy(&policy.policy_id);
        self.put(tenant, &key, POLICY, policy, now_ms, create_only)
            .await
    }

    pub async fn delete_policy(
        &self,
        tenant: &TenantId,
        policy_id: &str,
    ) -> Result<bool, StoreError> {
        self.delete(&TenantKeys::new(tenant).escalation_policy(policy_id))
            .await
    }

    pub async fn groups(&self, tenant: &TenantId) -> Result<Vec<UserGroup>, StoreError> {
        let prefix = TenantKeys::new(tenant).user_groups_prefix();
        list_documents(&self.client, &self.table, prefix, GROUP).await
    }

    pub async fn group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<Option<UserGroup>, StoreError> {
        self.get(&TenantKeys::new(tenant).user_group(group_id), GROUP)
            .await
    }

    pub async fn put_group(
        &self,
        tenant: &TenantId,
        group: &UserGroup,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let key = TenantKeys::new(tenant).user_group(&group.group_id);
        self.put(tenant, &key, GROUP, group, now_ms, false)
            .await
            .map(|_| ())
    }

    pub async fn delete_group(
        &self,
        tenant: &TenantId,
        group_id: &str,
    ) -> Result<bool, StoreError> {
        self.delete(&TenantKeys::new(tenant).user_group(group_id))
            .await
    }
}

/// A wake-up for one escalation: does something only if the escalation is still at
/// `generation` when it arrives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WakeUp {
    pub tenant_id: TenantId,
    pub alert_id: String,
    pub opened_ms: i64,
    pub generation: u64,
}

/// The message shapes of the escalate queue besides alert events.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WakeUpMessage {
    pub escalation_wake_up: WakeUp,
}

/// A notice on the notify queue.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NoticeMessage {
    pub escalation_notice: Notice,
}

/// Sends notices to the notifier and wake-ups to the escalator.
#[derive(Debug, Clone)]
pub struct EscalationQueue {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) notify_queue_url: String,
    pub(crate) escalate_queue_url: String,
}

/// SQS's longest delivery delay.
pub const MAX_DELAY_S: i64 = 900;

impl EscalationQueue {
    /// Hands notices to the notifier (up to 10 per request). The notifier claims per notice
    /// and recipient, so sending one twice delivers it once.
    pub async fn send_notices(&self, notices: &[Notice]) -> Result<(), StoreError> {
        for chunk in notices.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, n) in chunk.iter().enumerate() {
                let body = serde_json::to_string(&NoticeMessage {
                    escalation_notice: n.clone(),
                })
                .map_err(corrupt)?;
                entries.push(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(unavailable)?,
                );
            }
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.notify_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::Unavailable(format!(
                    "notice not queued: {} {}",
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Schedules a wake-up `delay_s` from now (at most [`MAX_DELAY_S`]); longer waits are
    /// the sweeper's.
    pub async fn wake_up(&self, wake: &WakeUp, delay_s: i64) -> Result<(), StoreError> {
        let body = serde_json::to_string(&WakeUpMessage {
            escalation_wake_up: wake.clone(),
        })
        .map_err(corrupt)?;
        self.sqs
            .send_message()
            .queue_url(&self.escalate_queue_url)
            .message_body(body)
            .delay_seconds(delay_s.clamp(0, MAX_DELAY_S) as i32)
            .message_attributes(
                "generation",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value(wake.generation.to_string())
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
