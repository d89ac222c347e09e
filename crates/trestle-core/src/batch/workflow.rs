//! Workflow parts of jobs: the fields a job spec gains for arrays,
//! dependencies and `#SBATCH` scripts, and how the API shows groups
//! (arrays, pipelines) count their children. How the API shows them is
//! in [`crate::api::workflow`].

use crate::batch::array::{ArraySpec, ArrayTask};
use crate::batch::deps::Dependency;
use crate::batch::state::JobState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Workflow fields of a [`crate::JobSpec`] (flattened into its JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// This job is an array of children with these indices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArraySpec>,
    /// This job is one child of an array (set by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task: Option<ArrayTask>,
    /// Jobs this one waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Dependency>,
    /// Set for jobs submitted with `trestle sbatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmSpec>,
}

impl Flow {
    /// The kind of row a job with these fields is stored as: an array when
    /// it asks for children and is not itself one task of an array. (A
    /// resubmitted task keeps its index and its array's index set, so it
    /// runs as the same task, but it is a plain job.)
    pub fn kind(&self) -> JobKind {
        if self.array.is_some() && self.array_task.is_none() {
            JobKind::Array
        } else {
            JobKind::Job
        }
    }
}

/// What an `#SBATCH` script needs at run time beyond the job spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmSpec {
    /// `--output` pattern (`%j %A %a %x %u %N %%`), relative to the working
    /// directory unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// `--error` pattern; `None`: stderr goes with stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where `sbatch` was run (`SLURM_SUBMIT_DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_dir: Option<String>,
    /// The host `sbatch` was run on (`SLURM_SUBMIT_HOST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_host: Option<String>,
    /// The submitting user (`%u`, `SLURM_JOB_USER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `--chdir`: the absolute directory the script runs in (on a file
    /// system the worker shares); `None`: the job's scratch directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chdir: Option<String>,
    /// `--ntasks` (`SLURM_NTASKS`).
    pub ntasks: u32,
    /// `--cpus-per-task` (`SLURM_CPUS_PER_TASK`).
    pub cpus_per_task: u32,
    /// The batch script itself, when it is small enough to travel in the
    /// spec (at most [`INLINE_SCRIPT_MAX`] bytes; larger ones are uploaded
    /// as the job's inputs): the worker writes it into the scratch
    /// directory under its name before the job starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<InlineScript>,
}

/// Largest batch script kept in the spec instead of uploaded.
pub const INLINE_SCRIPT_MAX: usize = 64 * 1024;

/// A batch script carried in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineScript {
    /// Its file name (one path component).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// What kind of job a row is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// An ordinary job (also an array child or a pipeline step).
    #[default]
    Job,
    /// The parent of an array; its children run, it does not.
    Array,
    /// The parent of a pipeline's steps; it does not run itself.
    Pipeline,
}

impl JobKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Job => "job",
            JobKind::Array => "array",
            JobKind::Pipeline => "pipeline",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobKind> {
        match s {
            "job" => Some(JobKind::Job),
            "array" => Some(JobKind::Array),
            "pipeline" => Some(JobKind::Pipeline),
            _ => None,
        }
    }

    /// True for arrays and pipelines.
    pub fn is_group(self) -> bool {
        self != JobKind::Job
    }

    /// True for an ordinary job (a `skip_serializing_if` helper).
    pub fn is_job(&self) -> bool {
        *self == JobKind::Job
    }
}

/// Children of a group per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildCounts {
    /// Children in all (for arrays, including those not yet created).
    pub total: u64,
    /// Children created so far (arrays create theirs lazily).
    #[serde(default)]
    pub created: u64,
    /// Children per state; children of an array not created yet count as
    /// RUNNABLE (or PENDING while the array waits on dependencies).
    pub counts: BTreeMap<JobState, u64>,
}

impl ChildCounts {
    /// Children created and not finished.
    pub fn active(&self) -> u64 {
        let done: u64 = [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
            .iter()
            .map(|s| self.get(*s))
            .sum();
        let uncreated = self.total.saturating_sub(self.created);
        self.counts
            .values()
            .sum::<u64>()
            .saturating_sub(done)
            .saturating_sub(uncreated)
    }

    /// Children in `state`.
    pub fn get(&self, state: JobState) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }

    /// The state a group shows: RUNNING while any child runs, RUNNABLE
    /// while any could, FAILED if any failed once all ended, CANCELLED if
    /// any was cancelled and none failed, else SUCCEEDED.
    pub fn summary(&self) -> JobState {
        let any = |s: JobState| self.get(s) > 0;
        if any(JobState::Running) || any(JobState::Starting) {
            JobState::Running
        } else if any(JobState::Runnable) || any(JobState::Submitted) {
            JobState::Runnable
        } else if any(JobState::Pending) {
            JobState::Pending
        } else if any(JobState::Failed) {
            JobState::Failed
        } else if any(JobState::Cancelled) {
            JobState::Cancelled
        } else {
            JobState::Succeeded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let mut c = ChildCounts {
            total: 4,
            created: 4,
            counts: BTreeMap::new(),
        };
        c.counts.insert(JobState::Succeeded, 2);
        c.counts.insert(JobState::Runnable, 1);
        c.counts.insert(JobState::Running, 1);
        assert_eq!(c.summary(), JobState::Running);
        c.counts.remove(&JobState::Running);
        assert_eq!(c.summary(), JobState::Runnable);
        c.counts.remove(&JobState::Runnable);
        assert_eq!(c.summary(), JobState::Succeeded);
        c.counts.insert(JobState::Cancelled, 1);
        assert_eq!(c.summary(), JobState::Cancelled);
        c.counts.insert(JobState::Failed, 1);
        assert_eq!(c.summary(), JobState::Failed);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["counts"]["FAILED"], 1);
        let back: ChildCounts = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
