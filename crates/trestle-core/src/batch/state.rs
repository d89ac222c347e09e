//! The job state machine's states.

use serde::{Deserialize, Serialize};

/// The lifecycle state of a job (JSON uses the upper-case names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Accepted and stored, not yet examined.
    Submitted,
    /// Waiting on dependencies.
    Pending,
    /// Ready to be leased by a worker.
    Runnable,
    /// Leased by a worker, inputs being staged.
    Starting,
    /// The command is running.
    Running,
    /// Finished with exit code 0 and the success string (if any) found.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// Cancelled by a user or because a dependency failed.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Submitted,
        JobState::Pending,
        JobState::Runnable,
        JobState::Starting,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The wire name (`RUNNABLE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitted => "SUBMITTED",
            JobState::Pending => "PENDING",
            JobState::Runnable => "RUNNABLE",
            JobState::Starting => "STARTING",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
        }
    }

    /// Parses a wire name, case-insensitively.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// True for SUCCEEDED, FAILED and CANCELLED.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// True while a worker holds a lease on the job.
    pub fn is_leased(self) -> bool {
        matches!(self, JobState::Starting | JobState::Running)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
