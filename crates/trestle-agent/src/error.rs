//! The agent's one error type.

use trestle_client::ClientError;

/// What can stop the worker, or end one attempt with a worker error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot work.
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// The server told this worker to drain and exit: its version is not
    /// one the server works with (see `trestle_core::compat`).
    #[error("the server asks this worker to upgrade: {0}")]
    UpgradeRequired(String),
    /// The server refused this worker (bad token, forbidden, ...).
    #[error("the server rejected this worker: {0}")]
    Rejected(ClientError),
    /// A server call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A local file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("cannot create the scratch directory").
        what: &'static str,
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An input file could not be staged.
    #[error("cannot stage inputs: {0}")]
    Stage(String),
    /// An output file could not be uploaded.
    #[error("cannot upload outputs: {0}")]
    Upload(String),
}

impl AgentError {
    /// An [`AgentError::Io`] about `path`.
    pub fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> AgentError {
        AgentError::Io {
            what,
            path: path.display().to_string(),
            source,
        }
    }
}
