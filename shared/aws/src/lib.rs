//! AWS adapters: the only crate that knows the AWS SDKs and `AttributeValue`. Each adapter
//! implements a port of `vigie-domain`; [`adapters::AwsPorts`] builds them all once.

pub mod adapters;
pub mod alert_work;
pub mod alerts_topic;
pub mod api_keys;
pub mod config;
pub mod dependencies;
pub mod devices;
pub mod directory;
pub mod email;
pub mod enrollment;
pub mod escalations;
pub mod evaluation;
pub mod groups;
pub mod heartbeats;
pub mod incidents;
pub mod item;
pub mod metering;
pub mod notifications;
pub mod oncall;
pub mod policies;
pub mod provision;
pub mod resources;
pub mod telemetry_queue;
pub mod usage;
pub mod users;
pub mod windows;

pub use aws_sdk_dynamodb;
pub use aws_sdk_s3;
pub use aws_sdk_sesv2;
pub use aws_sdk_sns;
pub use aws_sdk_sqs;
