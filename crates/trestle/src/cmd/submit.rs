//! `trestle submit`: one command, a JSON job file, or a folder plus the
//! script to run in it.

use super::client;
use super::upload::upload_folder;
use crate::Conn;
use crate::output::usage;
use anyhow::Result;
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
    /// Pass your environment, as sbatch does: `ALL` (without variables
    /// that look like secrets), `NONE` (the default of `submit`), or
    /// `VAR,VAR=value,...`; `--env` wins over it.
    #[arg(long, value_name = "ALL|NONE|VARS")]
    pub export: Option<String>,
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
    /// With `--array`: once this many children failed, cancel the rest.
    #[arg(long, value_name = "N")]
    pub max_failures: Option<u32>,
    /// Start once job ID has started (repeatable; `12_3` for an array child).
    #[arg(long, value_name = "ID")]
    pub after: Vec<String>,
    /// Start once job ID succeeded; cancelled if it fails (repeatable).
    #[arg(long, value_name = "ID")]
    pub after_ok: Vec<String>,
    /// Start once job ID failed or was cancelled (repeatable).
    #[arg(long, value_name = "ID", alias = "after-not-ok")]
    pub after_notok: Vec<String>,
    /// Start once job ID ended, however (repeatable).
    #[arg(long, value_name = "ID")]
    pub after_any: Vec<String>,
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
    pub words: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub args: Vec<String>,
}

