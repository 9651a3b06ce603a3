//! Authentication core of Vigie's tenant API: turns a presented credential into a
//! [`Principal`] (who is calling, for which tenant, in which role), or refuses it with an
//! [`AuthError`] whose [`code`](AuthError::code) is stable.
//!
//! # Bearer tokens (`Authorization: Bearer <jwt>`)
//!
//! [`Verifier::verify`] follows one path, and each step can only narrow what the next accepts:
//!
//! 1. **Shape.** At most 8 KiB, three base64url segments, a JSON header without `crit`.
//! 2. **Issuer by `iss`.** The unverified `iss` only chooses one of the configured issuers
//!    ([`IssuerConfig`]); an unknown issuer is refused. The same claim is checked again once the
//!    signature holds.
//! 3. **Pinned algorithms.** The header's `alg` must be one the chosen issuer allows: `EdDSA`
//!    (or `ES256`) for Vigie's own issuer, `RS256`/`ES256` as configured for an OIDC provider.
//!    `none` and every `HS*` are never allowed, so a public key can never be used as an HMAC
//!    secret.
//! 4. **Key by `kid`.** The key must belong to the issuer and be bound to that same algorithm.
//!    Without a `kid` a token is only accepted when the issuer has a single key. OIDC keys come
//!    from the provider's JWKS, cached; an unknown `kid` triggers at most one fetch per
//!    interval ([`JwksRefreshPolicy`]), and an unreachable provider does not stop cached keys
//!    from working. Keys named inside a token (`jwk`, `jku`, `x5u`) are never used.
//! 5. **Signature**, then **claims**: `iss` equal, `aud` containing the issuer's audience,
//!    `exp` required, `exp`/`nbf` checked against the injected [`Clock`](vigie_domain::clock::Clock)
//!    with a small leeway (30 s by default).
//! 6. **Principal.** Tenant, role and client claims ([`ClaimNames`]; `vigie:*` by default)
//!    become a [`Grant`], refused when inconsistent (a client viewer without a client, a tenant
//!    role without a tenant, a platform operator inside a tenant).
//!
//! Vigie mints its own tokens with [`OwnIssuer`] (Ed25519) and publishes the public key with
//! [`OwnIssuer::jwks`].
//!
//! # API keys (`x-api-key`)
//!
//! `vk_<key id>_<secret>`: [`ApiKey::parse_presented`] gives the key id to look the stored
//! [`ApiKeyRecord`] up, and [`ApiKeyRecord::verify`] compares the secret's SHA-256 in constant
//! time and checks revocation. Records never hold the secret.
//!
//! # Errors
//!
//! Every [`AuthError`] is a `401` at the HTTP boundary except
//! [`AuthError::JwksUnavailable`] (`503`). No message carries a token, a key or a claim value.

mod api_key;
mod claims;
mod error;
mod jwks;
mod own;
mod principal;
mod users;
mod verifier;

pub use api_key::{ApiKey, ApiKeyId, ApiKeyRecord, ApiKeyScope};
pub use claims::ClaimNames;
pub use error::{AuthError, ConfigError};
pub use jwks::{HttpJwks, JwksFetchError, JwksFetcher, JwksRefreshPolicy};
pub use own::{OwnIssuer, OwnKey};
pub use principal::{Credential, Grant, Principal, Role, UnknownRole};
pub use users::{Invitation, InvitationRefused, Membership, UserRecord, user_id_for};
pub use verifier::{Identity, IssuerConfig, OidcAlgorithm, Verified, Verifier};

/// Makes RustCrypto jsonwebtoken's process-wide provider, whatever features the build unified.
fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}
