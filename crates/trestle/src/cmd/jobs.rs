//! Reading and steering jobs: `jobs`, `job show`, `logs`, `cancel`,
//! `wait`, `outputs`, `workers`.

use super::client;
use crate::Conn;
use crate::output::{duration, table, time, usage};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use trestle_client::{Client, JobQuery};
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::paths::normalize_relative;

/// `trestle jobs` options.
#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Only these states (comma-separated, e.g. RUNNING,FAILED).
    #[arg(long)]
    pub state: Option<String>,
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs with this name.
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Only the children of this array (or pipeline).
    #[arg(long, value_name = "ID")]
    pub array: Option<String>,
    /// At most this many (default 50); more than 1000 are read page by page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Start below this job id (the next page of an earlier listing).
    #[arg(long, value_name = "ID")]
    pub before: Option<i64>,
    /// Print JSON (the API's field names).
    #[arg(long)]
    pub json: bool,
    /// Output format: `table` (default) or `slurm` (like squeue).
    #[arg(long, default_value = "table", value_parser = ["table", "slurm"])]
    pub format: String,
}

/// `trestle job ...`.
#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Show a job: spec, state and every attempt.
    Show {
        /// Job id (`12`, or `12_3` for an array child).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--json` only.
#[derive(Args, Debug)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Job ids.
#[derive(Args, Debug)]
pub struct IdsArgs {
    /// Job ids (`12`, or `12_3` for an array child).
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trestle logs` options.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Job id (`12`, or `12_3` for an array child).
    pub id: String,
    /// Keep printing as output arrives, until the job ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Attempt number (default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
}

/// `trestle outputs` options.
#[derive(Args, Debug)]
pub struct OutputsArgs {
    /// Job id (`12`, or `12_3` for an array child).
    pub id: String,
    /// Folder to write the files into.
    #[arg(long)]
    pub to: PathBuf,
    /// Attempt number (default: the latest with outputs).
    #[arg(long)]
    pub attempt: Option<u32>,
}

/// `trestle jobs`.
pub async fn list(a: JobsArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let parent = match &a.array {
        Some(t) => Some(super::jobref::resolve(&c, t).await?),
        None => None,
    };
    let mut jobs: Vec<JobView> = Vec::new();
    let mut before = a.before;
    let mut next = None;
    while (jobs.len() as u32) < a.limit {
        let page = c
            .list_jobs(&JobQuery {
                states: super::flow::parse_states(a.state.as_deref())?,
                queue: a.queue.clone(),
                name: a.name.clone(),
                parent,
                before,
                limit: Some((a.limit - jobs.len() as u32).min(1000)),
                ..Default::default()
            })
            .await?;
        jobs.extend(page.jobs);
        next = page.next_before;
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.format == "slurm" {
        print!("{}", super::flow::squeue(&jobs, trestle_server::now_ms()));
    } else {
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| {
                vec![
                    j.id.to_string(),
                    j.task_id().unwrap_or_else(|| "-".into()),
                    j.name.clone(),
                    j.queue.clone(),
                    j.state.to_string(),
                    j.attempts_label(),
                    time(j.submitted_at),
                    j.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "ID",
                    "ARRAY",
                    "NAME",
                    "QUEUE",
                    "STATE",
                    "ATTEMPTS",
                    "SUBMITTED",
                    "REASON"
                ],
                &rows
            )
        );
    }
    if let Some(b) = next.filter(|_| jobs.len() as u32 >= a.limit) {
        eprintln!("(more: --before {b}, or a larger --limit)");
    }
    Ok(ExitCode::SUCCESS)
}

/// An argument list as a shell line that means the same: arguments with
/// spaces or shell characters are quoted.
fn shell_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
            if plain {
                a.clone()
            } else {
                trestle_core::batch::sbatch::sh_quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn show_job(j: &JobView) -> String {
    let mut s = String::new();
    let cmd = match &j.spec.command {
        trestle_core::Command::Argv(v) => shell_line(v),
        trestle_core::Command::Shell(t) => t.clone(),
    };
    let mut kv = vec![
        (
            "id",
            match j.task_id() {
                Some(t) => format!("{} ({t})", j.id),
                None => j.id.to_string(),
            },
        ),
        ("name", j.name.clone()),
        ("queue", j.queue.clone()),
        ("state", j.state.to_string()),
        ("reason", j.reason.clone().unwrap_or_else(|| "-".into())),
        ("command", cmd),
        (
            "resources",
            format!(
                "{} cpu, {} MiB, {} gpu",
                j.spec.resources.cpus, j.spec.resources.mem_mib, j.spec.resources.gpus
            ),
        ),
        ("attempts", j.attempts_label().replace('/', " of ")),
        ("submitted", time(j.submitted_at)),
    ];
    if !j.flow.kind.is_job() {
        // An array or pipeline runs nothing itself: its children have attempts.
        kv.retain(|(k, _)| *k != "attempts");
    }
    if let Some(k) = &j.spec.key {
        kv.push(("key", k.clone()));
    }
    if let Some(t) = &j.spec.success_string {
        kv.push(("success string", t.clone()));
    }
    if j.spec.timeout_secs > 0 {
        kv.push(("timeout", duration(j.spec.timeout_secs as i64 * 1000)));
    }
    if let Some(i) = &j.spec.inputs {
        kv.push(("inputs", i.clone()));
    }
    if let Some(w) = &j.worker {
        kv.push(("worker", w.clone()));
    }
    if let Some(e) = j.exit_code {
        kv.push(("exit code", e.to_string()));
    }
    if let Some(f) = j.finished_at {
        kv.push(("finished", time(f)));
    }
    for (k, v) in kv {
        s.push_str(&format!("{k:<15} {v}\n"));
    }
    s.push_str(&super::flow::show_lines(j));
    if !j.attempts.is_empty() {
        s.push('\n');
        let rows: Vec<Vec<String>> = j
            .attempts
            .iter()
            .map(|a| {
                vec![
                    a.attempt.to_string(),
                    a.worker.clone(),
                    a.state.as_str().to_string(),
                    a.started_at.map(time).unwrap_or_else(|| "-".into()),
                    a.ended_at.map(time).unwrap_or_else(|| "-".into()),
                    a.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    a.reason
                        .map(|r| r.as_str().to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        s.push_str(&table(
            &[
                "ATTEMPT", "WORKER", "STATE", "START", "END", "EXIT", "REASON",
            ],
            &rows,
        ));
    }
    s.push_str(&efficiency_lines(j));
    s
}

/// The efficiency of each ended attempt (as `seff` shows it) and the
/// resource alarm states.
fn efficiency_lines(j: &JobView) -> String {
    use trestle_core::batch::efficiency::{clock, kib};
    let mut s = String::new();
    let mem = j.spec.resources.mem_mib;
    let rows: Vec<Vec<String>> = j
        .attempts
        .iter()
        .filter_map(|a| a.efficiency.map(|e| (a.attempt, e)))
        .map(|(n, e)| {
            let pct = |p: Option<f64>| p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into());
            vec![
                n.to_string(),
                clock(e.elapsed_ms),
                e.cpu_ms.map(clock).unwrap_or_else(|| "-".into()),
                pct(e.cpu_efficiency),
                e.max_rss_kib.map(kib).unwrap_or_else(|| "-".into()),
                format!("{} of {mem} MiB", pct(e.memory_efficiency)),
            ]
        })
        .collect();
    if !rows.is_empty() {
        s.push('\n');
        s.push_str(&table(
            &[
                "ATTEMPT", "ELAPSED", "CPU TIME", "CPU EFF", "MAXRSS", "MEMORY",
            ],
            &rows,
        ));
    }
    if !j.alarms.is_empty() {
        s.push('\n');
        let rows: Vec<Vec<String>> = j
            .alarms
            .iter()
            .map(|a| {
                vec![
                    a.attempt.to_string(),
                    a.rule.clone(),
                    a.state.as_str().to_string(),
                    time(a.changed_at),
                    a.value
                        .map(|v| format!("{v:.1}%"))
                        .unwrap_or_else(|| "-".into()),
                    a.condition.clone(),
                ]
            })
            .collect();
        s.push_str(&table(
            &["ATTEMPT", "ALARM", "STATE", "SINCE", "VALUE", "RULE"],
            &rows,
        ));
    }
    s
}

/// `trestle job show`.
pub async fn job(cmd: JobCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        JobCmd::Show { id, json } => {
            let id = super::jobref::resolve(&c, &id).await?;
            let j = c.get_job(id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                print!("{}", show_job(&j));
                if let Some(line) = super::costs::job_cost_line(conn, id).await {
                    println!("cost: {line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `trestle logs [-f]`.
pub async fn logs(a: LogsArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let id = super::jobref::resolve(&c, &a.id).await?;
    refuse_group(&c, id, "log").await?;
    let mut after = 0;
    let mut attempt = a.attempt;
    let mut out = std::io::stdout();
    loop {
        let slice = c.job_log(id, attempt, after).await?;
        if attempt.is_some_and(|n| n != slice.attempt) || (attempt.is_none() && after == 0) {
            attempt = Some(slice.attempt);
        }
        if !slice.data.is_empty() {
            out.write_all(slice.data.as_bytes())?;
            out.flush()?;
            after = slice.next;
            continue;
        }
        if !a.follow || slice.state.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Following the latest attempt: a retry starts a new log.
        if a.attempt.is_none() {
            let j = c.get_job(id).await?;
            if let Some(last) = j.attempts.last()
                && Some(last.attempt) != attempt
            {
                eprintln!("--- attempt {} ---", last.attempt);
                attempt = Some(last.attempt);
                after = 0;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An array or pipeline has no log or outputs of its own: say what it is
/// and where to look instead (a usage error, exit 2).
async fn refuse_group(c: &Client, id: i64, wanted: &str) -> Result<()> {
    let j = c.get_job(id).await?;
    if j.flow.kind.is_job() {
        return Ok(());
    }
    usage(super::jobref::group_summary(c, &j, wanted).await?)
}

/// `trestle wait`.
pub async fn wait(a: IdsArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let ids = super::jobref::resolve_all(&c, &a.ids).await?;
    wait_ids(&c, &ids, a.json).await
}

/// Waits for jobs to end, with a spinner; 0 only if all succeeded.
pub async fn wait_ids(c: &Client, ids: &[i64], json: bool) -> Result<ExitCode> {
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} waiting for {len} job(s): {pos} done {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut done: Vec<JobView> = Vec::new();
    let mut pending: Vec<i64> = ids.to_vec();
    let mut delay = Duration::from_millis(50);
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let j = c.get_job(id).await?;
            if j.state.is_terminal() {
                bar.inc(1);
                done.push(j);
            } else {
                bar.set_message(format!("(job {id}: {})", j.state));
                still.push(id);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
    bar.finish_and_clear();
    done.sort_by_key(|j| j.id);
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        for j in &done {
            match &j.reason {
                Some(r) => println!("{} {} ({r})", j.id, j.state),
                None => println!("{} {}", j.id, j.state),
            }
        }
    }
    Ok(if done.iter().all(|j| j.state == JobState::Succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `trestle outputs ID --to DIR`.
pub async fn outputs(a: OutputsArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let id = super::jobref::resolve(&c, &a.id).await?;
    refuse_group(&c, id, "outputs").await?;
    let list = c.list_outputs(id, a.attempt).await?;
    let total: u64 = list.files.iter().map(|f| f.size).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "downloading [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    std::fs::create_dir_all(&a.to).with_context(|| format!("cannot create {}", a.to.display()))?;
    for f in &list.files {
        let rel = normalize_relative("path", &f.path).map_err(|e| anyhow::anyhow!(e.message))?;
        let dest = a.to.join(&rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let n = c
            .download_output(id, list.attempt, &rel, &dest)
            .await
            .with_context(|| format!("downloading {rel}"))?;
        bar.inc(n);
    }
    bar.finish_and_clear();
    let attempt = list
        .attempt
        .map(|n| format!("attempt {n}"))
        .unwrap_or_else(|| "no attempt has run".into());
    println!(
        "{} file(s) of job {} ({attempt}) written to {}",
        list.files.len(),
        a.id,
        a.to.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `trestle workers`.
pub async fn workers(a: JsonArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let ws = c.list_workers().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&ws)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = trestle_server::now_ms();
    let rows: Vec<Vec<String>> = ws
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                w.host.clone(),
                w.pid.to_string(),
                w.compute_env.clone().unwrap_or_else(|| "-".into()),
                w.capacity.cpus.to_string(),
                format!("{} MiB", w.capacity.mem_mib),
                w.running_jobs.len().to_string(),
                w.isolation
                    .as_ref()
                    .map(|i| format!("{}, {}", i.mode, i.limits))
                    .unwrap_or_else(|| "unknown".into()),
                format!("{} ago", duration((now - w.last_heartbeat).max(0))),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ID",
                "HOST",
                "PID",
                "ENV",
                "CPUS",
                "MEMORY",
                "RUNNING",
                "ISOLATION",
                "LAST HEARTBEAT"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn argument_lists_keep_their_quoting() {
        let v: Vec<String> = ["bash", "-c", "for i in $(seq 3); do echo $i; done", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            super::shell_line(&v),
            r#"bash -c 'for i in $(seq 3); do echo $i; done' 'it'\''s'"#
        );
        assert_eq!(super::shell_line(&["echo".into(), "".into()]), "echo ''");
    }
}
