//! The scheduled jobs' Lambda. EventBridge runs it:
//! * every minute with any event: the silence sweep (`vigie_evaluator::silence::SilenceSweeper`);
//! * hourly with `{"job": "usage_close"}`: the usage close (`vigie_evaluator::usage_close`),
//!   which hands over the days of silent devices and closes months (idempotent, so an hourly
//!   schedule only makes the first run after midnight do the work).

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::SystemClock;
use vigie_evaluator::silence::SilenceSweeper;
use vigie_evaluator::usage_close::UsageClose;

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
    let close = UsageClose::new(ports.usage(), SystemClock);
    let (sweeper, close) = (&sweeper, &close);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            if event.payload["job"] == "usage_close" {
                let report = close.run().await?;
                return Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::json!({
                    "flushed": report.flushed,
                    "already_flushed": report.already_flushed,
                    "months_closed": report.months_closed
                }));
            }
            let report = sweeper.sweep().await?;
            Ok(serde_json::json!({
                "slots": report.slots, "checked": report.checked, "raised": report.raised
            }))
        },
    ))
    .await
}
