//! `/api/v1/workers`: registration, leasing (long-poll) and updates, over
//! [`trestle_service::workers`].

use super::parse_body_for;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use trestle_core::api::{LeaseResponse, UpdatesResponse, WorkerView};
use trestle_service::workers as svc;
use trestle_service::{Principal, Service};

/// `GET /api/v1/workers`.
/// Non-admins see every worker, but only the running jobs they may see.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<WorkerView>>> {
    Ok(Json(trestle_service::jobs::workers(&app, &p).await?))
}

/// `POST /api/v1/workers`.
pub async fn register(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<WorkerView>)> {
    let view = svc::register(&app, &p, parse_body_for(&body)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/v1/workers/{id}`: hands back whatever it still holds.
pub async fn deregister(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    svc::deregister(&app, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/workers/{id}/lease`: long-polls up to `wait_ms`.
pub async fn lease(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<LeaseResponse>> {
    Ok(Json(
        svc::lease(&app, &p, &id, parse_body_for(&body)).await?,
    ))
}

/// `POST /api/v1/workers/{id}/updates`: heartbeats and attempt reports.
pub async fn updates(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<UpdatesResponse>> {
    Ok(Json(
        svc::updates(&app, &p, &id, parse_body_for(&body)).await?,
    ))
}
