//! The alerts topic on SNS: every alert event, with the attributes subscriptions filter on.

use aws_sdk_sns::types::MessageAttributeValue;
use vigie_domain::alert::AlertEvent;
use vigie_domain::ports::{AlertPublisher, StoreError};

use crate::item::unavailable;

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

#[derive(Debug, Clone)]
pub struct SnsAlertsTopic {
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) topic_arn: String,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(unavailable)
}

impl SnsAlertsTopic {
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

impl AlertPublisher for SnsAlertsTopic {
    async fn publish(&self, event: &AlertEvent) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .message_attributes(attributes::TENANT, attribute(event.tenant_id.as_str())?)
            .message_attributes(attributes::CLIENT, attribute(event.client_id.as_str())?)
            .message_attributes(attributes::SITE, attribute(event.site_id.as_str())?)
            .message_attributes(
                attributes::SEVERITY,
                attribute(event.routing_severity().as_str())?,
            )
            .message_attributes(attributes::FAMILY, attribute(event.family.as_str())?)
            .message_attributes(attributes::KIND, attribute(event.kind.as_str())?)
            .message_attributes(attributes::EVENT_ID, attribute(&event.event_id)?)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
