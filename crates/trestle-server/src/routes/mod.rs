//! HTTP routes, one module per resource, and the helpers they share.

pub mod files;
pub mod jobs;
pub mod system;
pub mod workers;

use crate::error::{ApiError, ApiResult};
use serde::de::DeserializeOwned;

/// Parses a JSON body with errors that name the offending field.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.contains("field"))
            .unwrap_or("")
            .to_string();
        let mut err = ApiError::bad("invalid-json", &field, format!("invalid request body: {msg}"));
        if field.is_empty() {
            err.field = None;
        }
        err
    })
}

/// Parses a numeric id from a path segment.
pub fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad("invalid-id", "id", format!("`{s}` is not a job id")))
}
