//! `POST /api/v1/pipelines` (named steps that run after one another) and
//! the worker's view of a job's upstream: the outputs of the jobs it
//! depends on, staged into its scratch directory before it runs.

use super::{parse_body, parse_id};
use crate::error::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::api::workflow::{UpstreamJob, UpstreamList};
use trestle_core::batch::pipeline::PipelineRequest;
use trestle_core::identity::authz::Action;
use trestle_core::paths::normalize_relative;
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access;
use trestle_store::blobs::output_prefix;

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

/// The latest attempt of a succeeded job, with its output files.
async fn outputs_of(app: &Service, job: &JobView) -> ApiResult<Option<UpstreamJob>> {
    if job.state != JobState::Succeeded {
        return Ok(None);
    }
    let Some(attempt) = job.attempts.last().map(|a| a.attempt) else {
        return Ok(None);
    };
    let files = app.blobs.list(&output_prefix(job.id, attempt)).await?;
    Ok(Some(UpstreamJob {
        job_id: job.id,
        attempt,
        files,
    }))
}

/// `GET /api/v1/jobs/{id}/upstream`: for the worker running the job (or a
/// user who may read it), the output files of every succeeded job it
/// depends on; for an array, of each succeeded child.
pub async fn upstream(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<UpstreamList>> {
    let id = parse_id(&id)?;
    let job = access::job(&app, &p, id, Action::JobInputsRead).await?;
    let mut jobs = Vec::new();
    for d in &job.spec.flow.after {
        let Some(dep) = app.store.job(d.job).await? else {
            continue;
        };
        if dep.flow.kind.is_group() {
            for (child, state) in app.store.children(dep.id).await? {
                if state != JobState::Succeeded {
                    continue;
                }
                if let Some(c) = app.store.job(child).await?
                    && let Some(u) = outputs_of(&app, &c).await?
                {
                    jobs.push(u);
                }
            }
        } else if let Some(u) = outputs_of(&app, &dep).await? {
            jobs.push(u);
        }
    }
    jobs.retain(|j| !j.files.is_empty());
    Ok(Json(UpstreamList { jobs }))
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
    let attempt: u32 = attempt
        .parse()
        .map_err(|_| ApiError::bad("invalid-attempt", "attempt", "not an attempt number"))?;
    let job = access::job(&app, &p, id, Action::JobInputsRead).await?;
    let what = format!("upstream job {dep} of job {id}");
    let direct = job.spec.flow.after.iter().any(|d| d.job == dep);
    let via_parent = if direct {
        false
    } else {
        let parent = app.store.job(dep).await?.and_then(|d| d.flow.parent);
        parent.is_some_and(|pa| job.spec.flow.after.iter().any(|d| d.job == pa))
    };
    if !direct && !via_parent {
        return Err(ApiError::not_found(what));
    }
    let rel = normalize_relative("path", &path)?;
    let (size, stream) = app
        .blobs
        .get_stream(&output_prefix(dep, attempt), &rel)
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
