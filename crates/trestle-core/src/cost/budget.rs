//! Budgets: an amount per period for a project or an index, thresholds
//! that each raise one event per period, a forecast to the end of the
//! period, and what happens at 100% (alert only, block, or escrow).
//! Everything here is a decision on numbers; the meter and the budget
//! loop supply them.

use super::daily::{self, DAY_MS};
use crate::error::ValidationError;
use crate::parse::parse_duration;
use serde::{Deserialize, Serialize};

/// Thresholds when a budget names none, in percent.
pub const DEFAULT_THRESHOLDS: [u32; 4] = [50, 80, 90, 100];
/// How long running workspaces of a blocked budget keep going after
/// their owners are warned, when the budget does not say.
pub const DEFAULT_GRACE_SECS: u64 = 3600;

/// What a budget belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// One project.
    Project,
    /// An index (a funding source) and all its projects.
    Index,
}

impl ScopeKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Project => "project",
            ScopeKind::Index => "index",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<ScopeKind> {
        match s {
            "project" => Some(ScopeKind::Project),
            "index" => Some(ScopeKind::Index),
            _ => None,
        }
    }
}

/// What happens when spending reaches the amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Events only.
    Alert,
    /// New submissions and launches are refused, queued work waits "over
    /// budget", running workspaces are stopped after the grace period.
    Block,
    /// As block; and each job reserves its largest possible charge when
    /// it is admitted, so concurrent jobs cannot overspend.
    Escrow,
}

impl Enforcement {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Alert => "alert",
            Enforcement::Block => "block",
            Enforcement::Escrow => "escrow",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Enforcement> {
        match s {
            "alert" => Some(Enforcement::Alert),
            "block" => Some(Enforcement::Block),
            "escrow" => Some(Enforcement::Escrow),
            _ => None,
        }
    }
}

/// The period a budget's amount is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Period {
    /// Each calendar month (UTC).
    Monthly,
    /// A grant: from its first day to its last day, both included.
    Grant {
        /// First day (days since 1970-01-01).
        start_day: i64,
        /// Day after the last day.
        end_day: i64,
    },
}

/// A budget as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetSpec {
    /// Project or index.
    pub scope_kind: ScopeKind,
    /// Its name.
    pub scope: String,
    /// The amount per period, in the site's unit.
    pub amount: f64,
    /// The period.
    pub period: Period,
    /// Percentages of the amount that raise an event, ascending.
    pub thresholds: Vec<u32>,
    /// What happens at 100%.
    pub enforcement: Enforcement,
    /// How long running workspaces go on once the budget blocks.
    pub grace_secs: u64,
}

/// A budget as sent (`PUT /api/v1/budgets/{kind}/{name}`, `trestle budget
/// set`): every field optional, defaults filled in by [`validate`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// The amount per period.
    pub amount: Option<f64>,
    /// `monthly` (default) or `grant`.
    pub period: Option<String>,
    /// A grant's first day, `YYYY-MM-DD`.
    pub start: Option<String>,
    /// A grant's last day, `YYYY-MM-DD`.
    pub end: Option<String>,
    /// Percentages (default 50, 80, 90, 100).
    pub thresholds: Option<Vec<u32>>,
    /// `alert` (default), `block` or `escrow`.
    pub enforcement: Option<String>,
    /// Grace period for running workspaces (`1h`, `30m`).
    pub grace: Option<String>,
}

