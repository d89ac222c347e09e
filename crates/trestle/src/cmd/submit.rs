//! `trestle submit`: one command, a JSON job file, or a folder plus the
//! script to run in it.

use super::client;
use super::upload::upload_folder;
use crate::Conn;
use crate::output::usage;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use trestle_core::parse::parse_env_pair;

/// Options of `trestle submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// Job name (default: the program's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Project to charge (default: your default project; see `trestle whoami`).
    #[arg(long)]
    pub project: Option<String>,
    /// Attempts before the job fails (default 1).
    #[arg(long)]
    pub attempts: Option<u32>,
    /// The job succeeds only if its output contains this string.
    #[arg(long)]
    pub success_string: Option<String>,
    /// Time limit per attempt (90s, 10m, 1h30m).
    #[arg(long)]
    pub timeout: Option<String>,
    /// CPU cores.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory (512M, 2G).
    #[arg(long)]
    pub mem: Option<String>,
    /// GPUs.
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Upload this folder as the job's inputs (staged into its scratch directory).
    #[arg(long, value_name = "DIR")]
    pub input: Option<PathBuf>,
    /// Attach a study: `NAME[/SUBDIR][:ro|:rw][=PATH]` (repeatable); it
    /// appears at PATH (default `studies/NAME`) in the scratch directory,
    /// announced in `TRESTLE_STUDY_<NAME>`.
    #[arg(long = "study", value_name = "NAME[:ro|:rw][=PATH]")]
    pub study: Vec<String>,
    /// With a folder argument: the script in it to run.
    #[arg(long, value_name = "SCRIPT")]
    pub run: Option<String>,
    /// A job file: the native JSON spec or the seed's job JSON.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Priority within the queue (higher runs first).
    #[arg(long)]
    pub priority: Option<i32>,
    /// Run as an array: `0-999`, `0-15:4`, `1,3,5-7`, `%N` caps how many
    /// run at once; each child gets TRESTLE_ARRAY_INDEX.
    #[arg(long, value_name = "SPEC")]
    pub array: Option<String>,
    /// Start once job ID has started (repeatable).
    #[arg(long, value_name = "ID")]
    pub after: Vec<i64>,
    /// Start once job ID succeeded; cancelled if it fails (repeatable).
    #[arg(long, value_name = "ID")]
    pub after_ok: Vec<i64>,
    /// Start once job ID failed or was cancelled (repeatable).
    #[arg(long, value_name = "ID", alias = "after-not-ok")]
    pub after_notok: Vec<i64>,
    /// Start once job ID ended, however (repeatable).
    #[arg(long, value_name = "ID")]
    pub after_any: Vec<i64>,
    /// Submit a pipeline file (TOML: named steps with `after` lists).
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// Wait until the job finishes; exit 0 only if it succeeded.
    #[arg(long)]
    pub wait: bool,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
    /// The folder to upload and run `--run SCRIPT` in.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub args: Vec<String>,
}

/// Quotes a string for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn flags_into(a: &SubmitArgs, job: &mut serde_json::Map<String, Value>) -> Result<()> {
    let mut set = |k: &str, v: Value| {
        job.insert(k.to_string(), v);
    };
    if let Some(v) = &a.name {
        set("name", json!(v));
    }
    if let Some(v) = &a.queue {
        set("queue", json!(v));
    }
    if let Some(v) = &a.project {
        set("project", json!(v));
    }
    if let Some(v) = a.attempts {
        set("attempts", json!(v));
    }
    if let Some(v) = &a.success_string {
        set("success_string", json!(v));
    }
    if let Some(v) = &a.timeout {
        set("timeout", json!(v));
    }
    if let Some(v) = a.cpus {
        set("cpus", json!(v));
    }
    if let Some(v) = &a.mem {
        set("memory", json!(v));
    }
    if let Some(v) = a.gpus {
        set("gpus", json!(v));
    }
    if let Some(v) = a.priority {
        set("priority", json!(v));
    }
    if let Some(v) = &a.array {
        set("array", json!(v));
    }
    let deps: Vec<Value> = [
        ("after", &a.after),
        ("after-ok", &a.after_ok),
        ("after-not-ok", &a.after_notok),
        ("after-any", &a.after_any),
    ]
    .iter()
    .flat_map(|(kind, ids)| ids.iter().map(move |id| json!({"kind": kind, "job": id})))
    .collect();
    if !deps.is_empty() {
        set("after", Value::Array(deps));
    }
    if !a.study.is_empty() {
        let mut list = Vec::new();
        for s in &a.study {
            match trestle_core::study::attach::parse("--study", s) {
                Ok(at) => list.push(serde_json::to_value(at)?),
                Err(e) => return usage(e.message),
            }
        }
        set("studies", Value::Array(list));
    }
    if !a.env.is_empty() {
        let mut env = serde_json::Map::new();
        for pair in &a.env {
            let (k, v) = match parse_env_pair("--env", pair) {
                Ok(kv) => kv,
                Err(e) => return usage(e.message),
            };
            env.insert(k, json!(v));
        }
        set("env", Value::Object(env));
    }
    Ok(())
}

