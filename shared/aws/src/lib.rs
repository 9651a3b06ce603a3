//! AWS adapters: the only crate that knows the AWS SDKs and `AttributeValue`.

pub mod config;
pub mod provision;
pub mod resources;
