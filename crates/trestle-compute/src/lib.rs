//! Compute providers: the one small trait every place that can host
//! workers implements (launch workers of a shape, list them, terminate
//! them), the `local` provider that runs worker processes on this host,
//! and the `slurm` provider that submits worker pilot jobs with `sbatch`.
//! [`conformance`] is the suite every provider passes.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use trestle_core::Capacity;

mod local;
mod slurm;
mod slurm_parse;

pub use local::LocalProvider;
pub use slurm::{SlurmConfig, SlurmProvider};
pub use slurm_parse::{is_stuck_reason, shell_quote};

/// Environment variable through which a launched worker learns its
/// provider's id for it (it registers with it).
pub const INSTANCE_ID_ENV: &str = "TRESTLE_INSTANCE_ID";

/// Errors from a provider.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The provider could not start a worker (bad settings, a failing
    /// command): the CE needs attention.
    #[error("cannot launch a worker: {0}")]
    Launch(String),
    /// The provider has no capacity of this shape right now.
    #[error("no capacity: {0}")]
    Capacity(String),
    /// No such worker.
    #[error("no such worker: {0}")]
    NotFound(String),
    /// The provider is stopping (its server is shutting down) and starts
    /// nothing more.
    #[error("the provider is stopping and launches no more workers")]
    Stopping,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Result alias for providers.
pub type Result<T> = std::result::Result<T, ComputeError>;

/// How to start one worker process: the program, fixed arguments, and
/// environment (secrets travel in the environment, never in `argv`).
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program (normally the `trestle` binary).
    pub program: PathBuf,
    /// Arguments before the shape flags (normally `["worker", ...]`).
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
}

/// What to launch.
#[derive(Debug, Clone)]
pub struct LaunchRequest<'a> {
    /// The shape's name (recorded with the worker).
    pub shape_name: &'a str,
    /// Its capacity (passed to the worker as `--cpus/--mem-mib/--gpus`).
    pub shape: Capacity,
    /// How many workers.
    pub count: u32,
    /// Extra environment for these workers (their credential).
    pub env: &'a [(String, String)],
}

/// Where a launched worker is in its life, as the provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStatus {
    /// Queued by the engine (a pending Slurm job).
    Pending,
    /// Its process runs (it may still be registering).
    Running,
    /// Pending for a reason that waiting will not cure (a Slurm job that
    /// asks for more than the partition has).
    Stuck(String),
}

/// How a worker that is no longer listed ended, as far as its provider
/// still knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedWorker {
    /// It exited normally (status 0): no failure.
    pub ok: bool,
    /// It was cancelled (`scancel`, SIGTERM): not a failure to start.
    pub cancelled: bool,
    /// What happened, for people.
    pub what: String,
}

/// A worker as its provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderWorker {
    /// The provider's id for it (a local id, a Slurm job id).
    pub id: String,
    /// Its shape's name, when known.
    pub shape_name: Option<String>,
    /// Its shape.
    pub shape: Capacity,
    /// Where it is in its life.
    pub status: InstanceStatus,
    /// When it was launched (ms since the epoch), when known.
    pub launched_at: Option<i64>,
}

/// A place that can run worker processes.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Provider name (`local`, `slurm`, ...).
    fn name(&self) -> &str;
    /// Starts `req.count` workers of `req.shape`. On an error part-way,
    /// the workers already started stay listed.
    async fn launch(&self, req: &LaunchRequest<'_>) -> Result<Vec<ProviderWorker>>;
    /// Workers that are pending, starting or running (ended ones are not
    /// listed).
    async fn list(&self) -> Result<Vec<ProviderWorker>>;
    /// Stops a worker gracefully (it hands its jobs back); an unknown id
    /// is [`ComputeError::NotFound`].
    async fn terminate(&self, id: &str) -> Result<()>;
    /// How many more workers of each shape could start now, for the shapes
    /// the provider can tell (empty: unknown).
    async fn available(&self, _shapes: &[(String, Capacity)]) -> Result<BTreeMap<String, u64>> {
        Ok(BTreeMap::new())
    }
    /// How an ended worker ended, when the provider still knows (for
    /// reporting workers that failed before they registered).
    async fn describe(&self, _id: &str) -> Result<Option<EndedWorker>> {
        Ok(None)
    }
}

pub(crate) use trestle_core::clock::now_ms;

