//! `trestle admin recover`: break-glass recovery on the server host, with
//! direct access to the database (no server needs to run, no credential is
//! needed: access to the database is the credential).

use crate::ServerArgs;
use crate::settings::{Overrides, server_config};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

/// `trestle admin ...`.
#[derive(Subcommand)]
pub enum AdminCmd {
    /// Make a fresh admin token (valid 24 hours), re-enabling and
    /// re-promoting the admin if needed; for when no admin can sign in.
    /// Uses the database directly (`--data DIR`, `--database URL` or
    /// `--config FILE`), and is audited as `admin.recover`.
    Recover {
        #[command(flatten)]
        server: ServerArgs,
        /// The admin to recover (default: `admin`, else the first admin).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an admin command.
pub async fn run(cmd: AdminCmd) -> Result<ExitCode> {
    match cmd {
        AdminCmd::Recover { server, user, json } => {
            let (cfg, _) = server_config(
                &Overrides {
                    config: server.config,
                    listen: server.listen,
                    data: server.data,
                    database: server.database,
                    objects: server.objects,
                },
                false,
            )?;
            let store = trestle_store::SqlStore::connect(&cfg.database_url).await?;
            let r = trestle_service::recovery::recover(
                &store,
                user.as_deref(),
                trestle_core::clock::now_ms(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            store.close().await;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "user": r.user, "created": r.created, "enabled": r.enabled,
                        "promoted": r.promoted, "token": r.token,
                    })
                );
            } else {
                let mut did = Vec::new();
                if r.created {
                    did.push("created");
                }
                if r.enabled {
                    did.push("re-enabled");
                }
                if r.promoted {
                    did.push("made admin again");
                }
                if !did.is_empty() {
                    println!("user {}: {}", r.user, did.join(", "));
                }
                println!(
                    "recovery token for {} (valid 24 hours, shown once):",
                    r.user
                );
                println!("{}", r.token);
                println!(
                    "sign in with it (`trestle login --token ...`), make a proper token or password, \
                     then revoke the recovery token; this recovery is in the audit trail (admin.recover)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
