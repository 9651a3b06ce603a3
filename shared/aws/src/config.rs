//! SDK configuration and the set of AWS clients every function builds once.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::metering::RequestCounter;

/// Region used against an emulator when `AWS_REGION` is not set.
pub const EMULATOR_REGION: &str = "us-east-1";

/// The standard configuration chain (environment, profile, container/instance role). It
/// already honours `AWS_ENDPOINT_URL`, so the same binary talks to LocalStack or moto when
/// that variable is set.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Configuration for a local emulator at `endpoint`: region `us-east-1` unless `AWS_REGION`
/// is set, and dummy credentials (`test`/`test`) unless `AWS_ACCESS_KEY_ID` is set. Never
/// consults the instance metadata service, so it is fast on any machine.
pub async fn sdk_config_for_endpoint(endpoint: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(endpoint);
    if env_is_unset("AWS_REGION") && env_is_unset("AWS_DEFAULT_REGION") {
        loader = loader.region(Region::new(EMULATOR_REGION));
    }
    if env_is_unset("AWS_ACCESS_KEY_ID") {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "vigie-emulator",
        ));
    }
    loader.load().await
}

fn env_is_unset(name: &str) -> bool {
    std::env::var_os(name).is_none_or(|value| value.is_empty())
}

/// One client per AWS service Vigie uses, sharing one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub s3: aws_sdk_s3::Client,
    pub ses: aws_sdk_sesv2::Client,
}

impl AwsClients {
    /// Builds the clients. S3 uses path-style addressing whenever an endpoint URL is set
    /// (emulators do not resolve `bucket.localhost` host names).
    pub fn from_config(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style(config))
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            ses: aws_sdk_sesv2::Client::new(config),
        }
    }

    /// Like [`AwsClients::from_config`], with `counter` attached to every client: each request
    /// attempt is counted by service and operation.
    pub fn from_config_counted(config: &SdkConfig, counter: &RequestCounter) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style(config))
            .interceptor(counter.clone())
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(counter.clone())
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            ses: aws_sdk_sesv2::Client::from_conf(
                aws_sdk_sesv2::config::Builder::from(config)
                    .interceptor(counter.clone())
                    .build(),
            ),
        }
    }
}

/// S3 path-style addressing whenever an endpoint URL is set (emulators do not resolve
/// `bucket.localhost` host names).
fn path_style(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|value| !value.is_empty())
}
