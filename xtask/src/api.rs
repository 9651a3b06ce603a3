//! `cargo xtask openapi` writes the API's OpenAPI document; `cargo xtask token` mints a token
//! of Vigie's own issuer for local use.

use std::time::Duration;

use anyhow::{Context, bail};
use vigie_auth::{Grant, OwnIssuer, Role};
use vigie_domain::clock::{Clock, SystemClock};
use vigie_domain::ids::{ClientId, TenantId};

use crate::util::root;

/// Where the local runtime keeps its own issuer's private key (created on first use).
pub fn local_key_path() -> std::path::PathBuf {
    root().join(".vigie").join("jwt-signing-key.pem")
}

/// The local issuer: the key in `.vigie/`, created on first use.
pub fn local_issuer() -> anyhow::Result<OwnIssuer> {
    vigie_local::local_issuer(&local_key_path())
        .with_context(|| format!("reading {}", local_key_path().display()))
}

pub fn openapi(_args: &[String]) -> anyhow::Result<()> {
    let path = root().join("functions/api/openapi.json");
    let text = serde_json::to_string_pretty(&vigie_api::openapi::document())? + "\n";
    std::fs::write(&path, text)?;
    println!("{}", path.display());
    Ok(())
}

/// `token --role msp_admin --tenant acme-msp [--client c] [--subject s] [--ttl-minutes 60]`
pub fn token(args: &[String]) -> anyhow::Result<()> {
    let mut role = None;
    let mut tenant = None;
    let mut client = None;
    let mut subject = "local-admin".to_owned();
    let mut ttl = 60u64;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().context("a value after the flag");
        match flag.as_str() {
            "--role" => {
                role = Some(
                    value()?
                        .parse::<Role>()
                        .map_err(|_| anyhow::anyhow!("unknown role"))?,
                )
            }
            "--tenant" => tenant = Some(TenantId::parse(&value()?)?),
            "--client" => client = Some(ClientId::parse(&value()?)?),
            "--subject" => subject = value()?,
            "--ttl-minutes" => ttl = value()?.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    let role = role.context("--role is required")?;
    let grant = Grant::new(subject, role, tenant, client, Vec::new())?;
    let own = local_issuer()?;
    let token = own.mint(
        &grant,
        Duration::from_secs(ttl * 60),
        SystemClock.now_ms() / 1000,
    )?;
    println!("{token}");
    Ok(())
}
