//! A typed async HTTP client for the Trestle REST API (`docs/api.md`), used
//! by the CLI and the worker.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trestle_client::ClientError> {
//! use trestle_client::{Client, JobQuery};
//! let client = Client::new(vec!["http://127.0.0.1:8080".into()], Some("token".into()))?;
//! let job = client
//!     .submit_job(&serde_json::json!({"command": ["echo", "hi"]}))
//!     .await?;
//! let page = client.list_jobs(&JobQuery::default()).await?;
//! # let _ = (job, page);
//! # Ok(()) }
//! ```
//!
//! Every method returns [`ClientError`]; its `Display` is written for
//! people (`[invalid-duration] timeout: ...`).

mod client;
mod error;
mod files;
mod generic;
mod shell;
mod studies;
mod upgrade;
pub mod urls;
mod workflows;
mod workspaces;

pub use client::{CONNECT_TIMEOUT, Client, DEFAULT_REQUEST_TIMEOUT, JobQuery, LEASE_GRACE};
pub use error::ClientError;
pub use files::{Download, Progress};
pub use reqwest::Method;
pub use shell::{ShellInput, run_shell};
pub use studies::{PART_SIZE, WHOLE_LIMIT, hash_file};
pub use upgrade::{UPGRADE_TIMEOUT, Upgraded};
pub use workflows::{EventQuery, SseEvent, SseParser};
