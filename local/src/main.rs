//! `vigie-local`: runs every Vigie function in one process.
//!
//! Usage: `vigie-local --prefix PREFIX [--listen 127.0.0.1:9000] [--provision]`. AWS endpoint
//! and credentials come from the environment (`AWS_ENDPOINT_URL` for an emulator).

use anyhow::Context as _;
use vigie_aws::adapters::AwsPorts;
use vigie_aws::config::{AwsClients, sdk_config};
use vigie_aws::resources::ResourceNames;
use vigie_local::LocalRuntime;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut prefix = std::env::var("VIGIE_PREFIX").unwrap_or_else(|_| "vigie-local".into());
    let mut listen = "127.0.0.1:9000".to_owned();
    let mut provision = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prefix" => prefix = args.next().context("--prefix needs a value")?,
            "--listen" => listen = args.next().context("--listen needs a value")?,
            "--provision" => provision = true,
            "-h" | "--help" => {
                println!("usage: vigie-local [--prefix PREFIX] [--listen ADDR] [--provision]");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let clients = AwsClients::from_config(&sdk_config().await);
    let names = ResourceNames::new(&prefix);
    if provision {
        vigie_aws::provision::provision(&clients, &names)
            .await
            .context("provisioning")?;
    }
    let ports = AwsPorts::connect(clients, names)
        .await
        .context("connecting to the installation's resources")?;
    // The tenant API trusts Vigie's own issuer, with the key `cargo xtask token` mints with.
    let key = std::env::var("VIGIE_JWT_KEY_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(".vigie/jwt-signing-key.pem"));
    let issuer = vigie_local::local_issuer(&key).context("the API's signing key")?;
    let options = vigie_local::RuntimeOptions {
        policy_ttl: vigie_evaluator::POLICY_TTL,
        api: Some(vigie_local::ApiAuth::own(&issuer)),
        ..vigie_local::RuntimeOptions::default()
    };
    let runtime =
        LocalRuntime::start_with(&ports, listen.parse().context("--listen")?, &options).await?;
    println!(
        "vigie-local: ingestion at {0}/v1/agent, tenant API at {0}/v1 (OpenAPI at {0}/openapi.json)",
        runtime.url()
    );
    tokio::signal::ctrl_c().await?;
    runtime.stop().await;
    Ok(())
}
