//! Files: uploads (input folders), a job's inputs, and attempt outputs,
//! over [`trestle_service::files`]. Bodies are streamed in both
//! directions; the service normalises paths and confines them to their
//! prefix.

use super::parse_id;
use crate::error::ApiResult;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::api::{FileList, LEASE_TOKEN_HEADER, UploadCreated};
use trestle_service::files::{self as svc, FileStream};
use trestle_service::jobs;
use trestle_service::{Principal, Service};

/// A stored file as a download: never sniffed or shown inline by a
/// browser, saved under its own name.
pub fn download(file: FileStream, path: &str) -> Response {
    let name = path.rsplit('/').next().unwrap_or("file");
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, file.size.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename*=UTF-8''{}", percent_encode(name)),
            ),
        ],
        Body::from_stream(file.stream),
    )
        .into_response()
}

/// RFC 5987 encoding of a file name: unreserved characters as they are,
/// every other byte as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /api/v1/uploads`.
pub async fn create_upload(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<(StatusCode, Json<UploadCreated>)> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_upload(&app, &p).await?),
    ))
}

/// `PUT /api/v1/uploads/{id}/files/{*path}`.
pub async fn put_upload_file(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, path)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    svc::put_upload_file(&app, &p, &id, &path, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/uploads/{id}/files`.
pub async fn list_upload(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<FileList>> {
    Ok(Json(svc::list_upload(&app, &p, &id).await?))
}

/// `GET /api/v1/jobs/{id}/inputs`.
pub async fn list_inputs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<FileList>> {
    Ok(Json(svc::list_inputs(&app, &p, parse_id(&id)?).await?))
}

/// `GET /api/v1/jobs/{id}/inputs/{*path}`.
pub async fn get_input(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let file = svc::input_file(&app, &p, parse_id(&id)?, &path).await?;
    Ok(download(file, &path))
}

/// `PUT /api/v1/jobs/{id}/attempts/{n}/outputs/{*path}` (lease holder
/// only). The job id and attempt are read by the service, after its
/// authorization check.
pub async fn put_output(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, attempt, path)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let token = headers
        .get(LEASE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok());
    svc::put_output(
        &app,
        &p,
        &id,
        &attempt,
        &path,
        token,
        body.into_data_stream(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/jobs/{id}/outputs?attempt=`.
pub async fn list_outputs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<FileList>> {
    let attempt = q.get("attempt").map(String::as_str);
    Ok(Json(
        jobs::outputs(&app, &p, parse_id(&id)?, attempt).await?,
    ))
}

/// `GET /api/v1/jobs/{id}/outputs/{*path}?attempt=`.
pub async fn get_output(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let attempt = q.get("attempt").map(String::as_str);
    let file = svc::output_file(&app, &p, parse_id(&id)?, attempt, &path).await?;
    Ok(download(file, &path))
}
