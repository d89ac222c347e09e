//! `trestle up` and `trestle server`.

use crate::ServerArgs;
use crate::settings::{ClientFile, Overrides, load_client_file, save_client_file, server_config};
use anyhow::Result;
use std::process::ExitCode;

/// Runs the server (with the local compute environment for `up`) until
/// Ctrl-C or SIGTERM, then stops cleanly.
pub async fn run(a: ServerArgs, up: bool) -> Result<ExitCode> {
    let (cfg, data_dir) = server_config(
        &Overrides {
            config: a.config,
            listen: a.listen,
            data: a.data,
            database: a.database,
            objects: a.objects,
        },
        up,
    )?;
    let keyring = cfg
        .notify
        .keyring_text
        .is_none()
        .then(|| cfg.notify.keyring_file.clone())
        .flatten();
    let server = trestle_server::start(cfg).await?;
    let url = format!("http://{}", server.addr);
    let token = server.bootstrap_admin_token().await?;
    if let Some(t) = &token {
        println!("admin token: {t}");
    }
    if up {
        // Point the CLI on this machine at this server.
        let mut file = load_client_file();
        let fresh_token = token.is_some();
        if fresh_token || file.token.is_some() {
            file = ClientFile {
                url: Some(url.clone()),
                token: token.or(file.token),
            };
            match save_client_file(&file) {
                Ok(p) => println!("client config: {}", p.display()),
                Err(e) => eprintln!("warning: could not write the client config: {e:#}"),
            }
        }
    }
    if let Some(k) = keyring.filter(|k| k.exists()) {
        println!(
            "secrets keyring: {} (back it up apart from the database: without it stored notification secrets are lost)",
            k.display()
        );
    }
    println!("Trestle is running at {url} (data: {})", data_dir.display());
    println!("Press Ctrl-C to stop.");
    wait_for_signal().await;
    println!("stopping: handing running jobs back to the queue...");
    server.shutdown().await;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
