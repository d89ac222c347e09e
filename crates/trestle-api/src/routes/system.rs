//! Health, readiness, metrics, the OpenAPI document and the JSON fallback.

use crate::error::{ApiError, ApiResult};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use trestle_core::identity::authz::{Action, Resource};
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(app): State<Service>) -> ApiResult<&'static str> {
    app.store.ping().await?;
    Ok("ready\n")
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<Service>) -> ApiResult<impl IntoResponse> {
    let counts = app.store.counts().await?;
    let workers = app.store.list_workers().await?.len();
    let mut text = app.metrics.render(&counts, workers);
    text.push_str(&app.alarms.render_metrics(trestle_service::now_ms()));
    let damaged = app.store.damaged();
    text.push_str(&format!(
        "# HELP trestle_damaged_jobs Stored jobs this server met that cannot be decoded.\n\
         # TYPE trestle_damaged_jobs gauge\ntrestle_damaged_jobs {}\n\
         # HELP trestle_damaged_rows_skipped_total Times a listing, lease or read skipped a damaged row.\n\
         # TYPE trestle_damaged_rows_skipped_total counter\ntrestle_damaged_rows_skipped_total {}\n",
        damaged.rows().len(),
        damaged.skipped()
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// `GET /api/v1/admin/damaged-jobs`: stored jobs this server met that
/// cannot be decoded (admins). They are skipped everywhere else.
pub async fn damaged_jobs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<DamagedJobs>> {
    access::check(&p, Action::DamagedRead, Resource::None, "")?;
    Ok(Json(DamagedJobs {
        jobs: app.store.damaged().rows(),
        skipped: app.store.damaged().skipped(),
    }))
}

/// The answer of `GET /api/v1/admin/damaged-jobs`.
#[derive(Debug, serde::Serialize)]
pub struct DamagedJobs {
    /// The damaged rows met, by job id.
    pub jobs: Vec<trestle_store::DamagedRow>,
    /// How many times one was skipped.
    pub skipped: u64,
}

/// Unknown routes get a JSON 404.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Known routes with the wrong method get a JSON 405.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not accept that method",
    )
}
