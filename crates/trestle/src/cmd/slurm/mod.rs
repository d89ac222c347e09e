//! Slurm's commands as a drop-in: `trestle slurm install-shims DIR` links
//! `sbatch`, `squeue`, `scancel`, `sacct`, `srun`, `sinfo`, `scontrol`,
//! `sstat`, `sacctmgr` and `sshare` to this binary, which dispatches on the
//! name it was run as and talks to the server of the client config. Each
//! prints what Slurm prints, so that scripts and workflow tools parse it
//! unchanged; an option the drop-in does not handle is refused with its
//! name, never ignored (docs/slurm.md lists the exceptions).
//!
//! With `TRESTLE_SHIM_LOG=FILE`, every call is appended to FILE as one
//! JSON line (program, arguments, exit code, milliseconds).

mod args;
mod info;
mod queue;
mod srun;

use crate::Conn;
use anyhow::Result;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trestle_client::{Client, JobQuery};
use trestle_core::JobState;
use trestle_core::api::JobView;

use crate::output::UsageError as Refused;

/// The commands the drop-in provides.
pub const COMMANDS: &[&str] = &[
    "sbatch", "squeue", "scancel", "sacct", "srun", "sinfo", "scontrol", "sstat", "sacctmgr",
    "sshare",
];

/// `trestle slurm ...`.
#[derive(Subcommand, Debug)]
pub enum SlurmCmd {
    /// Put Slurm's commands (links to this binary) in DIR; put DIR first
    /// on PATH and existing scripts and tools use Trestle.
    InstallShims {
        /// Where the commands go (created if missing).
        dir: PathBuf,
        /// Replace files of those names that are not links already.
        #[arg(long)]
        force: bool,
    },
}

/// `trestle slurm install-shims`.
pub fn run(cmd: SlurmCmd) -> Result<ExitCode> {
    match cmd {
        SlurmCmd::InstallShims { dir, force } => install(&dir, force),
    }
}

fn install(dir: &Path, force: bool) -> Result<ExitCode> {
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(dir)?;
    for name in COMMANDS {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() || force => std::fs::remove_file(&link)?,
            Ok(_) => {
                return crate::output::usage(format!(
                    "{} exists and is not a link; remove it or pass --force",
                    link.display()
                ));
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&exe, &link)?;
    }
    println!(
        "{} Slurm commands in {} (linked to {}); put it first on PATH:\n  export PATH=\"{}:$PATH\"",
        COMMANDS.len(),
        dir.display(),
        exe.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs a Slurm command when the binary was invoked under one of their
/// names; `None` otherwise.
pub fn dispatch() -> Option<ExitCode> {
    let argv: Vec<String> = std::env::args().collect();
    let name = Path::new(argv.first()?).file_name()?.to_str()?.to_string();
    if !COMMANDS.contains(&name.as_str()) {
        return None;
    }
    let started = std::time::Instant::now();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: error: cannot start: {e}");
            return Some(ExitCode::from(1));
        }
    };
    let conn = Conn {
        url: std::env::var("TRESTLE_URL").ok().filter(|s| !s.is_empty()),
        token: std::env::var("TRESTLE_TOKEN")
            .ok()
            .filter(|s| !s.is_empty()),
    };
    let args = argv[1..].to_vec();
    let code = match rt.block_on(run_command(&name, &args, &conn)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: error: {}", crate::output::describe(&e));
            1
        }
    };
    log_call(&name, &args, code, started.elapsed());
    Some(ExitCode::from(code))
}

async fn run_command(name: &str, args: &[String], conn: &Conn) -> Result<u8> {
    match name {
        "sbatch" => {
            let a = super::sbatch::SbatchArgs {
                args: args.to_vec(),
            };
            let code = super::sbatch::run(a, conn).await?;
            Ok(if code == ExitCode::SUCCESS { 0 } else { 1 })
        }
        "squeue" => queue::squeue(args, conn).await,
        "sacct" => queue::sacct(args, conn).await,
        "scancel" => queue::scancel(args, conn).await,
        "srun" => srun::srun(args).await,
        "sinfo" => info::sinfo(args, conn).await,
        "scontrol" => info::scontrol(args, conn).await,
        "sstat" => info::sstat(args, conn).await,
        "sacctmgr" => info::sacctmgr(args, conn).await,
        "sshare" => info::sshare(args, conn).await,
        other => Err(Refused(format!("`{other}` is not one of Trestle's Slurm commands")).into()),
    }
}

