//! The one error table of the API: every failure kind with its gRPC code (and, for the
//! HTTP API, its status). Internal failures are logged with their cause chain and shown
//! to the caller only as "internal error".

use noroshi_domain::authz::Denied;
use noroshi_domain::{DomainError, Violations};
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

    /// The gRPC code of this kind of failure.
    pub fn code(&self) -> Code {
        match self {
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied | Self::CsrfRejected => Code::PermissionDenied,
            Self::Invalid(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The name of the gRPC code, which the HTTP API's error body carries as `code`.
    pub fn code_name(&self) -> &'static str {
        match self.code() {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unavailable => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }

    /// The HTTP status of this kind of failure.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unauthenticated(_) => 401,
            Self::PermissionDenied | Self::CsrfRejected => 403,
            Self::Invalid(_) => 400,
            Self::NotFound(_) => 404,
            Self::AlreadyExists(_) | Self::Aborted(_) => 409,
            Self::FailedPrecondition(_) => 412,
            Self::ResourceExhausted(_) => 429,
            Self::Unavailable(_) => 503,
            Self::Internal(_) => 500,
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
        let code = error.code();
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
