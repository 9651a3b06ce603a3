//! The one mapping from what went wrong to an HTTP status and a stable JSON error.

use vigie_domain::enrollment::EnrollmentRefusal;
use vigie_domain::intake::IntakeRefusal;
use vigie_domain::ports::StoreError;
use vigie_edge::HttpResponse;

/// Everything the ingestion function can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Intake(#[from] IntakeRefusal),
    #[error(transparent)]
    Enrollment(#[from] EnrollmentRefusal),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Corrupt(_) => Self::Internal(e),
        }
    }
}

impl IngestError {
    /// The stable code counted per reason and sent in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Intake(r) => r.code(),
            Self::Enrollment(r) => match r {
                EnrollmentRefusal::Invalid => "enrollment_token_invalid",
                EnrollmentRefusal::Expired => "enrollment_token_expired",
                EnrollmentRefusal::UsedUp => "enrollment_token_used_up",
                EnrollmentRefusal::Revoked => "enrollment_token_revoked",
                EnrollmentRefusal::DeviceLimit { .. } => "device_limit_reached",
            },
            Self::BadRequest { code, .. } => code,
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Intake(r) => match r {
                IntakeRefusal::MalformedHeader(_)
                | IntakeRefusal::MalformedCompression
                | IntakeRefusal::MalformedJson(_) => 400,
                IntakeRefusal::MissingHeader(_)
                | IntakeRefusal::UnknownDevice
                | IntakeRefusal::BadSignature
                | IntakeRefusal::StaleTimestamp { .. } => 401,
                IntakeRefusal::DeviceRevoked => 403,
                IntakeRefusal::Replayed { .. } => 409,
                IntakeRefusal::BodyTooLarge { .. } | IntakeRefusal::DecompressedTooLarge { .. } => {
                    413
                }
                IntakeRefusal::UnsupportedMediaType(_) => 415,
                IntakeRefusal::UnsupportedSchema(_) | IntakeRefusal::Invalid(_) => 422,
                IntakeRefusal::RateLimited { .. } => 429,
            },
            Self::Enrollment(EnrollmentRefusal::Invalid) => 401,
            Self::Enrollment(_) => 403,
            Self::BadRequest { .. } => 400,
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// The HTTP answer.
    pub fn to_response(&self) -> HttpResponse {
        let mut extra = serde_json::Map::new();
        let mut response_headers = Vec::new();
        match self {
            Self::Intake(IntakeRefusal::Replayed { last, .. }) => {
                extra.insert("last_accepted_seq".into(), (*last).into());
            }
            Self::Intake(IntakeRefusal::RateLimited { retry_after_s }) => {
                response_headers.push(("retry-after", retry_after_s.to_string()));
            }
            Self::Unavailable(_) => response_headers.push(("retry-after", "5".to_owned())),
            _ => {}
        }
        let mut r = HttpResponse::error_with(self.status(), self.code(), &self.to_string(), extra);
        for (name, value) in response_headers {
            r = r.header(name, &value);
        }
        r
    }
}
