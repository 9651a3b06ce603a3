//! Behaviour of [`Verifier`]: every refusal is asserted with its code, so removing a check
//! changes the outcome of a test.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigie_domain::clock::ManualClock;
use vigie_domain::ids::{ClientId, TenantId};

use super::*;
use crate::{Grant, OwnIssuer, Role};

const T0: i64 = 1_750_000_000;
const OWN_ISS: &str = "https://auth.vigie.test";
const AUD: &str = "vigie-api";
const IDP_ISS: &str = "https://idp.example.test/pool-1";
const IDP_JWKS: &str = "https://idp.example.test/pool-1/.well-known/jwks.json";

const RSA_PRIVATE: &[u8] = include_bytes!("../testdata/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../testdata/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../testdata/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../testdata/ec_public.pem");

fn clock_at(s: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock::at(s * 1000))
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid tenant id")
}

fn client(s: &str) -> ClientId {
    ClientId::parse(s).expect("valid client id")
}

fn viewer_grant() -> Grant {
    Grant::new(
        "user-42",
        Role::ClientViewer,
        Some(tenant("acme")),
        Some(client("bakery")),
        vec![],
    )
    .expect("consistent grant")
}

fn own_verifier(own: &OwnIssuer, clock: Arc<ManualClock>) -> Verifier {
    Verifier::new(vec![own.issuer_config()], clock).expect("valid config")
}

fn code<T: std::fmt::Debug>(result: Result<T, AuthError>) -> &'static str {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(err) => err.code(),
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

