//! `trestle identity sync`: run the LDAP directory sync now (admins).

use super::client;
use crate::Conn;
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use trestle_client::Method;

/// `trestle identity ...`.
#[derive(Subcommand, Debug)]
pub enum IdentityCmd {
    /// Sync the users held from the LDAP directory now: groups mapped
    /// again, users gone from the directory disabled (admins).
    Sync {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What the server answers.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Synced {
    source: String,
    remapped: Vec<String>,
    changed: Vec<String>,
    deprovisioned: Vec<String>,
}

/// Runs `trestle identity ...`.
pub async fn run(cmd: IdentityCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        IdentityCmd::Sync { json } => {
            let s: Synced = c
                .call::<(), _>(Method::POST, &["admin", "identity", "sync"], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                println!(
                    "synced {}: {} users looked up; changed: {}; deprovisioned: {}",
                    s.source,
                    s.remapped.len(),
                    list(&s.changed),
                    list(&s.deprovisioned)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