/// Appends one line per call to `TRESTLE_SHIM_LOG`, when set: created
/// private (0600), never through a symbolic link, with the values of
/// `--export=K=V` left out. Inside a job (its `srun` calls) the shim runs
/// with the job's own confinement, so it can write nowhere the job could
/// not.
fn log_call(name: &str, args: &[String], code: u8, took: std::time::Duration) {
    let Ok(path) = std::env::var("TRESTLE_SHIM_LOG") else {
        return;
    };
    let shown: Vec<String> = args.iter().map(|a| redact(a)).collect();
    let line = serde_json::json!({
        "program": name,
        "args": shown,
        "exit": code,
        "ms": took.as_millis() as u64,
    });
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        // One write per line: appends from concurrent calls (srun in
        // parallel jobs) never interleave.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// `--export=A=secret,B` as `--export=A=…,B`.
fn redact(arg: &str) -> String {
    let Some(list) = arg.strip_prefix("--export=") else {
        return arg.to_string();
    };
    let items: Vec<String> = list
        .split(',')
        .map(|i| match i.split_once('=') {
            Some((k, _)) => format!("{k}=…"),
            None => i.to_string(),
        })
        .collect();
    format!("--export={}", items.join(","))
}

/// The connected client.
fn client(conn: &Conn) -> Result<Client> {
    super::client(conn)
}

/// Every job the query matches, page by page.
async fn all_jobs(c: &Client, q: JobQuery) -> Result<Vec<JobView>> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = c
            .list_jobs(&JobQuery {
                before,
                limit: Some(1000),
                ..q.clone()
            })
            .await?;
        out.extend(page.jobs);
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    Ok(out)
}

/// The jobs `-j` names: `ID` (an array: the array and its children),
/// `ID_INDEX`, comma-separated. Unknown ids are left out, as Slurm does.
async fn named_jobs(c: &Client, list: &str) -> Result<Vec<JobView>> {
    let mut out: Vec<JobView> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let part = part.split('.').next().unwrap_or(part);
        let id = match super::jobref::parse(part) {
            Ok(super::jobref::JobRef::Id(id)) => id,
            Ok(super::jobref::JobRef::Child { .. }) => {
                match super::jobref::resolve(c, part).await {
                    Ok(id) => id,
                    Err(_) => continue,
                }
            }
            Err(_) => return Err(Refused(format!("Invalid job id: {part}")).into()),
        };
        let j = match c.get_job(id).await {
            Ok(j) => j,
            Err(e) if e.status() == Some(404) => continue,
            Err(e) => return Err(e.into()),
        };
        if !j.flow.kind.is_job() {
            let kids = all_jobs(
                c,
                JobQuery {
                    parent: Some(j.id),
                    ..Default::default()
                },
            )
            .await?;
            out.push(j);
            out.extend(kids);
        } else {
            out.push(j);
        }
    }
    out.sort_by_key(|j| j.id);
    out.dedup_by_key(|j| j.id);
    Ok(out)
}

/// The caller's user name.
async fn me(c: &Client) -> Result<String> {
    let w: trestle_core::api::identity::WhoAmI = c
        .call::<(), _>(trestle_client::Method::GET, &["whoami"], &[], None)
        .await?;
    Ok(w.user.map(|u| u.name).unwrap_or_default())
}

/// Non-terminal states (what `squeue` shows by default).
fn active_states() -> Vec<JobState> {
    vec![
        JobState::Submitted,
        JobState::Pending,
        JobState::Runnable,
        JobState::Starting,
        JobState::Running,
    ]
}
