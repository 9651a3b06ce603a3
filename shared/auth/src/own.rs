//! Vigie's own issuer: an Ed25519 signing key that mints tokens, and the public keys that
//! verify them.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use vigie_domain::ids::{base32, random_bytes};
use zeroize::Zeroizing;

use crate::claims::grant_to_claims;
use crate::jwks::KeyEntry;
use crate::{ConfigError, Grant, IssuerConfig};

/// A public key of Vigie's own issuer, with its `kid`.
#[derive(Clone)]
pub struct OwnKey {
    pub(crate) entry: KeyEntry,
}

impl std::fmt::Debug for OwnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnKey")
            .field("kid", &self.entry.kid)
            .field("alg", &self.entry.alg)
            .finish()
    }
}

impl OwnKey {
    /// An Ed25519 public key (the 32 raw bytes, the JWK `x`), used with `EdDSA`.
    pub fn ed25519(kid: impl Into<String>, public_key: [u8; 32]) -> Result<Self, ConfigError> {
        let kid = kid.into();
        if ed25519_dalek::VerifyingKey::from_bytes(&public_key).is_err() {
            return Err(ConfigError::BadKey {
                kid,
                reason: "not an Ed25519 public key",
            });
        }
        Ok(Self {
            entry: KeyEntry {
                kid: Some(kid),
                alg: Algorithm::EdDSA,
                key: DecodingKey::from_ed_der(&public_key),
            },
        })
    }

    /// A P-256 public key in PEM (`-----BEGIN PUBLIC KEY-----`), used with `ES256`.
    pub fn es256_pem(kid: impl Into<String>, pem: &str) -> Result<Self, ConfigError> {
        let kid = kid.into();
        let key = DecodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| ConfigError::BadKey {
            kid: kid.clone(),
            reason: "not an EC public key in PEM",
        })?;
        Ok(Self {
            entry: KeyEntry {
                kid: Some(kid),
                alg: Algorithm::ES256,
                key,
            },
        })
    }

    pub fn kid(&self) -> &str {
        self.entry.kid.as_deref().unwrap_or_default()
    }
}

/// Vigie's own token issuer: an Ed25519 signing key. Its `kid` is derived from the public key,
/// so a key loaded again from its PEM keeps its `kid`, and a new key gets a new one.
pub struct OwnIssuer {
    issuer: String,
    audience: String,
    kid: String,
    signing: SigningKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for OwnIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl OwnIssuer {
    /// A fresh random signing key.
    pub fn generate(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        let signing = SigningKey::from_bytes(&random_bytes::<32>());
        Self::from_signing_key(issuer.into(), audience.into(), signing)
    }

    /// Loads a signing key saved by [`OwnIssuer::to_pkcs8_pem`] (or made by `openssl genpkey
    /// -algorithm ed25519`): PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`.
    pub fn from_pkcs8_pem(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        pem: &str,
    ) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BadKey {
            kid: String::new(),
            reason: "not an Ed25519 private key in PKCS#8 PEM",
        };
        let der = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| bad())?;
        let signing = SigningKey::from_pkcs8_der(der.as_bytes()).map_err(|_| bad())?;
        Ok(Self::from_signing_key(
            issuer.into(),
            audience.into(),
            signing,
        ))
    }

    fn from_signing_key(issuer: String, audience: String, signing: SigningKey) -> Self {
        crate::install_crypto_provider();
        let kid = kid_of(&signing.verifying_key().to_bytes());
        let encoding = EncodingKey::from_ed_der(&pkcs8_der(&signing));
        Self {
            issuer,
            audience,
            kid,
            signing,
            encoding,
        }
    }

    /// The signing key as PKCS#8 PEM, to be kept in a secret store. Secret material: never log
    /// it.
    pub fn to_pkcs8_pem(&self) -> String {
        let body = STANDARD.encode(pkcs8_der(&self.signing));
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, for a [`IssuerConfig::Own`].
    pub fn public_key(&self) -> OwnKey {
        OwnKey {
            entry: KeyEntry {
                kid: Some(self.kid.clone()),
                alg: Algorithm::EdDSA,
                key: DecodingKey::from_ed_der(&self.signing.verifying_key().to_bytes()),
            },
        }
    }

    /// The verifier configuration accepting exactly this issuer's tokens.
    pub fn issuer_config(&self) -> IssuerConfig {
        IssuerConfig::Own {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            keys: vec![self.public_key()],
        }
    }

    /// Signs a token for `grant`, valid from `now_s` (Unix seconds) for `ttl`: `iss`, `sub`,
    /// `aud`, `iat`, `nbf`, `exp`, a random `jti` and the `vigie:*` claims.
    pub fn mint(&self, grant: &Grant, ttl: Duration, now_s: i64) -> Result<String, ConfigError> {
        let mut claims = self.standard_claims(ttl, now_s);
        grant_to_claims(grant, &mut claims);
        self.sign(&claims)
    }

    /// Signs a token that only says who someone is (`sub`, `email`), with no role: what they
    /// may do comes from their user record, made when they accept an invitation.
    pub fn mint_identity(
        &self,
        subject: &str,
        email: Option<&str>,
        ttl: Duration,
        now_s: i64,
    ) -> Result<String, ConfigError> {
        let mut claims = self.standard_claims(ttl, now_s);
        claims.insert("sub".to_owned(), subject.into());
        if let Some(email) = email {
            claims.insert("email".to_owned(), email.into());
        }
        self.sign(&claims)
    }

    fn standard_claims(&self, ttl: Duration, now_s: i64) -> Map<String, Value> {
        let ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), self.issuer.clone().into());
        claims.insert("aud".to_owned(), self.audience.clone().into());
        claims.insert("iat".to_owned(), now_s.into());
        claims.insert("nbf".to_owned(), now_s.into());
        claims.insert("exp".to_owned(), now_s.saturating_add(ttl_s).into());
        claims.insert("jti".to_owned(), base32(&random_bytes::<16>()).into());
        claims
    }

    fn sign(&self, claims: &Map<String, Value>) -> Result<String, ConfigError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| ConfigError::Signing)
    }

    /// The public JWKS document to serve at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        let x = URL_SAFE_NO_PAD.encode(self.signing.verifying_key().to_bytes());
        json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }
}

