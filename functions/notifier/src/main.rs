//! The notifier Lambda: an SQS (notification queue) handler with partial batch failures.

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::SystemClock;
use vigie_edge::sqs::{SqsBatchResponse, SqsEvent};
use vigie_notifier::service::Notifier;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let ports = AwsPorts::from_env().await?;
    let console = std::env::var("VIGIE_CONSOLE_URL")
        .unwrap_or_else(|_| "https://console.vigie.example".into());
    // The sender of escalation e-mails to people: an SES identity (verified by its owner on AWS).
    let mail_from = std::env::var("VIGIE_MAIL_FROM")
        .unwrap_or_else(|_| vigie_notifier::service::DEFAULT_MAIL_FROM.to_owned());
    ports.mailer().ensure_sender(&mail_from).await?;
    let notifier = Notifier::new(
        ports.channels(),
        ports.deliveries(),
        ports.notify_queue(),
        SystemClock,
        ports.mailer(),
        &console,
        Duration::from_secs(5),
    )
    .with_mail_from(&mail_from)
    .with_groups(ports.alert_groups());
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(notifier.handle(event.payload).await)
    }))
    .await
}