/// Standard claims for a client viewer of `acme`, valid from T0 for an hour.
fn claims(iss: &str) -> Value {
    json!({
        "iss": iss, "aud": AUD, "sub": "user-42", "iat": T0, "nbf": T0, "exp": T0 + 3600,
        "vigie:tenant": "acme", "vigie:role": "client_viewer", "vigie:client": "bakery",
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("test RSA key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_PRIVATE).expect("test EC key")
}

fn jwk_json(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).expect("json")
}

/// A JWKS endpoint in memory that counts its fetches and can be switched off.
struct FakeIdp {
    body: Mutex<Vec<u8>>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

impl FakeIdp {
    fn serving(keys: Vec<Value>) -> Arc<Self> {
        Arc::new(Self {
            body: Mutex::new(serde_json::to_vec(&json!({ "keys": keys })).expect("json")),
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksFetcher for FakeIdp {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, crate::JwksFetchError> {
        assert_eq!(url, IDP_JWKS);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(crate::JwksFetchError::Status(503));
        }
        Ok(self.body.lock().expect("lock").clone())
    }
}

fn oidc_config(allowed: Vec<OidcAlgorithm>) -> IssuerConfig {
    IssuerConfig::Oidc {
        issuer: IDP_ISS.to_owned(),
        audience: AUD.to_owned(),
        jwks_url: IDP_JWKS.to_owned(),
        allowed_algorithms: allowed,
        claim_names: ClaimNames::default(),
    }
}

fn oidc_verifier(idp: &Arc<FakeIdp>, clock: Arc<ManualClock>) -> Verifier {
    let fetcher: Arc<dyn JwksFetcher> = idp.clone();
    Verifier::new(vec![oidc_config(vec![OidcAlgorithm::Rs256])], clock)
        .expect("valid config")
        .with_jwks_fetcher(fetcher)
}

// ---- Vigie's own issuer ----------------------------------------------------------------

#[tokio::test]
async fn own_token_round_trips_to_the_right_principal() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let token = own
        .mint(&viewer_grant(), Duration::from_secs(900), T0)
        .expect("mint");
    let principal = own_verifier(&own, clock_at(T0 + 10))
        .verify(&token)
        .await
        .expect("valid token");
    assert_eq!(principal.subject(), "user-42");
    assert_eq!(principal.role(), Role::ClientViewer);
    assert_eq!(principal.tenant_id(), Some(&tenant("acme")));
    assert_eq!(principal.client_id(), Some(&client("bakery")));
    assert!(principal.clients().is_empty());
    assert_eq!(
        principal.via(),
        &Credential::Jwt {
            issuer: OWN_ISS.to_owned()
        }
    );
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(own.kid()));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let verifier = own_verifier(&own, clock_at(T0));
    let payload = b64(&claims(OWN_ISS));
    for alg in ["none", "None", "NONE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT", "kid": own.kid()}));
        let unsigned = format!("{header}.{payload}.");
        assert_eq!(
            code(verifier.verify(&unsigned).await),
            "algorithm_not_allowed"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_ed25519_public_key_is_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let jwks = own.jwks();
    let x = jwks["keys"][0]["x"].as_str().expect("x");
    let public = URL_SAFE_NO_PAD.decode(x).expect("base64");
    let verifier = own_verifier(&own, clock_at(T0));
    for secret in [public.as_slice(), x.as_bytes()] {
        let forged = sign(
            Algorithm::HS256,
            Some(own.kid()),
            &claims(OWN_ISS),
            &EncodingKey::from_secret(secret),
        );
        assert_eq!(
            code(verifier.verify(&forged).await),
            "algorithm_not_allowed"
        );
    }
}

#[tokio::test]
async fn rs256_token_presented_to_the_own_issuer_is_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let token = sign(
        Algorithm::RS256,
        Some(own.kid()),
        &claims(OWN_ISS),
        &rsa_key(),
    );
    assert_eq!(
        code(own_verifier(&own, clock_at(T0)).verify(&token).await),
        "algorithm_not_allowed"
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let token = own
        .mint(&viewer_grant(), Duration::from_secs(600), T0)
        .expect("mint");
    let late = own_verifier(&own, clock_at(T0 + 600 + 3600));
    assert_eq!(code(late.verify(&token).await), "token_expired");
    let early = own_verifier(&own, clock_at(T0 - 3600));
    assert_eq!(code(early.verify(&token).await), "token_not_yet_valid");
}

#[tokio::test]
async fn leeway_is_respected_at_the_boundary() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let token = own
        .mint(&viewer_grant(), Duration::from_secs(600), T0)
        .expect("mint");
    let exp = T0 + 600;
    // Default leeway: 30 s on both sides.
    let at = |s| own_verifier(&own, clock_at(s));
    assert!(at(exp + 29).verify(&token).await.is_ok());
    assert_eq!(code(at(exp + 30).verify(&token).await), "token_expired");
    assert!(at(T0 - 30).verify(&token).await.is_ok());
    assert_eq!(
        code(at(T0 - 31).verify(&token).await),
        "token_not_yet_valid"
    );
    // A configured leeway replaces the default.
    let strict = own_verifier(&own, clock_at(exp)).with_leeway(Duration::ZERO);
    assert_eq!(code(strict.verify(&token).await), "token_expired");
    let strict = own_verifier(&own, clock_at(exp - 1)).with_leeway(Duration::ZERO);
    assert!(strict.verify(&token).await.is_ok());
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let own = OwnIssuer::generate(OWN_ISS, "another-api");
    let token = own
        .mint(&viewer_grant(), Duration::from_secs(600), T0)
        .expect("mint");
    let config = IssuerConfig::Own {
        issuer: OWN_ISS.to_owned(),
        audience: AUD.to_owned(),
        keys: vec![own.public_key()],
    };
    let verifier = Verifier::new(vec![config], clock_at(T0)).expect("config");
    assert_eq!(code(verifier.verify(&token).await), "bad_audience");
}

#[tokio::test]
async fn unknown_issuer_and_another_issuers_key_are_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let stranger = OwnIssuer::generate("https://evil.test", AUD);
    let verifier = own_verifier(&own, clock_at(T0));
    let token = stranger
        .mint(&viewer_grant(), Duration::from_secs(600), T0)
        .expect("mint");
    assert_eq!(code(verifier.verify(&token).await), "bad_issuer");
    // The stranger claims our issuer but can only sign with its own key.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(stranger.kid().to_owned());
    let pem = stranger.to_pkcs8_pem();
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("pem");
    let forged = jsonwebtoken::encode(&header, &claims(OWN_ISS), &key).expect("sign");
    assert_eq!(code(verifier.verify(&forged).await), "unknown_key");
    // ... or reuse our kid, and fail on the signature.
    header.kid = Some(own.kid().to_owned());
    let forged = jsonwebtoken::encode(&header, &claims(OWN_ISS), &key).expect("sign");
    assert_eq!(code(verifier.verify(&forged).await), "bad_signature");
}

#[tokio::test]
async fn tampered_claims_are_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let token = own
        .mint(&viewer_grant(), Duration::from_secs(600), T0)
        .expect("mint");
    let verifier = own_verifier(&own, clock_at(T0));
    assert!(verifier.verify(&token).await.is_ok());
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["vigie:role"] = json!("msp_admin");
    payload["vigie:client"] = Value::Null;
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_eq!(code(verifier.verify(&tampered).await), "bad_signature");
}

