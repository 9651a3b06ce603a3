//! What crosses the edge of every function: the Lambda event shapes we consume (Function URL
//! requests, SQS batches) and the HTTP error contract. Handlers are written against
//! [`HttpRequest`] / [`HttpResponse`]; the Lambda mains and the local runtime convert the
//! exact Lambda event JSON into them, so both run the same code.

pub mod function_url;
pub mod http;
pub mod sqs;

pub use http::{HttpRequest, HttpResponse};
