//! The CLI's commands, one module per group.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod compute;
pub mod costs;
pub mod directory;
pub mod flow;
pub mod identity;
pub mod jobref;
pub mod jobs;
pub mod notify;
pub mod pipeline;
pub mod projects;
pub mod sbatch;
pub mod slurm;
pub mod sso;
pub mod study;
pub mod submit;
pub mod up;
pub mod upload;
pub mod users;
pub mod worker;
pub mod ws;
pub mod ws_connect;

use crate::Conn;
use crate::output::usage;
use crate::settings::load_client_file;
use trestle_client::Client;

/// Server URLs and token from flags, environment or the client config.
pub fn endpoint(conn: &Conn) -> (Vec<String>, Option<String>) {
    let file = load_client_file();
    let url = conn
        .url
        .clone()
        .or(file.url)
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    let urls = url
        .split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect();
    (urls, conn.token.clone().or(file.token))
}

/// A client for the configured server.
pub fn client(conn: &Conn) -> anyhow::Result<Client> {
    let (urls, token) = endpoint(conn);
    if token.is_none() {
        return usage(
            "no API token: run `trestle login`, or `trestle up` on this machine, or set TRESTLE_TOKEN / --token",
        );
    }
    Ok(Client::new(urls, token)?)
}
