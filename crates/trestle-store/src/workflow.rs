//! The storage side of workflows: pipelines, events, the resolver tick
//! and the lookups drop folders and output staging need. Arrays and
//! dependencies themselves go through [`crate::JobStore::submit`]; their
//! consequences are applied in the transactions that change job states.

use crate::Result;
use async_trait::async_trait;
use trestle_core::api::workflow::EventView;
use trestle_core::batch::pipeline::ValidPipeline;
use trestle_core::{JobSpec, JobState};

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with an id above this one.
    pub after: i64,
    /// Only events with an id at most this one.
    pub until: Option<i64>,
    /// Only events of this job or of its children.
    pub job: Option<i64>,
    /// Only events entering one of these states (empty: all).
    pub states: Vec<JobState>,
    /// Only events of this queue.
    pub queue: Option<String>,
    /// At most this many (capped by the store).
    pub limit: u32,
    /// Only events of jobs this user submitted or that are charged to one
    /// of `visible_projects` (authorization's view of a non-admin).
    pub visible_to: Option<String>,
    /// With `visible_to`: projects whose jobs the user may read.
    pub visible_projects: Vec<String>,
}

/// What one resolver tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkflowTick {
    /// Jobs that became runnable.
    pub runnable: u64,
    /// Jobs held because their queue is disabled.
    pub held: u64,
}

/// Workflow storage.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores a pipeline atomically: its parent, then its steps in order,
    /// each depending (after-ok) on the steps it names. Returns the
    /// parent's id and the steps' ids.
    async fn submit_pipeline(&self, p: &ValidPipeline, now: i64) -> Result<(i64, Vec<i64>)>;
    /// Events after `filter.after`, oldest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>>;
    /// The newest event's id (0 when there is none).
    async fn last_event_id(&self) -> Result<i64>;
    /// Decides what the same-transaction resolution could not (safety
    /// net): dependencies, array refills, finished groups, and holds the
    /// jobs of `disabled_queues` (releasing those of other queues).
    async fn resolve_workflows(&self, disabled_queues: &[String], now: i64)
    -> Result<WorkflowTick>;
    /// The id of `owner`'s job with this key (keys are unique per owner).
    async fn job_id_by_key(&self, owner: &str, key: &str) -> Result<Option<i64>>;
    /// Records a job that was refused before it could run (for example a
    /// second trigger in a drop folder): stored FAILED with `reason`.
    async fn record_rejected(&self, spec: &JobSpec, reason: &str, now: i64) -> Result<i64>;
    /// Children of a group with their states, oldest first (at most 10,000).
    async fn children(&self, parent: i64) -> Result<Vec<(i64, JobState)>>;
}