/// Quotes a string for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn flags_into(
    a: &SubmitArgs,
    deps: Vec<Value>,
    job: &mut serde_json::Map<String, Value>,
) -> Result<()> {
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
    if let Some(n) = a.max_failures {
        if a.array.is_none() && !job.contains_key("array") {
            return usage("--max-failures applies to arrays: add --array (e.g. --array 0-99)");
        }
        job.insert("max_failures".into(), json!(n));
    }
    let mut set = |k: &str, v: Value| {
        job.insert(k.to_string(), v);
    };
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
    if !a.env.is_empty() || a.export.is_some() {
        let mut env = serde_json::Map::new();
        if let Some(x) = &a.export {
            let mine: std::collections::BTreeMap<String, String> = std::env::vars().collect();
            let passed = trestle_core::batch::sbatch::export_env(Some(x), &mine)
                .map_err(|e| crate::output::UsageError(e.message))?;
            for (k, v) in passed {
                env.insert(k, json!(v));
            }
        }
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

/// The dependencies of `--after*`, their ids resolved (`12_3` names an
/// array child).
async fn dependencies(c: &trestle_client::Client, a: &SubmitArgs) -> Result<Vec<Value>> {
    let mut deps = Vec::new();
    for (kind, refs) in [
        ("after", &a.after),
        ("after-ok", &a.after_ok),
        ("after-not-ok", &a.after_notok),
        ("after-any", &a.after_any),
    ] {
        for r in refs {
            let id = super::jobref::resolve(c, r).await?;
            deps.push(json!({"kind": kind, "job": id}));
        }
    }
    Ok(deps)
}

/// Reads a `--file` job: a missing file or invalid JSON is input rejected
/// (exit 2), not a failure of Trestle.
fn read_job_file(f: &std::path::Path) -> Result<serde_json::Map<String, Value>> {
    let text = match std::fs::read_to_string(f) {
        Ok(t) => t,
        Err(e) => return usage(format!("cannot read the job file {}: {e}", f.display())),
    };
    let cleaned = trestle_core::batch::spec::strip_trailing_commas(&text);
    match serde_json::from_str::<Value>(&cleaned) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => usage(format!("{} must hold a JSON object", f.display())),
        Err(e) => usage(format!("{} is not valid JSON: {e}", f.display())),
    }
}

/// A script without a `#!` line runs under `sh`; one whose name says it is
/// another language would fail there with a puzzling error, so it is
/// refused with the fix.
fn check_interpreter(path: &std::path::Path, shown: &str) -> Result<()> {
    let head = std::fs::read(path)
        .map(|b| b.starts_with(b"#!"))
        .unwrap_or(true);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let language = match ext {
        "py" => Some(("Python", "#!/usr/bin/env python3", "python3")),
        "R" | "r" => Some(("R", "#!/usr/bin/env Rscript", "Rscript")),
        "pl" => Some(("Perl", "#!/usr/bin/env perl", "perl")),
        "rb" => Some(("Ruby", "#!/usr/bin/env ruby", "ruby")),
        "jl" => Some(("Julia", "#!/usr/bin/env julia", "julia")),
        _ => None,
    };
    match language {
        Some((lang, shebang, interp)) if !head => usage(format!(
            "`{shown}` looks like {lang} but has no `#!` line, so it would run under sh; \
             add `{shebang}` as its first line, or name the interpreter: -- {interp} {shown}"
        )),
        _ => Ok(()),
    }
}

/// The rule for a command that names a file in the current directory
/// (`./simulate.sh`, `scripts/run.sh`): the file is uploaded with the job
/// and runs from the job's scratch directory, where it lands at the same
/// relative path. Returns the file's relative path, if the command is one.
fn local_program(args: &[String]) -> Option<String> {
    let first = args.first()?;
    if first.starts_with('/') || !first.contains('/') {
        return None;
    }
    let path = std::path::Path::new(first);
    if !path.is_file() {
        return None;
    }
    trestle_core::paths::normalize_relative("command", first).ok()
}

/// Runs `trestle submit`.
pub async fn run(a: SubmitArgs, conn: &Conn) -> Result<ExitCode> {
    if a.words.len() > 1 {
        let line = a.words.join(" ");
        return usage(format!(
            "`{line}`: a command goes after `--`: trestle submit [OPTIONS] -- {line}"
        ));
    }
    let dir: Option<PathBuf> = a.words.first().map(PathBuf::from);
    let c = client(conn)?;
    if let Some(p) = &a.pipeline {
        if a.file.is_some() || !a.args.is_empty() || dir.is_some() {
            return usage("give either --pipeline or a job, not both");
        }
        return super::pipeline::submit(&c, p, a.wait, a.json).await;
    }
    let deps = dependencies(&c, &a).await?;
    let mut extra_file = None;
    let mut job: serde_json::Map<String, Value> = if let Some(f) = &a.file {
        if !a.args.is_empty() || dir.is_some() {
            return usage("give either --file or a command, not both");
        }
        read_job_file(f)?
    } else if let Some(script) = &a.run {
        let Some(dir) = &dir else {
            return usage("usage: trestle submit DIR --run SCRIPT");
        };
        if !a.args.is_empty() {
            return usage("give either DIR --run SCRIPT or -- COMMAND, not both");
        }
        if !dir.is_dir() {
            return usage(format!("`{}` is not a folder", dir.display()));
        }
        if !dir.join(script).is_file() {
            return usage(format!("{} has no file `{script}`", dir.display()));
        }
        check_interpreter(&dir.join(script), script)?;
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
        if let Some(d) = &dir {
            let shown = d.display();
            return if d.is_file() {
                usage(format!(
                    "`{shown}` is a file; to run it: trestle submit [OPTIONS] -- {shown} (a file in this folder is uploaded with the job)"
                ))
            } else if d.is_dir() {
                usage(format!(
                    "`{shown}` is a folder: name the script to run in it with `--run SCRIPT` (trestle submit {shown} --run run.sh)"
                ))
            } else {
                usage(format!(
                    "`{shown}` is neither a file nor a folder here; a command goes after `--`: trestle submit [OPTIONS] -- {shown}"
                ))
            };
        }
        if a.args.is_empty() {
            return usage("nothing to run: trestle submit [OPTIONS] -- COMMAND ARGS...");
        }
        let mut m = serde_json::Map::new();
        match local_program(&a.args) {
            Some(rel) => {
                check_interpreter(std::path::Path::new(&a.args[0]), &a.args[0])?;
                // Uploaded files need not keep their mode: make it runnable.
                let q = sh_quote(&rel);
                let rest: Vec<String> = a.args[1..].iter().map(|s| sh_quote(s)).collect();
                let tail = if rest.is_empty() {
                    String::new()
                } else {
                    format!(" {}", rest.join(" "))
                };
                m.insert(
                    "command".into(),
                    json!(format!("chmod +x ./{q} && exec ./{q}{tail}")),
                );
                m.insert("name".into(), json!(rel.rsplit('/').next().unwrap_or(&rel)));
                extra_file = Some(rel);
            }
            None => {
                m.insert("command".into(), json!(a.args));
            }
        }
        m
    };
    // The seed's format takes no extra fields; flags apply to the native one.
    let seed = job.contains_key("job_id") || job.contains_key("commands");
    if !seed {
        flags_into(&a, deps, &mut job)?;
    }
    if a.input.is_some() || extra_file.is_some() {
        if seed {
            return usage("--input cannot be combined with a seed-format job file");
        }
        let upload =
            super::upload::upload_with(&c, a.input.as_deref(), extra_file.as_deref()).await?;
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
