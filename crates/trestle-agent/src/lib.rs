//! The Trestle worker: a small scheduler of its own. It registers with the
//! server, leases jobs that fit its free capacity, runs each attempt in its
//! own task (scratch directory, input staging, process, output upload) and
//! reports everything through one batching reporter that also sends the
//! heartbeats.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trestle_agent::AgentError> {
//! let config = trestle_agent::WorkerConfig::new(
//!     vec!["http://127.0.0.1:8080".into()],
//!     Some("token".into()),
//! );
//! let (stop, stop_rx) = tokio::sync::watch::channel(false);
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     let _ = stop.send(true);
//! });
//! let exit = trestle_agent::run(config, stop_rx).await?;
//! # let _ = exit;
//! # Ok(()) }
//! ```
//!
//! The worker writes nothing to stdout; it logs through `tracing`.

mod backoff;
mod check;
mod config;
mod credential;
mod error;
mod heartbeat;
mod isolation;
mod lease;
mod process;
mod program;
mod report;
mod sampling;
mod scratch;
mod session;
mod stage;
mod state;
mod studies;
mod tasks;
pub mod tunnel;
mod upload;
mod upstream;

#[cfg(test)]
mod testutil;

pub use check::Matcher;
pub use config::{
    DEFAULT_MAX_LOG_CHUNK, DEFAULT_POLL_WAIT_MS, KEEP_SCRATCH_ENV, WorkerConfig, detect_capacity,
    host_name,
};
pub use credential::{CREDENTIAL_ENV, take_credential};
pub use error::AgentError;
pub use isolation::{DEFAULT_TASK_PIDS_MAX, IsolationSetting};

use crate::backoff::Backoff;
use crate::session::Session;
use crate::state::{Attempts, StopReason};
use crate::tasks::AttemptCtx;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use trestle_client::{Client, ClientError};
use trestle_core::api::{LeaseRequest, WorkerRegistration};

/// Why [`run`] returned normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Nothing ran or was leased for `idle_exit`.
    Idle,
    /// The shutdown future completed.
    Shutdown,
    /// The server told this worker to upgrade: it leased nothing more,
    /// let its running jobs finish and report, and deregistered.
    UpgradeRequired,
}

/// If a lease request comes back empty faster than this, the server did
/// not long-poll; wait [`EARLY_EMPTY_PAUSE`] before asking again.
const EARLY_EMPTY: Duration = Duration::from_millis(20);
/// See [`EARLY_EMPTY`].
const EARLY_EMPTY_PAUSE: Duration = Duration::from_millis(100);
/// Limit for the final deregistration.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How the lease loop ended.
enum LoopEnd {
    Idle,
    Shutdown,
    /// Told to upgrade: drain (running jobs finish), then exit.
    Drain,
    Fatal(AgentError),
}

