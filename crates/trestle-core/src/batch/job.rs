//! Jobs: their states, the validated specification, and attempt outcomes.

pub use super::state::JobState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why an attempt ended the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptReason {
    /// Exit code 0 and success string present (if one was set).
    Success,
    /// The command exited with a non-zero code (or was killed by a signal).
    ExitCode,
    /// The command ran past the job's timeout and was killed.
    Timeout,
    /// Exit code 0, but the output lacks the success string.
    SuccessStringMissing,
    /// The worker's lease expired (crash, network loss, kill).
    Lost,
    /// The job was cancelled while this attempt ran.
    Cancelled,
    /// The worker handed the job back (worker shutting down); not counted.
    Released,
    /// The worker could not stage inputs, start the command or upload outputs.
    WorkerError,
    /// The kernel killed the task for using more than its memory limit
    /// (Slurm's `OUT_OF_MEMORY`).
    OutOfMemory,
}

impl AttemptReason {
    /// The wire name (`exit-code`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptReason::Success => "success",
            AttemptReason::ExitCode => "exit-code",
            AttemptReason::Timeout => "timeout",
            AttemptReason::SuccessStringMissing => "success-string-missing",
            AttemptReason::Lost => "lost",
            AttemptReason::Cancelled => "cancelled",
            AttemptReason::Released => "released",
            AttemptReason::WorkerError => "worker-error",
            AttemptReason::OutOfMemory => "out-of-memory",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<AttemptReason> {
        [
            AttemptReason::Success,
            AttemptReason::ExitCode,
            AttemptReason::Timeout,
            AttemptReason::SuccessStringMissing,
            AttemptReason::Lost,
            AttemptReason::Cancelled,
            AttemptReason::Released,
            AttemptReason::WorkerError,
            AttemptReason::OutOfMemory,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The Slurm job state of a job whose last attempt ended so, and its
    /// `squeue` code, where Slurm has a state of its own for it
    /// (`OUT_OF_MEMORY`/`OOM`, `TIMEOUT`/`TO`).
    pub fn slurm_state(self) -> Option<(&'static str, &'static str)> {
        match self {
            AttemptReason::OutOfMemory => Some(("OUT_OF_MEMORY", "OOM")),
            AttemptReason::Timeout => Some(("TIMEOUT", "TO")),
            _ => None,
        }
    }

    /// Interruptions (the worker went away or gave the job back) do not use
    /// up one of the job's attempts.
    pub fn is_interruption(self) -> bool {
        matches!(self, AttemptReason::Lost | AttemptReason::Released)
    }
}

/// The state of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptState {
    /// Leased; the worker is staging or running it.
    Running,
    /// Ended successfully.
    Succeeded,
    /// Ended unsuccessfully (see the reason).
    Failed,
    /// The lease expired or the worker released it.
    Lost,
    /// Cancelled.
    Cancelled,
}

impl AttemptState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Running => "running",
            AttemptState::Succeeded => "succeeded",
            AttemptState::Failed => "failed",
            AttemptState::Lost => "lost",
            AttemptState::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<AttemptState> {
        [
            AttemptState::Running,
            AttemptState::Succeeded,
            AttemptState::Failed,
            AttemptState::Lost,
            AttemptState::Cancelled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The attempt state that a reason ends in.
    pub fn from_reason(reason: AttemptReason) -> AttemptState {
        match reason {
            AttemptReason::Success => AttemptState::Succeeded,
            AttemptReason::Lost | AttemptReason::Released => AttemptState::Lost,
            AttemptReason::Cancelled => AttemptState::Cancelled,
            _ => AttemptState::Failed,
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    /// A program and its arguments, executed directly.
    Argv(Vec<String>),
    /// A script run by `/bin/sh -c`.
    Shell(String),
}

/// Resources a job needs on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores.
    pub cpus: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// GPUs.
    pub gpus: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1,
            mem_mib: DEFAULT_MEM_MIB,
            gpus: 0,
        }
    }
}

/// Memory a job gets when it does not ask (MiB).
pub const DEFAULT_MEM_MIB: u64 = 256;
/// Attempts a job gets when it does not ask.
pub const DEFAULT_ATTEMPTS: u32 = 1;
/// Upper bound on attempts per job.
pub const MAX_ATTEMPTS: u32 = 100;
/// Interruptions (lost leases) after which a job fails anyway, so a job that
/// kills every worker it lands on cannot loop forever.
pub const MAX_INTERRUPTIONS: u32 = 10;

/// A validated job specification: what the store keeps and workers run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Display name.
    pub name: String,
    /// Queue name.
    pub queue: String,
    /// Optional caller-chosen unique key (the seed's `job_id`); a second job
    /// with the same key is rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The command.
    pub command: Command,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Resources per attempt.
    pub resources: Resources,
    /// Wall-clock limit per attempt in seconds (0 = none).
    #[serde(default)]
    pub timeout_secs: u64,
    /// Attempts before the job fails.
    pub max_attempts: u32,
    /// When set, the job succeeds only if its output contains this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_string: Option<String>,
    /// Exit codes that are retried; empty means every non-zero code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_exit_codes: Vec<i32>,
    /// Upload id whose files are staged into the scratch directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    /// Relative directory (inside the scratch dir) to run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Scheduling priority within the queue (higher first).
    #[serde(default)]
    pub priority: i32,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The project the job is charged to (the server fills in the
    /// submitter's default project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The user who submitted it (set by the server, never by the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Arrays, dependencies and `#SBATCH` details.
    #[serde(flatten)]
    pub flow: crate::batch::workflow::Flow,
    /// What kind of task the job is (set by the server; requests make
    /// batch jobs).
    #[serde(default, skip_serializing_if = "crate::task::TaskKind::is_batch")]
    pub task: crate::task::TaskKind,
    /// For a session task: the workspace it hosts and how (set by the
    /// server when a workspace is launched or started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<crate::api::workspace::SessionSpec>>,
    /// Studies attached to the job (the server pins each one's version
    /// at submission).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub studies: Vec<crate::study::attach::StudyAttach>,
}
