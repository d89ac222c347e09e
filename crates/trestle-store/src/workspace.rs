//! Workspaces in storage: type versions, configurations and workspaces
//! (see migration 13). The lifecycle is decided in
//! `trestle_core::workspace::state`; the store applies it with a
//! compare-and-set on the state, so two servers never both move one
//! workspace.

use crate::Result;
use async_trait::async_trait;
use trestle_core::workspace::idle::Activity;
use trestle_core::workspace::kind::Approval;
use trestle_core::workspace::{Launch, WorkspaceConfig, WorkspaceState, WorkspaceType};

/// A stored type version.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRecord {
    /// The definition.
    pub spec: WorkspaceType,
    /// Its approval.
    pub approval: Approval,
    /// Who imported it.
    pub imported_by: Option<String>,
    /// When.
    pub imported_at: i64,
    /// Who approved or revoked it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
}

/// A stored configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRecord {
    /// The configuration.
    pub config: WorkspaceConfig,
    /// Who last changed it.
    pub updated_by: Option<String>,
    /// When.
    pub updated_at: i64,
}

/// A stored workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRecord {
    /// Id (0 before it is inserted).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Project charged.
    pub project: Option<String>,
    /// What it was launched from.
    pub launch: Launch,
    /// State.
    pub state: WorkspaceState,
    /// Why it is in its state.
    pub reason: Option<String>,
    /// Shared with its project's members.
    pub shared: bool,
    /// The current session task.
    pub job_id: Option<i64>,
    /// Launched at.
    pub created_at: i64,
    /// Last lifecycle change.
    pub updated_at: i64,
    /// Became RUNNING at.
    pub running_since: Option<i64>,
    /// Lifetime ends at.
    pub deadline: Option<i64>,
    /// Extended by (seconds).
    pub extended_secs: u64,
    /// The per-launch secret of the running session.
    pub secret: Option<String>,
    /// The session task that reported ready.
    pub ready_job: Option<i64>,
    /// The saved home's object key.
    pub home_key: Option<String>,
    /// Its size.
    pub home_bytes: Option<u64>,
    /// When it was saved.
    pub home_saved_at: Option<i64>,
    /// By which session task.
    pub home_saved_job: Option<i64>,
    /// The last failed save's error.
    pub save_error: Option<String>,
    /// By which session task.
    pub save_error_job: Option<i64>,
    /// Activity facts (`running_since` is taken from the record).
    pub activity: Activity,
    /// The admin with an assist grant.
    pub assist_by: Option<String>,
    /// Until when.
    pub assist_until: Option<i64>,
}

/// What a listing returns.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceFilter {
    /// Only this owner's.
    pub owner: Option<String>,
    /// Also terminated ones.
    pub include_terminated: bool,
    /// Only these states (empty: any).
    pub states: Vec<WorkspaceState>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// Workspaces, their types and configurations.
#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Stores a new type version (`Conflict` when it exists).
    async fn put_ws_type(&self, t: &TypeRecord) -> Result<()>;
    /// Every type version, by name then import time.
    async fn ws_types(&self) -> Result<Vec<TypeRecord>>;
    /// One type version.
    async fn ws_type(&self, name: &str, version: &str) -> Result<Option<TypeRecord>>;
    /// Approves or revokes a version; false when unknown.
    async fn decide_ws_type(
        &self,
        name: &str,
        version: &str,
        approval: Approval,
        by: &str,
        now: i64,
    ) -> Result<bool>;
    /// Creates or replaces a configuration.
    async fn put_ws_config(&self, c: &ConfigRecord) -> Result<()>;
    /// Every configuration, by name.
    async fn ws_configs(&self) -> Result<Vec<ConfigRecord>>;
    /// One configuration.
    async fn ws_config(&self, name: &str) -> Result<Option<ConfigRecord>>;
    /// Deletes a configuration; false when unknown.
    async fn delete_ws_config(&self, name: &str) -> Result<bool>;
    /// Stores a new workspace; returns its id.
    async fn insert_workspace(&self, w: &WorkspaceRecord) -> Result<i64>;
    /// One workspace.
    async fn workspace(&self, id: i64) -> Result<Option<WorkspaceRecord>>;
    /// The workspace a session task hosts.
    async fn workspace_by_job(&self, job_id: i64) -> Result<Option<WorkspaceRecord>>;
    /// Workspaces matching a filter, newest first.
    async fn workspaces(&self, f: &WorkspaceFilter) -> Result<Vec<WorkspaceRecord>>;
    /// Writes the lifecycle fields of `w` (state, reason, shared, job,
    /// running since, deadline, extension, assist) if its stored state is
    /// still `expected`, and records `event` for notifications in the same
    /// transaction; false (and no event) when another change came first.
    async fn set_ws_lifecycle(
        &self,
        w: &WorkspaceRecord,
        expected: WorkspaceState,
        event: Option<&trestle_core::notify::event::NewEvent>,
    ) -> Result<bool>;
    /// The session task `job_id` reported its app ready with `secret`.
    async fn ws_session_ready(&self, job_id: i64, secret: &str) -> Result<bool>;
    /// The session task `job_id` saved the home at `key`; returns the key
    /// of the copy it replaces (to delete), `Ok(None)` when there was none.
    async fn ws_home_saved(
        &self,
        job_id: i64,
        key: &str,
        bytes: u64,
        now: i64,
    ) -> Result<Option<String>>;
    /// The session task `job_id` could not save the home.
    async fn ws_save_failed(&self, job_id: i64, error: &str) -> Result<bool>;
    /// Forgets the saved home (terminate); returns its key.
    async fn ws_clear_home(&self, id: i64) -> Result<Option<String>>;
    /// Records activity reported by the worker (`last_app`, `busy`,
    /// `last_attached`, `attached`) for the session task `job_id`.
    async fn ws_app_activity(&self, job_id: i64, a: &Activity) -> Result<bool>;
    /// Records the last counted proxied request (kept as the latest).
    async fn ws_request_activity(&self, id: i64, at: i64) -> Result<()>;
    /// Stores a grant (`ticket` or `cookie`) by its hash; forgets expired ones.
    async fn put_ws_grant(&self, g: &Grant) -> Result<()>;
    /// Takes a one-time ticket: deleted and returned in one statement, if
    /// unexpired at `now`.
    async fn take_ws_ticket(&self, hash: &str, now: i64) -> Result<Option<Grant>>;
    /// A workspace cookie, if unexpired at `now`.
    async fn ws_cookie(&self, hash: &str, now: i64) -> Result<Option<Grant>>;
}

/// Access to one workspace for one user on its own origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// `ticket` (one-time, on the way to the origin) or `cookie`.
    pub kind: String,
    /// The workspace.
    pub workspace: i64,
    /// The user.
    pub user: String,
    /// Good until (ms).
    pub expires_at: i64,
}
