//! The SQS event a Lambda event source mapping delivers, and the partial-batch response.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// System attributes: `ApproximateReceiveCount`, `SentTimestamp`, `MessageGroupId`, …
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub message_attributes: BTreeMap<String, SqsMessageAttribute>,
    #[serde(default)]
    pub md5_of_body: String,
    #[serde(default)]
    pub event_source: String,
    #[serde(default, rename = "eventSourceARN")]
    pub event_source_arn: String,
    #[serde(default)]
    pub aws_region: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsMessageAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(default)]
    pub data_type: String,
}

impl SqsMessage {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.message_attributes
            .get(name)
            .and_then(|a| a.string_value.as_deref())
    }
}

/// `ReportBatchItemFailures` answer: the messages to leave on the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsBatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_event_shape() {
        let ev: SqsEvent = serde_json::from_str(
            r#"{"Records":[{"messageId":"m1","receiptHandle":"rh","body":"{}",
            "attributes":{"ApproximateReceiveCount":"1","MessageGroupId":"dev-a"},
            "messageAttributes":{"tenant_id":{"stringValue":"msp","stringListValues":[],"binaryListValues":[],"dataType":"String"}},
            "md5OfBody":"x","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-3:1:q.fifo","awsRegion":"eu-west-3"}]}"#,
        )
        .expect("parses");
        assert_eq!(ev.records[0].attribute("tenant_id"), Some("msp"));
        let out = serde_json::to_value(SqsBatchResponse {
            batch_item_failures: vec![BatchItemFailure {
                item_identifier: "m1".into(),
            }],
        })
        .expect("json");
        assert_eq!(out["batchItemFailures"][0]["itemIdentifier"], "m1");
    }
}
