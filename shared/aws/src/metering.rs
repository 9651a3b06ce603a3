//! Counting AWS requests: an SDK interceptor that tallies every request attempt by service and
//! operation. It is what `cargo xtask measure` bases the cost per device-month on; attach it
//! with [`AwsClients::from_config_counted`](crate::config::AwsClients::from_config_counted).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Request attempts per `"<service>:<operation>"` (e.g. `"DynamoDB:GetItem"`). Clones share
/// one tally, so one counter can be attached to every client.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The attempts counted so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Attempts of one `"<service>:<operation>"` so far.
    pub fn count(&self, key: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// Every attempt counted so far.
    pub fn total(&self) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }

    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// What happened between two snapshots: the operations whose count grew, and by how much.
    pub fn diff(
        before: &BTreeMap<String, u64>,
        after: &BTreeMap<String, u64>,
    ) -> BTreeMap<String, u64> {
        after
            .iter()
            .filter_map(|(key, &n)| {
                let grown = n.saturating_sub(before.get(key).copied().unwrap_or(0));
                (grown > 0).then(|| (key.clone(), grown))
            })
            .collect()
    }

    fn record(&self, key: String) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert(0) += 1;
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    /// Called once per attempt, retries included: each is a billed request.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = cfg.load::<Metadata>().map_or_else(
            || "unknown:unknown".to_owned(),
            |m| format!("{}:{}", m.service(), m.name()),
        );
        self.record(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_smithy_types::retry::RetryConfig;

    use super::*;
    use crate::config::AwsClients;

    #[test]
    fn diff_keeps_only_what_grew() {
        let before = BTreeMap::from([("SQS:SendMessage".to_owned(), 2), ("A:B".to_owned(), 1)]);
        let after = BTreeMap::from([
            ("SQS:SendMessage".to_owned(), 5),
            ("A:B".to_owned(), 1),
            ("DynamoDB:Query".to_owned(), 1),
        ]);
        assert_eq!(
            RequestCounter::diff(&before, &after),
            BTreeMap::from([
                ("DynamoDB:Query".to_owned(), 1),
                ("SQS:SendMessage".to_owned(), 3)
            ])
        );
    }

    #[tokio::test]
    async fn every_attempt_is_counted_by_service_and_operation() {
        // Nothing listens on port 1: the attempt fails at once, after it was counted.
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url("http://127.0.0.1:1")
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        let counter = RequestCounter::new();
        let clients = AwsClients::from_config_counted(&config, &counter);
        let result = clients
            .dynamodb
            .get_item()
            .table_name("t")
            .key("pk", AttributeValue::S("x".into()))
            .send()
            .await;
        assert!(result.is_err(), "nothing answers on port 1");
        assert_eq!(
            counter.snapshot(),
            BTreeMap::from([("DynamoDB:GetItem".to_owned(), 1)])
        );
        assert_eq!(counter.total(), 1);

        let before = counter.snapshot();
        let _ = clients.sqs.list_queues().send().await;
        assert_eq!(
            RequestCounter::diff(&before, &counter.snapshot()),
            BTreeMap::from([("SQS:ListQueues".to_owned(), 1)])
        );
        counter.reset();
        assert_eq!(counter.total(), 0);
    }
}
