//! Metering and budgets in storage: the price of each worker kept after
//! it leaves, the attempts not yet metered, usage records with their
//! daily roll-up, budgets with the marks each period has crossed, and
//! admins' overrides for single jobs.

use crate::Result;
use async_trait::async_trait;
use trestle_core::cost::WorkerPrice;
use trestle_core::cost::budget::{BudgetSpec, ScopeKind};
use trestle_core::notify::event::NewEvent;
use trestle_core::{Capacity, Resources};

/// An ended attempt the meter has not recorded, with what pricing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmetered {
    /// Job id.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: u32,
    /// Its worker.
    pub worker_id: String,
    /// When the command started (none: it never did).
    pub started_at: Option<i64>,
    /// When it ended.
    pub ended_at: i64,
    /// CPU time its processes used, if its worker measured it.
    pub cpu_ms: Option<u64>,
    /// Who submitted the job.
    pub owner: String,
    /// The project it is charged to.
    pub project: String,
    /// That project's index.
    pub index_name: String,
    /// What it held.
    pub resources: Resources,
    /// Its array or pipeline, if any.
    pub parent_id: Option<i64>,
    /// The workspace whose session this is, if any.
    pub workspace_id: Option<i64>,
    /// The worker's compute environment and price (none: a worker from
    /// before metering).
    pub worker: Option<(Option<String>, WorkerPrice)>,
}

/// What a usage record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageKind {
    /// A batch attempt.
    Job,
    /// A workspace's running interval (its session's attempt).
    Workspace,
    /// Worker time no task used.
    Overhead,
    /// A study's storage for one day.
    Storage,
}

impl UsageKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Job => "job",
            UsageKind::Workspace => "workspace",
            UsageKind::Overhead => "overhead",
            UsageKind::Storage => "storage",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<UsageKind> {
        match s {
            "job" => Some(UsageKind::Job),
            "workspace" => Some(UsageKind::Workspace),
            "overhead" => Some(UsageKind::Overhead),
            "storage" => Some(UsageKind::Storage),
            _ => None,
        }
    }
}

/// One usage record: resource-time, the rate in force and the charge.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// Idempotency key: `a:{job}:{attempt}`, `o:{worker}`.
    pub id: String,
    /// What it is for.
    pub kind: UsageKind,
    /// The job, for attempts.
    pub job_id: Option<i64>,
    /// The attempt.
    pub attempt: Option<u32>,
    /// The job's array or pipeline.
    pub parent_id: Option<i64>,
    /// The workspace.
    pub workspace_id: Option<i64>,
    /// The worker.
    pub worker_id: Option<String>,
    /// The compute environment (`-` for workers started by hand).
    pub compute_env: String,
    /// The user charged (empty for overhead).
    pub user: String,
    /// The project charged (empty for overhead).
    pub project: String,
    /// The project's index (empty for overhead).
    pub index_name: String,
    /// Start (ms).
    pub started_at: i64,
    /// End (ms).
    pub ended_at: i64,
    /// What was held.
    pub resources: Resources,
    /// The rate in force, per hour, in the site's unit.
    pub rate_per_hour: f64,
    /// The charge.
    pub charge: f64,
    /// CPU time used, if measured (what went unused is the allocation
    /// less this).
    pub cpu_used_ms: Option<u64>,
}

/// A worker that left whose idle overhead is not recorded yet.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedWorker {
    /// Worker id.
    pub id: String,
    /// Its compute environment.
    pub compute_env: Option<String>,
    /// Its price.
    pub price: WorkerPrice,
    /// Registered (ms).
    pub started_at: i64,
    /// Left (ms).
    pub ended_at: i64,
    /// What its tasks were charged.
    pub charged: f64,
}

/// An attempt running now, for spending so far.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningAttempt {
    /// Job id.
    pub job_id: i64,
    /// Project charged.
    pub project: String,
    /// Its index.
    pub index_name: String,
    /// Who submitted it.
    pub owner: String,
    /// Started (ms).
    pub started_at: i64,
    /// What it holds.
    pub resources: Resources,
    /// Its worker's price (none: unknown worker).
    pub price: Option<WorkerPrice>,
}

