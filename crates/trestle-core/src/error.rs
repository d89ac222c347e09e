//! The one error type of `trestle-core`: a validation failure that names the
//! offending field, ready to be shown to a user or mapped to an HTTP 4xx.

use serde::{Deserialize, Serialize};

/// A rejected input: a stable machine-readable `code`, a sentence for a
/// person, and the field that is wrong when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// Stable, kebab-case error code (for example `invalid-duration`).
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
    /// The field (dotted path) that is wrong, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
}

impl ValidationError {
    /// A new error about `field`.
    pub fn new(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            field: if field.is_empty() {
                None
            } else {
                Some(field.to_string())
            },
        }
    }

    /// The same error, reported under another field name (for example when a
    /// CLI flag maps to a JSON field).
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
}

/// Result alias for validation.
pub type Result<T> = std::result::Result<T, ValidationError>;
