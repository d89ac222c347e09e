//! `/api/v1/jobs`: submit, list, show, cancel, resubmit, logs, over
//! [`trestle_service::jobs`].

use super::{parse_body, parse_id};
use crate::audit::AuditResource;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::api::{BatchSubmit, BatchSubmitted, JobList, JobView, LogSlice};
use trestle_service::jobs::{self as svc, MAX_BATCH};
use trestle_service::{Principal, Service};

/// `POST /api/v1/jobs`.
pub async fn submit(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<JobView>)> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad("invalid-json", "", "the body is not UTF-8"))?;
    let job = svc::submit_one(&app, &p, svc::validate_text(text)?).await?;
    let tag = AuditResource(format!("job:{}", job.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(job)))
}

/// `POST /api/v1/jobs/batch`: all or nothing.
pub async fn submit_batch(
    State(app): State<Service>,
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
        specs.push(svc::validate_request(v).map_err(|e| e.in_field(&format!("jobs[{i}]")))?);
    }
    let ids = svc::submit(&app, &p, specs, true).await?;
    Ok((StatusCode::CREATED, Json(BatchSubmitted { ids })))
}

/// `GET /api/v1/jobs?state=&queue=&before=&limit=`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<JobList>> {
    Ok(Json(
        svc::list(&app, &p, svc::filter_from_params(&q)?).await?,
    ))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(svc::show(&app, &p, parse_id(&id)?).await?))
}

/// `POST /api/v1/jobs/{id}/cancel`.
pub async fn cancel(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(svc::cancel(&app, &p, parse_id(&id)?).await?))
}

/// `POST /api/v1/jobs/{id}/resubmit[?failed=true]`: runs a job's work
/// again as a new job (an array task as a plain job running the same
/// task); with `failed=true`, an array's failed children as a new array.
pub async fn resubmit(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<JobView>)> {
    let id = parse_id(&id)?;
    let failed = match q.get("failed").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad(
                "invalid-failed",
                "failed",
                format!("failed must be true or false, got `{v}`"),
            ));
        }
    };
    if let Some(k) = q.keys().find(|k| *k != "failed") {
        return Err(ApiError::bad(
            "unknown-parameter",
            k,
            format!("unknown query parameter `{k}`"),
        ));
    }
    let job = if failed {
        svc::resubmit_failed(&app, &p, id).await?
    } else {
        svc::resubmit(&app, &p, id).await?
    };
    let tag = AuditResource(format!("job:{}", job.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(job)))
}

/// `GET /api/v1/jobs/{id}/samples?since=&limit=`: resource samples (oldest
/// first; the newest `limit`, default 500) and alarm states.
pub async fn samples(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<trestle_core::api::samples::JobSamples>> {
    let id = parse_id(&id)?;
    let num = |k: &str| -> ApiResult<Option<i64>> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::bad("invalid-number", k, format!("`{v}` is not a number"))
                })
            })
            .transpose()
    };
    let since = num("since")?.unwrap_or(0);
    let limit = num("limit")?.unwrap_or(500);
    if limit == 0 || limit > i64::from(svc::MAX_SAMPLES) {
        return Err(ApiError::bad(
            "invalid-number",
            "limit",
            format!("limit must be between 1 and {}", svc::MAX_SAMPLES),
        ));
    }
    Ok(Json(svc::samples(&app, &p, id, since, limit as u32).await?))
}

/// `GET /api/v1/jobs/{id}/log?attempt=&after=`.
pub async fn log(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<LogSlice>> {
    let id = parse_id(&id)?;
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
    Ok(Json(svc::log(&app, &p, id, attempt, after).await?))
}
