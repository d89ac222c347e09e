//! `/api/v1/studies`: studies, their files, uploads (whole objects and
//! resumable parts), versions and grants, over
//! [`trestle_service::studies`]. Downloads carry the file's SHA-256 and
//! the version read in headers, so the client checks what arrived.

use super::{parse_body, parse_id};
use crate::audit::AuditResource;
use crate::error::ApiResult;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use std::collections::HashMap;
use trestle_core::api::study::{
    CommitRequest, CompleteParts, CreateStudy, GrantRequest, GrantView, ObjectView, PartsView,
    SHA256_HEADER, StudyListing, StudyView, VERSION_HEADER, VersionView,
};
use trestle_service::studies as svc;
use trestle_service::study_attach as attach;
use trestle_service::{Principal, Service};

/// `GET /api/v1/studies?category=`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<StudyView>>> {
    Ok(Json(
        svc::list(&app, &p, q.get("category").map(String::as_str)).await?,
    ))
}

/// `POST /api/v1/studies`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<StudyView>)> {
    let req: CreateStudy = parse_body(&body)?;
    let s = svc::create(&app, &p, req).await?;
    let tag = AuditResource(format!("study:{}", s.name));
    Ok((StatusCode::CREATED, Extension(tag), Json(s)))
}

/// `GET /api/v1/studies/{name}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<StudyView>> {
    Ok(Json(svc::show(&app, &p, &name).await?))
}

/// `DELETE /api/v1/studies/{name}`.
pub async fn delete(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    svc::delete(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/studies/{name}/files?version=&prefix=`.
pub async fn files(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<StudyListing>> {
    Ok(Json(
        svc::files(
            &app,
            &p,
            &name,
            q.get("version").map(String::as_str),
            q.get("prefix").map(String::as_str),
        )
        .await?,
    ))
}

/// `GET /api/v1/studies/{name}/files/{*path}?version=`.
pub async fn download(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, path)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let d = svc::download(&app, &p, &name, &path, q.get("version").map(String::as_str)).await?;
    let mut r = super::files::download(d.file, &path);
    let h = r.headers_mut();
    if let Ok(v) = d.sha256.parse() {
        h.insert(SHA256_HEADER, v);
    }
    if let Ok(v) = d.version.to_string().parse() {
        h.insert(VERSION_HEADER, v);
    }
    if let Ok(v) = format!("\"{}\"", d.sha256).parse() {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

/// `PUT /api/v1/studies/{name}/objects/{sha256}`: one object, its
/// SHA-256 checked while it arrives.
pub async fn put_object(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, sha)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Json<ObjectView>> {
    Ok(Json(
        svc::put_object(&app, &p, &name, &sha, body.into_data_stream()).await?,
    ))
}

/// `GET /api/v1/studies/{name}/parts/{sha256}`: parts received.
pub async fn parts(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, sha)): Path<(String, String)>,
) -> ApiResult<Json<PartsView>> {
    Ok(Json(svc::parts(&app, &p, &name, &sha).await?))
}

/// `PUT /api/v1/studies/{name}/parts/{sha256}/{n}` with the part's
/// SHA-256 in `x-trestle-sha256`.
pub async fn put_part(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, sha, n)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ObjectView>> {
    let part_sha = headers.get(SHA256_HEADER).and_then(|v| v.to_str().ok());
    Ok(Json(
        svc::put_part(&app, &p, &name, &sha, &n, part_sha, body.into_data_stream()).await?,
    ))
}

/// `POST /api/v1/studies/{name}/parts/{sha256}/complete`.
pub async fn complete_parts(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, sha)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ObjectView>> {
    let req: CompleteParts = parse_body(&body)?;
    Ok(Json(svc::complete_parts(&app, &p, &name, &sha, req).await?))
}

/// `POST /api/v1/studies/{name}/versions`.
pub async fn commit(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    let req: CommitRequest = parse_body(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(svc::commit(&app, &p, &name, req).await?),
    ))
}

/// `GET /api/v1/studies/{name}/versions`.
pub async fn versions(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<VersionView>>> {
    Ok(Json(svc::versions(&app, &p, &name).await?))
}

/// `POST /api/v1/studies/{name}/prune`.
pub async fn prune(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<trestle_core::api::study::PruneView>> {
    let req: trestle_core::api::study::PruneRequest = parse_body(&body)?;
    Ok(Json(svc::prune(&app, &p, &name, &req.keep).await?))
}

/// `GET /api/v1/studies/{name}/grants`.
pub async fn grants(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<GrantView>>> {
    Ok(Json(svc::grants(&app, &p, &name).await?))
}

/// `PUT /api/v1/studies/{name}/grants/{user}`.
pub async fn grant(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<GrantView>> {
    let req: GrantRequest = parse_body(&body)?;
    Ok(Json(svc::grant(&app, &p, &name, &user, req).await?))
}

/// `DELETE /api/v1/studies/{name}/grants/{user}`.
pub async fn revoke(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc::revoke(&app, &p, &name, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A project's quota for its studies.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyQuota {
    /// `10G`, `500M`, `none`.
    pub quota: String,
}

/// `PUT /api/v1/study-quotas/{project}` (admins).
pub async fn set_quota(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(project): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: StudyQuota = parse_body(&body)?;
    let q = svc::set_project_quota(&app, &p, &project, &req.quota).await?;
    Ok(Json(serde_json::json!({ "project": project, "quota_bytes": q })).into_response())
}

/// `GET /api/v1/jobs/{id}/studies/{name}/files`: what a job's attach
/// reads (the lease holder, or whoever may read the job).
pub async fn job_files(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Json<StudyListing>> {
    Ok(Json(attach::files(&app, &p, parse_id(&id)?, &name).await?))
}

/// `GET /api/v1/jobs/{id}/studies/{name}/objects/{sha}`.
pub async fn job_object(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, name, sha)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let d = attach::object(&app, &p, parse_id(&id)?, &name, &sha).await?;
    let mut r = super::files::download(d.file, &sha);
    if let Ok(v) = d.sha256.parse() {
        r.headers_mut().insert(SHA256_HEADER, v);
    }
    Ok(r)
}

fn lease_token(h: &HeaderMap) -> Option<&str> {
    h.get(trestle_core::api::LEASE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// `PUT /api/v1/jobs/{id}/attempts/{n}/studies/{name}/objects/{sha}`
/// (the lease holder of a read-write attach).
pub async fn job_put_object(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, attempt, name, sha)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ObjectView>> {
    let job = parse_id(&id)?;
    let attempt = trestle_service::jobs::parse_attempt(&attempt)?;
    Ok(Json(
        attach::put_object(
            &app,
            &p,
            job,
            attempt,
            lease_token(&headers),
            &name,
            &sha,
            body.into_data_stream(),
        )
        .await?,
    ))
}

/// `POST /api/v1/jobs/{id}/attempts/{n}/studies/{name}/versions`: a
/// succeeded attempt's changes to a read-write attach.
pub async fn job_commit(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, attempt, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    let job = parse_id(&id)?;
    let attempt = trestle_service::jobs::parse_attempt(&attempt)?;
    let req: CommitRequest = parse_body(&body)?;
    let v = attach::commit(&app, &p, job, attempt, lease_token(&headers), &name, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}
