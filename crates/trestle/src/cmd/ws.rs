//! `trestle ws ...`: workspace types and configurations (admins), and
//! launching, listing and managing workspaces.

use super::client;
use crate::Conn;
use crate::output::{duration, table, time, usage};
use anyhow::{Context, Result};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use trestle_client::{Client, Method};
use trestle_core::api::workspace::{
    ConfigView, ExtendRequest, LaunchRequest, ShareRequest, TypeView, WorkspaceView,
};
use trestle_core::workspace::WorkspaceState;

/// `trestle ws ...`.
#[derive(Subcommand, Debug)]
pub enum WsCmd {
    /// Workspace types (latest versions; `--all` for every version).
    Types {
        /// Every version.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import, approve or revoke a type version (admins).
    Type {
        #[command(subcommand)]
        cmd: TypeCmd,
    },
    /// Configurations you may launch (admins: all).
    Configs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create, replace or delete a configuration (admins).
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Launch a configuration.
    Launch {
        /// The configuration.
        config: String,
        /// A name (default: the configuration's).
        #[arg(long)]
        name: Option<String>,
        /// The project charged (default: yours).
        #[arg(long)]
        project: Option<String>,
        /// A parameter value, `KEY=VALUE` (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Wait until it is running (or has failed), showing progress.
        #[arg(long)]
        wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Your workspaces (and those shared with you).
    List {
        /// Everyone's (admins).
        #[arg(long)]
        all: bool,
        /// Include terminated ones.
        #[arg(long)]
        terminated: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one workspace.
    Show {
        /// Id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a workspace's URL and open it in a browser where there is one.
    Open {
        /// Id.
        id: i64,
    },
    /// A shell in the workspace, through the server (`-- CMD ARGS` runs a
    /// command instead); exits with its exit code.
    Connect {
        /// Id.
        id: i64,
        /// The command (default: a login shell).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Carry a local TCP port to a port of the workspace: `[LOCAL:]PORT`.
    Forward {
        /// Id.
        id: i64,
        /// `[LOCAL:]PORT`.
        ports: String,
    },
    /// Print the app's output (its session's log).
    Log {
        /// Id.
        id: i64,
    },
    /// Stop a workspace (its home is saved).
    Stop {
        /// Id.
        id: i64,
        /// Wait until it is stopped.
        #[arg(long)]
        wait: bool,
    },
    /// Start a stopped or failed workspace (its home is restored).
    Start {
        /// Id.
        id: i64,
        /// Wait until it is running.
        #[arg(long)]
        wait: bool,
    },
    /// Terminate a workspace and delete its home.
    Terminate {
        /// Id.
        id: i64,
        /// Wait until it is terminated.
        #[arg(long)]
        wait: bool,
    },
    /// Extend a running workspace's lifetime (`1h`).
    Extend {
        /// Id.
        id: i64,
        /// How much longer.
        by: String,
    },
    /// Share a workspace with its project's members (`--off` to stop).
    Share {
        /// Id.
        id: i64,
        /// Stop sharing.
        #[arg(long)]
        off: bool,
    },
    /// Grant yourself access to a user's workspace for an hour (admins; audited).
    Assist {
        /// Id.
        id: i64,
    },
}

/// `trestle ws type ...`.
#[derive(Subcommand, Debug)]
pub enum TypeCmd {
    /// Import a type version from a TOML or JSON file (not approved).
    Import {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Approve a version: `NAME@VERSION`.
    Approve {
        /// `NAME@VERSION`.
        id: String,
    },
    /// Revoke a version: `NAME@VERSION`.
    Revoke {
        /// `NAME@VERSION`.
        id: String,
    },
}

/// `trestle ws config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Create or replace a configuration from a TOML or JSON file.
    Set {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Delete a configuration.
    Rm {
        /// Name.
        name: String,
    },
}

/// Reads a TOML or JSON file as JSON.
fn read_doc(path: &std::path::Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()));
    }
    let v: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    Ok(serde_json::to_value(v)?)
}

fn split_id(id: &str) -> Result<(&str, &str)> {
    match id.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n, v)),
        _ => usage(format!("`{id}` is not NAME@VERSION")),
    }
}

