//! Enrolment tokens: created by a tenant, bound on the server to a tenant, client company and
//! site; they expire, have a use count, and can be revoked. The plaintext is shown once; only
//! the SHA-256 of its secret part is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ids::{ClientId, EnrollmentTokenId, SiteId, TenantId, random_bytes};

/// Where a device enrolled with a token lands. Fixed by the tenant when the token is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub tenant: TenantId,
    pub client: ClientId,
    pub site: SiteId,
}

/// A stored enrolment token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    pub id: EnrollmentTokenId,
    pub placement: Placement,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// How many devices may enrol with it (1 = single use).
    pub max_uses: u32,
    pub uses: u32,
    pub revoked: bool,
    /// Free text for the MSP ("ACME HQ workstations, October").
    pub label: String,
    /// Tags every device enrolled with this token starts with (`role=server`).
    pub tags: crate::device::Tags,
}

/// Why a token cannot be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentRefusal {
    #[error("the enrolment token is not valid")]
    Invalid,
    #[error("the enrolment token has expired")]
    Expired,
    #[error("the enrolment token has been used up")]
    UsedUp,
    #[error("the enrolment token has been revoked")]
    Revoked,
    #[error("the tenant's plan allows {max} devices, all enrolled; revoke one or change the plan")]
    DeviceLimit { max: u32 },
}

/// Why a token cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRequestInvalid {
    #[error("a token must allow between 1 and {max} uses", max = EnrollmentToken::MAX_USES)]
    Uses,
    #[error("a token must expire between 1 minute and {max} days from now", max = EnrollmentToken::MAX_LIFETIME_DAYS)]
    Lifetime,
    #[error(transparent)]
    Tags(crate::device::TagsInvalid),
}

/// The plaintext handed to the MSP once: `<token id>.<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPlaintext(String);

impl std::fmt::Debug for TokenPlaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenPlaintext(<secret>)")
    }
}

impl TokenPlaintext {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits a presented token into its id and secret. Any malformed input is simply invalid.
pub fn split_token(presented: &str) -> Result<(EnrollmentTokenId, &str), EnrollmentRefusal> {
    let (id, secret) = presented
        .trim()
        .split_once('.')
        .ok_or(EnrollmentRefusal::Invalid)?;
    let id = EnrollmentTokenId::parse(id).map_err(|_| EnrollmentRefusal::Invalid)?;
    if secret.len() != 43
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(EnrollmentRefusal::Invalid);
    }
    Ok((id, secret))
}

impl EnrollmentToken {
    pub const MAX_USES: u32 = 10_000;
    pub const MAX_LIFETIME_DAYS: i64 = 90;

    /// Creates a token and its one-time plaintext.
    pub fn issue(
        placement: Placement,
        now_ms: i64,
        expires_ms: i64,
        max_uses: u32,
        label: &str,
    ) -> Result<(Self, TokenPlaintext), TokenRequestInvalid> {
        if max_uses == 0 || max_uses > Self::MAX_USES {
            return Err(TokenRequestInvalid::Uses);
        }
        let lifetime = expires_ms - now_ms;
        if !(60_000..=Self::MAX_LIFETIME_DAYS * 86_400_000).contains(&lifetime) {
            return Err(TokenRequestInvalid::Lifetime);
        }
        let id = EnrollmentTokenId::generate();
        let secret = B64URL.encode(random_bytes::<32>());
        let plaintext = TokenPlaintext(format!("{id}.{secret}"));
        let token = Self {
            id,
            placement,
            secret_hash: hash_secret(&secret),
            created_ms: now_ms,
            expires_ms,
            max_uses,
            uses: 0,
            revoked: false,
            label: label.chars().take(200).collect(),
            tags: crate::device::Tags::new(),
        };
        Ok((token, plaintext))
    }

    /// The token, giving `tags` to the devices enrolled with it ("a token for ACME's servers").
    pub fn with_tags(mut self, tags: crate::device::Tags) -> Result<Self, TokenRequestInvalid> {
        crate::device::validate_tags(&tags).map_err(TokenRequestInvalid::Tags)?;
        self.tags = tags;
        Ok(self)
    }

    /// Whether the presented secret matches, in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let presented = hash_secret(secret);
        let a = presented.as_bytes();
        let b = self.secret_hash.as_bytes();
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Checks the token can enrol one more device at `now_ms`. Revocation wins over expiry,
    /// expiry over exhaustion, so the MSP sees the most useful reason.
    pub fn check_redeemable(&self, secret: &str, now_ms: i64) -> Result<(), EnrollmentRefusal> {
        if !self.secret_matches(secret) {
            return Err(EnrollmentRefusal::Invalid);
        }
        if self.revoked {
            return Err(EnrollmentRefusal::Revoked);
        }
        if now_ms >= self.expires_ms {
            return Err(EnrollmentRefusal::Expired);
        }
        if self.uses >= self.max_uses {
            return Err(EnrollmentRefusal::UsedUp);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement() -> Placement {
        Placement {
            tenant: TenantId::parse("msp-a").expect("valid"),
            client: ClientId::parse("acme").expect("valid"),
            site: SiteId::parse("hq").expect("valid"),
        }
    }

    #[test]
    fn issued_token_redeems_until_used_up_expired_or_revoked() {
        let now = 1_790_000_000_000;
        let (mut token, plain) =
            EnrollmentToken::issue(placement(), now, now + 3_600_000, 2, "hq").expect("valid");
        let (id, secret) = split_token(plain.expose()).expect("well formed");
        assert_eq!(id, token.id);
        assert_eq!(token.check_redeemable(secret, now), Ok(()));
        assert_eq!(
            token.check_redeemable("x".repeat(43).as_str(), now),
            Err(EnrollmentRefusal::Invalid)
        );
        token.uses = 2;
        assert_eq!(
            token.check_redeemable(secret, now),
            Err(EnrollmentRefusal::UsedUp)
        );
        token.uses = 0;
        assert_eq!(
            token.check_redeemable(secret, now + 3_600_000),
            Err(EnrollmentRefusal::Expired)
        );
        token.revoked = true;
        assert_eq!(
            token.check_redeemable(secret, now),
            Err(EnrollmentRefusal::Revoked)
        );
    }

    #[test]
    fn malformed_tokens_are_invalid_not_errors() {
        for bad in [
            "",
            "abc",
            "et-x.",
            ".secret",
            "ET-X.0123456789012345678901234567890123456789012",
        ] {
            assert_eq!(
                split_token(bad).map(|_| ()),
                Err(EnrollmentRefusal::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuing_checks_uses_and_lifetime() {
        let now = 1_790_000_000_000;
        assert_eq!(
            EnrollmentToken::issue(placement(), now, now + 3_600_000, 0, "").map(|_| ()),
            Err(TokenRequestInvalid::Uses)
        );
        assert_eq!(
            EnrollmentToken::issue(placement(), now, now + 1, 1, "").map(|_| ()),
            Err(TokenRequestInvalid::Lifetime)
        );
    }
}
