//! `trestle costs` (charges over the last days, grouped) and `trestle
//! budget list|show|set|rm|override`.

use super::client;
use crate::Conn;
use crate::output::table;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use trestle_client::Method;
use trestle_core::api::cost::{BudgetView, CostOf, CostReport};
use trestle_core::cost::budget::{BudgetRequest, Period};
use trestle_core::cost::{daily, format};

/// `trestle costs`.
#[derive(Args, Debug)]
pub struct CostsArgs {
    /// Group by user, project, index, env, kind or day.
    #[arg(long, default_value = "project")]
    pub by: String,
    /// Days back, today included.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Only this project.
    #[arg(long)]
    pub project: Option<String>,
    /// Only this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this index.
    #[arg(long)]
    pub index: Option<String>,
    /// Split every group per day.
    #[arg(long)]
    pub per_day: bool,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// `trestle budget ...`.
#[derive(Subcommand, Debug)]
pub enum BudgetCmd {
    /// Budgets you may see, with what is spent.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One budget.
    Show {
        #[command(flatten)]
        scope: Scope,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set or raise a budget (admins).
    Set {
        #[command(flatten)]
        scope: Scope,
        /// The amount per period, in the site's unit.
        #[arg(long)]
        amount: f64,
        /// `monthly` (default) or `grant`.
        #[arg(long)]
        period: Option<String>,
        /// A grant's first day (YYYY-MM-DD).
        #[arg(long)]
        start: Option<String>,
        /// A grant's last day (YYYY-MM-DD).
        #[arg(long)]
        end: Option<String>,
        /// Percentages that raise an event (default 50,80,90,100).
        #[arg(long, value_delimiter = ',')]
        thresholds: Vec<u32>,
        /// `alert` (default), `block` or `escrow`.
        #[arg(long)]
        enforce: Option<String>,
        /// Running workspaces go on this long once blocked (default 1h).
        #[arg(long)]
        grace: Option<String>,
    },
    /// Delete a budget (admins).
    Rm {
        #[command(flatten)]
        scope: Scope,
    },
    /// Let one job past its project's budget (admins).
    Override {
        /// Job id.
        job: i64,
    },
}

/// Whose budget.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Scope {
    /// A project's.
    #[arg(long)]
    pub project: Option<String>,
    /// An index's.
    #[arg(long)]
    pub index: Option<String>,
}

impl Scope {
    fn path(&self) -> Vec<&str> {
        match (&self.project, &self.index) {
            (Some(p), _) => vec!["projects", p.as_str(), "budget"],
            (None, Some(i)) => vec!["indexes", i.as_str(), "budget"],
            (None, None) => vec!["budgets"],
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs `trestle costs`.
pub async fn costs(a: CostsArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let days = a.days.to_string();
    let mut q: Vec<(&str, &str)> = vec![("by", a.by.as_str()), ("days", days.as_str())];
    for (k, v) in [
        ("project", &a.project),
        ("user", &a.user),
        ("index", &a.index),
    ] {
        if let Some(v) = v {
            q.push((k, v.as_str()));
        }
    }
    if a.per_day {
        q.push(("per_day", "true"));
    }
    let r: CostReport = c.call::<(), _>(Method::GET, &["costs"], &q, None).await?;
    if a.json {
        return json(&r);
    }
    let by = r.by.to_uppercase();
    if a.csv {
        println!(
            "{},day,charge,unit,hours,core_hours,cpu_efficiency,unused_core_hours,records",
            r.by
        );
        for row in &r.rows {
            println!(
                "{},{},{},{},{:.4},{:.4},{},{:.4},{}",
                csv_field(&row.key),
                row.day.as_deref().unwrap_or(""),
                row.charge,
                csv_field(&r.unit),
                row.hours,
                row.core_hours,
                row.cpu_efficiency
                    .map_or_else(String::new, |e| format!("{e:.4}")),
                row.unused_core_hours,
                row.records
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = r
        .rows
        .iter()
        .map(|row| {
            let mut v = vec![if row.key.is_empty() {
                "(overhead)".into()
            } else {
                row.key.clone()
            }];
            if a.per_day && r.by != "day" {
                v.push(row.day.clone().unwrap_or_default());
            }
            v.extend([
                format(row.charge, &r.unit),
                format!("{:.1}", row.hours),
                format!("{:.1}", row.core_hours),
                row.cpu_efficiency
                    .map_or_else(|| "-".into(), |e| format!("{:.0}%", e * 100.0)),
                format!("{:.1}", row.unused_core_hours),
                row.records.to_string(),
            ]);
            v
        })
        .collect();
    let mut header = vec![by.as_str()];
    if a.per_day && r.by != "day" {
        header.push("DAY");
    }
    header.extend([
        "CHARGE",
        "HOURS",
        "CORE-HOURS",
        "CPU USED",
        "UNUSED CORE-H",
        "RECORDS",
    ]);
    if rows.is_empty() {
        println!("no usage from {} to {}", r.from, r.to);
    } else {
        print!("{}", table(&header, &rows));
    }
    println!(
        "total {} from {} to {}; yesterday {}; running now {}",
        format(r.total, &r.unit),
        r.from,
        r.to,
        format(r.yesterday, &r.unit),
        format(r.running, &r.unit)
    );
    Ok(ExitCode::SUCCESS)
}

fn budget_rows(list: &[BudgetView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|b| {
            vec![
                format!("{} {}", b.scope_kind, b.scope),
                format(b.spec.amount, &b.unit),
                match b.spec.period {
                    Period::Monthly => "monthly".into(),
                    Period::Grant { start_day, end_day } => format!(
                        "grant {}..{}",
                        daily::date(start_day),
                        daily::date(end_day - 1)
                    ),
                },
                format!("{} ({:.0}%)", format(b.spend, &b.unit), b.percent),
                b.forecast
                    .map_or_else(|| "-".into(), |f| format(f, &b.unit)),
                b.spec.enforcement.as_str().into(),
                if b.blocked { "BLOCKED" } else { "open" }.into(),
            ]
        })
        .collect()
}

/// Runs `trestle budget ...`.
pub async fn budget(cmd: BudgetCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let header = [
        "BUDGET", "AMOUNT", "PERIOD", "SPENT", "FORECAST", "ENFORCE", "STATE",
    ];
    match cmd {
        BudgetCmd::List { json: j } => {
            let list: Vec<BudgetView> = c
                .call::<(), _>(Method::GET, &["budgets"], &[], None)
                .await?;
            if j {
                return json(&list);
            }
            if list.is_empty() {
                println!("no budgets (admins: `trestle budget set --project P --amount N`)");
            } else {
                print!("{}", table(&header, &budget_rows(&list)));
            }
        }
        BudgetCmd::Show { scope, json: j } => {
            let b: BudgetView = c
                .call::<(), _>(Method::GET, &scope.path(), &[], None)
                .await?;
            if j {
                return json(&b);
            }
            print!("{}", table(&header, &budget_rows(std::slice::from_ref(&b))));
            let marks = if b.crossed.is_empty() {
                "none".to_string()
            } else {
                b.crossed.join(", ")
            };
            println!("crossed this period: {marks}");
        }
        BudgetCmd::Set {
            scope,
            amount,
            period,
            start,
            end,
            thresholds,
            enforce,
            grace,
        } => {
            let req = BudgetRequest {
                amount: Some(amount),
                period,
                start,
                end,
                thresholds: (!thresholds.is_empty()).then_some(thresholds),
                enforcement: enforce,
                grace,
            };
            let b: BudgetView = c.call(Method::PUT, &scope.path(), &[], Some(&req)).await?;
            print!("{}", table(&header, &budget_rows(std::slice::from_ref(&b))));
        }
        BudgetCmd::Rm { scope } => {
            c.call_empty(Method::DELETE, &scope.path()).await?;
            println!("deleted");
        }
        BudgetCmd::Override { job } => {
            let id = job.to_string();
            let _: serde_json::Value = c
                .call::<(), _>(Method::POST, &["jobs", &id, "budget-override"], &[], None)
                .await?;
            println!("job {job} may run past its project's budget");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The cost line of `trestle job show`.
pub async fn job_cost_line(conn: &Conn, id: i64) -> Option<String> {
    let c = client(conn).ok()?;
    let sid = id.to_string();
    let cost: CostOf = c
        .call::<(), _>(Method::GET, &["jobs", &sid, "cost"], &[], None)
        .await
        .ok()?;
    if cost.records == 0 {
        return None;
    }
    Some(format!(
        "{} ({} attempt{} metered)",
        format(cost.charge, &cost.unit),
        cost.records,
        if cost.records == 1 { "" } else { "s" }
    ))
}
