//! `trestle`: one binary for the CLI, the server (`up`, `server`) and the
//! worker (`worker`).
//!
//! Exit codes: 0 success; 1 a job failed or was cancelled (`wait`,
//! `submit --wait`); 2 bad usage or input rejected by the server; 3 the
//! server could not be reached or another error.

mod cmd;
mod output;
mod settings;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "trestle",
    version,
    about = "A research computing workbench with a decoupled batch scheduler"
)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How the CLI reaches a server.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// Server URL(s), comma-separated (default: from `trestle up`'s client config).
    #[arg(long, global = true, env = "TRESTLE_URL")]
    pub url: Option<String>,
    /// API token (default: from the client config).
    #[arg(long, global = true, env = "TRESTLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where the server keeps its state and listens.
#[derive(Args, Clone, Debug, Default)]
pub struct ServerArgs {
    /// Config file (default: ./trestle.toml when present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory (default ./trestle-data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://... (default: SQLite in the data directory).
    #[arg(long)]
    pub database: Option<String>,
    /// Object storage: a directory or s3://bucket/prefix (default: DATA/objects).
    #[arg(long)]
    pub objects: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run everything on this machine: server, local workers, SQLite, local storage.
    Up(ServerArgs),
    /// Run the API server only (workers connect with `trestle worker`).
    Server(ServerArgs),
    /// Run a worker that leases jobs from a server.
    Worker(cmd::worker::WorkerArgs),
    /// Submit a job: `trestle submit [OPTIONS] -- COMMAND ARGS...`.
    Submit(Box<cmd::submit::SubmitArgs>),
    /// List jobs.
    Jobs(cmd::jobs::JobsArgs),
    /// Show one job.
    Job {
        #[command(subcommand)]
        cmd: cmd::jobs::JobCmd,
    },
    /// Print a job's output (stdout and stderr).
    Logs(cmd::jobs::LogsArgs),
    /// Cancel jobs: IDs (`12`, `12_3` for an array child) or scancel-style
    /// `--name/--state/--partition`; cancelling an array or pipeline
    /// cancels its unfinished children.
    Cancel(cmd::flow::CancelArgs),
    /// Run a job's work again as a new job: `12`, or `12_3` for one task
    /// of an array (it runs as a plain job with the task's index).
    Resubmit(cmd::flow::ResubmitArgs),
    /// Submit an unmodified Slurm batch script (`#SBATCH` directives).
    Sbatch(cmd::sbatch::SbatchArgs),
    /// Print job state changes; `-f` follows them live.
    Events(cmd::flow::EventsArgs),
    /// Wait for jobs to finish; exit 0 only if all succeeded.
    Wait(cmd::jobs::IdsArgs),
    /// Download a job's output files.
    Outputs(cmd::jobs::OutputsArgs),
    /// List live workers.
    Workers(cmd::jobs::JsonArgs),
    /// Measure throughput and submit-to-start latency through the API.
    Bench(cmd::bench::BenchArgs),
    /// Log in (password, token, or --sso through the identity provider) and store a token in the client config.
    Login(cmd::identity::LoginArgs),
    /// Show the user and projects of the configured credential.
    Whoami(cmd::jobs::JsonArgs),
    /// API tokens: create, list, revoke.
    Token {
        #[command(subcommand)]
        cmd: cmd::identity::TokenCmd,
    },
    /// Users: add, list, disable, set a role (admins).
    User {
        #[command(subcommand)]
        cmd: cmd::users::UserCmd,
    },
    /// Projects and their members.
    Project {
        #[command(subcommand)]
        cmd: cmd::projects::ProjectCmd,
    },
    /// Indexes (funding sources) that projects are charged to.
    Index {
        #[command(subcommand)]
        cmd: cmd::projects::IndexCmd,
    },
    /// The audit trail: named and ad-hoc queries, unused credentials (admins).
    Audit {
        #[command(subcommand)]
        cmd: cmd::audit::AuditCmd,
    },
    /// Compute environments: list, show (with events), set from a file, delete.
    Ce {
        #[command(subcommand)]
        cmd: cmd::compute::CeCmd,
    },
    /// Queues: list, set priority and compute environments, delete.
    Queue {
        #[command(subcommand)]
        cmd: cmd::compute::QueueCmd,
    },
    /// Which server runs each cluster-wide background loop.
    Leaders(cmd::jobs::JsonArgs),
    /// Break-glass recovery on the server host (direct database access).
    Admin {
        #[command(subcommand)]
        cmd: cmd::admin::AdminCmd,
    },
    /// Interactive workspaces: launch, list, open, stop, start, terminate;
    /// types and configurations (admins).
    Ws {
        #[command(subcommand)]
        cmd: cmd::ws::WsCmd,
    },
    /// Studies (research data sets): create, list, show, ls, upload,
    /// download, grant, revoke, rm.
    Study {
        #[command(subcommand)]
        cmd: cmd::study::StudyCmd,
    },
    /// Users from identity providers: sync the LDAP directory now (admins).
    Identity {
        #[command(subcommand)]
        cmd: cmd::directory::IdentityCmd,
    },
    /// Charges over the last days, by user, project, index, env, kind or day.
    Costs(cmd::costs::CostsArgs),
    /// Budgets: what is spent, set or raise one, let a job past one.
    Budget {
        #[command(subcommand)]
        cmd: cmd::costs::BudgetCmd,
    },
    /// Notifications: targets, rules, subscriptions, tests, deliveries.
    Notify {
        #[command(subcommand)]
        cmd: cmd::notify::NotifyCmd,
    },
    /// The secrets keyring: rotate its key (admins).
    Secrets {
        #[command(subcommand)]
        cmd: cmd::notify::SecretsCmd,
    },
    /// Slurm's commands as a drop-in: `install-shims DIR` puts sbatch,
    /// squeue, sacct, scancel, srun, sinfo, scontrol, sstat, sacctmgr and
    /// sshare there (docs/slurm.md).
    Slurm {
        #[command(subcommand)]
        cmd: cmd::slurm::SlurmCmd,
    },
}

