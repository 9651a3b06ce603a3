//! The one mapping from what went wrong to an HTTP status and a stable JSON error.

use vigie_auth::AuthError;
use vigie_domain::ports::StoreError;
use vigie_edge::HttpResponse;

/// Everything the API answers other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: send `Authorization: Bearer <token>` or `x-api-key`")]
    Unauthenticated,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("your role ({role}) may not {action}")]
    Forbidden { role: String, action: &'static str },
    #[error("this identity is not a member of any tenant; accept an invitation first")]
    NoMembership,
    #[error("the tenant is suspended; contact the platform operator")]
    TenantSuspended,
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("no route for {method} {path}")]
    NoRoute { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        method: String,
        path: String,
        /// The path's methods, for the `allow` header (RFC 9110 requires it on a 405).
        allow: String,
    },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Corrupt(_) => Self::Internal(e),
        }
    }
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The stable code sent in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Auth(e) => e.code(),
            Self::Forbidden { .. } => "forbidden",
            Self::NoMembership => "no_membership",
            Self::TenantSuspended => "tenant_suspended",
            Self::NotFound { .. } | Self::NoRoute { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Invalid { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Auth(AuthError::JwksUnavailable) => 503,
            Self::Auth(_) => 401,
            Self::Forbidden { .. } | Self::NoMembership | Self::TenantSuspended => 403,
            Self::NotFound { .. } | Self::NoRoute { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Invalid { .. } => 422,
            Self::Conflict { .. } => 409,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    pub fn to_response(&self) -> HttpResponse {
        let response = HttpResponse::error(self.status(), self.code(), &self.to_string());
        match self {
            _ if self.status() == 401 => response.header("www-authenticate", "Bearer"),
            Self::MethodNotAllowed { allow, .. } => response.header("allow", allow),
            _ => response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_405_names_the_allowed_methods() {
        let response = ApiError::MethodNotAllowed {
            method: "TRACE".into(),
            path: "/v1/clients".into(),
            allow: "GET, POST".into(),
        }
        .to_response();
        assert_eq!(response.status, 405);
        assert_eq!(
            response.headers.get("allow").map(String::as_str),
            Some("GET, POST")
        );
    }
}
