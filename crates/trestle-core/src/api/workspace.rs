//! Wire types of workspaces: the catalogue (type versions and
//! configurations), workspaces as users see them, launches, and what the
//! worker hosting a session is told and reports.

use super::AttemptRef;
use crate::workspace::config::WorkspaceConfig;
use crate::workspace::kind::{ActivitySource, AppKind, Approval, SecretHeader, WorkspaceType};
use crate::workspace::state::WorkspaceState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One type version in the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeView {
    /// The version's definition.
    #[serde(flatten)]
    pub spec: WorkspaceType,
    /// Pending, approved or revoked.
    pub approval: Approval,
    /// Who imported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_by: Option<String>,
    /// When.
    pub imported_at: i64,
    /// Who approved or revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
}

/// A configuration in the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    /// The configuration.
    #[serde(flatten)]
    pub config: WorkspaceConfig,
    /// Its type version's approval (only `approved` ones launch).
    pub type_approval: Approval,
    /// The asking user may launch it now.
    pub launchable: bool,
    /// Who last changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: i64,
}

/// `POST /api/v1/workspaces`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    /// The configuration to launch.
    pub config: String,
    /// A name (default: the configuration's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The project charged (default: the user's default project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Parameter values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

/// A workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Project charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Configuration launched.
    pub config: String,
    /// `name@version` of its type.
    pub type_id: String,
    /// Its type version was revoked after launch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub type_revoked: bool,
    /// HTTP app or terminal.
    pub app: AppKind,
    /// State.
    pub state: WorkspaceState,
    /// Why it is in its state (failure, save error, stop cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Shared with its project's members.
    #[serde(default)]
    pub shared: bool,
    /// The current (or last) session task: a job of kind `session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// The worker hosting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Where it is reached (when running, and for its owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When it was launched.
    pub created_at: i64,
    /// When it last became RUNNING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<i64>,
    /// When its lifetime ends (while it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<i64>,
    /// Seconds it has been extended by.
    #[serde(default)]
    pub extended_secs: u64,
    /// The last activity that counts towards idleness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<i64>,
    /// Idle timeout (seconds; 0 = none).
    pub idle_timeout_secs: u64,
    /// The last saved home's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_bytes: Option<u64>,
    /// When the home was last saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_saved_at: Option<i64>,
    /// Estimated cost per hour while running.
    pub cost_per_hour: f64,
    /// CPUs.
    pub cpus: u32,
    /// Memory (MiB).
    pub mem_mib: u64,
}

/// `POST /api/v1/workspaces/{id}/extend`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtendRequest {
    /// How much longer (`1h`).
    pub by: String,
}

/// `POST /api/v1/workspaces/{id}/share`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareRequest {
    /// Share with the project's members (true) or not.
    pub shared: bool,
}

/// What a worker needs to host a session, carried in its job spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The workspace.
    pub workspace: i64,
    /// HTTP app or terminal.
    pub app: AppKind,
    /// The URL prefix it is served under (`/ws/7/`).
    pub prefix: String,
    /// Parameter values for the command's templates.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Environment templates.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Readiness path (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_path: Option<String>,
    /// Seconds the app may take to become ready.
    pub start_timeout_secs: u64,
    /// How the proxy passes the secret (the worker's readiness check does
    /// the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_header: Option<SecretHeader>,
    /// Where activity comes from.
    #[serde(default)]
    pub activity: ActivitySource,
    /// Restore the saved home before starting.
    #[serde(default)]
    pub restore_home: bool,
    /// The home's size limit (MiB).
    pub home_limit_mib: u64,
}

/// Something the worker hosting a session reports
/// (`POST /api/v1/workers/{id}/sessions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReport {
    /// The session's attempt, fenced by its lease token.
    #[serde(flatten)]
    pub at: AttemptRef,
    /// What happened.
    pub event: SessionEvent,
}

/// What happened to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SessionEvent {
    /// The app answered its readiness check; `secret` is the per-launch
    /// secret the proxy hands it.
    Ready {
        /// The per-launch secret.
        secret: String,
    },
    /// The app's own activity and attached shells (sent every few seconds).
    Activity {
        /// The app's last activity (ms), e.g. Jupyter's kernels.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_app: Option<i64>,
        /// Work in progress (a busy kernel).
        #[serde(default)]
        busy: bool,
        /// The last byte through an attached shell or forward (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_attached: Option<i64>,
        /// Shells and forwards attached now.
        #[serde(default)]
        attached: u32,
    },
    /// Saving the home failed; the previous copy is kept.
    SaveFailed {
        /// Why.
        error: String,
    },
}
