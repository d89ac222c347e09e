//! `/api/v1/users`: admins add, list and change users; everyone sees
//! themselves and may change their own password, over
//! [`trestle_service::users`].

use super::{parse_body, parse_body_for};
use crate::audit::AuditResource;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use trestle_core::api::identity::{UserUpdate, UserView};
use trestle_service::users as svc;
use trestle_service::{Principal, Service};

/// `GET /api/v1/users`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(svc::list(&app, &p).await?))
}

/// `POST /api/v1/users`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<UserView>)> {
    let user = svc::create(&app, &p, parse_body_for(&body)).await?;
    let tag = AuditResource(format!("user:{}", user.name));
    Ok((StatusCode::CREATED, Extension(tag), Json(user)))
}

/// `GET /api/v1/users/{name}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(svc::show(&app, &p, &name).await?))
}

/// `PATCH /api/v1/users/{name}`: role, organisation, default project,
/// password, disabled. Users may change their own password and default
/// project; everything else is for admins. The last enabled admin cannot
/// be demoted or disabled.
pub async fn update(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<UserView>> {
    let req: UserUpdate = parse_body(&body)?;
    Ok(Json(svc::update(&app, &p, &name, req).await?))
}
