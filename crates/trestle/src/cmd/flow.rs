//! Workflow commands: `trestle events`, `trestle cancel` with scancel-style
//! selection, the Slurm-style job table (`jobs --format slurm`), and the
//! workflow part of `job show` (children, dependencies, pipeline graph).

use super::client;
use crate::Conn;
use crate::output::{table, time, usage};
use anyhow::Result;
use clap::Args;
use futures::StreamExt;
use std::process::ExitCode;
use std::time::Duration;
use trestle_client::{EventQuery, JobQuery};
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::api::workflow::EventView;
use trestle_core::batch::pipeline::render_graph;
use trestle_core::batch::slurm_view::short_duration as slurm_time;
use trestle_core::batch::workflow::JobKind;

/// `trestle events` options.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep printing new events (reconnecting as needed) until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only these states (comma-separated, e.g. SUCCEEDED,FAILED).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this job (and, for an array or pipeline, its children).
    #[arg(long)]
    pub job: Option<String>,
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Start after this event id (as printed with --json).
    #[arg(long)]
    pub after: Option<i64>,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Parses `RUNNING,FAILED`.
pub fn parse_states(s: Option<&str>) -> Result<Vec<JobState>> {
    let mut out = Vec::new();
    for part in s
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|p| !p.is_empty())
    {
        match JobState::parse(part) {
            Some(st) => out.push(st),
            None => {
                let all: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                let hint = trestle_core::parse::closest(part, &all)
                    .map(|s| format!("did you mean {s}? "))
                    .unwrap_or_default();
                return usage(format!(
                    "`{part}` is not a job state; {hint}the states are {}",
                    all.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

fn event_line(e: &EventView) -> String {
    let mut s = format!(
        "{}  {:<8} {:<10} {}",
        time(e.time),
        e.job_id,
        e.state.as_str(),
        e.queue
    );
    if let Some(p) = e.parent {
        s.push_str(&format!("  (of {p})"));
    }
    if let Some(c) = e.exit_code {
        s.push_str(&format!("  exit {c}"));
    }
    if let Some(r) = &e.reason {
        s.push_str(&format!("  {r}"));
    }
    s
}

/// `trestle events [-f]`.
pub async fn events(a: EventsArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let job = match &a.job {
        Some(t) => Some(super::jobref::resolve(&c, t).await?),
        None => None,
    };
    let query = EventQuery {
        job,
        states: parse_states(a.state.as_deref())?,
        queue: a.queue.clone(),
        follow: a.follow,
    };
    let mut last = a.after;
    let mut failures = 0u32;
    loop {
        let ended = match c.events(&query, last).await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                let mut err = None;
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(e) => {
                            failures = 0;
                            last = Some(e.id);
                            if a.json {
                                println!("{}", serde_json::to_string(&e)?);
                            } else {
                                println!("{}", event_line(&e));
                            }
                        }
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                err
            }
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                return Err(e.into());
            }
            Err(e) => Some(e),
        };
        match ended {
            None if !a.follow => return Ok(ExitCode::SUCCESS),
            None => {}
            Some(e) if !a.follow => return Err(e.into()),
            Some(e) => {
                failures += 1;
                if failures == 1 {
                    eprintln!("event stream interrupted ({e}); resuming...");
                }
            }
        }
        // Resume after the last event seen: nothing is lost or repeated.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `trestle cancel` options (scancel-compatible where cheap).
#[derive(Args, Debug)]
pub struct CancelArgs {
    /// Job ids; `ID_INDEX` names one child of an array (`12_3`).
    pub ids: Vec<String>,
    /// Cancel jobs with this name (scancel -n).
    #[arg(long, short = 'n', alias = "jobname")]
    pub name: Option<String>,
    /// Cancel jobs in these states (scancel -t), e.g. PENDING,RUNNABLE.
    #[arg(long, short = 't')]
    pub state: Option<String>,
    /// Cancel jobs of this queue (scancel -p).
    #[arg(long, short = 'p', alias = "queue")]
    pub partition: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trestle resubmit` options.
#[derive(Args, Debug)]
pub struct ResubmitArgs {
    /// The job: `12`, or `12_3` for the task with index 3 of array 12.
    pub id: String,
    /// Of an array: run only its failed children again, as a new array of
    /// those indices.
    #[arg(long)]
    pub failed: bool,
    /// Print the new job as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trestle resubmit`: prints the new job's id.
pub async fn resubmit(a: ResubmitArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let id = super::jobref::resolve(&c, &a.id).await?;
    let j = if a.failed {
        c.resubmit_failed(id).await?
    } else {
        c.resubmit_job(id).await?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("{}", j.id);
        if let Some(arr) = j.spec.flow.array.as_ref().filter(|_| a.failed) {
            eprintln!(
                "array {} runs the {} failed indices of {id} again: {arr}",
                j.id,
                arr.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `trestle cancel`.
pub async fn cancel(a: CancelArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let states = parse_states(a.state.as_deref())?;
    let mut ids = Vec::new();
    for t in &a.ids {
        ids.push(super::jobref::resolve(&c, t).await?);
    }
    let filtering = a.name.is_some() || !states.is_empty() || a.partition.is_some();
    if ids.is_empty() {
        if !filtering {
            return usage("name the jobs to cancel: IDs, or --name/--state/--partition");
        }
        let wanted = if states.is_empty() {
            vec![
                JobState::Pending,
                JobState::Runnable,
                JobState::Starting,
                JobState::Running,
            ]
        } else {
            states.clone()
        };
        let mut before = None;
        loop {
            let page = c
                .list_jobs(&JobQuery {
                    states: wanted.clone(),
                    queue: a.partition.clone(),
                    name: a.name.clone(),
                    before,
                    limit: Some(1000),
                    ..Default::default()
                })
                .await?;
            ids.extend(page.jobs.iter().map(|j| j.id));
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
    }
    let matches = |j: &JobView| {
        a.name.as_ref().is_none_or(|n| *n == j.name)
            && (states.is_empty() || states.contains(&j.state))
            && a.partition.as_ref().is_none_or(|q| *q == j.queue)
    };
    let mut views = Vec::new();
    for id in ids {
        let before = c.get_job(id).await?;
        if filtering && !matches(&before) {
            continue;
        }
        let j = c.cancel_job(id).await?;
        if !a.json {
            if before.state.is_terminal() {
                println!("{id} already finished ({})", j.state);
            } else if j.state == JobState::Cancelled {
                println!("{id} cancelled");
            } else if j.state.is_terminal() {
                println!("{id} finished before the cancel ({})", j.state);
            } else {
                println!("{id} cancel requested (its worker is stopping it)");
            }
        }
        views.push(j);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Slurm's short state codes.
fn slurm_state(s: JobState) -> &'static str {
    match s {
        JobState::Submitted | JobState::Pending | JobState::Runnable => "PD",
        JobState::Starting => "CF",
        JobState::Running => "R",
        JobState::Succeeded => "CD",
        JobState::Failed => "F",
        JobState::Cancelled => "CA",
    }
}

/// The `ST` code of a job: a failed job's own Slurm state when its reason
/// has one (`OOM` for out-of-memory, `TO` for a timeout).
fn squeue_state(s: JobState, reason: Option<&str>) -> &'static str {
    let special = reason
        .and_then(trestle_core::AttemptReason::parse)
        .and_then(trestle_core::AttemptReason::slurm_state);
    match (s, special) {
        (JobState::Failed, Some((_, code))) => code,
        _ => slurm_state(s),
    }
}

/// The job table as `squeue` prints it.
pub fn squeue(jobs: &[JobView], now: i64) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let id = match (j.flow.parent, j.flow.array_index) {
                (Some(p), Some(i)) => format!("{p}_{i}"),
                _ if j.flow.kind == JobKind::Array => format!(
                    "{}_[{}]",
                    j.id,
                    j.spec
                        .flow
                        .array
                        .as_ref()
                        .map(|a| a.to_string())
                        .unwrap_or_default()
                ),
                _ => j.id.to_string(),
            };
            let elapsed = match (j.started_at, j.finished_at) {
                (Some(s), Some(f)) => slurm_time(f - s),
                (Some(s), None) => slurm_time(now - s),
                _ => "0:00".into(),
            };
            let user = j
                .spec
                .owner
                .clone()
                .or_else(|| j.spec.flow.slurm.as_ref().and_then(|s| s.user.clone()))
                .unwrap_or_else(|| "-".into());
            let where_or_why = match (&j.worker, j.state) {
                (Some(w), _) => w.clone(),
                (None, JobState::Pending | JobState::Runnable) => {
                    format!("({})", j.reason.clone().unwrap_or_else(|| "None".into()))
                }
                _ => j
                    .reason
                    .clone()
                    .map(|r| format!("({r})"))
                    .unwrap_or_default(),
            };
            vec![
                id,
                j.queue.clone(),
                j.name.chars().take(20).collect(),
                user,
                squeue_state(j.state, j.reason.as_deref()).into(),
                elapsed,
                "1".into(),
                where_or_why,
            ]
        })
        .collect();
    table(
        &[
            "JOBID",
            "PARTITION",
            "NAME",
            "USER",
            "ST",
            "TIME",
            "NODES",
            "NODELIST(REASON)",
        ],
        &rows,
    )
}

/// The workflow lines of `job show`: array/pipeline membership, children
/// per state, dependencies, and a pipeline's graph.
pub fn show_lines(j: &JobView) -> String {
    let mut s = String::new();
    let mut kv: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &j.spec.flow.array {
        kv.push(("array", format!("{a} ({} children)", a.len())));
    }
    if let (Some(p), Some(i)) = (j.flow.parent, j.flow.array_index) {
        kv.push(("array child", format!("index {i} of array {p}")));
    } else if let Some(p) = j.flow.parent {
        kv.push(("part of", format!("pipeline {p}")));
    }
    if let Some(c) = &j.flow.children {
        let counts: Vec<String> = c
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(st, n)| format!("{n} {st}"))
            .collect();
        kv.push((
            "children",
            format!("{} total: {}", c.total, counts.join(", ")),
        ));
    }
    for d in &j.flow.dependencies {
        let st = d.state.map_or("gone", |s| s.as_str());
        let status = if d.resolved { "resolved" } else { "waiting" };
        kv.push((
            "depends on",
            format!("{} {} ({st}, {status})", d.kind.as_str(), d.job),
        ));
    }
    if let Some(sl) = &j.spec.flow.slurm {
        if let Some(o) = &sl.output {
            kv.push(("output", o.clone()));
        }
        if let Some(e) = &sl.error {
            kv.push(("error", e.clone()));
        }
    }
    for (k, v) in kv {
        s.push_str(&format!("{k:<15} {v}\n"));
    }
    if !j.flow.steps.is_empty() {
        s.push_str("\nsteps:\n");
        for line in render_graph(&j.flow.steps).lines() {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_and_state_codes() {
        let e = EventView {
            id: 3,
            job_id: 12,
            parent: Some(10),
            queue: "default".into(),
            state: JobState::Failed,
            reason: Some("exit-code".into()),
            exit_code: Some(2),
            time: 0,
        };
        assert_eq!(
            event_line(&e),
            "1970-01-01 00:00:00  12       FAILED     default  (of 10)  exit 2  exit-code"
        );
        assert_eq!(slurm_state(JobState::Runnable), "PD");
        assert_eq!(slurm_state(JobState::Running), "R");
        assert_eq!(squeue_state(JobState::Failed, Some("out-of-memory")), "OOM");
        assert_eq!(squeue_state(JobState::Failed, Some("timeout")), "TO");
        assert_eq!(squeue_state(JobState::Failed, Some("exit-code")), "F");
        assert_eq!(squeue_state(JobState::Running, Some("out-of-memory")), "R");
        assert!(parse_states(Some("running,FAILED")).is_ok());
        assert!(parse_states(Some("nope")).is_err());
    }
}
