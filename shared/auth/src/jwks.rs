//! An OIDC provider's signing keys: fetched from its `jwks_uri`, cached, refreshed on an unknown
//! `kid` at most once per interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::AuthError;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: u64 = 256 * 1024;

/// Smallest RSA modulus accepted from a JWKS, in bits.
const MIN_RSA_BITS: usize = 2048;

/// Fetches a JWKS document. Called on a blocking thread (`tokio::task::spawn_blocking`), so an
/// implementation may block.
pub trait JwksFetcher: Send + Sync {
    /// The raw JSON body served at `url`.
    fn fetch(&self, url: &str) -> Result<Vec<u8>, JwksFetchError>;
}

/// Why a JWKS document could not be fetched. Logged, then reported as
/// [`AuthError::JwksUnavailable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksFetchError {
    #[error("JWKS request failed: {0}")]
    Transport(String),
    #[error("JWKS endpoint answered HTTP {0}")]
    Status(u16),
    #[error("JWKS response unreadable or larger than 256 KiB")]
    Body,
}

/// The real fetcher: a blocking HTTPS GET with a total timeout, no redirects, at most 256 KiB.
pub struct HttpJwks {
    agent: ureq::Agent,
}

impl HttpJwks {
    /// A fetcher whose requests give up after `timeout` in all.
    pub fn new(timeout: Duration) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .build();
        Self { agent }
    }
}

impl Default for HttpJwks {
    /// Five seconds: a Lambda must not spend its budget waiting for the identity provider.
    fn default() -> Self {
        Self::new(Duration::from_secs(5))
    }
}

impl std::fmt::Debug for HttpJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpJwks")
    }
}

impl JwksFetcher for HttpJwks {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, JwksFetchError> {
        use std::io::Read;
        let response = match self.agent.get(url).call() {
            Ok(response) => response,
            Err(ureq::Error::Status(status, _)) => return Err(JwksFetchError::Status(status)),
            Err(err) => return Err(JwksFetchError::Transport(err.to_string())),
        };
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_JWKS_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|_| JwksFetchError::Body)?;
        if body.len() as u64 > MAX_JWKS_BYTES {
            return Err(JwksFetchError::Body);
        }
        Ok(body)
    }
}

/// One verification key with the one algorithm it may be used with.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The key for a token with header `kid` and `alg`: matched by `kid`, or the single key when the
/// token has no `kid` and the issuer only one key. The key's algorithm must be the token's.
pub(crate) fn select_key<'a>(
    keys: &'a [KeyEntry],
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a KeyEntry> {
    let entry = match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid))?,
        None => match keys {
            [only] => only,
            _ => return None,
        },
    };
    (entry.alg == alg).then_some(entry)
}

/// Turns a JWKS document into the keys usable with `allowed` algorithms. Keys of other types,
/// for encryption, for other algorithms, on other curves or too short are skipped, as is any
/// entry that does not parse, so one odd key cannot take the others down.
pub(crate) fn parse_jwks(body: &[u8], allowed: &[Algorithm]) -> Option<Vec<KeyEntry>> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let items = doc.get("keys")?.as_array()?;
    let entries = items
        .iter()
        .filter_map(|item| serde_json::from_value::<Jwk>(item.clone()).ok())
        .filter_map(|jwk| usable_key(&jwk))
        .filter(|entry| allowed.contains(&entry.alg))
        .collect();
    Some(entries)
}

fn usable_key(jwk: &Jwk) -> Option<KeyEntry> {
    if matches!(
        jwk.common.public_key_use,
        Some(ref usage) if *usage != PublicKeyUse::Signature
    ) {
        return None;
    }
    let declared = match jwk.common.key_algorithm {
        Some(alg) => Some(Algorithm::try_from(alg).ok()?),
        None => None,
    };
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?;
            if modulus_bits(key.kind()) < MIN_RSA_BITS {
                return None;
            }
            (Algorithm::RS256, key)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?,
        ),
        _ => return None,
    };
    if declared.is_some_and(|declared| declared != alg) {
        return None;
    }
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

fn modulus_bits(kind: &jsonwebtoken::DecodingKeyKind) -> usize {
    match kind {
        jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, .. } => {
            let significant = n.iter().skip_while(|b| **b == 0).count();
            significant * 8
        }
        jsonwebtoken::DecodingKeyKind::SecretOrDer(_) => 0,
    }
}

