//! Wire types of costs and budgets: `GET /api/v1/costs`, the cost of a
//! job, an array or a workspace, and `/api/v1/budgets`.

use crate::cost::budget::BudgetSpec;
use serde::{Deserialize, Serialize};

/// One row of a cost report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostRow {
    /// The group (`ada`, `genomics`, `2026-11-30`).
    pub key: String,
    /// The day, when the report is split per day (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// Charges, in the report's unit.
    pub charge: f64,
    /// Run time, hours.
    pub hours: f64,
    /// Allocated CPU-hours.
    pub core_hours: f64,
    /// Of the allocated CPU-hours whose use was measured, the share used
    /// (CPU time / allocation; `None`: nothing measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_efficiency: Option<f64>,
    /// Allocated CPU-hours that went unused (of those measured).
    pub unused_core_hours: f64,
    /// Usage records summed.
    pub records: u64,
}

/// `GET /api/v1/costs`: charges over the last days, grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// The site's unit.
    pub unit: String,
    /// How rows are grouped (`user`, `project`, `index`, `env`, `kind`,
    /// `day`).
    pub by: String,
    /// First day covered (`YYYY-MM-DD`).
    pub from: String,
    /// Last day covered.
    pub to: String,
    /// The rows, largest charge first (per day: by day, then charge).
    pub rows: Vec<CostRow>,
    /// Their total.
    pub total: f64,
    /// What yesterday cost (in the caller's view).
    pub yesterday: f64,
    /// Charges of attempts still running, not in the rows yet.
    pub running: f64,
}

/// One usage record as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    /// `job`, `workspace` or `overhead`.
    pub kind: String,
    /// The job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// The attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The compute environment.
    pub compute_env: String,
    /// Start (ms).
    pub started_at: i64,
    /// End (ms).
    pub ended_at: i64,
    /// The rate, per hour.
    pub rate_per_hour: f64,
    /// The charge.
    pub charge: f64,
}

/// The cost of a job, an array or pipeline, or a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostOf {
    /// The site's unit.
    pub unit: String,
    /// Everything recorded.
    pub charge: f64,
    /// Records summed.
    pub records: u64,
    /// The newest records (at most 100).
    pub usage: Vec<UsageView>,
}

/// A budget with its state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// `project` or `index`.
    pub scope_kind: String,
    /// Its name.
    pub scope: String,
    /// What was set.
    pub spec: BudgetSpec,
    /// The site's unit.
    pub unit: String,
    /// The current period (`YYYY-MM-DD`, first and last day); none when a
    /// grant is not active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<(String, String)>,
    /// Charged in the period, running attempts included.
    pub spend: f64,
    /// Percent of the amount.
    pub percent: f64,
    /// Projected to the end of the period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// Thresholds (and `forecast`) crossed this period.
    pub crossed: Vec<String>,
    /// It stops spending now (block or escrow at 100%).
    pub blocked: bool,
    /// Who last set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// `GET /api/v1/costs` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostQuery {
    /// `user`, `project` (default), `index`, `env`, `kind` or `day`.
    pub by: Option<String>,
    /// Days back from today, today included (1-366, default 30).
    pub days: Option<u32>,
    /// Only this project.
    pub project: Option<String>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this index.
    pub index: Option<String>,
    /// Split each group per day (for stacked daily bars).
    pub per_day: Option<bool>,
}
