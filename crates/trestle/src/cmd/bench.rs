//! `trestle bench`: throughput of durable jobs through the API, and
//! submit-to-start latency with an idle worker. Figures, not assertions;
//! `bench/run.sh` records them next to the raw spawn rate, HyperQueue and
//! Slurm in `docs/benchmarks.md`.

use super::client;
use crate::Conn;
use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use trestle_client::{Client, JobQuery, Method};
use trestle_core::JobState;

/// `trestle bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Jobs to run for the throughput figure.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: u32,
    /// The command each job runs (split on whitespace, executed directly).
    #[arg(long, default_value = "true")]
    pub command: String,
    /// Jobs per submission request.
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
    /// Jobs queued (at a lower priority) before the measurement starts.
    #[arg(long, default_value_t = 0)]
    pub backlog: u32,
    /// Jobs submitted one at a time to an idle worker for the latency figure.
    #[arg(long, default_value_t = 200)]
    pub latency_jobs: u32,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn submit_many(c: &Client, n: u32, batch: u32, job: &serde_json::Value) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(n as usize);
    let mut left = n;
    while left > 0 {
        let k = left.min(batch.max(1));
        let jobs = vec![job.clone(); k as usize];
        ids.extend(c.submit_batch(jobs).await?.ids);
        left -= k;
    }
    Ok(ids)
}

async fn bench_jobs(c: &Client, queue: &str) -> Result<Vec<trestle_core::api::JobView>> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = c
            .list_jobs(&JobQuery {
                states: vec![],
                queue: Some(queue.to_string()),
                before,
                limit: Some(1000),
                ..Default::default()
            })
            .await?;
        let n = page.jobs.len();
        all.extend(page.jobs);
        match page.next_before {
            Some(b) if n > 0 => before = Some(b),
            _ => return Ok(all),
        }
    }
}

/// Waits until a job has finished; returns when it started (ms).
async fn wait_started(c: &Client, id: i64) -> Result<i64> {
    loop {
        let j = c.get_job(id).await?;
        if j.state.is_terminal() {
            return match j.started_at {
                Some(s) => Ok(s),
                None => bail!("job {id} ended {} without starting", j.state),
            };
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the benchmark against the configured server.
pub async fn run(a: BenchArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let argv: Vec<&str> = a.command.split_whitespace().collect();
    if argv.is_empty() {
        bail!("--command is empty");
    }
    let run_id = trestle_server::now_ms();
    // Each part of the run has a queue of its own (jobs must name queues
    // that exist): created here, removed at the end (their jobs stay).
    let mut made = Vec::new();
    let queue = bench_queue(&c, &format!("bench{run_id}"), &mut made).await?;
    let cold = bench_queue(&c, &format!("cold{run_id}"), &mut made).await?;
    let backlog_queue = bench_queue(&c, &format!("backlog{run_id}"), &mut made).await?;
    let lat_queue = bench_queue(&c, &format!("latency{run_id}"), &mut made).await?;
    // Cold start: with no worker alive, how long until the first job runs
    // (includes the autoscaler's decision and the worker process starting).
    if c.list_workers().await?.is_empty() {
        let job = json!({"command": argv, "queue": cold});
        let v = c.submit_job(&job).await?;
        let started = wait_started(&c, v.id).await?;
        println!(
            "cold start (no worker alive): first job started {} ms after submission",
            started - v.submitted_at
        );
    }
    if a.backlog > 0 {
        let t = Instant::now();
        let backlog = json!({"command": argv, "queue": backlog_queue, "priority": -1});
        submit_many(&c, a.backlog, 10_000, &backlog).await?;
        println!(
            "backlog: {} jobs queued in {:.1}s",
            a.backlog,
            t.elapsed().as_secs_f64()
        );
    }
    // Throughput: submit everything, wait until the queue drains.
    let job = json!({"command": argv, "queue": queue});
    let t0 = Instant::now();
    let ids = submit_many(&c, a.jobs, a.batch, &job).await?;
    let submit_secs = t0.elapsed().as_secs_f64();
    let active = vec![JobState::Runnable, JobState::Starting, JobState::Running];
    loop {
        let page = c
            .list_jobs(&JobQuery {
                states: active.clone(),
                queue: Some(queue.clone()),
                before: None,
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        if page.jobs.is_empty() {
            break;
        }
        // The figure comes from the jobs' own times, not from this loop:
        // poll gently so the watching costs the server little.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let jobs = bench_jobs(&c, &queue).await?;
    let failed = jobs
        .iter()
        .filter(|j| j.state != JobState::Succeeded)
        .count();
    let first = jobs.iter().map(|j| j.submitted_at).min().unwrap_or(0);
    let last = jobs
        .iter()
        .filter_map(|j| j.finished_at)
        .max()
        .unwrap_or(first);
    let span = ((last - first) as f64 / 1000.0).max(0.001);
    println!("jobs: {}  command: {}", ids.len(), a.command);
    println!(
        "throughput: {:.1} jobs/s ({} jobs, first submit to last finish {:.2}s; wall {:.2}s; submit {:.2}s; failed {})",
        ids.len() as f64 / span,
        ids.len(),
        span,
        wall,
        submit_secs,
        failed
    );
    // Latency: one job at a time to an idle worker.
    if a.latency_jobs > 0 {
        let job = json!({"command": argv, "queue": lat_queue});
        let mut lat = Vec::new();
        for _ in 0..a.latency_jobs {
            let v = c.submit_job(&job).await?;
            lat.push(wait_started(&c, v.id).await? - v.submitted_at);
        }
        lat.sort_unstable();
        println!(
            "submit->start latency (idle worker, {} jobs): p50 {} ms  p90 {} ms  p99 {} ms  max {} ms",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0)
        );
    }
    for q in made {
        if let Err(e) = c.call_empty(Method::DELETE, &["queues", &q]).await {
            eprintln!("note: cannot remove the bench queue {q}: {e}");
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Creates queue `name` for a part of the run; a caller who may not create
/// queues (not an admin) runs that part in `default` instead.
async fn bench_queue(c: &Client, name: &str, made: &mut Vec<String>) -> Result<String> {
    let created: Result<serde_json::Value, _> = c
        .call(
            Method::PUT,
            &["queues", name],
            &[],
            Some(&json!({"priority": 0})),
        )
        .await;
    match created {
        Ok(_) => {
            made.push(name.to_string());
            Ok(name.to_string())
        }
        Err(e) if matches!(e.status(), Some(401 | 403)) => {
            if made.is_empty() {
                eprintln!("note: only admins create queues; the bench runs in `default`");
            }
            Ok(trestle_core::batch::spec::DEFAULT_QUEUE.to_string())
        }
        Err(e) => Err(e.into()),
    }
}
