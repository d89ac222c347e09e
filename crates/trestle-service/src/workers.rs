//! Workers: registration, deregistration, leasing (a long-poll) and
//! their reports, each checked by [`crate::access`]; and their versions
//! against this server's (the policy is
//! [`trestle_core::compat::worker_compat`]): a worker that must drain is
//! refused registration and leases with `409 upgrade-required`; its reports
//! are always accepted, so no job fails because of an upgrade.

use crate::access;
use crate::error::{ErrorKind, Parsed, ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::state::Service;
use rand::RngCore;
use std::time::Duration;
use trestle_core::JobState;
use trestle_core::api::{
    LeaseRequest, LeaseResponse, UpdatesRequest, UpdatesResponse, WorkerRegistration, WorkerView,
};
use trestle_core::compat::{Compat, worker_compat};
use trestle_core::identity::authz::{Action, Resource};
use trestle_store::LeaseParams;

/// Longest a lease request may wait for work.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Re-check the store at least this often while long-polling (other
/// servers may have made jobs runnable).
const RECHECK: Duration = Duration::from_millis(500);

/// The code of the answer that tells a worker to drain and exit.
pub const UPGRADE_REQUIRED: &str = "upgrade-required";

fn drain(message: String) -> ServiceError {
    ServiceError::new(ErrorKind::Conflict, UPGRADE_REQUIRED, message)
}

fn decide(version: &str) -> Option<String> {
    match worker_compat(trestle_core::VERSION, version) {
        Compat::Compatible => None,
        Compat::Drain(why) => Some(why),
    }
}

/// Checks the version a worker registers with.
pub fn check_version(version: &str) -> ServiceResult<()> {
    decide(version).map_or(Ok(()), |why| Err(drain(why)))
}

/// Checks a registered worker's version before it leases (remembered
/// after the first look).
pub async fn check_registered(app: &Service, worker: &str) -> ServiceResult<()> {
    let decision = match app.versions.get(worker) {
        Some(d) => d,
        None => {
            // An unknown worker is the lease handler's 404, not ours.
            let Some(v) = app.store.worker_version(worker).await? else {
                return Ok(());
            };
            let d = decide(&v);
            app.versions.put(worker, d.clone());
            d
        }
    };
    decision.map_or(Ok(()), |why| Err(drain(why)))
}

/// Registers a worker for the calling credential, which alone (and
/// admins) may then act as it. A malformed registration is reported only
/// to callers who may register workers.
pub async fn register(
    app: &Service,
    p: &Principal,
    reg: Parsed<WorkerRegistration>,
) -> ServiceResult<WorkerView> {
    access::check(p, Action::WorkerRegister, Resource::None, "")?;
    let reg = reg?;
    check_version(&reg.version)?;
    if reg.capacity.cpus == 0 {
        return Err(ServiceError::bad(
            "invalid-capacity",
            "capacity.cpus",
            "a worker needs at least one CPU",
        ));
    }
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    let id = format!("w-{}", hex::encode(b));
    let view = app
        .store
        .register_worker(&id, &reg, crate::now_ms())
        .await?;
    crate::metering::price_new_worker(app, &id, reg.compute_env.as_deref(), reg.capacity).await?;
    app.store.bind_worker(&id, &p.token_id).await?;
    app.worker_owners.put(&id, &p.token_id);
    app.compute.remember_worker(&id, reg.compute_env.clone());
    app.demand.notify_one();
    Ok(view)
}

/// Checks that the caller may open worker `id`'s workspace tunnel (its own
/// worker credential only) and that the worker is not being told to
/// drain. The tunnel itself is the proxy's (`trestle-proxy`).
pub async fn open_tunnel(app: &Service, p: &Principal, id: &str) -> ServiceResult<()> {
    access::check_worker_tunnel(app, p, id).await?;
    check_registered(app, id).await
}

/// Deregisters worker `id`, handing back whatever it still holds.
pub async fn deregister(app: &Service, p: &Principal, id: &str) -> ServiceResult<()> {
    access::check_worker(app, p, id).await?;
    let released = app.store.release_worker_leases(id, crate::now_ms()).await?;
    if !app.store.remove_worker(id).await? {
        return Err(ServiceError::not_found(format!("worker `{id}`")));
    }
    if released > 0 {
        app.wake();
    }
    Ok(())
}

/// Leases jobs that fit worker `id`'s free capacity, from the queues its
/// compute environment serves, waiting up to `wait_ms` (at most 30 s) for
/// some: woken when jobs become runnable here, and re-checking the store
/// twice a second for those other servers made runnable. A malformed
/// request is reported only to those who may act as the worker.
pub async fn lease(
    app: &Service,
    p: &Principal,
    id: &str,
    req: Parsed<LeaseRequest>,
) -> ServiceResult<LeaseResponse> {
    access::check_worker(app, p, id).await?;
    let req = req?;
    check_registered(app, id).await?;
    let lease_ms = app.lease.as_millis() as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.wait_ms).min(MAX_WAIT);
    // Workers of a compute environment lease only from the queues it serves.
    let exclude = app.compute.exclusions_for(&*app.store, id).await?;
    loop {
        let notified = app.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let leases = app
            .store
            .lease_routed(
                &LeaseParams {
                    worker_id: id,
                    free: req.free,
                    max_jobs: req.max_jobs,
                    prefetch: req.prefetch,
                    lease_ms,
                    now: crate::now_ms(),
                    kinds: &req.kinds,
                },
                &exclude,
            )
            .await?;
        let mut leases = leases;
        for l in &mut leases {
            l.full_log = app.flow.keeps_full_log(&l.spec.queue);
            let attribute = match l.spec.owner.as_deref() {
                Some(owner) => crate::accounts::unix_attribute(app, owner).await?,
                None => None,
            };
            l.run_as = app.flow.run_as(&l.spec, attribute.as_ref());
        }
        let now = tokio::time::Instant::now();
        if !leases.is_empty() || now >= deadline {
            return Ok(LeaseResponse {
                leases,
                lease_ms: lease_ms as u64,
            });
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline.min(now + RECHECK)) => {}
        }
    }
}

/// Applies worker `id`'s heartbeats and attempt reports (fenced by lease
/// token); says which reports were stale and which jobs to cancel. A
/// malformed request is reported only to those who may act as the worker.
pub async fn updates(
    app: &Service,
    p: &Principal,
    id: &str,
    req: Parsed<UpdatesRequest>,
) -> ServiceResult<UpdatesResponse> {
    access::check_worker(app, p, id).await?;
    let req = req?;
    if !req.samples.is_empty() {
        // Before the batch's ends: the last samples of an attempt that
        // ends in this batch are still its lease's. Samples are not worth
        // a retried batch: a failure is logged.
        if let Err(e) = crate::alarms::ingest(app, id, &req.samples).await {
            tracing::warn!(worker = id, error = %e, "cannot store resource samples");
        }
    }
    let out = app
        .store
        .apply_updates(id, &req, app.lease.as_millis() as i64, crate::now_ms())
        .await?;
    for l in &out.started_latency_ms {
        app.metrics.started(*l);
    }
    if out.unblocked > 0 || out.finished.iter().any(|(_, s)| *s == JobState::Runnable) {
        app.wake();
    }
    Ok(UpdatesResponse {
        stale: out.stale,
        cancel: out.cancel,
    })
}
