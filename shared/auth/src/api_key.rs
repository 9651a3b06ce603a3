//! API keys: machine credentials for integrations and usage exports, presented as `x-api-key`.
//!
//! A key reads `vk_<key id>_<secret>`. The key id (16 base32 characters, 80 bits) finds the
//! stored [`ApiKeyRecord`]; the secret (52 base32 characters, 256 bits) is shown once at
//! creation and only its SHA-256 is stored. A fast hash is enough: the secret is random, not a
//! password.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vigie_domain::ids::{TenantId, base32, random_bytes};

use crate::{AuthError, ConfigError, Credential, Grant, Principal, Role};

const PREFIX: &str = "vk_";
const KEY_ID_LEN: usize = 16;
const SECRET_LEN: usize = 52;

fn is_base32(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The public id of an API key: 16 lower-case base32 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Parses a key id, refusing anything but 16 base32 characters.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        if s.len() == KEY_ID_LEN && is_base32(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AuthError::MalformedApiKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyId({})", self.0)
    }
}

impl TryFrom<String> for ApiKeyId {
    type Error = AuthError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ApiKeyId> for String {
    fn from(id: ApiKeyId) -> Self {
        id.0
    }
}

/// What an API key reaches: one tenant, or the platform (usage exports across tenants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiKeyScope {
    Tenant { tenant_id: TenantId },
    Platform,
}

/// The plaintext of a new API key, to be shown once to its owner. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

