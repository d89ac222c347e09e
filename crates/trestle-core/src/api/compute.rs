//! Wire types of the compute API (`/api/v1/compute-environments`,
//! `/api/v1/queues`, `/api/v1/leaders`).

use crate::compute::{ComputeEnvSpec, QueueSpec};
use serde::{Deserialize, Serialize};

/// CE status: it works (as far as anyone knows).
pub const STATUS_VALID: &str = "VALID";
/// CE status: launching failed; `status_reason` says why.
pub const STATUS_INVALID: &str = "INVALID";

/// Something that happened to a CE (launches, retirements, failures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeEnvEvent {
    /// When (ms since the epoch).
    pub at: i64,
    /// `launched`, `retired`, `launch-failed`, `capacity-error`,
    /// `worker-failed`, `worker-cancelled`, `list-failed`, `paused`,
    /// `updated`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
}

/// A compute environment as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeEnvView {
    /// The validated settings.
    #[serde(flatten)]
    pub spec: ComputeEnvSpec,
    /// `config` (trestle.toml) or `api`.
    pub source: String,
    /// `VALID` or `INVALID`.
    pub status: String,
    /// Why it is `INVALID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_at: Option<i64>,
    /// When the settings last changed.
    pub updated_at: i64,
    /// Registered workers it launched.
    pub workers: u32,
    /// Their vCPUs.
    pub vcpus: u64,
    /// Recent events, newest first (single-CE answers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ComputeEnvEvent>,
}

/// A queue as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueView {
    /// The validated settings.
    #[serde(flatten)]
    pub spec: QueueSpec,
    /// `config` (trestle.toml) or `api`.
    pub source: String,
    /// When the settings last changed.
    pub updated_at: i64,
}

/// Which server runs a cluster-wide background loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderView {
    /// The loop (`lease-reaper`, `autoscaler`, ...).
    pub name: String,
    /// The server holding its lease (`host:pid:random`).
    pub holder: String,
    /// When this holder took it.
    pub acquired_at: i64,
    /// When the lease runs out unless renewed.
    pub expires_at: i64,
    /// False once it ran out (another server may take it).
    pub live: bool,
}
