//! The API edge's error type: every failure becomes a JSON body
//! `{"error": {"code", "message", "field"}}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use trestle_core::ValidationError;
use trestle_core::api::ErrorBody;
use trestle_store::StoreError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: String,
    /// Human message.
    pub message: String,
    /// Offending field.
    pub field: Option<String>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }

    /// 400 about a field.
    pub fn bad(code: &str, field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    /// 404 for a thing that does not exist (or is not yours).
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{} does not exist", what.into()),
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict { what, field } => ApiError {
                field: Some(field),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("{what} already exists"),
                )
            },
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Damaged(id) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "damaged-job",
                format!(
                    "job {id} cannot be read: its stored data is damaged (the admins can see it under /api/v1/admin/damaged-jobs)"
                ),
            ),
            other => {
                // The cause stays in the server's log: database errors name
                // tables, hosts and paths that are not the client's business.
                tracing::error!(error = %other, "store failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable, try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ValidationError {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
