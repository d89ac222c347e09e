//! `/api/v1/indexes` and `/api/v1/projects`: funding sources, the projects
//! under them, and project members, over [`trestle_service::projects`].

use super::{parse_body, parse_body_for};
use crate::audit::AuditResource;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use trestle_core::api::identity::{IndexView, MemberRequest, ProjectView};
use trestle_service::projects as svc;
use trestle_service::{Principal, Service};

/// `GET /api/v1/indexes`.
pub async fn list_indexes(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<IndexView>>> {
    Ok(Json(svc::list_indexes(&app, &p).await?))
}

/// `POST /api/v1/indexes`.
pub async fn create_index(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<IndexView>)> {
    let index = svc::create_index(&app, &p, parse_body_for(&body)).await?;
    Ok((StatusCode::CREATED, Json(index)))
}

/// `GET /api/v1/projects`: every project for admins, one's own for others.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<ProjectView>>> {
    Ok(Json(svc::list(&app, &p).await?))
}

/// `POST /api/v1/projects`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<ProjectView>)> {
    let view = svc::create(&app, &p, parse_body_for(&body)).await?;
    let tag = AuditResource(format!("project:{}", view.name));
    Ok((StatusCode::CREATED, Extension(tag), Json(view)))
}

/// `GET /api/v1/projects/{name}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    Ok(Json(svc::show(&app, &p, &name).await?))
}

/// `POST /api/v1/projects/{name}/members`: adds a member or changes their
/// role (admins, and managers for non-guests).
pub async fn add_member(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ProjectView>> {
    let req: MemberRequest = parse_body(&body)?;
    Ok(Json(svc::add_member(&app, &p, &name, req).await?))
}

/// `DELETE /api/v1/projects/{name}/members/{user}`.
pub async fn remove_member(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, user)): Path<(String, String)>,
) -> ApiResult<Json<ProjectView>> {
    Ok(Json(svc::remove_member(&app, &p, &name, &user).await?))
}