/// How to group a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Per user.
    User,
    /// Per project.
    Project,
    /// Per index.
    Index,
    /// Per compute environment.
    Env,
    /// Per kind (job, workspace, overhead).
    Kind,
    /// Per day only.
    Day,
}

impl Grouping {
    /// The roll-up column.
    pub fn column(self) -> &'static str {
        match self {
            Grouping::User => "user_name",
            Grouping::Project => "project",
            Grouping::Index => "index_name",
            Grouping::Env => "compute_env",
            Grouping::Kind => "kind",
            Grouping::Day => "day",
        }
    }
}

/// Which roll-up rows to sum.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageFilter {
    /// First day (days since 1970-01-01), included.
    pub from_day: i64,
    /// Last day, included.
    pub to_day: i64,
    /// Group by.
    pub by: Grouping,
    /// Also split each group per day.
    pub per_day: bool,
    /// Only this project.
    pub project: Option<String>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this index.
    pub index: Option<String>,
    /// Authorization's view of a non-admin: their own usage and that of
    /// these projects (`None`: everything).
    pub visible: Option<(String, Vec<String>)>,
}

/// One row of a usage report.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSum {
    /// The group's value (`ada`, `genomics`, or the day's number).
    pub key: String,
    /// The day, when split per day.
    pub day: Option<i64>,
    /// Charges.
    pub charge: f64,
    /// Run time, seconds.
    pub seconds: f64,
    /// Allocated CPU-seconds.
    pub core_seconds: f64,
    /// Allocated CPU-seconds of the records whose CPU time was measured.
    pub measured_core_seconds: f64,
    /// CPU-seconds those records used.
    pub used_core_seconds: f64,
    /// Records summed.
    pub records: u64,
}

/// A budget as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRecord {
    /// Its specification.
    pub spec: BudgetSpec,
    /// Since when it stops spending (none: it does not).
    pub blocked_at: Option<i64>,
    /// Who last set it.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: i64,
}

