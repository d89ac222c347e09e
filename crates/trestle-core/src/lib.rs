//! Trestle's domain: job types and states, validation of everything users
//! send, and the pure decisions (placement, the attempt state machine,
//! autoscaling). Nothing in this crate does IO.

pub mod api;
pub mod array;
pub mod audit;
pub mod authz;
pub mod autoscale;
pub mod compute;
pub mod compute_api;
pub mod deps;
pub mod error;
pub mod identity;
pub mod job;
pub mod outcome;
pub mod parse;
pub mod paths;
pub mod pipeline;
pub mod placement;
pub mod resubmit;
pub mod sbatch;
pub mod scale;
pub mod slurm;
pub mod spec;
pub mod why;
pub mod workflow;

pub use error::ValidationError;
pub use job::{AttemptReason, AttemptState, Command, JobSpec, JobState, Resources};
pub use placement::Capacity;

/// The software version, shared by every crate and the binary.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
