//! `/api/v1/jobs`: submit, list, show, cancel, logs.

use super::{parse_body, parse_id};
use crate::access;
use crate::audit::AuditResource;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::api::{BatchSubmit, BatchSubmitted, JobList, JobView, LogSlice};
use trestle_core::batch::spec::{request_from_value, strip_trailing_commas};
use trestle_core::identity::authz::Action;
use trestle_core::{JobSpec, JobState};
use trestle_store::JobFilter;
use trestle_store::blobs::upload_prefix;

/// Most jobs in one batch submission.
const MAX_BATCH: usize = 10_000;

fn validate_value(v: serde_json::Value) -> ApiResult<JobSpec> {
    Ok(request_from_value(v)?.validate()?)
}

async fn check_inputs(app: &AppState, p: &Principal, spec: &JobSpec) -> ApiResult<()> {
    if let Some(id) = &spec.inputs
        && (access::upload(app, p, id, Action::UploadRead)
            .await
            .is_err()
            || app.blobs.list(&upload_prefix(id)).await?.is_empty())
    {
        return Err(ApiError::bad(
            "unknown-upload",
            "inputs",
            format!("upload `{id}` does not exist or has no files"),
        ));
    }
    Ok(())
}

/// `POST /api/v1/jobs`.
pub async fn submit(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<JobView>)> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad("invalid-json", "", "the body is not UTF-8"))?;
    let value: serde_json::Value =
        serde_json::from_str(&strip_trailing_commas(text)).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-json",
                format!("the job is not valid JSON: {e}"),
            )
        })?;
    let job = submit_spec(&app, &p, validate_value(value)?).await?;
    let tag = AuditResource(format!("job:{}", job.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(job)))
}

/// Submits one validated job for `p`: charges it to a project, checks its
/// inputs and dependencies, stores it and wakes the schedulers. The API's
/// `POST /api/v1/jobs` and the portal's submit and resubmit share it.
pub async fn submit_spec(app: &AppState, p: &Principal, spec: JobSpec) -> ApiResult<JobView> {
    let spec = access::charge(app, p, spec).await?;
    check_inputs(app, p, &spec).await?;
    crate::workflows::check_deps(app, p, &spec).await?;
    let ids = app
        .store
        .submit(std::slice::from_ref(&spec), crate::now_ms())
        .await?;
    app.metrics.submitted(1);
    crate::workflows::after_submit(app, std::slice::from_ref(&spec)).await?;
    app.wake();
    app.store
        .job(ids[0])
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {}", ids[0])))
}

/// `POST /api/v1/jobs/{id}/resubmit`: runs a job's work again as a new job
/// (an array task as a plain job running the same task; see
/// [`trestle_core::batch::resubmit`]).
pub async fn resubmit(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<JobView>)> {
    let id = parse_id(&id)?;
    let job = resubmit_job(&app, &p, id).await?;
    let tag = AuditResource(format!("job:{}", job.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(job)))
}

/// Resubmits job `id` for `p` through the one submit path (the API and the
/// portal share it): the caller must be able to read the job and to submit
/// to its project.
pub async fn resubmit_job(app: &AppState, p: &Principal, id: i64) -> ApiResult<JobView> {
    let old = access::job(app, p, id, Action::JobRead).await?;
    let spec = trestle_core::batch::resubmit::resubmission(&old)?;
    submit_spec(app, p, spec).await
}

/// Validates a job request (native JSON) into a specification.
pub fn validate_request(v: serde_json::Value) -> ApiResult<JobSpec> {
    validate_value(v)
}

/// `POST /api/v1/jobs/batch`: all or nothing.
pub async fn submit_batch(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<BatchSubmitted>)> {
    let batch: BatchSubmit = parse_body(&body)?;
    if batch.jobs.is_empty() || batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "invalid-batch",
            "jobs",
            format!(
                "a batch holds 1 to {MAX_BATCH} jobs, got {}",
                batch.jobs.len()
            ),
        ));
    }
    let mut specs = Vec::with_capacity(batch.jobs.len());
    for (i, v) in batch.jobs.into_iter().enumerate() {
        let spec = validate_value(v).map_err(|mut e| {
            e.field = Some(format!("jobs[{i}].{}", e.field.as_deref().unwrap_or("")));
            e
        })?;
        let spec = access::charge(&app, &p, spec).await.map_err(|mut e| {
            if e.field.is_some() {
                e.field = Some(format!("jobs[{i}].{}", e.field.as_deref().unwrap_or("")));
            }
            e
        })?;
        specs.push(spec);
    }
    for s in &specs {
        check_inputs(&app, &p, s).await?;
        crate::workflows::check_deps(&app, &p, s).await?;
    }
    let ids = app.store.submit(&specs, crate::now_ms()).await?;
    app.metrics.submitted(ids.len() as u64);
    crate::workflows::after_submit(&app, &specs).await?;
    app.wake();
    Ok((StatusCode::CREATED, Json(BatchSubmitted { ids })))
}

/// `GET /api/v1/jobs?state=&queue=&before=&limit=`.
pub async fn list(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<JobList>> {
    let mut filter = JobFilter {
        limit: 100,
        ..Default::default()
    };
    for (k, v) in &q {
        match k.as_str() {
            "state" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    filter.states.push(JobState::parse(s).ok_or_else(|| {
                        ApiError::bad(
                            "invalid-state",
                            "state",
                            format!("`{s}` is not a job state (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED)"),
                        )
                    })?);
                }
            }
            "queue" => filter.queue = Some(v.clone()),
            "project" => filter.project = Some(v.clone()),
            "owner" => filter.owner = Some(v.clone()),
            "before" => {
                filter.before = Some(parse_id(v).map_err(|mut e| {
                    e.field = Some("before".into());
                    e
                })?)
            }
            "limit" => {
                filter.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(
                            "invalid-limit",
                            "limit",
                            format!("limit must be 1-1000, got `{v}`"),
                        )
                    })?
            }
            other => {
                return Err(ApiError::bad(
                    "unknown-parameter",
                    other,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    access::restrict(&p, &mut filter);
    let mut jobs = app.store.list_jobs(&filter).await?;
    crate::workflows::annotate_all(&app, &mut jobs).await?;
    let next_before = (jobs.len() as u32 == filter.limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(Json(JobList { jobs, next_before }))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn show(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    let mut job = access::job(&app, &p, id, Action::JobRead).await?;
    crate::workflows::annotate_all(&app, std::slice::from_mut(&mut job)).await?;
    Ok(Json(job))
}

/// `POST /api/v1/jobs/{id}/cancel`.
pub async fn cancel(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    access::job(&app, &p, id, Action::JobCancel).await?;
    app.store
        .cancel(id, crate::now_ms())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))
}

/// `GET /api/v1/jobs/{id}/log?attempt=&after=`.
pub async fn log(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<LogSlice>> {
    let id = parse_id(&id)?;
    access::job(&app, &p, id, Action::JobRead).await?;
    let num = |k: &str| -> ApiResult<Option<u32>> {
        q.get(k)
            .map(|v| {
                v.parse::<u32>().map_err(|_| {
                    ApiError::bad("invalid-number", k, format!("`{v}` is not a number"))
                })
            })
            .transpose()
    };
    let attempt = num("attempt")?;
    let after = num("after")?.unwrap_or(0);
    app.store
        .read_log(id, attempt, after)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))
}
