//! Storage for scaling out: compute environments and queues (with the
//! queue priority folded into every job's sort key), CE status and events,
//! the autoscaler's demand snapshot, routed leasing, and leader leases that
//! make a background loop run on one server of a cluster at a time.

use crate::{LeaseParams, Result};
use async_trait::async_trait;
use trestle_core::Resources;
use trestle_core::api::Lease;
use trestle_core::api::compute::ComputeEnvEvent;
use trestle_core::compute::scale::DemandBucket;
use trestle_core::compute::{ComputeEnvSpec, QueueSpec};

/// Settings declared in `trestle.toml`.
pub const SOURCE_CONFIG: &str = "config";
/// Settings made through the admin API.
pub const SOURCE_API: &str = "api";

/// A stored compute environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeEnvRecord {
    /// Its settings.
    pub spec: ComputeEnvSpec,
    /// [`SOURCE_CONFIG`] or [`SOURCE_API`].
    pub source: String,
    /// `VALID` or `INVALID`.
    pub status: String,
    /// Why it is invalid.
    pub status_reason: Option<String>,
    /// When the status changed.
    pub status_at: Option<i64>,
    /// When the settings changed.
    pub updated_at: i64,
}

/// A stored queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    /// Its settings.
    pub spec: QueueSpec,
    /// [`SOURCE_CONFIG`] or [`SOURCE_API`].
    pub source: String,
    /// When the settings changed.
    pub updated_at: i64,
}

/// A leader lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Loop name.
    pub name: String,
    /// Holder id.
    pub holder: String,
    /// When the holder took it.
    pub acquired_at: i64,
    /// When it runs out.
    pub expires_at: i64,
    /// The clock the lease is measured by (the database's, on PostgreSQL).
    pub now: i64,
}

/// Compute environments, queues, scaling snapshots and leader leases.
#[async_trait]
pub trait ScaleStore: Send + Sync {
    /// Creates or replaces a CE; true when it was created. A replaced CE's
    /// status is reset to `VALID`.
    async fn put_compute_env(&self, spec: &ComputeEnvSpec, source: &str, now: i64) -> Result<bool>;
    /// Every CE, by name.
    async fn compute_envs(&self) -> Result<Vec<ComputeEnvRecord>>;
    /// Deletes a CE; false when unknown; a conflict while a queue lists it.
    async fn delete_compute_env(&self, name: &str) -> Result<bool>;
    /// Sets a CE's status; true when it changed.
    async fn set_compute_env_status(
        &self,
        name: &str,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool>;
    /// Records an event of a CE (the newest 500 per CE are kept).
    async fn add_compute_env_event(
        &self,
        env: &str,
        kind: &str,
        message: &str,
        now: i64,
    ) -> Result<()>;
    /// A CE's newest events, newest first.
    async fn compute_env_events(&self, env: &str, limit: u32) -> Result<Vec<ComputeEnvEvent>>;
    /// Creates or replaces a queue (true when created) and moves its
    /// unfinished jobs to the new queue priority.
    async fn put_queue(&self, spec: &QueueSpec, source: &str, now: i64) -> Result<bool>;
    /// Every queue, by name.
    async fn queue_records(&self) -> Result<Vec<QueueRecord>>;
    /// Deletes a queue (its jobs keep running at queue priority 0); false
    /// when unknown.
    async fn delete_queue(&self, name: &str) -> Result<bool>;
    /// Deletes the CEs and queues from `source` that are not in the keep
    /// lists (a config file no longer declares them).
    async fn prune_source(
        &self,
        source: &str,
        keep_envs: &[String],
        keep_queues: &[String],
    ) -> Result<()>;
    /// Runnable jobs grouped by queue and resources, looking at no more
    /// than the first `limit` in lease order; buckets in lease order.
    async fn runnable_buckets(&self, limit: u32) -> Result<Vec<DemandBucket>>;
    /// Resources of leased jobs per worker id.
    async fn leased_by_worker(&self) -> Result<Vec<(String, Resources)>>;
    /// The CE a worker was launched by: `None` for an unknown worker,
    /// `Some(None)` for one started by hand.
    async fn worker_compute_env(&self, worker_id: &str) -> Result<Option<Option<String>>>;
    /// [`crate::JobStore::lease`], skipping jobs of the queues listed in
    /// `exclude` (`,a,b,`).
    async fn lease_routed(&self, params: &LeaseParams<'_>, exclude: &str) -> Result<Vec<Lease>>;
    /// Takes or renews the leader lease `name` for `holder` for `ttl_ms`;
    /// true when `holder` holds it now. Another holder's lease is taken
    /// only once it has run out (by the database's clock on PostgreSQL).
    async fn try_lead(&self, name: &str, holder: &str, ttl_ms: i64, now: i64) -> Result<bool>;
    /// Gives up every lease `holder` holds.
    async fn resign(&self, holder: &str) -> Result<u64>;
    /// Every leader lease.
    async fn leaders(&self, now: i64) -> Result<Vec<LeaderRecord>>;
}
