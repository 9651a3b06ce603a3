//! The tenants' alerts topics on SNS: every alert transition of a tenant is published to the
//! tenant's topic, with the attributes subscriptions filter on.
//!
//! Each tenant topic has two subscriptions (SNS allows one per topic and queue):
//! - the events queue, unfiltered: every transition, for the audit trail;
//! - the notify queue, filtered by [`tenant_filter_policy`] over the tenant's channels: the
//!   notifier only receives what some channel asked for, and nothing for a tenant without
//!   channels.
//!
//! [`TenantTopics::sync`] creates the topic and both subscriptions and brings the filter to
//! the tenant's channels; it runs when a channel is saved, and when a publish finds no topic
//! (a tenant's first alert), so no tenant is ever without one.

use std::collections::HashMap;

use aws_sdk_sns::operation::publish::PublishError;
use aws_sdk_sns::types::MessageAttributeValue;
use tracing::{debug, info};
use vigie_domain::alert::AlertEvent;
use vigie_domain::ids::TenantId;
use vigie_domain::notification::{NotificationChannel, tenant_filter_policy};
use vigie_domain::ports::{AlertPublisher, ChannelStore, StoreError};

use crate::item::unavailable;
use crate::notifications::DynamoChannels;
use crate::provision::ensure_sqs_subscription;
use crate::resources::ResourceNames;

/// Names of the SNS message attributes of an alert event.
pub mod attributes {
    pub const TENANT: &str = "tenant_id";
    pub const CLIENT: &str = "client_id";
    pub const SITE: &str = "site_id";
    pub const SEVERITY: &str = "severity";
    pub const FAMILY: &str = "family";
    pub const KIND: &str = "kind";
    pub const EVENT_ID: &str = "event_id";
}

/// Creates tenants' topics and keeps their subscriptions' filters on their channels.
#[derive(Debug, Clone)]
pub struct TenantTopics {
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) names: ResourceNames,
    /// `arn:aws:sns:<region>:<account>:`
    pub(crate) sns_arn_prefix: String,
    pub(crate) notify_queue_arn: String,
    pub(crate) events_queue_arn: String,
    pub(crate) escalate_queue_arn: String,
    pub(crate) channels: DynamoChannels,
}

/// The escalate queue's subscription: raw delivery of the transitions that start, change or
/// stop an escalation.
pub fn escalate_subscription_attributes() -> HashMap<String, String> {
    HashMap::from([
        ("RawMessageDelivery".to_owned(), "true".to_owned()),
        (
            "FilterPolicy".to_owned(),
            serde_json::json!({"kind": ["opened", "severity_raised", "resolved"]}).to_string(),
        ),
    ])
}

/// What [`TenantTopics::sync`] set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTopic {
    pub topic_arn: String,
    pub notify_subscription_arn: String,
    pub events_subscription_arn: String,
    /// The notify subscription's filter policy, as set.
    pub filter_policy: String,
}

/// Rounds of "read the channels, set the filter" before giving up on a moving target.
const SYNC_ROUNDS: usize = 3;

impl TenantTopics {
    /// The ARN of `tenant`'s topic (whether or not it exists yet).
    pub fn topic_arn(&self, tenant: &TenantId) -> String {
        format!(
            "{}{}",
            self.sns_arn_prefix,
            self.names.tenant_alerts_topic(tenant)
        )
    }

    /// Creates `tenant`'s topic and subscriptions if missing and sets the notify filter to the
    /// tenant's channels as stored now. Idempotent. Two concurrent syncs converge: each
    /// re-reads the channels after setting the filter and sets it again if they moved.
    pub async fn sync(&self, tenant: &TenantId) -> Result<TenantTopic, StoreError> {
        let name = self.names.tenant_alerts_topic(tenant);
        let topic_arn = self
            .sns
            .create_topic()
            .name(&name)
            .tags(tag("vigie:tenant", tenant.as_str())?)
            .send()
            .await
            .map_err(unavailable)?
            .topic_arn
            .ok_or_else(|| StoreError::Unavailable(format!("CreateTopic {name}: no ARN")))?;
        let raw = ("RawMessageDelivery".to_owned(), "true".to_owned());
        let events_subscription_arn = ensure_sqs_subscription(
            &self.sns,
            &topic_arn,
            &self.events_queue_arn,
            &HashMap::from([raw.clone()]),
        )
        .await
        .map_err(unavailable)?;
        ensure_sqs_subscription(
            &self.sns,
            &topic_arn,
            &self.escalate_queue_arn,
            &escalate_subscription_attributes(),
        )
        .await
        .map_err(unavailable)?;

        let mut channels = self.channels.channels(tenant).await?;
        for _ in 0..SYNC_ROUNDS {
            let filter_policy = tenant_filter_policy(&channels).to_string();
            let notify_subscription_arn = ensure_sqs_subscription(
                &self.sns,
                &topic_arn,
                &self.notify_queue_arn,
                &HashMap::from([
                    raw.clone(),
                    ("FilterPolicy".to_owned(), filter_policy.clone()),
                ]),
            )
            .await
            .map_err(unavailable)?;
            let now = self.channels.channels(tenant).await?;
            if same_channels(&now, &channels) {
                debug!(tenant_id = %tenant, topic = %topic_arn, filter = %filter_policy, "tenant topic in sync");
                return Ok(TenantTopic {
                    topic_arn,
                    notify_subscription_arn,
                    events_subscription_arn,
                    filter_policy,
                });
            }
            channels = now;
        }
        Err(StoreError::Unavailable(format!(
            "the channels of {tenant} kept changing while their filter was being set; retry"
        )))
    }
}

fn same_channels(a: &[NotificationChannel], b: &[NotificationChannel]) -> bool {
    tenant_filter_policy(a) == tenant_filter_policy(b)
}

fn tag(key: &str, value: &str) -> Result<aws_sdk_sns::types::Tag, StoreError> {
    aws_sdk_sns::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(unavailable)
}

/// Publishes alert events to their tenant's topic.
#[derive(Debug, Clone)]
pub struct SnsAlertsTopic {
    pub(crate) topics: TenantTopics,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(unavailable)
}

impl SnsAlertsTopic {
    pub fn topics(&self) -> &TenantTopics {
        &self.topics
    }

    async fn try_publish(
        &self,
        event: &AlertEvent,
        body: &str,
        attributes: &HashMap<String, MessageAttributeValue>,
    ) -> Result<(), aws_sdk_sns::error::SdkError<PublishError>> {
        self.topics
            .sns
            .publish()
            .topic_arn(self.topics.topic_arn(&event.tenant_id))
            .message(body)
            .set_message_attributes(Some(attributes.clone()))
            .send()
            .await
            .map(|_| ())
    }
}

/// The message attributes of `event` (see [`vigie_domain::notification::message_attributes`]).
fn message_attributes(
    event: &AlertEvent,
) -> Result<HashMap<String, MessageAttributeValue>, StoreError> {
    vigie_domain::notification::message_attributes(event)
        .into_iter()
        .map(|(name, value)| Ok((name.to_owned(), attribute(&value)?)))
        .collect()
}

impl AlertPublisher for SnsAlertsTopic {
    async fn publish(&self, event: &AlertEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let attributes = message_attributes(event)?;
        match self.try_publish(event, &body, &attributes).await {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PublishError::NotFoundException(_))
                ) =>
            {
                info!(tenant_id = %event.tenant_id, "first alert of the tenant: creating its topic");
                self.topics.sync(&event.tenant_id).await?;
                self.try_publish(event, &body, &attributes)
                    .await
                    .map_err(unavailable)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
