//! Wire types of the workflow parts of a job: dependencies, pipeline
//! steps and the group fields a [`crate::api::JobView`] flattens in; job
//! events; the upstream files a job receives.

use crate::batch::deps::DepKind;
use crate::batch::job::JobState;
use crate::batch::workflow::{ChildCounts, JobKind};
use serde::{Deserialize, Serialize};

/// One dependency as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepView {
    /// The kind.
    pub kind: DepKind,
    /// The job depended on.
    pub job: i64,
    /// Its state now (`None` if it no longer exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Whether the dependency has been decided (met, or failed).
    pub resolved: bool,
}

/// One step of a pipeline, for its graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepView {
    /// Job id of the step.
    pub id: i64,
    /// Step name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// Why it is in its state, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Steps (job ids) it waits for.
    #[serde(default)]
    pub after: Vec<i64>,
}

/// Workflow fields of a [`crate::api::JobView`] (flattened into its JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    /// What kind of job this is.
    #[serde(default, skip_serializing_if = "JobKind::is_job")]
    pub kind: JobKind,
    /// The array or pipeline this job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
    /// The index of an array child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_index: Option<u32>,
    /// Children per state (arrays and pipelines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<ChildCounts>,
    /// Dependencies and where they stand (single-job responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DepView>,
    /// The steps of a pipeline (single-job responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepView>,
}

/// A job state change, as stored and streamed (`GET /api/v1/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// Event id: increasing; pass as `Last-Event-ID` to resume after it.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// Its array or pipeline, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
    /// Its queue.
    pub queue: String,
    /// The state it entered.
    pub state: JobState,
    /// Why (failure reason, `dependency-failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code of the attempt that ended, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When (ms since the epoch).
    pub time: i64,
}

/// Files a job receives from one job it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamJob {
    /// The job whose outputs these are (an array's child, for arrays).
    pub job_id: i64,
    /// The attempt that produced them.
    pub attempt: u32,
    /// The files.
    pub files: Vec<super::FileEntry>,
}

/// Answer of `GET /api/v1/jobs/{id}/upstream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamList {
    /// Jobs and their files, in dependency order.
    pub jobs: Vec<UpstreamJob>,
}