/// A stand-in worker for [`conformance`]: a shell that records its
/// credential (from `TRESTLE_TOKEN`, or descriptor 3 when
/// `TRESTLE_TOKEN_FD` is set) and arguments in `report_dir/<instance id>`, then waits
/// until SIGTERM. Providers are built with it in place of `trestle`.
pub fn stand_in_worker(report_dir: &Path) -> WorkerCommand {
    let script = format!(
        "tok=\"$TRESTLE_TOKEN\"; if [ -n \"$TRESTLE_TOKEN_FD\" ]; then tok=$(cat <&3); fi; \
         printf '%s\\n%s\\n' \"$tok\" \"$*\" > {dir}/\"${INSTANCE_ID_ENV}\".tmp && \
         mv {dir}/\"${INSTANCE_ID_ENV}\".tmp {dir}/\"${INSTANCE_ID_ENV}\"; \
         trap 'exit 0' TERM; while :; do sleep 0.1; done",
        dir = shell_quote(&report_dir.display().to_string()),
    );
    WorkerCommand {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script, "worker".into()],
        env: vec![],
    }
}

/// The conformance suite every provider passes. The provider must have
/// been built with [`stand_in_worker`]`(report_dir)` as its command.
/// `settle` is how long a launched worker may take to start or vanish.
///
/// Checks: `launch` returns what it started with the right shape; `list`
/// shows it; the worker starts with its credential (in its environment, or
/// on an inherited descriptor) and its provider id in `TRESTLE_INSTANCE_ID`, the shape in its arguments,
/// and no secret in `argv`; `terminate` stops it and `list` forgets it;
/// unknown ids are `NotFound`; launching nothing is fine.
pub async fn conformance(p: &dyn Provider, shape: Capacity, report_dir: &Path, settle: Duration) {
    let secret = "conformance-secret-7f3a".to_string();
    let env = vec![("TRESTLE_TOKEN".to_string(), secret.clone())];
    let before = p.list().await.expect("list").len();
    let none = p
        .launch(&LaunchRequest {
            shape_name: "s1",
            shape,
            count: 0,
            env: &env,
        })
        .await
        .expect("launch 0");
    assert!(none.is_empty(), "launching nothing starts nothing");
    let launched = p
        .launch(&LaunchRequest {
            shape_name: "s1",
            shape,
            count: 2,
            env: &env,
        })
        .await
        .expect("launch");
    assert_eq!(launched.len(), 2, "launch returns what it started");
    assert!(launched.iter().all(|w| w.shape == shape));
    assert!(
        launched
            .iter()
            .all(|w| w.shape_name.as_deref() == Some("s1"))
    );
    assert_ne!(launched[0].id, launched[1].id);
    let listed = p.list().await.expect("list");
    assert_eq!(listed.len(), before + 2, "launched workers are listed");
    for w in &launched {
        let l = listed
            .iter()
            .find(|l| l.id == w.id)
            .expect("launched worker listed");
        assert_eq!(l.shape, shape);
        assert_eq!(l.shape_name.as_deref(), Some("s1"));
    }
    // Each worker starts with its credential and its id.
    let deadline = tokio::time::Instant::now() + settle;
    for w in &launched {
        let file = report_dir.join(&w.id);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&file) {
                break t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker {} did not start within {settle:?} (no {})",
                w.id,
                file.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(secret.as_str()),
            "the worker is given its credential"
        );
        let args = lines.next().unwrap_or_default();
        assert!(
            args.contains(&format!("--cpus {}", shape.cpus))
                && args.contains(&format!("--mem-mib {}", shape.mem_mib)),
            "shape flags in the arguments: {args}"
        );
        assert!(!args.contains(&secret), "no secret in argv: {args}");
        let now = p.list().await.expect("list");
        let l = now
            .iter()
            .find(|l| l.id == w.id)
            .expect("running worker listed");
        assert_eq!(l.status, InstanceStatus::Running);
    }
    for w in &launched {
        p.terminate(&w.id).await.expect("terminate");
    }
    let deadline = tokio::time::Instant::now() + settle;
    loop {
        let n = p.list().await.expect("list");
        if n.len() == before && !n.iter().any(|l| launched.iter().any(|w| w.id == l.id)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "terminated workers still listed after {settle:?}: {n:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        p.terminate("424242").await,
        Err(ComputeError::NotFound(_))
    ));
}