/// Runs `trestle submit`.
pub async fn run(a: SubmitArgs, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    if let Some(p) = &a.pipeline {
        if a.file.is_some() || !a.args.is_empty() || a.dir.is_some() {
            return usage("give either --pipeline or a job, not both");
        }
        return super::pipeline::submit(&c, p, a.wait, a.json).await;
    }
    let mut job: serde_json::Map<String, Value> = if let Some(f) = &a.file {
        if !a.args.is_empty() || a.dir.is_some() {
            return usage("give either --file or a command, not both");
        }
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let cleaned = trestle_core::batch::spec::strip_trailing_commas(&text);
        let v: Value = serde_json::from_str(&cleaned)
            .with_context(|| format!("{} is not valid JSON", f.display()))?;
        match v {
            Value::Object(m) => m,
            _ => return usage(format!("{} must hold a JSON object", f.display())),
        }
    } else if let Some(script) = &a.run {
        let Some(dir) = &a.dir else {
            return usage("usage: trestle submit DIR --run SCRIPT");
        };
        if !a.args.is_empty() {
            return usage("give either DIR --run SCRIPT or -- COMMAND, not both");
        }
        if !dir.join(script).is_file() {
            return usage(format!("{} has no file `{script}`", dir.display()));
        }
        let upload = upload_folder(&c, dir).await?;
        let q = sh_quote(script);
        let mut m = serde_json::Map::new();
        m.insert(
            "command".into(),
            json!(format!("chmod +x {q} && exec ./{q}")),
        );
        m.insert("inputs".into(), json!(upload));
        m.entry("name").or_insert(json!(script));
        m
    } else {
        if let Some(d) = &a.dir {
            return usage(format!(
                "`{}`: a folder needs `--run SCRIPT`; a command goes after `--` (trestle submit [OPTIONS] -- COMMAND ARGS...)",
                d.display()
            ));
        }
        if a.args.is_empty() {
            return usage("nothing to run: trestle submit [OPTIONS] -- COMMAND ARGS...");
        }
        let mut m = serde_json::Map::new();
        m.insert("command".into(), json!(a.args));
        m
    };
    // The seed's format takes no extra fields; flags apply to the native one.
    let seed = job.contains_key("job_id") || job.contains_key("commands");
    if !seed {
        flags_into(&a, &mut job)?;
    }
    if let Some(dir) = &a.input {
        if seed {
            return usage("--input cannot be combined with a seed-format job file");
        }
        let upload = upload_folder(&c, dir).await?;
        job.insert("inputs".into(), json!(upload));
    }
    let view = c.submit_job(&Value::Object(job)).await?;
    if a.json && !a.wait {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else if !a.wait {
        println!("{}", view.id);
    }
    if a.wait {
        if !a.json {
            eprintln!("submitted job {}", view.id);
        }
        return super::jobs::wait_ids(&c, &[view.id], a.json).await;
    }
    Ok(ExitCode::SUCCESS)
}
