//! What reading a view can refuse or fail with, each kind mapped to its [`ErrorCode`].

use noroshi_domain::{ErrorCode, Violations};
use noroshi_event_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Says nothing about whether the target exists.
    #[error("permission denied")]
    Denied,
    #[error("invalid argument: {0}")]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(String),
    /// The store cannot be reached, the view is being rebuilt, or `min_versions` was
    /// not reached in time.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl QueryError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(Violations::one(field, description))
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Denied => ErrorCode::PermissionDenied,
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Every violation of `violations`, or `value` when there is none.
    pub fn check<T>(violations: Violations, value: T) -> Result<T, Self> {
        if violations.is_empty() {
            Ok(value)
        } else {
            Err(Self::Invalid(violations))
        }
    }
}

impl From<StoreError> for QueryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "read models unavailable");
                Self::Unavailable("the database cannot be reached; retry later".into())
            }
            other => Self::internal(other),
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}
