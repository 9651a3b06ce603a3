//! The evaluator Lambda: an SQS (FIFO intake queue) handler with partial batch failures.

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_aws::adapters::AwsPorts;
use vigie_edge::sqs::{SqsBatchResponse, SqsEvent};
use vigie_evaluator::Evaluator;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let ports = AwsPorts::from_env().await?;
    let evaluator = Evaluator::new(
        ports.policies(),
        ports.evaluation(),
        ports.alerts_topic(),
        ports.telemetry_queue(),
        vigie_domain::clock::SystemClock,
    );
    let evaluator = &evaluator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(evaluator.handle(event.payload).await)
    }))
    .await
}
