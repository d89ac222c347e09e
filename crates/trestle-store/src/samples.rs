//! Resource samples of running attempts and their alarm states (see
//! migration 17). Samples arrive with worker heartbeats and are kept only
//! for attempts the reporting worker holds; the service evaluates the
//! alarm rules (`trestle_core::alarm`) and saves the states that changed
//! with their events in one transaction. Samples are downsampled as they
//! age by [`SampleStore::prune_samples`].

use crate::Result;
use async_trait::async_trait;
use trestle_core::alarm::RuleState;
use trestle_core::api::AttemptKey;
use trestle_core::api::samples::{SampleView, TaskSample};
use trestle_core::notify::event::NewEvent;

/// Resolution of downsampled rows (one per minute).
pub const MINUTE_MS: i64 = 60_000;

/// An attempt whose samples were stored, with what the alarm evaluation
/// needs: its job's description and its stored rule states.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledAttempt {
    /// The attempt.
    pub key: AttemptKey,
    /// The job's name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// Its owner.
    pub owner: Option<String>,
    /// Its project.
    pub project: Option<String>,
    /// Stored alarm states of the attempt (rules never evaluated are
    /// absent).
    pub alarms: Vec<RuleState>,
}

/// Samples and alarm states.
#[async_trait]
pub trait SampleStore: Send + Sync {
    /// Stores the samples of attempts that `worker_id` holds (running or
    /// starting, under its lease); samples of others are dropped, and a
    /// sample sent twice is kept once. Returns the attempts kept, each
    /// once, with their stored alarm states.
    async fn record_samples(
        &self,
        worker_id: &str,
        samples: &[TaskSample],
    ) -> Result<Vec<SampledAttempt>>;
    /// Saves rule states (inserting or replacing each attempt's rule) and
    /// records `events`, in one transaction.
    async fn save_alarms(
        &self,
        states: &[(AttemptKey, RuleState)],
        events: &[NewEvent],
    ) -> Result<()>;
    /// Rules in ALARM whose attempt is no longer running (ended, lost,
    /// cancelled), with their attempts: what must clear.
    async fn ended_alarms(&self) -> Result<Vec<(SampledAttempt, RuleState)>>;
    /// A job's alarm states, by attempt then rule.
    async fn alarms(&self, job_id: i64) -> Result<Vec<(u32, RuleState)>>;
    /// A job's samples taken at or after `since`, oldest first, at most
    /// `limit` (the newest `limit` when there are more).
    async fn samples(&self, job_id: i64, since: i64, limit: u32) -> Result<Vec<SampleView>>;
    /// Downsamples raw samples older than `raw_before` to one per minute
    /// (mean CPU and memory percent, peak memory and disk) and drops
    /// samples of any resolution older than `drop_before`, with the OK
    /// alarm states unchanged since then. Returns how many rows went.
    async fn prune_samples(&self, raw_before: i64, drop_before: i64) -> Result<u64>;
}