/// How often the cache may go back to the identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksRefreshPolicy {
    /// At most one fetch per interval, whatever the tokens say (default 60 s).
    pub min_interval: Duration,
    /// Keys older than this are refreshed when next used; if that fetch fails the old keys keep
    /// working (default one hour).
    pub max_age: Duration,
}

impl Default for JwksRefreshPolicy {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        }
    }
}

#[derive(Default)]
struct CacheState {
    keys: Arc<Vec<KeyEntry>>,
    fetched_ms: Option<i64>,
    last_attempt_ms: Option<i64>,
    last_attempt_failed: bool,
}

/// The cached keys of one OIDC issuer.
pub(crate) struct JwksCache {
    url: String,
    allowed: Vec<Algorithm>,
    state: Mutex<CacheState>,
    refreshing: tokio::sync::Mutex<()>,
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JwksCache {
    pub(crate) fn new(url: String, allowed: Vec<Algorithm>) -> Self {
        Self {
            url,
            allowed,
            state: Mutex::new(CacheState::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key for `kid`/`alg`, fetching the key set first when the key is unknown (or the set
    /// old) and the refresh interval allows it.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now_ms: i64,
        policy: JwksRefreshPolicy,
        fetcher: &Arc<dyn JwksFetcher>,
    ) -> Result<DecodingKey, AuthError> {
        let is_stale = |state: &CacheState| {
            state
                .fetched_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= duration_ms(policy.max_age))
        };
        {
            let state = self.lock();
            let fresh = select_key(&state.keys, kid, alg).filter(|_| !is_stale(&state));
            if let Some(entry) = fresh {
                return Ok(entry.key.clone());
            }
        }
        // One fetch at a time: concurrent requests wait here, then use what it brought.
        let _refreshing = self.refreshing.lock().await;
        let (keys, may_fetch, failed) = {
            let mut state = self.lock();
            let stale = is_stale(&state);
            let may_fetch = state
                .last_attempt_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= duration_ms(policy.min_interval));
            let cached = select_key(&state.keys, kid, alg).map(|e| e.key.clone());
            let wants_fetch = may_fetch && (cached.is_none() || stale);
            if wants_fetch {
                state.last_attempt_ms = Some(now_ms);
            }
            if let (Some(key), false) = (&cached, wants_fetch) {
                return Ok(key.clone());
            }
            (state.keys.clone(), wants_fetch, state.last_attempt_failed)
        };
        let cached = select_key(&keys, kid, alg).map(|e| e.key.clone());
        if !may_fetch {
            // Only reached for an unknown key inside the interval.
            return Err(if failed && keys.is_empty() {
                AuthError::JwksUnavailable
            } else {
                AuthError::UnknownKey
            });
        }
        match self.refresh(now_ms, fetcher).await {
            Ok(fresh) => select_key(&fresh, kid, alg)
                .map(|e| e.key.clone())
                .ok_or(AuthError::UnknownKey),
            // A stale cache keeps working while the identity provider is down.
            Err(()) => cached.ok_or(AuthError::JwksUnavailable),
        }
    }

    async fn refresh(
        &self,
        now_ms: i64,
        fetcher: &Arc<dyn JwksFetcher>,
    ) -> Result<Arc<Vec<KeyEntry>>, ()> {
        let url = self.url.clone();
        let task_fetcher = Arc::clone(fetcher);
        let fetched = tokio::task::spawn_blocking(move || task_fetcher.fetch(&url)).await;
        let parsed = match fetched {
            Ok(Ok(body)) => parse_jwks(&body, &self.allowed).ok_or_else(|| {
                tracing::warn!(jwks_url = %self.url, "JWKS document is not a key set");
            }),
            Ok(Err(err)) => {
                tracing::warn!(jwks_url = %self.url, error = %err, "JWKS fetch failed");
                Err(())
            }
            Err(err) => {
                tracing::warn!(jwks_url = %self.url, error = %err, "JWKS fetch task failed");
                Err(())
            }
        };
        let mut state = self.lock();
        match parsed {
            Ok(keys) => {
                tracing::debug!(jwks_url = %self.url, keys = keys.len(), "JWKS refreshed");
                state.keys = Arc::new(keys);
                state.fetched_ms = Some(now_ms);
                state.last_attempt_failed = false;
                Ok(state.keys.clone())
            }
            Err(()) => {
                state.last_attempt_failed = true;
                Err(())
            }
        }
    }
}
