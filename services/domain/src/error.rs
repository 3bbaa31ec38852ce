//! What a domain decision can refuse, kept apart from store and transport failures.

use std::fmt;

/// One invalid field: its path in the request (e.g. `categories[1].ready`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

/// Every invalid field of one command; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single violation.
    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut violations = Self::new();
        violations.add(field, description);
        violations
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records the error of a parse, and yields its value when it succeeded.
    pub fn check<T, E: fmt::Display>(
        &mut self,
        field: impl Into<String>,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), DomainError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self))
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", violation.field, violation.description)?;
        }
        Ok(())
    }
}

/// Why a command was refused by the rules of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Fields that can never be accepted, whatever the state.
    #[error("invalid argument: {0}")]
    Invalid(Violations),
    /// The aggregate the command addresses does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The aggregate the command would create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The command is well formed but not allowed in the current state: an illegal
    /// transition, no free bed, an expired offer. The message names the current state.
    #[error("{0}")]
    Precondition(String),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(Violations::one(field, description))
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::Precondition(message.into())
    }
}

/// The kinds of failure every interface reports (DESIGN.md §8), each with its gRPC code
/// and its HTTP status, written once. Every error type of noroshi names its kind through
/// a `code()` method; the transports map the kind, never the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Fields that can never be accepted (with the offending fields).
    InvalidArgument,
    /// No credentials, or credentials that prove nothing.
    Unauthenticated,
    /// Not allowed; says nothing about whether the target exists.
    PermissionDenied,
    NotFound,
    AlreadyExists,
    /// An illegal transition, or no free bed.
    FailedPrecondition,
    /// A concurrency conflict that survived the retries, or a stale expected version.
    Aborted,
    /// A body, message, payload or rate over its limit.
    ResourceExhausted,
    /// The store cannot be reached, or a wait ran out: retry later.
    Unavailable,
    /// A defect or corrupt data: logged with its cause, shown as "internal error".
    Internal,
}

impl ErrorCode {
    pub const ALL: &'static [Self] = &[
        Self::InvalidArgument,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::Aborted,
        Self::ResourceExhausted,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The gRPC status code's name, which the HTTP error body carries as `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// The gRPC status code (google.rpc.Code).
    pub fn grpc_code(self) -> i32 {
        match self {
            Self::InvalidArgument => 3,
            Self::Unauthenticated => 16,
            Self::PermissionDenied => 7,
            Self::NotFound => 5,
            Self::AlreadyExists => 6,
            Self::FailedPrecondition => 9,
            Self::Aborted => 10,
            Self::ResourceExhausted => 8,
            Self::Unavailable => 14,
            Self::Internal => 13,
        }
    }

    /// The HTTP status of the same failure.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::AlreadyExists | Self::Aborted => 409,
            Self::FailedPrecondition => 412,
            Self::ResourceExhausted => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DomainError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::Precondition(_) => ErrorCode::FailedPrecondition,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn each_error_code_has_its_own_grpc_code_and_a_failure_status() {
        let mut grpc: Vec<i32> = ErrorCode::ALL.iter().map(|c| c.grpc_code()).collect();
        grpc.sort_unstable();
        grpc.dedup();
        assert_eq!(grpc.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert!((400..600).contains(&code.http_status()), "{code}");
        }
    }
}
