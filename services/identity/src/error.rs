//! What identity operations can refuse or fail with, each kind mapped to its
//! [`ErrorCode`].

use noroshi_domain::{ErrorCode, Violations};
use noroshi_event_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No credentials, or credentials that prove nothing (unknown, expired, revoked).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Says nothing about whether the target exists.
    #[error("permission denied")]
    PermissionDenied,
    #[error("invalid argument: {0}")]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A rate limit (login attempts).
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl IdentityError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(Violations::one(field, description))
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::PermissionDenied => ErrorCode::PermissionDenied,
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "identity store unavailable");
                Self::Unavailable("the database cannot be reached; retry later".into())
            }
            other => Self::internal(other),
        }
    }
}

/// A failed query on an identity table, classified as the event store classifies
/// PostgreSQL failures (UNAVAILABLE while it is unreachable).
pub(crate) fn store_failure(error: sqlx::Error) -> IdentityError {
    StoreError::from(error).into()
}