#[tokio::test]
async fn kid_is_required_when_the_issuer_has_several_keys() {
    let current = OwnIssuer::generate(OWN_ISS, AUD);
    let previous = OwnIssuer::generate(OWN_ISS, AUD);
    let pem = current.to_pkcs8_pem();
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("pem");
    let no_kid = sign(Algorithm::EdDSA, None, &claims(OWN_ISS), &key);
    let unknown_kid = sign(Algorithm::EdDSA, Some("ed-nobody"), &claims(OWN_ISS), &key);

    let single = own_verifier(&current, clock_at(T0));
    assert!(single.verify(&no_kid).await.is_ok());
    assert_eq!(code(single.verify(&unknown_kid).await), "unknown_key");

    let rotating = IssuerConfig::Own {
        issuer: OWN_ISS.to_owned(),
        audience: AUD.to_owned(),
        keys: vec![current.public_key(), previous.public_key()],
    };
    let verifier = Verifier::new(vec![rotating], clock_at(T0)).expect("config");
    assert_eq!(code(verifier.verify(&no_kid).await), "unknown_key");
    let with_kid = current
        .mint(&viewer_grant(), Duration::from_secs(60), T0)
        .expect("mint");
    let old = previous
        .mint(&viewer_grant(), Duration::from_secs(60), T0)
        .expect("mint");
    assert!(verifier.verify(&with_kid).await.is_ok());
    assert!(verifier.verify(&old).await.is_ok());
}

#[tokio::test]
async fn own_es256_key_is_accepted_when_configured() {
    let config = IssuerConfig::Own {
        issuer: OWN_ISS.to_owned(),
        audience: AUD.to_owned(),
        keys: vec![OwnKey::es256_pem("ec-1", EC_PUBLIC).expect("ec key")],
    };
    let verifier = Verifier::new(vec![config], clock_at(T0)).expect("config");
    let token = sign(Algorithm::ES256, Some("ec-1"), &claims(OWN_ISS), &ec_key());
    assert_eq!(
        verifier.verify(&token).await.expect("valid").role(),
        Role::ClientViewer
    );
    // The EdDSA algorithm is not allowed for an issuer with only an EC key.
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let token = own
        .mint(&viewer_grant(), Duration::from_secs(60), T0)
        .expect("mint");
    assert_eq!(code(verifier.verify(&token).await), "algorithm_not_allowed");
}

#[tokio::test]
async fn inconsistent_claims_are_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let pem = own.to_pkcs8_pem();
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("pem");
    let verifier = own_verifier(&own, clock_at(T0));
    let mut viewer_without_client = claims(OWN_ISS);
    viewer_without_client["vigie:client"] = Value::Null;
    let mut operator_in_tenant = claims(OWN_ISS);
    operator_in_tenant["vigie:role"] = json!("platform_operator");
    operator_in_tenant["vigie:client"] = Value::Null;
    let mut admin_without_tenant = claims(OWN_ISS);
    admin_without_tenant["vigie:role"] = json!("msp_admin");
    admin_without_tenant["vigie:client"] = Value::Null;
    admin_without_tenant["vigie:tenant"] = Value::Null;
    let mut without_exp = claims(OWN_ISS);
    without_exp.as_object_mut().map(|m| m.remove("exp"));
    for bad in [
        viewer_without_client,
        operator_in_tenant,
        admin_without_tenant,
        without_exp,
    ] {
        let token = sign(Algorithm::EdDSA, Some(own.kid()), &bad, &key);
        assert_eq!(code(verifier.verify(&token).await), "bad_claims");
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let verifier = own_verifier(&own, clock_at(T0));
    let good = own
        .mint(&viewer_grant(), Duration::from_secs(60), T0)
        .expect("mint");
    let crit_header = b64(&json!({"alg": "EdDSA", "kid": own.kid(), "crit": ["exp"]}));
    let crit = format!(
        "{crit_header}.{}",
        good.split_once('.')
            .map(|(_, rest)| rest)
            .unwrap_or_default()
    );
    let oversized = format!("{good}{}", "A".repeat(9000));
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.??.##",
        crit.as_str(),
        oversized.as_str(),
    ] {
        assert_eq!(code(verifier.verify(token).await), "malformed_token");
    }
}

