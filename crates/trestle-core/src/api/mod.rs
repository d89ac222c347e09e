//! Wire types of the REST API under `/api/v1`, shared by the server, the
//! client and the worker. Timestamps are milliseconds since the Unix epoch.

pub mod compute;
pub mod cost;
pub mod identity;
pub mod notify;
pub mod oidc;
pub mod samples;
pub mod study;
pub mod tunnel;
pub mod workflow;
pub mod workspace;

use crate::batch::job::{AttemptReason, AttemptState, JobSpec, JobState};
use crate::batch::placement::Capacity;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ValidationError,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Queue.
    pub queue: String,
    /// State.
    pub state: JobState,
    /// Why the job is in its state (failure reason, or why it is not running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attempts that counted against the limit so far.
    pub attempts_used: u32,
    /// The attempt limit.
    pub max_attempts: u32,
    /// Exit code of the last finished attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Worker holding the current lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Submission time.
    pub submitted_at: i64,
    /// Start of the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// End time (terminal states).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// The validated specification.
    pub spec: JobSpec,
    /// Every attempt, oldest first (only in single-job responses).
    #[serde(default)]
    pub attempts: Vec<AttemptView>,
    /// Arrays, pipelines and dependencies.
    #[serde(flatten)]
    pub flow: workflow::FlowView,
    /// In a listing: the environment is left out and a long command is cut
    /// short (`GET /api/v1/jobs/{id}` shows them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abridged: bool,
    /// The environment is not shown to the caller: only the job's owner and
    /// admins see it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_hidden: bool,
    /// Resource alarm states of its attempts (only in single-job
    /// responses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<samples::AlarmView>,
}

/// How much of a job a caller is shown (see [`JobView::present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presentation {
    /// One job, to its owner or an admin: everything, secrets masked.
    Owner,
    /// One job, to someone else who may read it: no environment.
    Reader,
    /// A row of a listing: no environment, the command abridged.
    Listed,
}

impl JobView {
    /// Attempts as `USED/MAX`, counting the attempt that is running now
    /// (a first attempt that runs shows `1/3`, not `0/3`).
    pub fn attempts_label(&self) -> String {
        let current = u32::from(self.state.is_leased() && self.flow.kind.is_job());
        format!(
            "{}/{}",
            (self.attempts_used + current).min(self.max_attempts.max(1)),
            self.max_attempts
        )
    }

    /// Slurm's name for the job: `PARENT_INDEX` for an array child, the id
    /// otherwise.
    pub fn task_id(&self) -> Option<String> {
        match (self.flow.parent, self.flow.array_index) {
            (Some(p), Some(i)) => Some(format!("{p}_{i}")),
            _ => None,
        }
    }

    /// Prepares the job to be shown: environment values that look like
    /// secrets are masked in every view, only the owner and admins see the
    /// environment at all, and listings leave it out and abridge the
    /// command (see [`crate::batch::redact`]).
    pub fn present(&mut self, how: Presentation) {
        match how {
            Presentation::Owner => {
                crate::batch::redact::mask_env(&mut self.spec.env);
            }
            Presentation::Reader => {
                self.env_hidden = !self.spec.env.is_empty();
                self.spec.env.clear();
            }
            Presentation::Listed => {
                let had_env = !self.spec.env.is_empty();
                self.spec.env.clear();
                let cut = crate::batch::redact::abridge_command(&mut self.spec.command);
                // An inline batch script is shown with the job, not in lists.
                let script = self
                    .spec
                    .flow
                    .slurm
                    .as_mut()
                    .and_then(|s| s.script.take())
                    .is_some();
                self.abridged = had_env || cut || script;
            }
        }
    }
}

/// One attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptView {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Worker that ran it.
    pub worker: String,
    /// State.
    pub state: AttemptState,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AttemptReason>,
    /// Exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the worker leased it.
    pub leased_at: i64,
    /// When the command started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// CPU time its processes used (ms), as the worker reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<i64>,
    /// Peak resident memory (KiB), as the worker reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kib: Option<i64>,
    /// Elapsed time, CPU efficiency and memory use against the request,
    /// once it ended (see [`crate::batch::efficiency`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<crate::batch::efficiency::Efficiency>,
}

/// A page of jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    /// The jobs, newest first.
    pub jobs: Vec<JobView>,
    /// Pass as `before` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// Body of `POST /api/v1/jobs/batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSubmit {
    /// Job requests (native or seed format).
    pub jobs: Vec<serde_json::Value>,
}

/// Answer of `POST /api/v1/jobs/batch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSubmitted {
    /// Ids of the new jobs, in request order.
    pub ids: Vec<i64>,
}

/// A worker announcing itself (`POST /api/v1/workers`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRegistration {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Total capacity.
    pub capacity: Capacity,
    /// Compute environment that launched it, if any.
    #[serde(default)]
    pub compute_env: Option<String>,
    /// The id its provider knows it by (a Slurm job id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Software version.
    pub version: String,
    /// How it isolates its tasks (absent from workers before issue 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<WorkerIsolation>,
}

/// How a worker isolates its tasks, as it reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerIsolation {
    /// `user+sandbox`, `user`, `sandbox` or `none`.
    pub mode: String,
    /// How limits are enforced: `cgroup v1 (memory, pids, cpuset)`, or
    /// `rlimits (no cgroup: ...)`.
    pub limits: String,
}

