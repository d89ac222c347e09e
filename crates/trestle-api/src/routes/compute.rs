//! `/api/v1/compute-environments`, `/api/v1/queues` and `/api/v1/leaders`,
//! over [`trestle_service::compute_admin`]: everyone may look, admins
//! change. Every change is stored in the database, so every server of a
//! cluster sees it within a second.

use super::json_value;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use trestle_core::api::compute::{ComputeEnvView, LeaderView, QueueView};
use trestle_service::compute_admin::{self as svc, Stored};
use trestle_service::{Principal, Service};

/// 201 with what was created, 200 with what was replaced.
fn stored<T>(s: Stored<T>) -> (StatusCode, Json<T>) {
    let status = if s.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(s.view))
}

/// `GET /api/v1/compute-environments`.
pub async fn list_envs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<ComputeEnvView>>> {
    Ok(Json(svc::list_envs(&app, &p).await?))
}

/// `GET /api/v1/compute-environments/{name}`: with its recent events.
pub async fn show_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<ComputeEnvView>> {
    Ok(Json(svc::show_env(&app, &p, &name).await?))
}

/// `POST /api/v1/compute-environments` (admins): a new CE.
pub async fn create_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ComputeEnvView>)> {
    Ok(stored(svc::create_env(&app, &p, json_value(&body)).await?))
}

/// `PUT /api/v1/compute-environments/{name}` (admins): creates or replaces.
pub async fn put_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ComputeEnvView>)> {
    Ok(stored(
        svc::put_env(&app, &p, &name, json_value(&body)).await?,
    ))
}

/// `DELETE /api/v1/compute-environments/{name}` (admins): 409 while a
/// queue lists it. Its running workers finish and exit when idle.
pub async fn delete_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    svc::delete_env(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/queues`.
pub async fn list_queues(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<QueueView>>> {
    Ok(Json(svc::list_queues(&app, &p).await?))
}

/// `GET /api/v1/queues/{name}`.
pub async fn show_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(svc::show_queue(&app, &p, &name).await?))
}

/// `POST /api/v1/queues` (admins).
pub async fn create_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    Ok(stored(
        svc::create_queue(&app, &p, json_value(&body)).await?,
    ))
}

/// `PUT /api/v1/queues/{name}` (admins): creates or replaces; a new
/// priority applies to the queue's waiting jobs at once.
pub async fn put_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    Ok(stored(
        svc::put_queue(&app, &p, &name, json_value(&body)).await?,
    ))
}

/// `DELETE /api/v1/queues/{name}` (admins): its jobs stay, served by every
/// CE at queue priority 0.
pub async fn delete_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    svc::delete_queue(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/leaders`: which server runs each cluster-wide loop.
pub async fn leaders(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<LeaderView>>> {
    Ok(Json(svc::leaders(&app, &p).await?))
}
