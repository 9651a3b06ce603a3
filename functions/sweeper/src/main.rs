//! The silence sweeper Lambda, run by a schedule (EventBridge, every minute). The logic is
//! `vigie_evaluator::silence::SilenceSweeper`.

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::SystemClock;
use vigie_evaluator::silence::SilenceSweeper;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let ports = AwsPorts::from_env().await?;
    let sweeper = SilenceSweeper::new(
        ports.devices(),
        ports.evaluation(),
        ports.alerts_topic(),
        ports.heartbeats(),
        SystemClock,
    );
    let sweeper = &sweeper;
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = sweeper.sweep().await?;
            Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::json!({
                "slots": report.slots, "checked": report.checked, "raised": report.raised
            }))
        },
    ))
    .await
}