// ---- OIDC ------------------------------------------------------------------------------

#[tokio::test]
async fn oidc_rs256_token_is_accepted_and_keys_are_cached() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let verifier = oidc_verifier(&idp, clock_at(T0));
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    let principal = verifier.verify(&token).await.expect("valid token");
    assert_eq!(principal.client_id(), Some(&client("bakery")));
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn oidc_unknown_kid_refetches_once_per_interval() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let clock = clock_at(T0);
    let verifier = oidc_verifier(&idp, clock.clone());
    let good = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    assert!(verifier.verify(&good).await.is_ok());
    assert_eq!(idp.fetches(), 1);

    clock.advance_ms(61_000);
    let stranger = sign(
        Algorithm::RS256,
        Some("rsa-x"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    assert_eq!(code(verifier.verify(&stranger).await), "unknown_key");
    assert_eq!(idp.fetches(), 2, "an unknown kid refetches exactly once");

    clock.advance_ms(10_000);
    let other = sign(
        Algorithm::RS256,
        Some("rsa-y"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    assert_eq!(code(verifier.verify(&other).await), "unknown_key");
    assert_eq!(idp.fetches(), 2, "no second fetch within the interval");
    assert!(
        verifier.verify(&good).await.is_ok(),
        "known keys still work"
    );

    clock.advance_ms(60_000);
    assert_eq!(code(verifier.verify(&other).await), "unknown_key");
    assert_eq!(idp.fetches(), 3, "the interval has passed");
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let verifier = oidc_verifier(&idp, clock_at(T0));
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    let (a, b, c) = tokio::join!(
        verifier.verify(&token),
        verifier.verify(&token),
        verifier.verify(&token)
    );
    assert!(a.is_ok() && b.is_ok() && c.is_ok(), "{a:?} {b:?} {c:?}");
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn oidc_rotated_key_is_found_by_the_refetch() {
    let idp = FakeIdp::serving(vec![]);
    let clock = clock_at(T0);
    let verifier = oidc_verifier(&idp, clock.clone());
    let token = sign(
        Algorithm::RS256,
        Some("rsa-2"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    assert_eq!(code(verifier.verify(&token).await), "unknown_key");
    *idp.body.lock().expect("lock") = serde_json::to_vec(&json!({
        "keys": [jwk_json(&rsa_key(), Algorithm::RS256, "rsa-2")]
    }))
    .expect("json");
    clock.advance_ms(60_000);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn oidc_fetch_failure_is_jwks_unavailable_and_a_stale_cache_keeps_working() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let clock = clock_at(T0);
    let verifier = oidc_verifier(&idp, clock.clone());
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &rsa_key(),
    );

    idp.down.store(true, Ordering::SeqCst);
    assert_eq!(code(verifier.verify(&token).await), "jwks_unavailable");
    // Inside the interval: no new fetch, still unavailable.
    assert_eq!(code(verifier.verify(&token).await), "jwks_unavailable");
    assert_eq!(idp.fetches(), 1);

    idp.down.store(false, Ordering::SeqCst);
    clock.advance_ms(60_000);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(idp.fetches(), 2);

    // The provider goes down; after max_age the keys are stale, the refresh fails, and the
    // cached key is still used.
    idp.down.store(true, Ordering::SeqCst);
    clock.advance_ms(3_600_000);
    let mut late = claims(IDP_ISS);
    late["exp"] = json!(T0 + 10_000);
    let late = sign(Algorithm::RS256, Some("rsa-1"), &late, &rsa_key());
    assert!(verifier.verify(&late).await.is_ok());
    assert_eq!(idp.fetches(), 3);
    let unknown = sign(
        Algorithm::RS256,
        Some("rsa-9"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    clock.advance_ms(60_000);
    assert_eq!(code(verifier.verify(&unknown).await), "jwks_unavailable");
}

#[tokio::test]
async fn oidc_hs256_signed_with_the_rsa_public_pem_is_refused() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let verifier = oidc_verifier(&idp, clock_at(T0));
    let forged = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &EncodingKey::from_secret(RSA_PUBLIC),
    );
    assert_eq!(
        code(verifier.verify(&forged).await),
        "algorithm_not_allowed"
    );
    assert_eq!(idp.fetches(), 0, "refused before any key is looked up");
}

#[tokio::test]
async fn oidc_es256_is_accepted_only_when_allowed() {
    let keys = vec![
        jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1"),
        jwk_json(&ec_key(), Algorithm::ES256, "ec-1"),
    ];
    let token = sign(Algorithm::ES256, Some("ec-1"), &claims(IDP_ISS), &ec_key());

    let idp = FakeIdp::serving(keys.clone());
    let fetcher: Arc<dyn JwksFetcher> = idp.clone();
    let both = Verifier::new(
        vec![oidc_config(vec![
            OidcAlgorithm::Rs256,
            OidcAlgorithm::Es256,
        ])],
        clock_at(T0),
    )
    .expect("config")
    .with_jwks_fetcher(fetcher);
    assert!(both.verify(&token).await.is_ok());

    let rsa_only = oidc_verifier(&FakeIdp::serving(keys), clock_at(T0));
    assert_eq!(code(rsa_only.verify(&token).await), "algorithm_not_allowed");

    // A token claiming RS256 cannot use the EC key.
    let confused = sign(Algorithm::RS256, Some("ec-1"), &claims(IDP_ISS), &rsa_key());
    assert_eq!(code(both.verify(&confused).await), "unknown_key");
}

#[tokio::test]
async fn oidc_claim_names_are_configurable() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let fetcher: Arc<dyn JwksFetcher> = idp.clone();
    let config = IssuerConfig::Oidc {
        issuer: IDP_ISS.to_owned(),
        audience: AUD.to_owned(),
        jwks_url: IDP_JWKS.to_owned(),
        allowed_algorithms: vec![OidcAlgorithm::Rs256],
        claim_names: ClaimNames {
            tenant: "custom:tenant".into(),
            role: "custom:role".into(),
            client: "custom:client".into(),
            clients: "custom:clients".into(),
        },
    };
    let verifier = Verifier::new(vec![config], clock_at(T0))
        .expect("config")
        .with_jwks_fetcher(fetcher);
    let cognito = json!({
        "iss": IDP_ISS, "aud": [AUD, "other"], "sub": "tech-7", "exp": T0 + 60,
        "custom:tenant": "acme", "custom:role": "technician", "custom:clients": "bakery,garage",
    });
    let token = sign(Algorithm::RS256, Some("rsa-1"), &cognito, &rsa_key());
    let principal = verifier.verify(&token).await.expect("valid");
    assert_eq!(principal.role(), Role::Technician);
    assert_eq!(principal.clients(), &[client("bakery"), client("garage")]);
}

#[test]
fn configuration_errors_are_reported() {
    let own = OwnIssuer::generate(OWN_ISS, AUD);
    let twice = Verifier::new(vec![own.issuer_config(), own.issuer_config()], clock_at(T0));
    assert!(matches!(twice, Err(ConfigError::BadIssuer { .. })));
    let mut plain_http = oidc_config(vec![OidcAlgorithm::Rs256]);
    if let IssuerConfig::Oidc { jwks_url, .. } = &mut plain_http {
        *jwks_url = "http://idp.example.test/jwks.json".to_owned();
    }
    assert!(matches!(
        Verifier::new(vec![plain_http], clock_at(T0)),
        Err(ConfigError::BadIssuer { .. })
    ));
    assert!(matches!(
        Verifier::new(vec![oidc_config(vec![])], clock_at(T0)),
        Err(ConfigError::BadIssuer { .. })
    ));
    let no_keys = IssuerConfig::Own {
        issuer: OWN_ISS.to_owned(),
        audience: AUD.to_owned(),
        keys: vec![],
    };
    assert!(Verifier::new(vec![no_keys], clock_at(T0)).is_err());
}

#[test]
fn jwks_parsing_skips_unusable_keys() {
    let mut enc = jwk_json(&rsa_key(), Algorithm::RS256, "enc");
    enc["use"] = json!("enc");
    let mut ps = jwk_json(&rsa_key(), Algorithm::RS256, "ps");
    ps["alg"] = json!("PS256");
    let short_rsa = json!({"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"});
    let doc = json!({"keys": [
        enc, ps, short_rsa,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AAAA"},
        {"kty": "weird"},
        jwk_json(&rsa_key(), Algorithm::RS256, "good"),
    ]});
    let body = serde_json::to_vec(&doc).expect("json");
    let keys =
        crate::jwks::parse_jwks(&body, &[Algorithm::RS256, Algorithm::ES256]).expect("a key set");
    let kids: Vec<_> = keys.iter().filter_map(|k| k.kid.as_deref()).collect();
    assert_eq!(kids, ["good"]);
    assert!(crate::jwks::parse_jwks(b"not json", &[Algorithm::RS256]).is_none());
}

/// The real fetcher against a real (local) HTTP server.
#[tokio::test]
async fn oidc_keys_are_fetched_over_http() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let body = serde_json::to_vec(&json!({
        "keys": [jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]
    }))
    .expect("json");
    let requests = Arc::new(AtomicUsize::new(0));
    let served = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let ok = request.starts_with(b"GET /pool-1/.well-known/jwks.json ");
            served.fetch_add(1, Ordering::SeqCst);
            let head = if ok {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = socket.write_all(head.as_bytes()).await;
            if ok {
                let _ = socket.write_all(&body).await;
            }
            let _ = socket.shutdown().await;
        }
    });

    let config = IssuerConfig::Oidc {
        issuer: IDP_ISS.to_owned(),
        audience: AUD.to_owned(),
        jwks_url: format!("http://127.0.0.1:{port}/pool-1/.well-known/jwks.json"),
        allowed_algorithms: vec![OidcAlgorithm::Rs256],
        claim_names: ClaimNames::default(),
    };
    let verifier = Verifier::new(vec![config], clock_at(T0)).expect("config");
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    let principal = verifier
        .verify(&token)
        .await
        .expect("verified via HTTP JWKS");
    assert_eq!(principal.subject(), "user-42");
    assert_eq!(requests.load(Ordering::SeqCst), 1);

    let url = format!("http://127.0.0.1:{port}/nope");
    let missing = tokio::task::spawn_blocking(move || HttpJwks::default().fetch(&url))
        .await
        .expect("fetch task");
    assert_eq!(missing, Err(crate::JwksFetchError::Status(404)));
}

#[tokio::test]
async fn a_token_without_a_role_is_an_identity_and_needs_its_user_record() {
    let idp = FakeIdp::serving(vec![jwk_json(&rsa_key(), Algorithm::RS256, "rsa-1")]);
    let verifier = oidc_verifier(&idp, clock_at(T0));
    let person = json!({
        "iss": IDP_ISS, "aud": AUD, "sub": "user-42", "email": "ana@msp.example",
        "iat": T0, "nbf": T0, "exp": T0 + 3600,
    });
    let token = sign(Algorithm::RS256, Some("rsa-1"), &person, &rsa_key());
    // `verify` wants a complete grant in the claims.
    assert_eq!(code(verifier.verify(&token).await), "bad_claims");
    let Ok(Verified::Identity(identity)) = verifier.verify_any(&token).await else {
        panic!("an identity");
    };
    assert_eq!(
        (identity.issuer(), identity.subject(), identity.email()),
        (IDP_ISS, "user-42", Some("ana@msp.example"))
    );
    // Its user record's grant makes it a principal; someone else's does not.
    let principal = identity
        .clone()
        .with_grant(viewer_grant())
        .expect("own record");
    assert_eq!(principal.role(), Role::ClientViewer);
    let other = Grant::new(
        "user-7",
        Role::Technician,
        Some(tenant("acme")),
        None,
        vec![],
    )
    .expect("grant");
    assert_eq!(code(identity.with_grant(other)), "bad_claims");
    // A token with a role stays a principal; a forged one is still refused.
    let full = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(IDP_ISS),
        &rsa_key(),
    );
    assert!(matches!(
        verifier.verify_any(&full).await,
        Ok(Verified::Principal(_))
    ));
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert!(verifier.verify_any(&forged).await.is_err());
}
