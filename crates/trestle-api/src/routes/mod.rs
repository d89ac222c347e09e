//! HTTP routes, one module per resource, and the helpers they share.

pub mod audit;
pub mod compute;
pub mod costs;
pub mod directory;
pub mod events;
pub mod files;
pub mod jobs;
pub mod login;
pub mod notify;
pub mod oidc;
pub mod pipelines;
pub mod projects;
pub mod studies;
pub mod system;
pub mod tokens;
pub mod users;
pub mod workers;
pub mod workspaces;

use crate::error::ApiResult;
use serde::de::DeserializeOwned;
use trestle_service::{ErrorKind, Parsed, ServiceError};

/// Parses a JSON body with errors that name the offending field.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    Ok(parse_body_for(body)?)
}

/// Parses a JSON body like [`parse_body`], for an operation that reports
/// a malformed body only after its own authorization check.
pub fn parse_body_for<T: DeserializeOwned>(body: &[u8]) -> Parsed<T> {
    let value = json_value(body)?;
    trestle_core::batch::spec::from_value_with_path(value).map_err(|mut e| {
        e.code = "invalid-json".into();
        ServiceError::from(e)
    })
}

/// A body as JSON of any shape, for an operation that reads it itself
/// after its authorization check.
pub fn json_value(body: &[u8]) -> Parsed<serde_json::Value> {
    serde_json::from_slice(body).map_err(|e| {
        ServiceError::new(
            ErrorKind::Invalid,
            "invalid-json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// Parses a numeric id from a path segment.
pub fn parse_id(s: &str) -> ApiResult<i64> {
    Ok(trestle_service::jobs::parse_id("id", s)?)
}
