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
    let path = local_key_path();
    let issuer = vigie_api::config::DEFAULT_ISSUER;
    let audience = vigie_api::config::DEFAULT_AUDIENCE;
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return OwnIssuer::from_pkcs8_pem(issuer, audience, &pem)
            .with_context(|| format!("reading {}", path.display()));
    }
    let own = OwnIssuer::generate(issuer, audience);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, own.to_pkcs8_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(own)
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