/// Validates a request for the budget of `kind` `scope`.
pub fn validate(
    kind: ScopeKind,
    scope: &str,
    req: &BudgetRequest,
) -> Result<BudgetSpec, ValidationError> {
    let amount = req.amount.ok_or_else(|| {
        ValidationError::new("missing-field", "amount", "a budget needs an amount")
    })?;
    if !amount.is_finite() || amount <= 0.0 {
        return Err(ValidationError::new(
            "invalid-amount",
            "amount",
            "the amount is a number above 0",
        ));
    }
    let period = match req.period.as_deref().unwrap_or("monthly") {
        "monthly" => {
            if req.start.is_some() || req.end.is_some() {
                return Err(ValidationError::new(
                    "invalid-period",
                    "start",
                    "start and end dates belong to a grant (--period grant)",
                ));
            }
            Period::Monthly
        }
        "grant" => {
            let date = |field: &str, v: &Option<String>| {
                let s = v.as_deref().ok_or_else(|| {
                    ValidationError::new(
                        "missing-field",
                        field,
                        format!("a grant needs its {field} date (YYYY-MM-DD)"),
                    )
                })?;
                daily::parse_date(s).ok_or_else(|| {
                    ValidationError::new(
                        "invalid-date",
                        field,
                        format!("`{s}` is not a date (YYYY-MM-DD)"),
                    )
                })
            };
            let start_day = date("start", &req.start)?;
            let last = date("end", &req.end)?;
            if last < start_day {
                return Err(ValidationError::new(
                    "invalid-period",
                    "end",
                    "a grant ends on or after the day it starts",
                ));
            }
            Period::Grant {
                start_day,
                end_day: last + 1,
            }
        }
        other => {
            return Err(ValidationError::new(
                "invalid-period",
                "period",
                format!("`{other}` is not a period: monthly or grant"),
            ));
        }
    };
    let mut thresholds = req
        .thresholds
        .clone()
        .unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec());
    thresholds.sort_unstable();
    thresholds.dedup();
    if thresholds.is_empty()
        || thresholds.len() > 10
        || thresholds.iter().any(|t| *t == 0 || *t > 1000)
    {
        return Err(ValidationError::new(
            "invalid-thresholds",
            "thresholds",
            "1 to 10 percentages between 1 and 1000",
        ));
    }
    let enforcement = match &req.enforcement {
        None => Enforcement::Alert,
        Some(s) => Enforcement::parse(s).ok_or_else(|| {
            ValidationError::new(
                "invalid-enforcement",
                "enforcement",
                format!("`{s}` is not an enforcement: alert, block or escrow"),
            )
        })?,
    };
    let grace_secs = match &req.grace {
        None => DEFAULT_GRACE_SECS,
        Some(g) => parse_duration("grace", g, false)?,
    };
    Ok(BudgetSpec {
        scope_kind: kind,
        scope: scope.to_string(),
        amount,
        period,
        thresholds,
        enforcement,
        grace_secs,
    })
}

/// The window of the period holding `now_ms`, as `[start_ms, end_ms)`;
/// `None` when a grant has not started or is over.
pub fn window(period: &Period, now_ms: i64) -> Option<(i64, i64)> {
    let today = daily::day_of(now_ms);
    let (start, end) = match *period {
        Period::Monthly => daily::month_of(today),
        Period::Grant { start_day, end_day } => {
            if today < start_day || today >= end_day {
                return None;
            }
            (start_day, end_day)
        }
    };
    Some((start * DAY_MS, end * DAY_MS))
}

/// Spending projected to the end of the window at the rate so far (none
/// in the first hour, too early to project).
pub fn forecast(spend: f64, window: (i64, i64), now_ms: i64) -> Option<f64> {
    let elapsed = now_ms - window.0;
    if elapsed < 3_600_000 {
        return None;
    }
    Some(spend * (window.1 - window.0) as f64 / elapsed as f64)
}

/// A crossing one period may record once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mark {
    /// A threshold, in percent.
    Percent(u32),
    /// The forecast passed the amount.
    Forecast,
}

impl Mark {
    /// As stored: `80`, `forecast`.
    pub fn key(self) -> String {
        match self {
            Mark::Percent(p) => p.to_string(),
            Mark::Forecast => "forecast".into(),
        }
    }
}

/// The marks `spend` (and its forecast) pass that are not in `recorded`:
/// each becomes one event.
pub fn crossings(
    spec: &BudgetSpec,
    spend: f64,
    forecast: Option<f64>,
    recorded: &[String],
) -> Vec<Mark> {
    let mut out: Vec<Mark> = spec
        .thresholds
        .iter()
        .filter(|t| spend >= spec.amount * f64::from(**t) / 100.0)
        .map(|t| Mark::Percent(*t))
        .collect();
    if forecast.is_some_and(|f| f > spec.amount) && spend < spec.amount {
        out.push(Mark::Forecast);
    }
    out.retain(|m| !recorded.iter().any(|r| *r == m.key()));
    out
}

/// True when the budget stops spending now: it enforces, and spending
/// (with reservations, in escrow mode) has reached the amount.
pub fn blocks(spec: &BudgetSpec, spend: f64) -> bool {
    spec.enforcement != Enforcement::Alert && spend >= spec.amount
}

/// Whether a reservation of `amount` fits next to `committed` (spent plus
/// reserved) within the budget.
pub fn fits(spec: &BudgetSpec, committed: f64, amount: f64) -> bool {
    committed + amount <= spec.amount
}

/// The most a job can be charged, reserved at admission in escrow mode:
/// its rate times its time limit for every attempt it may make, plus one
/// more run for an interruption (billed, but not an attempt).
pub fn reservation(rate_per_hour: f64, time_limit_secs: u64, attempts: u32) -> f64 {
    let runs = f64::from(attempts.max(1)) + 1.0;
    rate_per_hour * time_limit_secs as f64 / 3600.0 * runs
}
