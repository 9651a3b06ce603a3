//! The two error types: [`AuthError`] for a presented credential, [`ConfigError`] for keys and
//! issuer settings.

/// Why a presented credential (a JWT or an API key) was refused.
///
/// Every variant maps to `401 Unauthorized` at the HTTP boundary, except
/// [`AuthError::JwksUnavailable`] (`503`: the identity provider could not be reached). Messages
/// never contain the token, the key, a secret or any value taken from the credential, so they
/// can be logged and returned as they are; [`AuthError::code`] is the stable machine form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a JWT at all: wrong shape, bad base64, bad JSON, too long, unknown critical header.
    #[error("malformed token")]
    MalformedToken,
    /// `alg` is `none`, an HMAC algorithm, or not one the token's issuer is allowed to use.
    #[error("token algorithm not allowed for its issuer")]
    AlgorithmNotAllowed,
    /// `iss` is missing or not a configured issuer.
    #[error("token issuer not accepted")]
    BadIssuer,
    /// `aud` is missing or does not name this API.
    #[error("token audience not accepted")]
    BadAudience,
    /// No key of the issuer matches the token's `kid` (or `kid` is missing and the issuer has
    /// several keys).
    #[error("token signing key unknown")]
    UnknownKey,
    /// The signature does not verify with the issuer's key.
    #[error("token signature invalid")]
    BadSignature,
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    TokenExpired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    TokenNotYetValid,
    /// The claims are missing, mistyped or inconsistent (for example a client viewer without a
    /// client). The reason is a fixed text, never a claim value.
    #[error("token claims not accepted: {reason}")]
    BadClaims { reason: &'static str },
    /// The identity provider's key set could not be fetched and no cached key matched.
    #[error("identity provider keys unavailable")]
    JwksUnavailable,
    /// The API key is not of the form `vk_<key id>_<secret>`.
    #[error("malformed API key")]
    MalformedApiKey,
    /// No API key with this id, or the secret does not match.
    #[error("API key unknown")]
    ApiKeyUnknown,
    /// The API key was revoked.
    #[error("API key revoked")]
    ApiKeyRevoked,
}

impl AuthError {
    /// A stable, machine-readable code for the JSON error body and for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedToken => "malformed_token",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::BadIssuer => "bad_issuer",
            Self::BadAudience => "bad_audience",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::BadClaims { .. } => "bad_claims",
            Self::JwksUnavailable => "jwks_unavailable",
            Self::MalformedApiKey => "api_key_malformed",
            Self::ApiKeyUnknown => "api_key_unknown",
            Self::ApiKeyRevoked => "api_key_revoked",
        }
    }
}

/// Why keys or issuer settings cannot be used. Raised at start-up or by an admin command, never
/// for a presented credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key (PEM, raw bytes) could not be read.
    #[error("key `{kid}` is not usable: {reason}")]
    BadKey { kid: String, reason: &'static str },
    /// An issuer is configured twice, or has no key, no audience or no algorithm.
    #[error("issuer `{issuer}` is misconfigured: {reason}")]
    BadIssuer {
        issuer: String,
        reason: &'static str,
    },
    /// A role, tenant and client that do not fit together (see [`crate::Grant::new`]).
    #[error("grant not allowed: {reason}")]
    BadGrant { reason: &'static str },
    /// A token could not be signed.
    #[error("token could not be signed")]
    Signing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            AuthError::MalformedToken,
            AuthError::AlgorithmNotAllowed,
            AuthError::BadIssuer,
            AuthError::BadAudience,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::TokenExpired,
            AuthError::TokenNotYetValid,
            AuthError::BadClaims { reason: "x" },
            AuthError::JwksUnavailable,
            AuthError::MalformedApiKey,
            AuthError::ApiKeyUnknown,
            AuthError::ApiKeyRevoked,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(AuthError::code).collect();
        assert_eq!(codes.len(), all.len());
    }
}
