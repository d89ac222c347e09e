//! `/api/v1/audit`: ad-hoc and named queries over the audit trail, and the
//! unused-credential check (admins only), over [`trestle_service::audit_queries`].

use super::parse_body;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use std::collections::BTreeMap;
use trestle_core::audit::{AuditAnswer, DisableUnused, NamedQuery, UnusedReport};
use trestle_service::audit_queries as svc;
use trestle_service::{Principal, Service};

/// `GET /api/v1/audit?principal=&action=&resource=&ip=&method=&since=&until=&status=&changes=&group-by=&limit=`.
pub async fn query(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<AuditAnswer>> {
    Ok(Json(svc::query(&app, &p, &q).await?))
}

/// `GET /api/v1/audit/queries`.
pub async fn list_queries(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<NamedQuery>>> {
    Ok(Json(svc::list_queries(&app, &p)?))
}

/// `GET /api/v1/audit/queries/{name}?param=value...`: runs a named query.
pub async fn run_query(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<AuditAnswer>> {
    Ok(Json(svc::run_query(&app, &p, &name, &params).await?))
}

/// `GET /api/v1/audit/unused?period=60d` (or `days=60`; default 60 days).
pub async fn list_unused(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<UnusedReport>> {
    Ok(Json(svc::list_unused(&app, &p, &q).await?))
}

/// `POST /api/v1/audit/unused {"period": "60d"}`: revoke and disable now.
pub async fn post_unused(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<UnusedReport>> {
    let req: DisableUnused = parse_body(&body)?;
    Ok(Json(
        svc::disable_unused_now(&app, &p, req.period.as_deref()).await?,
    ))
}
