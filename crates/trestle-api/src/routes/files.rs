//! Files: uploads (input folders), a job's inputs, and attempt outputs.
//! Bodies are streamed in both directions; paths are normalised and
//! confined to their prefix.

use super::parse_id;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rand::RngCore;
use std::collections::HashMap;
use trestle_core::api::{FileList, LEASE_TOKEN_HEADER, UploadCreated};
use trestle_core::batch::spec::validate_upload_id;
use trestle_core::identity::authz::{Action, Resource};
use trestle_core::paths::normalize_relative;
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access;
use trestle_service::jobs;
use trestle_store::blobs::{output_prefix, upload_prefix};

/// `POST /api/v1/uploads`.
pub async fn create_upload(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<(StatusCode, Json<UploadCreated>)> {
    access::check(&p, Action::UploadCreate, Resource::None, "")?;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    let id = format!("u{}", hex_lower(&b));
    let owner = p.user_name().unwrap_or_default();
    app.store
        .create_upload(&id, owner, trestle_service::now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(UploadCreated { id })))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `PUT /api/v1/uploads/{id}/files/{*path}`.
pub async fn put_upload_file(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, path)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    validate_upload_id("id", &id)?;
    access::upload(&app, &p, &id, Action::UploadWrite).await?;
    let rel = normalize_relative("path", &path)?;
    app.blobs
        .put_stream(&upload_prefix(&id), &rel, body.into_data_stream())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/uploads/{id}/files`.
pub async fn list_upload(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<FileList>> {
    validate_upload_id("id", &id)?;
    access::upload(&app, &p, &id, Action::UploadRead).await?;
    let files = app.blobs.list(&upload_prefix(&id)).await?;
    Ok(Json(FileList {
        files,
        attempt: None,
    }))
}

async fn job_upload(app: &Service, p: &Principal, id: &str) -> ApiResult<(i64, Option<String>)> {
    let id = parse_id(id)?;
    let job = access::job(app, p, id, Action::JobInputsRead).await?;
    Ok((id, job.spec.inputs))
}

/// `GET /api/v1/jobs/{id}/inputs`.
pub async fn list_inputs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<FileList>> {
    let (_, upload) = job_upload(&app, &p, &id).await?;
    let files = match upload {
        Some(u) => app.blobs.list(&upload_prefix(&u)).await?,
        None => Vec::new(),
    };
    Ok(Json(FileList {
        files,
        attempt: None,
    }))
}

/// `GET /api/v1/jobs/{id}/inputs/{*path}`.
pub async fn get_input(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (job, upload) = job_upload(&app, &p, &id).await?;
    let upload = upload.ok_or_else(|| ApiError::not_found(format!("inputs of job {job}")))?;
    stream_file(&app, &upload_prefix(&upload), &path).await
}

async fn stream_file(app: &Service, prefix: &str, path: &str) -> ApiResult<Response> {
    let rel = normalize_relative("path", path)?;
    let (size, stream) = app
        .blobs
        .get_stream(prefix, &rel)
        .await
        .map_err(|e| match e {
            trestle_store::StoreError::NotFound(_) => ApiError::not_found(format!("file `{rel}`")),
            other => other.into(),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `PUT /api/v1/jobs/{id}/attempts/{n}/outputs/{*path}` (lease holder only).
pub async fn put_output(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, attempt, path)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    access::check(&p, Action::OutputUpload, Resource::None, "")?;
    let job = parse_id(&id)?;
    let attempt: u32 = attempt
        .parse()
        .map_err(|_| ApiError::bad("invalid-attempt", "attempt", "not an attempt number"))?;
    let rel = normalize_relative("path", &path)?;
    let token = headers
        .get(LEASE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad(
                "missing-token",
                LEASE_TOKEN_HEADER,
                "output uploads must carry the lease token",
            )
        })?;
    if !app.store.lease_holds(job, attempt, token).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale-lease",
            format!("attempt {attempt} of job {job} no longer holds its lease"),
        ));
    }
    app.blobs
        .put_stream(&output_prefix(job, attempt), &rel, body.into_data_stream())
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
    let job = parse_id(&id)?;
    let attempt =
        jobs::outputs_attempt(&app, &p, job, q.get("attempt").map(String::as_str)).await?;
    stream_file(&app, &output_prefix(job, attempt), &path).await
}
