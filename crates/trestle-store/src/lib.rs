//! Trestle's storage: the traits the server programs against, their SQL
//! implementation for SQLite (the embedded default) and PostgreSQL
//! (production), versioned migrations, and object storage for inputs and
//! outputs. The conformance suites every implementation must pass live in
//! the dev-only crate `trestle-store-conformance`.

use async_trait::async_trait;
use trestle_core::api::{
    AttemptKey, JobView, Lease, LogSlice, UpdatesRequest, WorkerRegistration, WorkerView,
};
use trestle_core::{Capacity, JobSpec, JobState};

pub mod blobs;
pub mod cost;
pub mod damaged;
pub mod identity;
pub mod notify;
pub mod oidc;
pub mod samples;
pub mod scale;
mod sql;
pub mod study;
pub mod workflow;
pub mod workspace;

pub use blobs::Blobs;
pub use cost::CostStore;
pub use damaged::{DamagedRow, DamagedRows};
pub use identity::{
    AuditStore, IdentityStore, NewTokenRecord, SessionRecord, TokenRecord, TokenStore, UserChanges,
    UserRecord,
};
pub use notify::NotifyStore;
pub use samples::{SampleStore, SampledAttempt};
pub use scale::{ComputeEnvRecord, LeaderRecord, QueueRecord, ScaleStore};
pub use sql::SqlStore;
pub use study::{
    Committed, GrantRecord, NewVersion, StudyFilter, StudyRecord, StudyStore, VersionRecord,
};
pub use workflow::{EventFilter, WorkflowStore, WorkflowTick};
pub use workspace::{
    ConfigRecord, Grant, TypeRecord, WorkspaceFilter, WorkspaceRecord, WorkspaceStore,
};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value already exists (for example a job key).
    #[error("{what} already exists")]
    Conflict {
        /// What clashed.
        what: String,
        /// The field that must be unique.
        field: String,
    },
    /// The database URL or settings are wrong.
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A job's row cannot be decoded (it is reported in
    /// [`JobStore::damaged`] and skipped by listings).
    #[error("job {0} cannot be read: its stored data is damaged")]
    Damaged(i64),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Object storage failed.
    #[error("object storage error: {0}")]
    Objects(String),
    /// An object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

/// Result alias for the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A filter over jobs for listing.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in these states (empty: all).
    pub states: Vec<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only ids below this (paging, newest first).
    pub before: Option<i64>,
    /// At most this many (capped by the store).
    pub limit: u32,
    /// Only jobs this user submitted or that are charged to one of
    /// `visible_projects` (authorization's view of a non-admin).
    pub visible_to: Option<String>,
    /// With `visible_to`: projects whose jobs the user may read.
    pub visible_projects: Vec<String>,
    /// Only jobs charged to this project.
    pub project: Option<String>,
    /// Only jobs submitted by this user.
    pub owner: Option<String>,
    /// Only jobs with this name.
    pub name: Option<String>,
    /// Only children of this array or pipeline.
    pub parent: Option<i64>,
    /// Only the array child with this index (with `parent`).
    pub array_index: Option<u32>,
}

/// A worker asking for jobs.
#[derive(Debug, Clone)]
pub struct LeaseParams<'a> {
    /// The worker's id.
    pub worker_id: &'a str,
    /// Capacity it can fill.
    pub free: Capacity,
    /// At most this many jobs.
    pub max_jobs: u32,
    /// Of which this many may fit `free` only one by one (see
    /// [`trestle_core::batch::placement::pack`]).
    pub prefetch: u32,
    /// Lease duration.
    pub lease_ms: i64,
    /// Now.
    pub now: i64,
    /// The kinds of task the worker runs (empty: batch only).
    pub kinds: &'a [trestle_core::task::TaskKind],
}

/// What applying a batch of worker updates did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateOutcome {
    /// Attempts whose lease this worker no longer holds.
    pub stale: Vec<AttemptKey>,
    /// Attempts whose job was cancelled.
    pub cancel: Vec<AttemptKey>,
    /// Submit-to-start latencies (ms) of attempts that started.
    pub started_latency_ms: Vec<i64>,
    /// Jobs that reached a new state because an attempt finished.
    pub finished: Vec<(i64, JobState)>,
    /// Jobs that became runnable as a consequence (dependencies met,
    /// array children created).
    pub unblocked: u64,
}

/// Runnable demand, for the autoscaler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// Runnable jobs whose CPUs fit `max_cpus`.
    pub jobs: u64,
    /// Their CPUs in total.
    pub cpus: u64,
    /// Runnable jobs that fit nowhere.
    pub too_big: u64,
    /// CPUs held by leased (starting or running) jobs.
    pub leased_cpus: u64,
}

