//! Bearer-token verification: issuer by `iss`, pinned algorithms, key by `kid`, then claims.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use vigie_domain::clock::Clock;

use crate::claims::{ClaimNames, grant_from_claims};
use crate::jwks::{HttpJwks, JwksCache, JwksFetcher, JwksRefreshPolicy, KeyEntry, select_key};
use crate::{AuthError, ConfigError, Credential, Grant, OwnKey, Principal};

/// Longest token accepted; anything longer is refused before any decoding.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The algorithms an OIDC provider may be allowed to sign with. There is deliberately no HMAC
/// and no `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OidcAlgorithm {
    Rs256,
    Es256,
}

impl OidcAlgorithm {
    fn algorithm(self) -> Algorithm {
        match self {
            OidcAlgorithm::Rs256 => Algorithm::RS256,
            OidcAlgorithm::Es256 => Algorithm::ES256,
        }
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone)]
pub enum IssuerConfig {
    /// Vigie's own issuer. Its algorithms are those of its keys (`EdDSA`, `ES256`); a token
    /// must name its `kid` when there are several keys (during a rotation).
    Own {
        issuer: String,
        audience: String,
        keys: Vec<OwnKey>,
    },
    /// An OpenID Connect provider (Cognito, Entra ID, ...) whose keys are published at
    /// `jwks_url` (`https://`, or `http://` on the loopback interface only).
    Oidc {
        issuer: String,
        audience: String,
        jwks_url: String,
        allowed_algorithms: Vec<OidcAlgorithm>,
        claim_names: ClaimNames,
    },
}

enum IssuerKeys {
    Own(Vec<KeyEntry>),
    Oidc(JwksCache),
}

struct TrustedIssuer {
    audience: String,
    allowed: Vec<Algorithm>,
    claim_names: ClaimNames,
    keys: IssuerKeys,
}

/// Verifies bearer tokens against a fixed set of issuers. Build it once per process and share
/// it: it holds the JWKS caches.
pub struct Verifier {
    issuers: HashMap<String, TrustedIssuer>,
    clock: Arc<dyn Clock>,
    leeway_s: i64,
    refresh: JwksRefreshPolicy,
    fetcher: Arc<dyn JwksFetcher>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .field("leeway_s", &self.leeway_s)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

fn is_allowed_jwks_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|prefix| url.starts_with(prefix))
}

impl TrustedIssuer {
    fn from_config(config: IssuerConfig) -> Result<(String, Self), ConfigError> {
        let (issuer, audience) = match &config {
            IssuerConfig::Own {
                issuer, audience, ..
            }
            | IssuerConfig::Oidc {
                issuer, audience, ..
            } => (issuer.clone(), audience.clone()),
        };
        let bad = |reason| ConfigError::BadIssuer {
            issuer: issuer.clone(),
            reason,
        };
        if issuer.is_empty() || audience.is_empty() {
            return Err(bad("issuer and audience must not be empty"));
        }
        let trusted = match config {
            IssuerConfig::Own { keys, .. } => {
                if keys.is_empty() {
                    return Err(bad("an issuer needs at least one key"));
                }
                let mut kids: Vec<&str> = keys.iter().map(OwnKey::kid).collect();
                kids.sort_unstable();
                kids.dedup();
                if kids.len() != keys.len() {
                    return Err(bad("two keys share a kid"));
                }
                let mut allowed: Vec<Algorithm> = Vec::new();
                for key in &keys {
                    if !allowed.contains(&key.entry.alg) {
                        allowed.push(key.entry.alg);
                    }
                }
                TrustedIssuer {
                    audience,
                    allowed,
                    claim_names: ClaimNames::default(),
                    keys: IssuerKeys::Own(keys.into_iter().map(|k| k.entry).collect()),
                }
            }
            IssuerConfig::Oidc {
                jwks_url,
                allowed_algorithms,
                claim_names,
                ..
            } => {
                if allowed_algorithms.is_empty() {
                    return Err(bad("an OIDC issuer needs at least one algorithm"));
                }
                if !is_allowed_jwks_url(&jwks_url) {
                    return Err(bad("the JWKS URL must use https"));
                }
                let allowed: Vec<Algorithm> = allowed_algorithms
                    .into_iter()
                    .map(OidcAlgorithm::algorithm)
                    .collect();
                TrustedIssuer {
                    audience,
                    claim_names,
                    keys: IssuerKeys::Oidc(JwksCache::new(jwks_url, allowed.clone())),
                    allowed,
                }
            }
        };
        Ok((issuer, trusted))
    }
}

/// The parts of a JOSE header looked at before the signature is checked.
#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::MalformedToken)
}

fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        // Never in an allowed list.
        _ => "",
    }
}

fn signature_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::MalformedToken,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::AlgorithmNotAllowed,
        _ => AuthError::BadSignature,
    }
}

/// A NumericDate claim (seconds; a fraction is truncated towards the past).
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            #[allow(clippy::cast_possible_truncation)]
            (None, Some(f)) if f.is_finite() => Ok(Some(f.floor() as i64)),
            _ => Err(AuthError::BadClaims {
                reason: "time claims must be numbers of seconds",
            }),
        },
        Some(_) => Err(AuthError::BadClaims {
            reason: "time claims must be numbers of seconds",
        }),
    }
}

fn check_audience(claims: &Map<String, Value>, audience: &str) -> Result<(), AuthError> {
    let accepted = match claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(AuthError::BadAudience)
    }
}

/// `exp` is required; the token is valid while `now < exp + leeway` and, when `nbf` is present,
/// from `nbf - leeway` on.
fn check_times(claims: &Map<String, Value>, now_s: i64, leeway_s: i64) -> Result<(), AuthError> {
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::BadClaims {
        reason: "exp is required",
    })?;
    if now_s >= exp.saturating_add(leeway_s) {
        return Err(AuthError::TokenExpired);
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| now_s < nbf.saturating_sub(leeway_s)) {
        return Err(AuthError::TokenNotYetValid);
    }
    numeric_date(claims, "iat")?;
    Ok(())
}