/// `ed-` and 16 base32 characters of the public key's SHA-256.
fn kid_of(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    format!("ed-{}", base32(&digest[..10]))
}

/// The PKCS#8 v1 encoding (RFC 8410) of an Ed25519 key: a fixed 16-byte prefix, then the seed.
fn pkcs8_der(signing: &SigningKey) -> Zeroizing<Vec<u8>> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(signing.as_bytes());
    der
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vigie_domain::clock::ManualClock;

    use super::*;
    use crate::{Role, Verifier};

    const OPENSSL_PEM: &str = include_str!("testdata/ed25519_private.pem");
    /// `openssl pkey -pubout` of that key: its raw public key, base64url.
    const OPENSSL_X: &str = "8oP1AAqvyyhyYdB9fE8bRE6q7S-IhzOpqhCIHhoNe7w";

    fn admin() -> Grant {
        Grant::new(
            "admin-1",
            Role::MspAdmin,
            vigie_domain::ids::TenantId::parse("acme").ok(),
            None,
            vec![],
        )
        .expect("grant")
    }

    #[test]
    fn pem_round_trip_keeps_the_key_and_its_kid() {
        let own = OwnIssuer::generate("https://auth.vigie.test", "vigie-api");
        let pem = own.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again =
            OwnIssuer::from_pkcs8_pem("https://auth.vigie.test", "vigie-api", &pem).expect("load");
        assert_eq!(again.kid(), own.kid());
        assert_eq!(again.jwks(), own.jwks());
        assert_ne!(OwnIssuer::generate("i", "a").kid(), own.kid());
        assert!(OwnIssuer::from_pkcs8_pem("i", "a", "not a pem").is_err());
    }

    #[test]
    fn openssl_keys_load_and_their_jwks_matches_openssl() {
        let own = OwnIssuer::from_pkcs8_pem("i", "a", OPENSSL_PEM).expect("load");
        let jwks = own.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["x"], OPENSSL_X);
        assert_eq!(key["kid"], own.kid());
        // The same bytes come back out.
        assert_eq!(own.to_pkcs8_pem().trim(), OPENSSL_PEM.trim());
    }

    #[tokio::test]
    async fn a_verifier_built_from_the_published_jwks_accepts_minted_tokens() {
        let own = OwnIssuer::generate("https://auth.vigie.test", "vigie-api");
        let jwks = own.jwks();
        let x = jwks["keys"][0]["x"].as_str().expect("x");
        let raw: [u8; 32] = URL_SAFE_NO_PAD
            .decode(x)
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        let config = IssuerConfig::Own {
            issuer: own.issuer().to_owned(),
            audience: own.audience().to_owned(),
            keys: vec![OwnKey::ed25519(own.kid(), raw).expect("key")],
        };
        let clock = Arc::new(ManualClock::at(1_000_000_000_000));
        let verifier = Verifier::new(vec![config], clock).expect("config");
        let token = own
            .mint(&admin(), Duration::from_secs(300), 1_000_000_000)
            .expect("mint");
        let principal = verifier.verify(&token).await.expect("valid");
        assert_eq!(principal.role(), Role::MspAdmin);
        assert_eq!(principal.subject(), "admin-1");
    }

    #[test]
    fn minted_claims_carry_the_grant_and_the_time_window() {
        let own = OwnIssuer::generate("https://auth.vigie.test", "vigie-api");
        let token = own
            .mint(&admin(), Duration::from_secs(300), 1_000)
            .expect("mint");
        let claims: Map<String, Value> =
            jsonwebtoken::dangerous::insecure_decode_claims(&token).expect("claims");
        assert_eq!(claims["iss"], "https://auth.vigie.test");
        assert_eq!(claims["aud"], "vigie-api");
        assert_eq!(claims["sub"], "admin-1");
        assert_eq!(claims["vigie:role"], "msp_admin");
        assert_eq!(claims["vigie:tenant"], "acme");
        assert_eq!(
            (claims["iat"].as_i64(), claims["nbf"].as_i64()),
            (Some(1_000), Some(1_000))
        );
        assert_eq!(claims["exp"].as_i64(), Some(1_300));
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 26));
        assert!(!claims.contains_key("vigie:client"));
    }

    #[test]
    fn invalid_public_keys_are_refused() {
        // The y coordinate 2 is not on the curve for any sign.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(OwnKey::ed25519("k", not_a_point).is_err());
        assert!(
            OwnKey::es256_pem(
                "k",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
            )
            .is_err()
        );
    }
}
