//! Trestle's domain: job types and states, validation of everything users
//! send, and the pure decisions (placement, the attempt state machine,
//! autoscaling, authorization). Nothing in this crate does IO.
//!
//! One folder per domain: [`batch`] (jobs, arrays, dependencies,
//! pipelines, `#SBATCH`, placement, the attempt state machine),
//! [`identity`] (users, tokens, roles and the one authorization
//! decision), [`audit`], [`compute`] (compute environments, queues, the
//! autoscaling plan). [`api`] holds the wire types of the REST API, kept
//! apart from the domain types. The workbench half's domains
//! (`workspace`, `study`, `cost`, `notify`, `declare`, `security`) get
//! folders of their own beside these.

pub mod alarm;
pub mod api;
pub mod audit;
pub mod batch;
pub mod clock;
pub mod compat;
pub mod compute;
pub mod cost;
pub mod error;
pub mod identity;
pub mod notify;
pub mod parse;
pub mod paths;
pub mod study;
pub mod task;
pub mod template;
pub mod workspace;

pub use batch::job::{AttemptReason, AttemptState, Command, JobSpec, JobState, Resources};
pub use batch::placement::Capacity;
pub use error::ValidationError;

/// The software version, shared by every crate and the binary.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
