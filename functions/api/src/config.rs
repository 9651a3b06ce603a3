//! The verifier from the environment.

use std::sync::Arc;

use vigie_auth::{ClaimNames, IssuerConfig, OidcAlgorithm, OwnIssuer, Verifier};
use vigie_domain::clock::SystemClock;

/// Default issuer and audience of Vigie's own tokens.
pub const DEFAULT_ISSUER: &str = "https://vigie.local";
pub const DEFAULT_AUDIENCE: &str = "vigie-api";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error(transparent)]
    Auth(#[from] vigie_auth::ConfigError),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Vigie's own issuer (required) and an OIDC provider (when configured); the own issuer's
/// public JWKS.
pub fn from_env() -> Result<(Verifier, serde_json::Value), ConfigError> {
    let pem = env("VIGIE_JWT_PRIVATE_KEY_PEM")
        .ok_or(ConfigError::Missing("VIGIE_JWT_PRIVATE_KEY_PEM"))?;
    let own = OwnIssuer::from_pkcs8_pem(
        env("VIGIE_JWT_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.into()),
        env("VIGIE_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
        &pem,
    )?;
    let mut issuers = vec![own.issuer_config()];
    if let (Some(issuer), Some(audience), Some(jwks_url)) = (
        env("VIGIE_OIDC_ISSUER"),
        env("VIGIE_OIDC_AUDIENCE"),
        env("VIGIE_OIDC_JWKS_URL"),
    ) {
        issuers.push(IssuerConfig::Oidc {
            issuer,
            audience,
            jwks_url,
            allowed_algorithms: vec![OidcAlgorithm::Rs256, OidcAlgorithm::Es256],
            claim_names: ClaimNames::default(),
        });
    }
    Ok((verifier(issuers)?, own.jwks()))
}

/// A verifier over `issuers` on the system clock.
pub fn verifier(issuers: Vec<IssuerConfig>) -> Result<Verifier, vigie_auth::ConfigError> {
    Verifier::new(issuers, Arc::new(SystemClock))
}
