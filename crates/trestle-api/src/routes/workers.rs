//! `/api/v1/workers`: registration, leasing (long-poll) and updates.

use super::parse_body;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rand::RngCore;
use std::time::Duration;
use trestle_core::JobState;
use trestle_core::api::{
    LeaseRequest, LeaseResponse, UpdatesRequest, UpdatesResponse, WorkerRegistration, WorkerView,
};
use trestle_core::identity::authz::{Action, Resource};
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access;
use trestle_store::LeaseParams;

/// Longest a lease request may wait for work.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Re-check the store at least this often while long-polling (other
/// servers may have made jobs runnable).
const RECHECK: Duration = Duration::from_millis(500);

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
    access::check(&p, Action::WorkerRegister, Resource::None, "")?;
    let reg: WorkerRegistration = parse_body(&body)?;
    trestle_service::workers::check_version(&reg.version)?;
    if reg.capacity.cpus == 0 {
        return Err(ApiError::bad(
            "invalid-capacity",
            "capacity.cpus",
            "a worker needs at least one CPU",
        ));
    }
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    let id = format!(
        "w-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    let view = app
        .store
        .register_worker(&id, &reg, trestle_service::now_ms())
        .await?;
    app.store.bind_worker(&id, &p.token_id).await?;
    app.worker_owners.put(&id, &p.token_id);
    app.compute.remember_worker(&id, reg.compute_env.clone());
    app.demand.notify_one();
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/v1/workers/{id}`: hands back whatever it still holds.
pub async fn deregister(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    access::check_worker(&app, &p, &id).await?;
    let released = app
        .store
        .release_worker_leases(&id, trestle_service::now_ms())
        .await?;
    if !app.store.remove_worker(&id).await? {
        return Err(ApiError::not_found(format!("worker `{id}`")));
    }
    if released > 0 {
        app.wake();
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/workers/{id}/lease`: long-polls up to `wait_ms`.
pub async fn lease(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<LeaseResponse>> {
    access::check_worker(&app, &p, &id).await?;
    let req: LeaseRequest = parse_body(&body)?;
    trestle_service::workers::check_registered(&app, &id).await?;
    let lease_ms = app.lease.as_millis() as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms).min(MAX_WAIT);
    // Workers of a compute environment lease only from the queues it serves.
    let exclude = app.compute.exclusions_for(&*app.store, &id).await?;
    loop {
        let notified = app.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let leases = app
            .store
            .lease_routed(
                &LeaseParams {
                    worker_id: &id,
                    free: req.free,
                    max_jobs: req.max_jobs,
                    prefetch: req.prefetch,
                    lease_ms,
                    now: trestle_service::now_ms(),
                    kinds: &req.kinds,
                },
                &exclude,
            )
            .await?;
        let now = tokio::time::Instant::now();
        if !leases.is_empty() || now >= deadline {
            return Ok(Json(LeaseResponse {
                leases,
                lease_ms: lease_ms as u64,
            }));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline.min(now + RECHECK)) => {}
        }
    }
}

/// `POST /api/v1/workers/{id}/updates`: heartbeats and attempt reports.
pub async fn updates(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<UpdatesResponse>> {
    access::check_worker(&app, &p, &id).await?;
    let req: UpdatesRequest = parse_body(&body)?;
    let out = app
        .store
        .apply_updates(
            &id,
            &req,
            app.lease.as_millis() as i64,
            trestle_service::now_ms(),
        )
        .await?;
    for l in &out.started_latency_ms {
        app.metrics.started(*l);
    }
    if out.unblocked > 0 || out.finished.iter().any(|(_, s)| *s == JobState::Runnable) {
        app.wake();
    }
    Ok(Json(UpdatesResponse {
        stale: out.stale,
        cancel: out.cancel,
    }))
}