impl Verifier {
    /// A verifier trusting exactly `issuers`, reading time from `clock`, with a 30-second leeway,
    /// the default [`JwksRefreshPolicy`] and JWKS fetched over HTTPS.
    pub fn new(issuers: Vec<IssuerConfig>, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        crate::install_crypto_provider();
        let mut trusted = HashMap::new();
        for config in issuers {
            let (name, issuer) = TrustedIssuer::from_config(config)?;
            if trusted.insert(name.clone(), issuer).is_some() {
                return Err(ConfigError::BadIssuer {
                    issuer: name,
                    reason: "configured twice",
                });
            }
        }
        Ok(Self {
            issuers: trusted,
            clock,
            leeway_s: 30,
            refresh: JwksRefreshPolicy::default(),
            fetcher: Arc::new(HttpJwks::default()),
        })
    }

    /// The clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway_s = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// How often OIDC key sets may be fetched again.
    pub fn with_jwks_refresh(mut self, policy: JwksRefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }

    /// Fetch OIDC key sets with `fetcher` instead of HTTPS.
    pub fn with_jwks_fetcher(mut self, fetcher: Arc<dyn JwksFetcher>) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// Verifies a bearer token (without the `Bearer ` prefix) and returns who it identifies.
    ///
    /// Runs inside a Tokio runtime: fetching an OIDC key set uses `spawn_blocking`.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (issuer_name, claims, names) = self.verified_claims(token).await?;
        let grant = grant_from_claims(&claims, names)?;
        Ok(Principal::new(
            grant,
            Credential::Jwt {
                issuer: issuer_name.to_owned(),
            },
        ))
    }

    /// Like [`Verifier::verify`], but a verified token that carries no role claim (an OIDC
    /// provider's token for a person invited into a tenant) is answered as an [`Identity`]:
    /// who it is, proven, with what they may do still to be read from their user record.
    pub async fn verify_any(&self, token: &str) -> Result<Verified, AuthError> {
        let (issuer_name, claims, names) = self.verified_claims(token).await?;
        if claims.contains_key(&names.role) {
            let grant = grant_from_claims(&claims, names)?;
            return Ok(Verified::Principal(Principal::new(
                grant,
                Credential::Jwt {
                    issuer: issuer_name.to_owned(),
                },
            )));
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::BadClaims {
                reason: "sub is required",
            })?;
        Ok(Verified::Identity(Identity {
            issuer: issuer_name.to_owned(),
            subject: subject.to_owned(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }))
    }

    /// The issuer and claims of a token whose signature, issuer, audience and times hold.
    async fn verified_claims(
        &self,
        token: &str,
    ) -> Result<(&str, Map<String, Value>, &ClaimNames), AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::MalformedToken);
        }
        let segments: Vec<&str> = token.split('.').collect();
        let [header, payload, _signature] = segments[..] else {
            return Err(AuthError::MalformedToken);
        };
        let header: UnverifiedHeader = decode_segment(header)?;
        if header.crit.is_some() {
            // No extension is understood, so a critical one must be refused (RFC 7515 §4.1.11).
            return Err(AuthError::MalformedToken);
        }
        // Only to choose the issuer; the same bytes are checked again once signed.
        let unverified: Map<String, Value> = decode_segment(payload)?;
        let issuer_name = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::BadIssuer)?;
        let (issuer_name, issuer) = self
            .issuers
            .get_key_value(issuer_name)
            .ok_or(AuthError::BadIssuer)?;
        let alg = issuer
            .allowed
            .iter()
            .copied()
            .find(|alg| algorithm_name(*alg) == header.alg)
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        let now_ms = self.clock.now_ms();
        let key: DecodingKey = match &issuer.keys {
            IssuerKeys::Own(keys) => select_key(keys, header.kid.as_deref(), alg)
                .map(|entry| entry.key.clone())
                .ok_or(AuthError::UnknownKey)?,
            IssuerKeys::Oidc(cache) => {
                cache
                    .key_for(
                        header.kid.as_deref(),
                        alg,
                        now_ms,
                        self.refresh,
                        &self.fetcher,
                    )
                    .await?
            }
        };

        let mut validation = Validation::new(alg);
        // Time, audience and issuer are checked below, with the injected clock.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|err| signature_error(err.kind()))?
            .claims;

        if claims.get("iss").and_then(Value::as_str) != Some(issuer_name.as_str()) {
            return Err(AuthError::BadIssuer);
        }
        check_audience(&claims, &issuer.audience)?;
        check_times(&claims, now_ms.div_euclid(1000), self.leeway_s)?;
        Ok((issuer_name.as_str(), claims, &issuer.claim_names))
    }
}

/// What a verified token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A complete grant, from the token's claims.
    Principal(Principal),
    /// Who the caller is, without a grant: look the user record up.
    Identity(Identity),
}

/// A person proven by a verified token that names no role. Only [`Verifier::verify_any`]
/// makes one, so holding one means the token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    issuer: String,
    subject: String,
    email: Option<String>,
}

impl Identity {
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The principal this identity is, given the grant its user record holds. The grant must
    /// name this identity's subject.
    pub fn with_grant(self, grant: Grant) -> Result<Principal, AuthError> {
        if grant.subject() != self.subject {
            return Err(AuthError::BadClaims {
                reason: "the user record belongs to someone else",
            });
        }
        Ok(Principal::new(
            grant,
            Credential::Jwt {
                issuer: self.issuer,
            },
        ))
    }
}

#[cfg(test)]
mod tests;
