//! SQS pollers: what a Lambda event source mapping does, locally. Each poll receives up to ten
//! messages, builds the exact SQS event a Lambda receives, calls the handler, deletes what the
//! handler did not report as failed, and leaves the failures for redelivery (and, past the
//! redrive limit, the dead-letter queue).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use vigie_edge::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};

use vigie_aws::aws_sdk_sqs;

/// A queue to poll, with the ARN the events name as their source.
#[derive(Debug, Clone)]
pub struct PolledQueue {
    pub url: String,
    pub arn: String,
}

impl PolledQueue {
    pub async fn lookup(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Self, aws_sdk_sqs::Error> {
        let out = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?;
        let arn = out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            url: url.to_owned(),
            arn,
        })
    }
}

/// Receives one batch and turns it into a Lambda SQS event (empty when nothing came).
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &PolledQueue,
    wait_s: i32,
) -> Result<SqsEvent, aws_sdk_sqs::Error> {
    let out = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_s)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let region = queue
        .arn
        .split(':')
        .nth(3)
        .unwrap_or("us-east-1")
        .to_owned();
    let records = out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| SqsMessage {
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle.unwrap_or_default(),
            md5_of_body: m.md5_of_body.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            attributes: m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
            message_attributes: m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        SqsMessageAttribute {
                            string_value: v.string_value,
                            data_type: v.data_type,
                        },
                    )
                })
                .collect(),
            event_source: "aws:sqs".into(),
            event_source_arn: queue.arn.clone(),
            aws_region: region.clone(),
        })
        .collect();
    Ok(SqsEvent { records })
}

/// Polls `queue` until `stop` resolves, handing each event to `handler`.
pub async fn run<H, F>(sqs: aws_sdk_sqs::Client, queue: PolledQueue, handler: H)
where
    H: Fn(SqsEvent) -> F,
    F: Future<Output = SqsBatchResponse>,
{
    loop {
        let event = match receive(&sqs, &queue, 1).await {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(queue = %queue.url, error = %e, "poll failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if event.records.is_empty() {
            continue;
        }
        let handles: Vec<(String, String)> = event
            .records
            .iter()
            .map(|r| (r.message_id.clone(), r.receipt_handle.clone()))
            .collect();
        let response = handler(event).await;
        for (id, handle) in handles {
            if response
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == id)
            {
                continue;
            }
            if let Err(e) = sqs
                .delete_message()
                .queue_url(&queue.url)
                .receipt_handle(handle)
                .send()
                .await
            {
                tracing::warn!(message_id = %id, error = %e, "delete failed; the message will come back");
            }
        }
    }
}
