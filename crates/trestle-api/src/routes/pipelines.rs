//! `POST /api/v1/pipelines` (named steps that run after one another) and
//! the worker's view of a job's upstream: the outputs of the jobs it
//! depends on, staged into its scratch directory before it runs (over
//! [`trestle_service::files`]).

use super::files::download;
use super::{parse_body, parse_id};
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use trestle_core::api::JobView;
use trestle_core::api::workflow::UpstreamList;
use trestle_core::batch::pipeline::PipelineRequest;
use trestle_service::files;
use trestle_service::jobs::parse_attempt;
use trestle_service::{Principal, Service};

/// `POST /api/v1/pipelines`: 201 with the pipeline (its steps in `steps`).
pub async fn submit(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let req: PipelineRequest = parse_body(&body)?;
    let view = trestle_service::jobs::submit_pipeline(&app, &p, req).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /api/v1/jobs/{id}/upstream`: for the worker running the job (or a
/// user who may read it), the output files of every succeeded job it
/// depends on; for an array, of each succeeded child.
pub async fn upstream(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<UpstreamList>> {
    Ok(Json(files::upstream(&app, &p, parse_id(&id)?).await?))
}

/// `GET /api/v1/jobs/{id}/upstream/{dep}/{attempt}/{*path}`: one upstream
/// file (the dependency, or a child of it, must be upstream of the job).
pub async fn upstream_file(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, dep, attempt, path)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let dep = parse_id(&dep).map_err(|mut e| {
        e.field = Some("dep".into());
        e
    })?;
    let attempt = parse_attempt(&attempt)?;
    let file = files::upstream_file(&app, &p, id, dep, attempt, &path).await?;
    Ok(download(file, &path))
}