fn print_types(all: &[TypeView]) {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|t| {
            vec![
                format!("{}@{}", t.spec.name, t.spec.version),
                format!("{:?}", t.spec.app).to_lowercase(),
                t.approval.as_str().to_string(),
                format!("{} CPU, {} MiB", t.spec.cpus, t.spec.mem_mib),
                t.spec.description.chars().take(60).collect(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["TYPE", "APP", "APPROVAL", "DEFAULTS", "DESCRIPTION"],
            &rows
        )
    );
}

fn print_configs(all: &[ConfigView]) {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|c| {
            let k = &c.config;
            vec![
                k.name.clone(),
                k.type_id(),
                format!(
                    "{} CPU, {} MiB{}",
                    k.cpus,
                    k.mem_mib,
                    if k.gpus > 0 {
                        format!(", {} GPU", k.gpus)
                    } else {
                        String::new()
                    }
                ),
                k.queue.clone(),
                format!("{:.2}/h", k.cost_per_hour),
                duration(k.idle_timeout_secs as i64 * 1000),
                duration(k.max_lifetime_secs as i64 * 1000),
                if c.launchable {
                    "yes".into()
                } else {
                    format!("no ({})", c.type_approval.as_str())
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "CONFIG",
                "TYPE",
                "SHAPE",
                "QUEUE",
                "COST",
                "IDLE",
                "LIFETIME",
                "LAUNCHABLE"
            ],
            &rows
        )
    );
}

fn time_left(w: &WorkspaceView) -> String {
    match w.deadline {
        Some(d) => duration((d - trestle_core::clock::now_ms()).max(0)),
        None => "-".into(),
    }
}

fn print_workspaces(all: &[WorkspaceView]) {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.name.clone(),
                w.owner.clone(),
                w.config.clone(),
                format!(
                    "{}{}",
                    w.state,
                    if w.type_revoked {
                        " (type revoked)"
                    } else {
                        ""
                    }
                ),
                w.worker.clone().unwrap_or_else(|| "-".into()),
                time_left(w),
                time(w.created_at),
                w.url
                    .clone()
                    .or_else(|| w.reason.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ID",
                "NAME",
                "OWNER",
                "CONFIG",
                "STATE",
                "WORKER",
                "LEFT",
                "LAUNCHED",
                "URL / REASON"
            ],
            &rows
        )
    );
}

fn print_one(w: &WorkspaceView) {
    println!("workspace {} ({})", w.id, w.name);
    println!(
        "  owner:     {}{}",
        w.owner,
        w.project
            .as_ref()
            .map(|p| format!(" (project {p})"))
            .unwrap_or_default()
    );
    println!("  config:    {} ({})", w.config, w.type_id);
    if w.type_revoked {
        println!("  type:      REVOKED by an admin after launch");
    }
    println!("  state:     {}", w.state);
    if let Some(r) = &w.reason {
        println!("  reason:    {r}");
    }
    println!(
        "  shape:     {} CPU, {} MiB, {:.2}/h",
        w.cpus, w.mem_mib, w.cost_per_hour
    );
    if let Some(wk) = &w.worker {
        println!("  worker:    {wk}");
    }
    if let Some(u) = &w.url {
        println!("  url:       {u}");
    }
    if w.deadline.is_some() {
        println!("  time left: {}", time_left(w));
    }
    if let Some(a) = w.last_activity {
        println!(
            "  active:    {} ago (idle stop after {})",
            duration((trestle_core::clock::now_ms() - a).max(0)),
            duration(w.idle_timeout_secs as i64 * 1000)
        );
    }
    if let Some(b) = w.home_bytes {
        println!(
            "  home:      {b} bytes saved {}",
            w.home_saved_at.map(time).unwrap_or_default()
        );
    }
    if let Some(j) = w.job_id {
        println!(
            "  session:   job {j} (`trestle ws log {}` prints the app's output)",
            w.id
        );
    }
}