fn secret_sha256_hex(secret: &str) -> String {
    use fmt::Write;
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

impl ApiKey {
    /// A new random key for `role` in `scope`. Only `Accounting` (tenant or platform) and
    /// `MspAdmin` (tenant, for integrations) keys exist. Returns the plaintext, to hand over
    /// once, and the record to store, which holds only the secret's SHA-256.
    pub fn generate(
        name: impl Into<String>,
        scope: ApiKeyScope,
        role: Role,
        created_ms: i64,
    ) -> Result<(ApiKey, ApiKeyRecord), ConfigError> {
        let key_id = ApiKeyId(base32(&random_bytes::<10>()));
        let record = ApiKeyRecord {
            secret_sha256: String::new(),
            key_id,
            scope,
            role,
            name: name.into(),
            created_ms,
            revoked_ms: None,
            last_used_ms: None,
        };
        record.grant().map_err(|err| ConfigError::BadGrant {
            reason: match err {
                AuthError::BadClaims { reason } => reason,
                _ => "role not allowed for an API key",
            },
        })?;
        let secret = base32(&random_bytes::<32>());
        let plaintext = ApiKey(format!("{PREFIX}{}_{secret}", record.key_id));
        let record = ApiKeyRecord {
            secret_sha256: secret_sha256_hex(&secret),
            ..record
        };
        Ok((plaintext, record))
    }

    /// The full key, `vk_<key id>_<secret>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Splits a presented `x-api-key` value into the key id (to look the record up) and the
    /// secret (for [`ApiKeyRecord::verify`]).
    pub fn parse_presented(presented: &str) -> Result<(ApiKeyId, &str), AuthError> {
        let rest = presented
            .strip_prefix(PREFIX)
            .ok_or(AuthError::MalformedApiKey)?;
        let (key_id, secret) = rest.split_once('_').ok_or(AuthError::MalformedApiKey)?;
        let key_id = ApiKeyId::parse(key_id)?;
        if secret.len() != SECRET_LEN || !is_base32(secret) {
            return Err(AuthError::MalformedApiKey);
        }
        Ok((key_id, secret))
    }
}

/// A stored API key. Holds no secret: only `secret_sha256`, the hex SHA-256 of the secret part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: ApiKeyId,
    pub secret_sha256: String,
    pub scope: ApiKeyScope,
    pub role: Role,
    /// What the key is for, as its owner named it ("PSA sync", "monthly invoicing").
    pub name: String,
    pub created_ms: i64,
    /// From this time on the key is refused.
    pub revoked_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

impl ApiKeyRecord {
    fn grant(&self) -> Result<Grant, AuthError> {
        if !matches!(self.role, Role::Accounting | Role::MspAdmin) {
            return Err(AuthError::BadClaims {
                reason: "an API key is for accounting or an MSP admin integration only",
            });
        }
        let tenant_id = match &self.scope {
            ApiKeyScope::Tenant { tenant_id } => Some(tenant_id.clone()),
            ApiKeyScope::Platform => None,
        };
        Grant::new(
            format!("apikey:{}", self.key_id),
            self.role,
            tenant_id,
            None,
            Vec::new(),
        )
    }

    /// Checks the presented secret (in constant time) and the revocation, and returns the
    /// key's principal.
    pub fn verify(&self, presented_secret: &str, now_ms: i64) -> Result<Principal, AuthError> {
        let presented = secret_sha256_hex(presented_secret);
        if !bool::from(presented.as_bytes().ct_eq(self.secret_sha256.as_bytes())) {
            return Err(AuthError::ApiKeyUnknown);
        }
        if self.revoked_ms.is_some_and(|revoked| revoked <= now_ms) {
            return Err(AuthError::ApiKeyRevoked);
        }
        let grant = self.grant()?;
        Ok(Principal::new(
            grant,
            Credential::ApiKey {
                key_id: self.key_id.to_string(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000_000;

    fn acme() -> ApiKeyScope {
        ApiKeyScope::Tenant {
            tenant_id: TenantId::parse("acme").expect("tenant"),
        }
    }

    fn code<T: std::fmt::Debug>(result: Result<T, AuthError>) -> &'static str {
        match result {
            Ok(value) => panic!("expected a refusal, got {value:?}"),
            Err(err) => err.code(),
        }
    }

    #[test]
    fn the_right_secret_gives_the_keys_principal() {
        let (key, record) =
            ApiKey::generate("PSA sync", acme(), Role::MspAdmin, NOW).expect("generate");
        let (key_id, secret) = ApiKey::parse_presented(key.as_str()).expect("parse");
        assert_eq!(key_id, record.key_id);
        let principal = record.verify(secret, NOW + 1).expect("valid key");
        assert_eq!(principal.role(), Role::MspAdmin);
        assert_eq!(principal.tenant_id().map(TenantId::as_str), Some("acme"));
        assert_eq!(principal.subject(), format!("apikey:{key_id}"));
        assert_eq!(
            principal.via(),
            &Credential::ApiKey {
                key_id: key_id.to_string()
            }
        );
    }

    #[test]
    fn a_wrong_secret_is_unknown() {
        let (key, record) = ApiKey::generate("x", acme(), Role::Accounting, NOW).expect("generate");
        let (_, secret) = ApiKey::parse_presented(key.as_str()).expect("parse");
        let mut wrong = secret.to_owned();
        let last = if wrong.ends_with('a') { "b" } else { "a" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert_eq!(code(record.verify(&wrong, NOW)), "api_key_unknown");
        let (_, other) = ApiKey::generate("y", acme(), Role::Accounting, NOW).expect("generate");
        assert_eq!(code(other.verify(secret, NOW)), "api_key_unknown");
    }

    #[test]
    fn a_revoked_key_is_refused_from_its_revocation_on() {
        let (key, mut record) =
            ApiKey::generate("x", ApiKeyScope::Platform, Role::Accounting, NOW).expect("generate");
        let (_, secret) = ApiKey::parse_presented(key.as_str()).expect("parse");
        record.revoked_ms = Some(NOW + 1_000);
        let principal = record.verify(secret, NOW).expect("not yet revoked");
        assert_eq!(principal.tenant_id(), None);
        assert_eq!(code(record.verify(secret, NOW + 1_000)), "api_key_revoked");
        // A wrong secret on a revoked key says nothing about the revocation.
        assert_eq!(code(record.verify("nope", NOW + 5_000)), "api_key_unknown");
    }

    #[test]
    fn the_stored_record_never_contains_the_secret() {
        let (key, record) = ApiKey::generate("x", acme(), Role::Accounting, NOW).expect("generate");
        let (_, secret) = ApiKey::parse_presented(key.as_str()).expect("parse");
        let json = serde_json::to_string(&record).expect("serialise");
        assert!(!json.contains(secret));
        assert!(!format!("{record:?}").contains(secret));
        assert!(!format!("{key:?}").contains(secret));
        assert_eq!(record.secret_sha256, secret_sha256_hex(secret));
        assert_eq!(record.secret_sha256.len(), 64);
        let back: ApiKeyRecord = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, record);
        assert!(back.verify(secret, NOW).is_ok());
    }

    #[test]
    fn records_serialise_in_a_stable_shape() {
        let (_, record) =
            ApiKey::generate("exports", acme(), Role::Accounting, NOW).expect("generate");
        let json = serde_json::to_value(&record).expect("serialise");
        assert_eq!(
            json["scope"],
            serde_json::json!({"kind": "tenant", "tenant_id": "acme"})
        );
        assert_eq!(json["role"], "accounting");
        assert_eq!(json["revoked_ms"], serde_json::Value::Null);
        let mut bad_id = json.clone();
        bad_id["key_id"] = "ACME#1".into();
        assert!(serde_json::from_value::<ApiKeyRecord>(bad_id).is_err());
    }

    #[test]
    fn only_accounting_and_tenant_admin_keys_exist() {
        for role in [Role::Technician, Role::ClientViewer, Role::PlatformOperator] {
            assert!(matches!(
                ApiKey::generate("x", acme(), role, NOW),
                Err(ConfigError::BadGrant { .. })
            ));
        }
        assert!(ApiKey::generate("x", ApiKeyScope::Platform, Role::MspAdmin, NOW).is_err());
        // A record edited in storage into an impossible grant is refused at use.
        let (key, mut record) =
            ApiKey::generate("x", acme(), Role::Accounting, NOW).expect("generate");
        record.role = Role::ClientViewer;
        let (_, secret) = ApiKey::parse_presented(key.as_str()).expect("parse");
        assert_eq!(code(record.verify(secret, NOW)), "bad_claims");
    }

    #[test]
    fn presented_keys_are_parsed_strictly() {
        let (key, _) = ApiKey::generate("x", acme(), Role::Accounting, NOW).expect("generate");
        let good = key.as_str();
        assert!(good.starts_with("vk_"));
        assert_eq!(good.len(), 3 + 16 + 1 + 52);
        let upper = good.to_uppercase();
        let no_prefix = &good[3..];
        let short = &good[..good.len() - 1];
        let extra = format!("{good}_x");
        for bad in [
            "",
            "vk_",
            "vk__",
            no_prefix,
            short,
            &upper,
            &extra,
            "vk_abc_def",
        ] {
            assert_eq!(
                code(ApiKey::parse_presented(bad)),
                "api_key_malformed",
                "{bad}"
            );
        }
    }
}
