//! The ingestion Lambda: a Function URL handler.

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::SystemClock;
use vigie_edge::function_url::{FunctionUrlRequest, FunctionUrlResponse};
use vigie_ingest::Ingest;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let ports = AwsPorts::from_env().await?;
    let ingest = Ingest::new(
        ports.devices(),
        ports.enrollment(),
        ports.telemetry_queue(),
        ports.policies(),
        SystemClock,
    );
    let ingest = &ingest;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<FunctionUrlRequest>| async move {
            let response = event
                .payload
                .respond(|request| async move { ingest.handle(&request).await })
                .await;
            Ok::<FunctionUrlResponse, lambda_runtime::Error>(response)
        },
    ))
    .await
}
