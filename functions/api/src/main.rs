//! The tenant API Lambda (Function URL).
//!
//! Configuration: `VIGIE_PREFIX` (resources), Vigie's own issuer through
//! `VIGIE_JWT_PRIVATE_KEY_PEM` (PKCS#8, Ed25519), `VIGIE_JWT_ISSUER`, `VIGIE_JWT_AUDIENCE`;
//! optionally an OIDC provider through `VIGIE_OIDC_ISSUER`, `VIGIE_OIDC_AUDIENCE`,
//! `VIGIE_OIDC_JWKS_URL`.

use lambda_runtime::{LambdaEvent, service_fn};
use vigie_api::Api;
use vigie_aws::adapters::AwsPorts;
use vigie_domain::clock::SystemClock;
use vigie_edge::function_url::{FunctionUrlRequest, FunctionUrlResponse};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .without_time()
        .init();
    let ports = AwsPorts::from_env().await?;
    let (verifier, jwks) = vigie_api::config::from_env()?;
    let api = Api::new(ports, verifier, SystemClock, jwks);
    let api = &api;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<FunctionUrlRequest>| async move {
            let response = event
                .payload
                .respond(|request| async move { api.handle(&request).await })
                .await;
            Ok::<FunctionUrlResponse, lambda_runtime::Error>(response)
        },
    ))
    .await
}
