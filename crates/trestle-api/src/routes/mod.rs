//! HTTP routes, one module per resource, and the helpers they share.

pub mod audit;
pub mod compute;
pub mod events;
pub mod files;
pub mod jobs;
pub mod login;
pub mod pipelines;
pub mod projects;
pub mod system;
pub mod tokens;
pub mod users;
pub mod workers;

use crate::error::{ApiError, ApiResult};
use serde::de::DeserializeOwned;

/// Parses a JSON body with errors that name the offending field.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid-json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    trestle_core::batch::spec::from_value_with_path(value).map_err(|mut e| {
        e.code = "invalid-json".into();
        ApiError::from(e)
    })
}

/// Parses a numeric id from a path segment.
pub fn parse_id(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad("invalid-id", "id", format!("`{s}` is not a job id")))
}
