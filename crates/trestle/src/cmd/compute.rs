//! `trestle ce list|show|set|delete`, `trestle queue list|show|set|delete`
//! and `trestle leaders`: compute environments, queues, and which server
//! runs each cluster-wide loop.

use super::client;
use crate::Conn;
use crate::output::{table, time, usage};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use trestle_client::Method;
use trestle_core::api::compute::{ComputeEnvView, LeaderView, QueueView};

/// `trestle ce ...`.
#[derive(Subcommand, Debug)]
pub enum CeCmd {
    /// List compute environments.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one, with its recent events.
    Show {
        /// Name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create or replace one from a file (admins): the keys of a
    /// `[compute_environments.NAME]` table, as TOML or JSON.
    Set {
        /// Name.
        name: String,
        /// The settings file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Delete a compute environment (admins); refused while a queue lists it.
    Delete {
        /// Name.
        name: String,
    },
}

/// `trestle queue ...`.
#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// List queues.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create or replace a queue (admins).
    Set {
        /// Name.
        name: String,
        /// Higher is served first.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// Compute environments in order of preference, comma-separated
        /// (default: every one).
        #[arg(long, value_delimiter = ',')]
        compute_environments: Vec<String>,
    },
    /// Delete a queue (its jobs stay; admins).
    Delete {
        /// Name.
        name: String,
    },
}

/// Reads a settings file: TOML, or JSON when it looks like JSON.
fn settings_file(path: &PathBuf) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", path.display()));
    }
    let v: toml::Value =
        toml::from_str(&text).with_context(|| format!("{}: invalid TOML", path.display()))?;
    Ok(serde_json::to_value(v)?)
}

fn env_rows(list: &[ComputeEnvView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|e| {
            vec![
                e.spec.name.clone(),
                e.spec.provider.as_str().into(),
                e.spec.capacity_type.as_str().into(),
                e.spec.allocation_strategy.as_str().into(),
                format!("{}-{}", e.spec.min_vcpus, e.spec.max_vcpus),
                e.workers.to_string(),
                e.vcpus.to_string(),
                e.status.clone(),
            ]
        })
        .collect()
}

/// Runs `trestle ce ...`.
pub async fn ce(cmd: CeCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let envs = "compute-environments";
    match cmd {
        CeCmd::List { json } => {
            let list: Vec<ComputeEnvView> =
                c.call::<(), _>(Method::GET, &[envs], &[], None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!(
                    "{}",
                    table(
                        &[
                            "NAME", "PROVIDER", "CAPACITY", "STRATEGY", "VCPUS", "WORKERS",
                            "IN USE", "STATUS"
                        ],
                        &env_rows(&list)
                    )
                );
            }
        }
        CeCmd::Show { name, json } => {
            let e: ComputeEnvView = c
                .call::<(), _>(Method::GET, &[envs, &name], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
                return Ok(ExitCode::SUCCESS);
            }
            print!(
                "{}",
                table(
                    &[
                        "NAME", "PROVIDER", "CAPACITY", "STRATEGY", "VCPUS", "WORKERS", "IN USE",
                        "STATUS"
                    ],
                    &env_rows(std::slice::from_ref(&e))
                )
            );
            if let Some(r) = &e.status_reason {
                println!("\nstatus reason: {r}");
            }
            println!(
                "idle timeout: {}s, enabled: {}",
                e.spec.idle_timeout_secs, e.spec.enabled
            );
            if let Some(s) = &e.spec.slurm {
                println!(
                    "slurm: partition {}, account {}, time limit {}s{}",
                    s.partition.as_deref().unwrap_or("(default)"),
                    s.account.as_deref().unwrap_or("(none)"),
                    s.time_limit_secs,
                    if s.extra_args.is_empty() {
                        String::new()
                    } else {
                        format!(", extra: {}", s.extra_args.join(" "))
                    }
                );
            }
            let shapes: Vec<Vec<String>> = e
                .spec
                .shapes
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.vcpus.to_string(),
                        format!("{} MiB", s.mem_mib),
                        s.gpus.to_string(),
                        format!("{:.4}", s.price_per_hour),
                    ]
                })
                .collect();
            println!();
            print!(
                "{}",
                table(&["SHAPE", "VCPUS", "MEMORY", "GPUS", "PRICE/H"], &shapes)
            );
            let ev: Vec<Vec<String>> = e
                .events
                .iter()
                .map(|x| vec![time(x.at), x.kind.clone(), x.message.clone()])
                .collect();
            println!();
            print!("{}", table(&["TIME", "EVENT", "MESSAGE"], &ev));
        }
        CeCmd::Set { name, file } => {
            let body = settings_file(&file)?;
            let e: ComputeEnvView = c
                .call(Method::PUT, &[envs, &name], &[], Some(&body))
                .await?;
            println!(
                "{} ({}, {} vCPUs at most)",
                e.spec.name,
                e.spec.provider.as_str(),
                e.spec.max_vcpus
            );
        }
        CeCmd::Delete { name } => {
            c.call_empty(Method::DELETE, &[envs, &name]).await?;
            println!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `trestle queue ...`.
pub async fn queue(cmd: QueueCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        QueueCmd::List { json } => {
            let list: Vec<QueueView> = c.call::<(), _>(Method::GET, &["queues"], &[], None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|q| {
                        vec![
                            q.spec.name.clone(),
                            q.spec.priority.to_string(),
                            if q.spec.compute_environments.is_empty() {
                                "(every one)".into()
                            } else {
                                q.spec.compute_environments.join(", ")
                            },
                            q.source.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["QUEUE", "PRIORITY", "COMPUTE ENVIRONMENTS", "FROM"],
                        &rows
                    )
                );
            }
        }
        QueueCmd::Set {
            name,
            priority,
            compute_environments,
        } => {
            let body = serde_json::json!({
                "priority": priority,
                "compute_environments": compute_environments,
            });
            let q: QueueView = c
                .call(Method::PUT, &["queues", &name], &[], Some(&body))
                .await?;
            println!("{} (priority {})", q.spec.name, q.spec.priority);
        }
        QueueCmd::Delete { name } => {
            c.call_empty(Method::DELETE, &["queues", &name]).await?;
            println!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `trestle leaders`.
pub async fn leaders(json: bool, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let list: Vec<LeaderView> = c
        .call::<(), _>(Method::GET, &["leaders"], &[], None)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        return usage("no loop has a leader yet");
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.holder.clone(),
                time(l.acquired_at),
                if l.live {
                    "yes".into()
                } else {
                    "expired".into()
                },
            ]
        })
        .collect();
    print!("{}", table(&["LOOP", "SERVER", "SINCE", "LIVE"], &rows));
    Ok(ExitCode::SUCCESS)
}
