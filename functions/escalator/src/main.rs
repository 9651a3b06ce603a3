//! The escalator's Lambda. Three triggers:
//! * the escalate queue (SQS event source, partial batch responses): alert transitions and
//!   delayed wake-ups;
//! * EventBridge every minute with `{"job": "escalation_sweep"}`;
//! * EventBridge every 10 minutes with `{"job": "escalation_audit"}`.

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::SystemClock;
use vigie_edge::sqs::SqsEvent;
use vigie_escalator::Escalator;
use vigie_escalator::resolver::DynamoRosters;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let ports = AwsPorts::from_env().await?;
    let escalator = Escalator::new(
        &ports,
        DynamoRosters {
            ports: ports.clone(),
        },
        SystemClock,
    );
    let escalator = &escalator;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let report = match event.payload["job"].as_str() {
                Some("escalation_sweep") => escalator.sweep().await?,
                Some("escalation_audit") => escalator.audit().await?,
                _ => {
                    let sqs: SqsEvent = serde_json::from_value(event.payload)?;
                    let response = escalator.handle(sqs).await;
                    return Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::to_value(
                        response,
                    )?);
                }
            };
            Ok(serde_json::to_value(report)?)
        },
    ))
    .await
}
