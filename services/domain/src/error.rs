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
