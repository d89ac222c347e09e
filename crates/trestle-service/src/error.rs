//! The one error type of the service layer. It says what kind of failure
//! happened (invalid input, not found, forbidden, ...), with a stable code,
//! a sentence for a person and the field at fault; each HTTP edge (the
//! REST API, the portal) maps the kind to its own answer.

use trestle_core::ValidationError;
use trestle_store::StoreError;

/// What kind of failure an operation met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is wrong (a 400).
    Invalid,
    /// No valid credential (a 401).
    Unauthenticated,
    /// The caller may see the thing but not do this (a 403).
    Forbidden,
    /// It does not exist, or the caller may not see it (a 404).
    NotFound,
    /// It clashes with what exists (a 409).
    Conflict,
    /// The input is too large (a 413).
    TooLarge,
    /// Too many attempts; try later (a 429).
    TooMany,
    /// Storage is unavailable; try again (a 503).
    Unavailable,
    /// A stored row cannot be decoded (admins see it; a 500).
    Damaged,
    /// Anything else that is not the caller's fault (a 500).
    Internal,
}

/// A failed operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Stable, kebab-case code (`unknown-project`, `not-found`, ...).
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The field at fault, if any.
    pub field: Option<String>,
}

/// Result alias of the service layer.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// A request as an edge parsed it, failure included. Operations that
/// decide authorization before they read their request take this, and
/// report a malformed request only after their check: a caller who may
/// not do the thing is told so whatever they sent.
pub type Parsed<T> = ServiceResult<T>;

impl ServiceError {
    /// A new error.
    pub fn new(kind: ErrorKind, code: &str, message: impl Into<String>) -> ServiceError {
        ServiceError {
            kind,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }

    /// Invalid input in `field`.
    pub fn bad(code: &str, field: &str, message: impl Into<String>) -> ServiceError {
        ServiceError {
            field: Some(field.to_string()),
            ..ServiceError::new(ErrorKind::Invalid, code, message)
        }
    }

    /// `what` does not exist (or is not the caller's to see).
    pub fn not_found(what: impl Into<String>) -> ServiceError {
        ServiceError::new(
            ErrorKind::NotFound,
            "not-found",
            format!("{} does not exist", what.into()),
        )
    }

    /// The caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Forbidden, "forbidden", message)
    }

    /// No valid credential.
    pub fn unauthenticated(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Unauthenticated, "unauthorized", message)
    }

    /// A failure that is not the caller's (a provider, the file system).
    pub fn internal(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ErrorKind::Internal, "internal", message)
    }

    /// The same error about another field (`jobs[3].cpus`).
    pub fn in_field(mut self, prefix: &str) -> ServiceError {
        self.field = Some(match self.field {
            Some(f) if !f.is_empty() => format!("{prefix}.{f}"),
            _ => prefix.to_string(),
        });
        self
    }
}

impl From<ValidationError> for ServiceError {
    fn from(e: ValidationError) -> ServiceError {
        ServiceError {
            kind: ErrorKind::Invalid,
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        match e {
            StoreError::Conflict { what, field } => ServiceError {
                field: Some(field),
                ..ServiceError::new(
                    ErrorKind::Conflict,
                    "conflict",
                    format!("{what} already exists"),
                )
            },
            StoreError::NotFound(what) => ServiceError::not_found(what),
            StoreError::Damaged(id) => ServiceError::new(
                ErrorKind::Damaged,
                "damaged-job",
                format!(
                    "job {id} cannot be read: its stored data is damaged (the admins can see it under /api/v1/admin/damaged-jobs)"
                ),
            ),
            other => {
                // The cause stays in the server's log: database errors name
                // tables, hosts and paths that are not the client's business.
                tracing::error!(error = %other, "store failure");
                ServiceError::new(
                    ErrorKind::Unavailable,
                    "unavailable",
                    "storage is unavailable, try again",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_cause_out_of_the_message() {
        let e = ServiceError::from(StoreError::Corrupt("table jobs at /var/lib/x".into()));
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(!e.message.contains("/var/lib"), "{}", e.message);
        let e = ServiceError::bad("invalid-cpus", "cpus", "no").in_field("jobs[2]");
        assert_eq!(e.field.as_deref(), Some("jobs[2].cpus"));
    }
}