/// Jobs, attempts, leases and logs.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Sets how much of each attempt's log is kept (see
    /// [`trestle_core::batch::logs`]); until called, the default limit.
    fn set_log_limits(&self, limits: trestle_core::batch::logs::LogLimits);
    /// Stores validated jobs atomically (all or none); returns their ids.
    async fn submit(&self, specs: &[JobSpec], now: i64) -> Result<Vec<i64>>;
    /// One job with its attempts.
    async fn job(&self, id: i64) -> Result<Option<JobView>>;
    /// Jobs matching a filter, newest first, without attempts.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>>;
    /// Cancels a job: at once when it is not leased, otherwise by asking its
    /// worker. Terminal jobs are left as they are. `None` if unknown.
    async fn cancel(&self, id: i64, now: i64) -> Result<Option<JobView>>;
    /// Claims runnable jobs that fit, opening one attempt each.
    async fn lease(&self, params: &LeaseParams<'_>) -> Result<Vec<Lease>>;
    /// Applies heartbeats and updates from a worker, fenced by lease tokens.
    async fn apply_updates(
        &self,
        worker_id: &str,
        req: &UpdatesRequest,
        lease_ms: i64,
        now: i64,
    ) -> Result<UpdateOutcome>;
    /// Ends every attempt whose lease expired before `now` as `lost`; returns
    /// how many.
    async fn expire_leases(&self, now: i64) -> Result<u64>;
    /// Ends every attempt a worker still holds as `lost` (worker gone).
    async fn release_worker_leases(&self, worker_id: &str, now: i64) -> Result<u64>;
    /// Reads an attempt's log (default: the latest attempt) after chunk `after`.
    async fn read_log(
        &self,
        job_id: i64,
        attempt: Option<u32>,
        after: u32,
    ) -> Result<Option<LogSlice>>;
    /// True when `token` holds the lease on the job's attempt and that
    /// lease is held by a worker that credential `registrant` registered
    /// (a token presented with another worker's credential is as stale as
    /// an unknown one).
    async fn lease_holds(
        &self,
        job_id: i64,
        attempt: u32,
        token: &str,
        registrant: &str,
    ) -> Result<bool>;
    /// Job counts per (queue, state).
    async fn counts(&self) -> Result<Vec<(String, JobState, u64)>>;
    /// How many jobs (arrays and pipelines included, as listings show
    /// them) `owner` submitted, per state.
    async fn owner_counts(&self, owner: &str) -> Result<Vec<(JobState, u64)>>;
    /// Runnable demand for jobs of at most `max_cpus` CPUs, looking at no
    /// more than the first `limit` runnable jobs (the autoscaler needs no
    /// more than its environment could run, however long the queue).
    async fn runnable_demand(&self, max_cpus: u32, limit: u32) -> Result<Demand>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
    /// Rows this process met that cannot be decoded (skipped everywhere,
    /// kept for admins to repair).
    fn damaged(&self) -> &DamagedRows;
}

/// Registered workers.
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Records a new worker.
    async fn register_worker(
        &self,
        id: &str,
        reg: &WorkerRegistration,
        now: i64,
    ) -> Result<WorkerView>;
    /// Marks a worker as seen; false when it is unknown.
    async fn touch_worker(&self, id: &str, now: i64) -> Result<bool>;
    /// Every registered worker with the jobs it holds.
    async fn list_workers(&self) -> Result<Vec<WorkerView>>;
    /// Forgets a worker; false when it was unknown.
    async fn remove_worker(&self, id: &str) -> Result<bool>;
    /// The software version a worker registered with.
    async fn worker_version(&self, id: &str) -> Result<Option<String>>;
    /// Forgets workers not seen since `before` and hands back their leases;
    /// returns their ids.
    async fn reap_workers(&self, before: i64, now: i64) -> Result<Vec<String>>;
}

/// Everything the server needs from storage.
pub trait Store:
    JobStore
    + WorkerStore
    + TokenStore
    + IdentityStore
    + AuditStore
    + WorkflowStore
    + ScaleStore
    + NotifyStore
    + WorkspaceStore
    + StudyStore
    + CostStore
    + SampleStore
{
}
impl<
    T: JobStore
        + WorkerStore
        + TokenStore
        + IdentityStore
        + AuditStore
        + WorkflowStore
        + ScaleStore
        + NotifyStore
        + WorkspaceStore
        + StudyStore
        + CostStore
        + SampleStore,
> Store for T
{
}
