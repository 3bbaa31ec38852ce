//! The API's errors. Each names its kind ([`ErrorCode`]), which alone decides the gRPC
//! code and the HTTP status. Internal failures are logged with their cause chain and
//! shown to the caller only as "internal error".

use noroshi_domain::authz::Denied;
use noroshi_domain::{DomainError, ErrorCode, Violations};
use noroshi_event_store::{AppendError, InvalidAppend, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or credentials that prove nothing (unknown, expired, revoked).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Says nothing about whether the target exists.
    #[error("permission denied")]
    PermissionDenied,
    /// A state-changing request of a web session without the session's CSRF token.
    #[error(
        "permission denied: the request lacks its session's CSRF token (X-CSRF-Token header or csrf_token form field)"
    )]
    CsrfRejected,
    #[error("invalid argument: {0}")]
    Invalid(Violations),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrency conflict that survived the retries, or a stale `expected_version`.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(Violations::one(field, description))
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    /// The kind of failure, which names its gRPC code and its HTTP status
    /// (`noroshi_domain::ErrorCode`, the one table).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::PermissionDenied | Self::CsrfRejected => ErrorCode::PermissionDenied,
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::Aborted(_) => ErrorCode::Aborted,
            Self::ResourceExhausted(_) => ErrorCode::ResourceExhausted,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid(violations) => Self::Invalid(violations),
            DomainError::NotFound(what) => Self::NotFound(what),
            DomainError::AlreadyExists(what) => Self::AlreadyExists(what),
            DomainError::Precondition(message) => Self::FailedPrecondition(message),
        }
    }
}

impl From<noroshi_identity::IdentityError> for ApiError {
    fn from(error: noroshi_identity::IdentityError) -> Self {
        use noroshi_identity::IdentityError as E;
        match error {
            E::Unauthenticated(why) => Self::Unauthenticated(why),
            E::PermissionDenied => Self::PermissionDenied,
            E::Invalid(violations) => Self::Invalid(violations),
            E::NotFound(what) => Self::NotFound(what),
            E::AlreadyExists(what) => Self::AlreadyExists(what),
            E::ResourceExhausted(why) => Self::ResourceExhausted(why),
            E::Unavailable(why) => Self::Unavailable(why),
            E::Internal(source) => Self::Internal(source),
        }
    }
}

impl From<noroshi_app::Refusal> for ApiError {
    fn from(refusal: noroshi_app::Refusal) -> Self {
        use noroshi_app::Refusal as R;
        match refusal {
            R::Denied => Self::PermissionDenied,
            R::Rule(rule) => rule.into(),
            reused @ R::CommandIdReused { .. } => Self::invalid("command_id", reused.to_string()),
            stale @ R::StaleVersion { .. } => Self::Aborted(stale.to_string()),
        }
    }
}

impl From<noroshi_app::CommandError> for ApiError {
    fn from(error: noroshi_app::CommandError) -> Self {
        use noroshi_app::CommandError as E;
        match error {
            conflict @ E::Conflict { .. } => Self::Aborted(conflict.to_string()),
            E::TooLarge(why) => Self::ResourceExhausted(why),
            unavailable @ E::Unavailable(_) => {
                tracing::warn!(error = %unavailable, "event store unavailable");
                Self::Unavailable("the event store cannot be reached; retry later".into())
            }
            E::Internal(source) => Self::Internal(source),
        }
    }
}

impl From<noroshi_projections::views::QueryError> for ApiError {
    fn from(error: noroshi_projections::views::QueryError) -> Self {
        use noroshi_projections::views::QueryError as E;
        match error {
            E::Denied => Self::PermissionDenied,
            E::Invalid(violations) => Self::Invalid(violations),
            E::NotFound(what) => Self::NotFound(what),
            E::Unavailable(why) => Self::Unavailable(why),
            E::Internal(source) => Self::Internal(source),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(_: Denied) -> Self {
        Self::PermissionDenied
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "event store unavailable");
                Self::Unavailable("the event store cannot be reached; retry later".into())
            }
            other => Self::internal(other),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Invalid(
                invalid @ (InvalidAppend::PayloadTooLarge { .. }
                | InvalidAppend::TooManyEvents { .. }),
            ) => Self::ResourceExhausted(invalid.to_string()),
            AppendError::Invalid(invalid) => Self::internal(invalid),
            AppendError::WrongExpectedVersion { .. } => {
                Self::Aborted(format!("concurrent change: {error}"))
            }
            AppendError::CommandIdReused { command_id } => {
                Self::AlreadyExists(format!("command {command_id} (used for another command)"))
            }
            AppendError::Store(store) => store.into(),
        }
    }
}

/// A failed query on the store or a read model, classified as the store classifies it
/// (UNAVAILABLE while PostgreSQL is unreachable).
pub(crate) fn store_failure(error: sqlx::Error) -> ApiError {
    StoreError::from(error).into()
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let code = Code::from_i32(error.code().grpc_code());
        match error {
            ApiError::Invalid(violations) => {
                let mut details = ErrorDetails::new();
                for violation in violations.iter() {
                    details.add_bad_request_violation(&violation.field, &violation.description);
                }
                Status::with_error_details(code, format!("invalid argument: {violations}"), details)
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %source, cause = ?source, "internal error");
                Status::new(code, "internal error")
            }
            other => Status::new(code, other.to_string()),
        }
    }
}