fn main() -> ExitCode {
    // Run as `sbatch`, `squeue`, ...: the Slurm drop-in.
    if let Some(code) = cmd::slurm::dispatch() {
        return code;
    }
    let mut cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Worker(_)) {
        // Before any thread exists: the worker's credential leaves its
        // environment (and /proc/PID/environ) before it starts any task.
        // SAFETY: still single-threaded (no runtime, no logging yet).
        match unsafe { trestle_agent::take_credential() } {
            Ok(token) => {
                if cli.conn.token.is_none() {
                    cli.conn.token = token;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if matches!(cli.cmd, Cmd::Up(_) | Cmd::Server(_)) {
        // The server's database, objects and logs are its own: no task of
        // another Unix user on this host may read them.
        // SAFETY: umask(2) has no preconditions.
        unsafe {
            libc::umask(0o077);
        }
    }
    let server_side = matches!(cli.cmd, Cmd::Up(_) | Cmd::Server(_) | Cmd::Worker(_));
    if !server_side {
        // A command whose output is piped into `head` ends quietly when the
        // pipe closes, as other command-line tools do, instead of failing
        // to print.
        // SAFETY: signal(2) with SIG_DFL has no preconditions; no thread
        // exists yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let default_filter = if server_side { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TRESTLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log redirected to a file stays plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Up(a) => cmd::up::run(a, true).await,
            Cmd::Server(a) => cmd::up::run(a, false).await,
            Cmd::Worker(a) => cmd::worker::run(a, &cli.conn).await,
            Cmd::Submit(a) => cmd::submit::run(*a, &cli.conn).await,
            Cmd::Jobs(a) => cmd::jobs::list(a, &cli.conn).await,
            Cmd::Job { cmd } => cmd::jobs::job(cmd, &cli.conn).await,
            Cmd::Logs(a) => cmd::jobs::logs(a, &cli.conn).await,
            Cmd::Cancel(a) => cmd::flow::cancel(a, &cli.conn).await,
            Cmd::Resubmit(a) => cmd::flow::resubmit(a, &cli.conn).await,
            Cmd::Sbatch(a) => cmd::sbatch::run(a, &cli.conn).await,
            Cmd::Events(a) => cmd::flow::events(a, &cli.conn).await,
            Cmd::Wait(a) => cmd::jobs::wait(a, &cli.conn).await,
            Cmd::Outputs(a) => cmd::jobs::outputs(a, &cli.conn).await,
            Cmd::Workers(a) => cmd::jobs::workers(a, &cli.conn).await,
            Cmd::Bench(a) => cmd::bench::run(a, &cli.conn).await,
            Cmd::Login(a) => cmd::identity::login(a, &cli.conn).await,
            Cmd::Whoami(a) => cmd::identity::whoami(a.json, &cli.conn).await,
            Cmd::Token { cmd } => cmd::identity::token(cmd, &cli.conn).await,
            Cmd::User { cmd } => cmd::users::run(cmd, &cli.conn).await,
            Cmd::Project { cmd } => cmd::projects::project(cmd, &cli.conn).await,
            Cmd::Index { cmd } => cmd::projects::index(cmd, &cli.conn).await,
            Cmd::Audit { cmd } => cmd::audit::run(cmd, &cli.conn).await,
            Cmd::Ce { cmd } => cmd::compute::ce(cmd, &cli.conn).await,
            Cmd::Queue { cmd } => cmd::compute::queue(cmd, &cli.conn).await,
            Cmd::Leaders(a) => cmd::compute::leaders(a.json, &cli.conn).await,
            Cmd::Admin { cmd } => cmd::admin::run(cmd).await,
            Cmd::Identity { cmd } => cmd::directory::run(cmd, &cli.conn).await,
            Cmd::Costs(a) => cmd::costs::costs(a, &cli.conn).await,
            Cmd::Budget { cmd } => cmd::costs::budget(cmd, &cli.conn).await,
            Cmd::Notify { cmd } => cmd::notify::run(cmd, &cli.conn).await,
            Cmd::Secrets { cmd } => cmd::notify::secrets(cmd, &cli.conn).await,
            Cmd::Ws { cmd } => cmd::ws::run(cmd, &cli.conn).await,
            Cmd::Study { cmd } => cmd::study::run(cmd, &cli.conn).await,
            Cmd::Slurm { cmd } => cmd::slurm::run(cmd),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", output::describe(&e));
            output::exit_code_for(&e)
        }
    }
}