/// Runs the worker until `shutdown` turns `true`, it has been idle for
/// `config.idle_exit`, or the server rejects it.
///
/// The binary wires SIGINT/SIGTERM to `shutdown` (a dropped sender that
/// never sent `true` means "no shutdown signal"). On shutdown the worker
/// stops leasing, kills its running jobs' process groups and reports them
/// `released` (handed back to their queues without using up an attempt),
/// delivers the remaining updates (for at most `config.shutdown_grace`),
/// deregisters and returns [`WorkerExit::Shutdown`]. Idle exit deregisters
/// and returns [`WorkerExit::Idle`].
///
/// Errors: an unusable configuration or work directory, or the server
/// rejecting the worker (bad token). An unreachable server is not an error:
/// the worker keeps retrying, and keeps its jobs running meanwhile.
pub async fn run(
    config: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<WorkerExit, AgentError> {
    run_until(config, shutdown_requested(shutdown)).await
}

/// Resolves once `rx` holds `true`.
async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// [`run`] with any future as the shutdown signal: the worker shuts down
/// when it completes.
pub async fn run_until<F>(mut config: WorkerConfig, shutdown: F) -> Result<WorkerExit, AgentError>
where
    F: Future<Output = ()> + Send,
{
    config.validate()?;
    let created_root = prepare_work_dir(&mut config)?;
    let isolation = match isolation::Isolation::new(
        config.isolation,
        &config.work_dir,
        config.task_pids_max,
        config.cgroups,
    ) {
        Ok(i) => i,
        Err(e) => {
            remove_root(&config, created_root);
            return Err(e);
        }
    };
    tracing::info!(
        mode = isolation.mode(),
        limits = %isolation.limits(),
        "task isolation"
    );
    let client = Client::new(config.servers.clone(), config.token.clone())?;
    let registration = WorkerRegistration {
        host: host_name(),
        pid: std::process::id(),
        capacity: config.capacity,
        compute_env: config.compute_env.clone(),
        instance: config.instance_id.clone(),
        version: trestle_core::VERSION.to_string(),
        isolation: Some(trestle_core::api::WorkerIsolation {
            mode: isolation.mode().to_string(),
            limits: isolation.limits(),
        }),
    };
    let session = Arc::new(Session::new(client.clone(), registration));
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        r = session.register() => {
            match r {
                Ok(()) => {}
                Err(AgentError::UpgradeRequired(why)) => {
                    tracing::warn!(%why, "the server asks for another worker version; exiting");
                    remove_root(&config, created_root);
                    return Ok(WorkerExit::UpgradeRequired);
                }
                Err(e) => {
                    remove_root(&config, created_root);
                    return Err(e);
                }
            }
        }
        () = &mut shutdown => {
            remove_root(&config, created_root);
            return Ok(WorkerExit::Shutdown);
        }
    }
    tracing::info!(
        cpus = config.capacity.cpus,
        mem_mib = config.capacity.mem_mib,
        gpus = config.capacity.gpus,
        work_dir = %config.work_dir.display(),
        "worker running"
    );
    let attempts = Arc::new(Attempts::new(config.capacity));
    let _sampling = sampling::spawn(attempts.clone(), config.sample_interval);
    let (fatal_tx, fatal_rx) = watch::channel(None);
    let (reporter, reporter_task) = report::spawn(
        session.clone(),
        attempts.clone(),
        fatal_tx,
        report::Limits::default(),
        Backoff::default(),
    );
    let scratch = scratch::ScratchPool::new(&config.work_dir, config.keep_scratch);
    let hosted = Arc::new(tasks::session::Hosted::default());
    let _tunnels = config.tunnel.then(|| {
        let s = session.clone();
        TunnelGuard::start(&client, Arc::new(move || s.id()), hosted.clone())
    });
    let ctx = Arc::new(AttemptCtx {
        client,
        config,
        attempts,
        session: session.clone(),
        hosted,
        reporter,
        scratch,
        isolation,
    });
    let mut tasks = JoinSet::new();
    let end = lease_loop(&session, &ctx, &mut tasks, fatal_rx, shutdown.as_mut()).await;
    wind_down(end, &session, ctx, tasks, reporter_task, created_root).await
}