/// A worker as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Worker id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Total capacity.
    pub capacity: Capacity,
    /// Compute environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_env: Option<String>,
    /// The id its provider knows it by (a Slurm job id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// How it isolates its tasks, as it reported at registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<WorkerIsolation>,
    /// Jobs it holds leases on.
    pub running_jobs: Vec<i64>,
    /// Registration time.
    pub started_at: i64,
    /// Last time it talked to the server.
    pub last_heartbeat: i64,
    /// Whether it has a workspace tunnel to the server that answered (each
    /// server knows only its own tunnels; a worker keeps one to each).
    #[serde(default)]
    pub tunnel: bool,
}

/// `POST /api/v1/workers/{id}/lease`: ask for jobs that fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Capacity the worker can fill now.
    pub free: Capacity,
    /// At most this many jobs.
    pub max_jobs: u32,
    /// Long-poll: wait up to this long for work when none is runnable.
    #[serde(default)]
    pub wait_ms: u64,
    /// Besides the jobs that fit `free` together, up to this many more that
    /// each fit `free` on their own; they wait on the worker for capacity
    /// (prefetch of short jobs). Counted within `max_jobs`.
    #[serde(default)]
    pub prefetch: u32,
    /// The kinds of task the worker runs; empty (what workers before task
    /// kinds send) means batch only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<crate::task::TaskKind>,
}

/// One leased job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Job id.
    pub job_id: i64,
    /// Attempt number opened by the lease.
    pub attempt: u32,
    /// Fencing token: every report about this attempt must carry it.
    pub token: String,
    /// What to run.
    pub spec: JobSpec,
    /// When the lease runs out unless extended.
    pub expires_at: i64,
    /// Keep the attempt's whole output as an output file
    /// ([`FULL_LOG_FILE`]) besides the log, which may be cut to its
    /// queue's limit (`[queues.NAME] full_log`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_log: bool,
    /// The Unix account the task runs as on a worker that runs as root
    /// (decided by [`crate::identity::unix::unix_account`]); absent when
    /// nothing maps its owner, and from servers before issue 12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
}

/// A Unix account to run a task as. The worker resolves `user` on its
/// host; `uid`/`gid`, when the identity provider states them, must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    /// The Unix user name.
    pub user: String,
    /// Its uid, when known to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Its primary gid, when known to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// The output file that holds an attempt's whole output when its queue
/// keeps full logs.
pub const FULL_LOG_FILE: &str = "trestle-full.log";

/// Answer to a lease request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseResponse {
    /// Leased jobs (possibly none).
    pub leases: Vec<Lease>,
    /// Lease duration; heartbeat well within it.
    pub lease_ms: u64,
}

/// Identifies an attempt and proves the lease on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptRef {
    /// Job id.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: u32,
    /// Lease token.
    pub token: String,
}

/// Something a worker tells the server about an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Update {
    /// The command started.
    Started {
        /// The attempt.
        #[serde(flatten)]
        at: AttemptRef,
        /// When.
        time: i64,
    },
    /// A chunk of combined stdout/stderr.
    Log {
        /// The attempt.
        #[serde(flatten)]
        at: AttemptRef,
        /// Chunk sequence number (from 1, per attempt).
        seq: u32,
        /// The text.
        data: String,
    },
    /// The attempt ended.
    Finished {
        /// The attempt.
        #[serde(flatten)]
        at: AttemptRef,
        /// Why.
        reason: AttemptReason,
        /// Exit code, if the process exited.
        #[serde(default)]
        exit_code: Option<i32>,
        /// When.
        time: i64,
        /// A message for the job (for example a staging error).
        #[serde(default)]
        message: Option<String>,
        /// User plus system CPU time of the task's processes, including
        /// the descendants they waited for (ms; absent from older workers
        /// and when the process never ran).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_ms: Option<i64>,
        /// Peak resident memory of the task's largest process (KiB; what
        /// `sacct` calls MaxRSS).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rss_kib: Option<i64>,
    },
}

impl Update {
    /// The attempt this update is about.
    pub fn attempt(&self) -> &AttemptRef {
        match self {
            Update::Started { at, .. } | Update::Log { at, .. } | Update::Finished { at, .. } => at,
        }
    }
}

/// `POST /api/v1/workers/{id}/updates`: heartbeats and reports, batched.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdatesRequest {
    /// Attempts still in progress whose leases should be extended.
    #[serde(default)]
    pub heartbeat: Vec<AttemptRef>,
    /// Updates, applied in order.
    #[serde(default)]
    pub updates: Vec<Update>,
    /// Resource samples of running attempts (absent from workers before
    /// issue 15).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<samples::TaskSample>,
}

/// An attempt without its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptKey {
    /// Job id.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: u32,
}

/// Answer to an updates request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdatesResponse {
    /// Attempts whose lease is no longer this worker's (expired, fenced):
    /// stop them and report nothing more.
    #[serde(default)]
    pub stale: Vec<AttemptKey>,
    /// Attempts whose job was cancelled: kill them and report `cancelled`.
    #[serde(default)]
    pub cancel: Vec<AttemptKey>,
}

/// `GET /api/v1/jobs/{id}/log`: a slice of an attempt's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSlice {
    /// Attempt number the slice belongs to.
    pub attempt: u32,
    /// The text.
    pub data: String,
    /// Pass as `after` to continue.
    pub next: u32,
    /// The job's state when read.
    pub state: JobState,
}

/// An upload created by `POST /api/v1/uploads`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadCreated {
    /// Upload id: pass as a job's `inputs`.
    pub id: String,
}

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to its prefix.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A listing of files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileList {
    /// Files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Attempt the files belong to (for outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// Header carrying the lease token on output uploads.
pub const LEASE_TOKEN_HEADER: &str = "trestle-lease-token";