/// Metering and budget storage.
#[async_trait]
pub trait CostStore: Send + Sync {
    /// Keeps a worker's price (called when it registers; a second call
    /// for the same id changes nothing).
    async fn record_worker_price(
        &self,
        id: &str,
        compute_env: Option<&str>,
        price: &WorkerPrice,
        now: i64,
    ) -> Result<()>;
    /// Up to `limit` ended attempts not yet metered.
    async fn unmetered(&self, limit: u32) -> Result<Vec<Unmetered>>;
    /// Workers that left before `before` whose overhead is not recorded,
    /// none of whose attempts waits for the meter; at most `limit`.
    async fn ended_workers(&self, before: i64, limit: u32) -> Result<Vec<EndedWorker>>;
    /// In one transaction: stores `records` (a batch attempt's on its own
    /// attempt row, which it marks metered; the others as records of
    /// their own; a record already stored is skipped), adds the new ones
    /// to the daily roll-up and to their workers' charged totals, and
    /// marks `attempts` and `workers` metered. Returns how many records
    /// were new.
    async fn record_usage(
        &self,
        records: &[UsageRecord],
        attempts: &[(i64, u32)],
        workers: &[String],
        now: i64,
    ) -> Result<u64>;
    /// Attempts running now (started, not ended).
    async fn running_attempts(&self) -> Result<Vec<RunningAttempt>>;
    /// Sums of the daily roll-up.
    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageSum>>;
    /// What a project or an index was charged on days `[from_day, to_day)`.
    async fn spend(&self, kind: ScopeKind, scope: &str, from_day: i64, to_day: i64) -> Result<f64>;
    /// Usage records of one job, of an array's (or pipeline's) children,
    /// or of a workspace: `(charge, records)` with the records (at most
    /// 100, newest first).
    async fn usage_of(&self, of: UsageOf) -> Result<(f64, u64, Vec<UsageRecord>)>;
    /// Creates or replaces a budget.
    async fn put_budget(&self, spec: &BudgetSpec, by: &str, now: i64) -> Result<()>;
    /// One budget.
    async fn budget(&self, kind: ScopeKind, scope: &str) -> Result<Option<BudgetRecord>>;
    /// Every budget.
    async fn budgets(&self) -> Result<Vec<BudgetRecord>>;
    /// Deletes a budget; false when there was none.
    async fn delete_budget(&self, kind: ScopeKind, scope: &str) -> Result<bool>;
    /// Sets or clears since when a budget stops spending.
    async fn set_budget_blocked(
        &self,
        kind: ScopeKind,
        scope: &str,
        blocked_at: Option<i64>,
    ) -> Result<()>;
    /// The marks recorded for a budget's period starting at `period_start`.
    async fn budget_marks(
        &self,
        kind: ScopeKind,
        scope: &str,
        period_start: i64,
    ) -> Result<Vec<String>>;
    /// Records a mark once, with its event in the same transaction;
    /// false when it was already recorded.
    async fn record_budget_mark(
        &self,
        kind: ScopeKind,
        scope: &str,
        period_start: i64,
        mark: &str,
        spend: f64,
        event: &NewEvent,
    ) -> Result<bool>;
    /// Lets a job past its project's budget (false: it already was).
    async fn override_budget(&self, job_id: i64, by: &str, now: i64) -> Result<bool>;
    /// Holds the runnable jobs of `projects` (reason `over-budget`),
    /// except overridden ones, and releases the jobs held over budget
    /// whose projects are not listed (or that were overridden). Returns
    /// (held, released).
    async fn hold_over_budget(&self, projects: &[String], now: i64) -> Result<(u64, u64)>;
    /// Sets the projects under escrow budgets: from now on their jobs are
    /// leased only once they hold a reservation.
    fn set_escrow_projects(&self, projects: &[String]);
    /// Runnable jobs of `projects` without a reservation, in lease order
    /// (at most `limit`).
    async fn escrow_candidates(
        &self,
        projects: &[String],
        limit: u32,
    ) -> Result<Vec<EscrowCandidate>>;
    /// Reserves `amount` for a job against a budget (false: it already
    /// holds a reservation).
    async fn reserve(
        &self,
        job_id: i64,
        kind: ScopeKind,
        scope: &str,
        amount: f64,
        now: i64,
    ) -> Result<bool>;
    /// What reservations of a budget's jobs that have not ended still
    /// hold: each one less what its job was charged so far.
    async fn reserved(&self, kind: ScopeKind, scope: &str) -> Result<f64>;
    /// Sets the reason of runnable jobs (why they wait); `None` clears it.
    async fn set_waiting_reason(&self, ids: &[i64], reason: Option<&str>) -> Result<()>;
}

/// A runnable job waiting for its escrow reservation.
#[derive(Debug, Clone, PartialEq)]
pub struct EscrowCandidate {
    /// Job id.
    pub job_id: i64,
    /// Its project.
    pub project: String,
    /// Its queue.
    pub queue: String,
    /// What one attempt holds.
    pub resources: Resources,
    /// Its time limit per attempt (0: none).
    pub timeout_secs: u64,
    /// Attempts it may make.
    pub max_attempts: u32,
    /// Its current reason.
    pub reason: Option<String>,
}

/// Whose usage records [`CostStore::usage_of`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOf {
    /// One job's attempts.
    Job(i64),
    /// The children of an array or pipeline.
    Group(i64),
    /// A workspace's running intervals.
    Workspace(i64),
}

/// A worker's capacity as a [`Resources`] (the whole shape).
pub fn whole(c: Capacity) -> Resources {
    Resources {
        cpus: c.cpus,
        mem_mib: c.mem_mib,
        gpus: c.gpus,
    }
}