/// The worker's tunnels, ended when dropped (when the worker returns).
struct TunnelGuard {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl TunnelGuard {
    fn start(
        client: &Client,
        id: tunnel::WorkerId,
        targets: Arc<dyn tunnel::TunnelTargets>,
    ) -> TunnelGuard {
        let (stop, rx) = watch::channel(false);
        let tasks = tunnel::spawn(client, id, targets, rx);
        TunnelGuard { stop, tasks }
    }
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Creates the work directory and makes its path absolute (jobs see it in
/// `TRESTLE_SCRATCH`). True if it did not exist before.
fn prepare_work_dir(config: &mut WorkerConfig) -> Result<bool, AgentError> {
    let dir = config.work_dir.clone();
    let existed = dir.exists();
    std::fs::create_dir_all(&dir)
        .map_err(|e| AgentError::io("cannot create the work directory", &dir, e))?;
    config.work_dir = std::fs::canonicalize(&dir)
        .map_err(|e| AgentError::io("cannot resolve the work directory", &dir, e))?;
    Ok(!existed)
}

/// Removes the work directory if this worker created it and it is empty.
fn remove_root(config: &WorkerConfig, created: bool) {
    if created {
        let _ = std::fs::remove_dir(&config.work_dir);
    }
}

/// Resolves when the reporter reports a fatal error (never if it is gone).
async fn fatal_changed(rx: &mut watch::Receiver<Option<ClientError>>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Collects finished attempt tasks.
fn reap(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.try_join_next() {
        if let Err(e) = result
            && e.is_panic()
        {
            tracing::error!(error = %e, "an attempt task panicked");
        }
    }
}

/// Leases while capacity allows and starts every leased attempt.
async fn lease_loop<S: Future<Output = ()>>(
    session: &Session,
    ctx: &Arc<AttemptCtx>,
    tasks: &mut JoinSet<()>,
    mut fatal_rx: watch::Receiver<Option<ClientError>>,
    mut shutdown: Pin<&mut S>,
) -> LoopEnd {
    let cfg = &ctx.config;
    let attempts = &ctx.attempts;
    let mut backoff = Backoff::default();
    let mut failures = 0u32;
    loop {
        reap(tasks);
        if let Some(e) = fatal_rx.borrow().clone() {
            return LoopEnd::Fatal(AgentError::Rejected(e));
        }
        let usage = attempts.usage();
        let Some(plan) = lease::plan(cfg.capacity, &usage, cfg.prefetch) else {
            tokio::select! {
                () = attempts.changed.notified() => {}
                () = &mut shutdown => return LoopEnd::Shutdown,
                () = fatal_changed(&mut fatal_rx) => {}
            }
            continue;
        };
        let mut wait_ms = cfg.poll_wait_ms;
        if usage.count == 0
            && let Some(idle) = cfg.idle_exit
        {
            let idle_for = usage.idle_since.elapsed();
            if idle_for >= idle {
                return LoopEnd::Idle;
            }
            let left = u64::try_from((idle - idle_for).as_millis()).unwrap_or(u64::MAX);
            wait_ms = wait_ms.min(left.max(1));
        }
        let request = LeaseRequest {
            free: plan.free,
            max_jobs: plan.max_jobs,
            prefetch: plan.prefetch,
            wait_ms,
            kinds: tasks::KINDS.to_vec(),
        };
        let asked = Instant::now();
        let result = tokio::select! {
            r = session.lease(&request) => r,
            () = &mut shutdown => return LoopEnd::Shutdown,
        };
        let pause = match result {
            Ok(resp) => {
                if failures > 0 {
                    tracing::info!(failures, "leasing works again");
                    failures = 0;
                }
                backoff.reset();
                attempts.set_lease_ms(resp.lease_ms);
                let empty = resp.leases.is_empty();
                for lease in resp.leases {
                    let (job, attempt) = (lease.job_id, lease.attempt);
                    match attempts.insert(&lease) {
                        Some(stop) => {
                            tracing::debug!(job, attempt, "leased");
                            tasks.spawn(crate::tasks::run(ctx.clone(), lease, stop));
                        }
                        None => tracing::warn!(job, attempt, "leased an attempt already held"),
                    }
                }
                let early = asked.elapsed() < EARLY_EMPTY
                    && wait_ms >= EARLY_EMPTY_PAUSE.as_millis() as u64;
                (empty && early).then_some(EARLY_EMPTY_PAUSE)
            }
            Err(e) if e.code() == Some(session::UPGRADE_REQUIRED) => {
                tracing::warn!(error = %e, "the server asks for another worker version: draining (running jobs finish), then exiting");
                return LoopEnd::Drain;
            }
            Err(e) if matches!(e.status(), Some(401 | 403)) => {
                return LoopEnd::Fatal(AgentError::Rejected(e));
            }
            Err(e) => {
                if e.is_transient() {
                    if failures == 0 {
                        tracing::warn!(error = %e, "cannot lease; retrying");
                    }
                } else {
                    tracing::error!(error = %e, "the server refused a lease request");
                }
                failures += 1;
                Some(backoff.next_delay())
            }
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = &mut shutdown => return LoopEnd::Shutdown,
            }
        }
    }
}

/// Stops what runs (unless idle), delivers the last updates, deregisters.
async fn wind_down(
    end: LoopEnd,
    session: &Session,
    ctx: Arc<AttemptCtx>,
    mut tasks: JoinSet<()>,
    mut reporter_task: JoinHandle<()>,
    created_root: bool,
) -> Result<WorkerExit, AgentError> {
    let config = ctx.config.clone();
    if matches!(end, LoopEnd::Drain) {
        // Every running job finishes and reports; nothing is handed back.
        while let Some(result) = tasks.join_next().await {
            if let Err(e) = result
                && e.is_panic()
            {
                tracing::error!(error = %e, "an attempt task panicked");
            }
        }
    }
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    if !matches!(end, LoopEnd::Idle | LoopEnd::Drain) {
        tracing::info!("stopping: handing running jobs back");
        ctx.attempts.stop_all(StopReason::Release);
    }
    let joined = tokio::time::timeout_at(deadline, async {
        while let Some(result) = tasks.join_next().await {
            if let Err(e) = result
                && e.is_panic()
            {
                tracing::error!(error = %e, "an attempt task panicked");
            }
        }
    })
    .await;
    if joined.is_err() {
        tracing::warn!("attempts still busy after the shutdown grace period; abandoning them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // The last reporter handle goes with the context: the reporter delivers
    // what is queued and ends.
    ctx.scratch.clear();
    ctx.isolation.clear();
    drop(ctx);
    if tokio::time::timeout_at(deadline, &mut reporter_task)
        .await
        .is_err()
    {
        tracing::warn!("could not deliver every update before the shutdown grace period ended");
        reporter_task.abort();
    }
    match tokio::time::timeout(DEREGISTER_TIMEOUT, session.deregister()).await {
        Ok(Ok(())) => tracing::info!("deregistered"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot deregister"),
        Err(_) => tracing::warn!("deregistering timed out"),
    }
    remove_root(&config, created_root);
    match end {
        LoopEnd::Idle => Ok(WorkerExit::Idle),
        LoopEnd::Shutdown => Ok(WorkerExit::Shutdown),
        LoopEnd::Drain => Ok(WorkerExit::UpgradeRequired),
        LoopEnd::Fatal(e) => Err(e),
    }
}
