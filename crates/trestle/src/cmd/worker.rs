//! `trestle worker`: lease and run jobs from a server until idle or stopped.

use crate::Conn;
use crate::output::usage;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use trestle_agent::WorkerConfig;
use trestle_core::parse::{parse_duration, parse_memory_mib};

/// `trestle worker` options.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Server URL(s), comma-separated or repeated (default: --url / TRESTLE_URL / client config).
    #[arg(long, value_delimiter = ',')]
    pub server: Vec<String>,
    /// CPUs to offer (default: all cores).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory to offer in MiB (default: the host's memory).
    #[arg(long)]
    pub mem_mib: Option<u64>,
    /// Memory to offer (512M, 16G); alternative to --mem-mib.
    #[arg(long, conflicts_with = "mem_mib")]
    pub mem: Option<String>,
    /// GPUs to offer.
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Exit after this long without work (30s, 5m); default: never.
    #[arg(long)]
    pub idle_exit: Option<String>,
    /// Root of the per-attempt scratch directories.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Name of the compute environment that launched this worker.
    #[arg(long)]
    pub compute_env: Option<String>,
    /// The id the launching provider knows this worker by (set by the
    /// local and Slurm providers).
    #[arg(long, env = "TRESTLE_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Jobs to lease beyond free slots (hides the lease round trip for short
    /// jobs; grows by itself when jobs are short; 0 turns it off).
    #[arg(long, default_value_t = 0)]
    pub prefetch: u32,
    /// How tasks are isolated: `none` (the default until isolation meets
    /// its cost target, see docs/benchmarks.md), `auto` (per-user when run
    /// as root, the bubblewrap sandbox where it works), `user` or
    /// `sandbox`.
    #[arg(long, env = "TRESTLE_ISOLATION", default_value = "none")]
    pub isolation: String,
    /// Most processes and threads per task.
    #[arg(long, env = "TRESTLE_TASK_PIDS_MAX", default_value_t = trestle_agent::DEFAULT_TASK_PIDS_MAX)]
    pub task_pids_max: u64,
    /// Keep every attempt's scratch directory after it ends (for debugging).
    #[arg(long, env = trestle_agent::KEEP_SCRATCH_ENV)]
    pub keep_scratch: bool,
    /// Do not keep a workspace tunnel to the servers (this worker then
    /// hosts no reachable workspaces).
    #[arg(long, env = "TRESTLE_NO_TUNNEL")]
    pub no_tunnel: bool,
    /// Paths this worker shares with the hosts jobs are submitted on
    /// (`/home,/scratch`): `#SBATCH` jobs from there run in their submit
    /// directory, as under Slurm.
    #[arg(long, env = "TRESTLE_SHARED_PATHS", value_delimiter = ',')]
    pub shared_path: Vec<String>,
    /// Directories where `#SBATCH` jobs may run in place although tasks do
    /// not run as their owner (`{user}`: the owner's name), e.g.
    /// `/scratch/{user}`.
    #[arg(long, env = "TRESTLE_ALLOWED_DIRS", value_delimiter = ',')]
    pub allowed_dir: Vec<String>,
    /// Time between resource samples of running tasks (5s, 1s).
    #[arg(long, env = "TRESTLE_SAMPLE_INTERVAL", default_value = "5s")]
    pub sample_interval: String,
}

/// Runs a worker until it is idle for `--idle-exit`, or SIGINT/SIGTERM
/// (then its running jobs are handed back to the queue).
pub async fn run(a: WorkerArgs, conn: &Conn) -> Result<ExitCode> {
    let (urls, token) = super::endpoint(conn);
    let servers = if a.server.is_empty() { urls } else { a.server };
    let mut cfg = WorkerConfig::new(servers, token);
    if let Some(c) = a.cpus {
        cfg.capacity.cpus = c;
    }
    if let Some(m) = a.mem_mib {
        cfg.capacity.mem_mib = m;
    }
    if let Some(m) = &a.mem {
        cfg.capacity.mem_mib = match parse_memory_mib("--mem", m) {
            Ok(v) => v,
            Err(e) => return usage(e.message),
        };
    }
    if let Some(g) = a.gpus {
        cfg.capacity.gpus = g;
    }
    if let Some(t) = &a.idle_exit {
        cfg.idle_exit = match parse_duration("--idle-exit", t, false) {
            Ok(s) => Some(std::time::Duration::from_secs(s)),
            Err(e) => return usage(e.message),
        };
    }
    if let Some(d) = a.work_dir {
        cfg.work_dir = d;
    }
    cfg.compute_env = a.compute_env;
    cfg.keep_scratch = a.keep_scratch;
    cfg.tunnel = !a.no_tunnel;
    cfg.instance_id = a.instance_id.filter(|i| !i.is_empty());
    cfg.prefetch = a.prefetch;
    cfg.isolation = match trestle_agent::IsolationSetting::parse(&a.isolation) {
        Some(i) => i,
        None => {
            return usage(format!(
                "--isolation: `{}` is not one of auto, user, sandbox, none",
                a.isolation
            ));
        }
    };
    cfg.task_pids_max = a.task_pids_max;
    cfg.shared_paths = a
        .shared_path
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    cfg.allowed_dirs = a
        .allowed_dir
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    for p in cfg.shared_paths.iter().chain(&cfg.allowed_dirs) {
        if !p.starts_with('/') {
            return usage(format!(
                "--shared-path/--allowed-dir: `{p}` is not an absolute path"
            ));
        }
    }
    cfg.sample_interval = match parse_duration("--sample-interval", &a.sample_interval, false) {
        Ok(s) if s > 0 => std::time::Duration::from_secs(s),
        Ok(_) => return usage("--sample-interval: must be at least 1s"),
        Err(e) => return usage(e.message),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::up::wait_for_signal().await;
        let _ = tx.send(true);
    });
    let exit = trestle_agent::run(cfg, rx).await?;
    tracing::info!(?exit, "worker stopped");
    Ok(ExitCode::SUCCESS)
}
