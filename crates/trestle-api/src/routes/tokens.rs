//! `/api/v1/tokens`: create (shown once), list, show, revoke, over
//! [`trestle_service::tokens`]. Users manage their own tokens; admins also
//! create tokens for others and short-lived worker credentials.

use super::parse_body;
use crate::audit::AuditResource;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::api::identity::{NewToken, TokenCreated, TokenView};
use trestle_service::tokens as svc;
use trestle_service::{Principal, Service};

/// `POST /api/v1/tokens`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<TokenCreated>)> {
    let req: NewToken = parse_body(&body)?;
    let created = svc::create(&app, &p, req).await?;
    let tag = AuditResource(format!("token:{}", created.info.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(created)))
}

/// `GET /api/v1/tokens?all=true&revoked=true`: the caller's tokens (admins:
/// everyone's with `all`).
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(svc::list(&app, &p, &q).await?))
}

/// `GET /api/v1/tokens/{id}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(svc::show(&app, &p, &id).await?))
}

/// `DELETE /api/v1/tokens/{id}`: revokes it at once.
pub async fn revoke(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(svc::revoke(&app, &p, &id).await?))
}