/// Polls workspace `id` until `done` holds, with a spinner showing its state.
async fn wait_for(
    c: &Client,
    id: i64,
    done: impl Fn(WorkspaceState) -> bool,
) -> Result<WorkspaceView> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} workspace {prefix}: {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(id.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let w: WorkspaceView = c
            .call::<(), _>(Method::GET, &["workspaces", &id.to_string()], &[], None)
            .await?;
        bar.set_message(w.state.to_string());
        if done(w.state) {
            bar.finish_and_clear();
            return Ok(w);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn settled(s: WorkspaceState) -> bool {
    !matches!(
        s,
        WorkspaceState::Pending
            | WorkspaceState::Starting
            | WorkspaceState::Stopping
            | WorkspaceState::Terminating
    )
}

fn params(list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in list {
        let Some((k, v)) = p.split_once('=') else {
            return usage(format!("--param `{p}` is not KEY=VALUE"));
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

/// Runs `trestle ws ...`.
pub async fn run(cmd: WsCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let show = |w: &WorkspaceView, json: bool| -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(w)?);
        } else {
            print_one(w);
        }
        Ok(())
    };
    match cmd {
        WsCmd::Types { all, json } => {
            let q: &[(&str, &str)] = if all { &[("all", "true")] } else { &[] };
            let t: Vec<TypeView> = c
                .call::<(), _>(Method::GET, &["workspace-types"], q, None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                print_types(&t);
            }
        }
        WsCmd::Type { cmd } => match cmd {
            TypeCmd::Import { file } => {
                let doc = read_doc(&file)?;
                let t: TypeView = c
                    .call(Method::POST, &["workspace-types"], &[], Some(&doc))
                    .await?;
                println!(
                    "imported {}@{} (not approved: `trestle ws type approve {}@{}`)",
                    t.spec.name, t.spec.version, t.spec.name, t.spec.version
                );
            }
            TypeCmd::Approve { id } => {
                let (n, v) = split_id(&id)?;
                let t: TypeView = c
                    .call::<(), _>(
                        Method::POST,
                        &["workspace-types", n, v, "approve"],
                        &[],
                        None,
                    )
                    .await?;
                println!(
                    "{}@{} is {}",
                    t.spec.name,
                    t.spec.version,
                    t.approval.as_str()
                );
            }
            TypeCmd::Revoke { id } => {
                let (n, v) = split_id(&id)?;
                let t: TypeView = c
                    .call::<(), _>(
                        Method::POST,
                        &["workspace-types", n, v, "revoke"],
                        &[],
                        None,
                    )
                    .await?;
                println!(
                    "{}@{} is {}",
                    t.spec.name,
                    t.spec.version,
                    t.approval.as_str()
                );
            }
        },
        WsCmd::Configs { json } => {
            let all: Vec<ConfigView> = c
                .call::<(), _>(Method::GET, &["workspace-configs"], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_configs(&all);
            }
        }
        WsCmd::Config { cmd } => match cmd {
            ConfigCmd::Set { file } => {
                let doc = read_doc(&file)?;
                let Some(name) = doc.get("name").and_then(|n| n.as_str()).map(str::to_string)
                else {
                    return usage(format!("{} has no `name`", file.display()));
                };
                let v: ConfigView = c
                    .call(Method::PUT, &["workspace-configs", &name], &[], Some(&doc))
                    .await?;
                println!(
                    "configuration {} set ({})",
                    v.config.name,
                    v.config.type_id()
                );
            }
            ConfigCmd::Rm { name } => {
                c.call_empty(Method::DELETE, &["workspace-configs", &name])
                    .await?;
                println!("configuration {name} deleted");
            }
        },
        WsCmd::Launch {
            config,
            name,
            project,
            params: p,
            wait,
            json,
        } => {
            let req = LaunchRequest {
                config,
                name,
                project,
                params: params(&p)?,
            };
            let mut w: WorkspaceView = c
                .call(Method::POST, &["workspaces"], &[], Some(&req))
                .await?;
            if wait {
                w = wait_for(&c, w.id, settled).await?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&w)?);
            } else if wait {
                print_one(&w);
            } else {
                println!(
                    "launched workspace {} ({}); `trestle ws show {}` follows it",
                    w.id, w.state, w.id
                );
            }
            if wait && w.state != WorkspaceState::Running {
                return Ok(ExitCode::from(1));
            }
        }
        WsCmd::List {
            all,
            terminated,
            json,
        } => {
            let mut q: Vec<(&str, &str)> = Vec::new();
            if all {
                q.push(("all", "true"));
            }
            if terminated {
                q.push(("terminated", "true"));
            }
            let ws: Vec<WorkspaceView> = c
                .call::<(), _>(Method::GET, &["workspaces"], &q, None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ws)?);
            } else {
                print_workspaces(&ws);
            }
        }
        WsCmd::Show { id, json } => {
            let w: WorkspaceView = c
                .call::<(), _>(Method::GET, &["workspaces", &id.to_string()], &[], None)
                .await?;
            show(&w, json)?;
        }
        WsCmd::Open { id } => {
            let w: WorkspaceView = c
                .call::<(), _>(Method::GET, &["workspaces", &id.to_string()], &[], None)
                .await?;
            let Some(url) = w.url.as_deref() else {
                return usage(format!("workspace {id} is {} and has no URL now", w.state));
            };
            let url = if url.starts_with('/') {
                format!("{}{url}", c.current_base().as_str().trim_end_matches('/'))
            } else {
                url.to_string()
            };
            println!("{url}");
            open_browser(&url);
        }
        WsCmd::Connect { id, command } => return super::ws_connect::connect(&c, id, command).await,
        WsCmd::Forward { id, ports } => return super::ws_connect::forward(&c, id, &ports).await,
        WsCmd::Log { id } => {
            let w: WorkspaceView = c
                .call::<(), _>(Method::GET, &["workspaces", &id.to_string()], &[], None)
                .await?;
            let Some(job) = w.job_id else {
                return usage(format!("workspace {id} has not run yet"));
            };
            let slice = c.job_log(job, None, 0).await?;
            print!("{}", slice.data);
        }
        WsCmd::Stop { id, wait } => return lifecycle(&c, id, "stop", wait).await,
        WsCmd::Start { id, wait } => return lifecycle(&c, id, "start", wait).await,
        WsCmd::Terminate { id, wait } => return lifecycle(&c, id, "terminate", wait).await,
        WsCmd::Extend { id, by } => {
            let w: WorkspaceView = c
                .call(
                    Method::POST,
                    &["workspaces", &id.to_string(), "extend"],
                    &[],
                    Some(&ExtendRequest { by }),
                )
                .await?;
            println!("workspace {id}: {} left", time_left(&w));
        }
        WsCmd::Share { id, off } => {
            let w: WorkspaceView = c
                .call(
                    Method::POST,
                    &["workspaces", &id.to_string(), "share"],
                    &[],
                    Some(&ShareRequest { shared: !off }),
                )
                .await?;
            println!(
                "workspace {id} is {}",
                if w.shared {
                    "shared with its project"
                } else {
                    "not shared"
                }
            );
        }
        WsCmd::Assist { id } => {
            let w: WorkspaceView = c
                .call::<(), _>(
                    Method::POST,
                    &["workspaces", &id.to_string(), "assist"],
                    &[],
                    None,
                )
                .await?;
            println!(
                "you may reach workspace {} of {} for an hour (audited)",
                w.id, w.owner
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn lifecycle(c: &Client, id: i64, verb: &str, wait: bool) -> Result<ExitCode> {
    let mut w: WorkspaceView = c
        .call::<(), _>(
            Method::POST,
            &["workspaces", &id.to_string(), verb],
            &[],
            None,
        )
        .await?;
    if wait {
        w = wait_for(c, id, settled).await?;
    }
    println!(
        "workspace {id}: {}{}",
        w.state,
        w.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let ok = match verb {
        "start" => !wait || w.state == WorkspaceState::Running,
        "stop" => !wait || w.state == WorkspaceState::Stopped,
        _ => !wait || w.state == WorkspaceState::Terminated,
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Opens `url` in a browser where there is one (`xdg-open`, `open`).
fn open_browser(url: &str) {
    if std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
        && !cfg!(target_os = "macos")
    {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
