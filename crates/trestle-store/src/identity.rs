//! Storage traits for identity (users, projects, API tokens, browser
//! sessions, login throttling, upload and worker ownership) and the audit
//! trail. Implemented by the SQL store in `sql/{users,tokens,audit}.rs`.

use crate::Result;
use async_trait::async_trait;
use trestle_core::api::identity::{IndexView, NewProject, ProjectView, TokenView, UserView};
use trestle_core::audit::{AuditAnswer, AuditFilter, AuditRecord};
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{MemberRole, Membership, Role, Scope};

/// An upload held unsealed ([`IdentityStore::hold_unsealed_upload`]);
/// dropping it without [`UploadHold::release`] releases it too.
#[async_trait]
pub trait UploadHold: Send {
    /// Ends the hold.
    async fn release(self: Box<Self>) -> Result<()>;
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Organisation.
    pub org: Option<String>,
    /// Default project.
    pub default_project: Option<String>,
    /// Argon2 PHC string, when a password is set.
    pub password_hash: Option<String>,
    /// When the user was disabled.
    pub disabled_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last use of any of the user's credentials.
    pub last_seen_at: Option<i64>,
}

impl UserRecord {
    /// The API's view (without the password hash).
    pub fn view(&self) -> UserView {
        UserView {
            name: self.name.clone(),
            role: self.role,
            org: self.org.clone(),
            default_project: self.default_project.clone(),
            disabled: self.disabled_at.is_some(),
            has_password: self.password_hash.is_some(),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            attributes: None,
        }
    }
}

/// A user as an identity provider's mapping rules make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// User name.
    pub name: String,
    /// Role the rules give.
    pub role: Role,
    /// Attributes to keep (their `source` manages the memberships).
    pub attributes: trestle_core::identity::external::UserAttributes,
    /// Project -> member role: the memberships the rules manage.
    pub memberships: std::collections::BTreeMap<String, MemberRole>,
}

/// What provisioning changed, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// The user was created.
    pub created: bool,
    /// The role before, when it changed.
    pub role_was: Option<Role>,
    /// Managed memberships added or changed.
    pub added: Vec<String>,
    /// Managed memberships removed.
    pub removed: Vec<String>,
    /// Projects the rules name that do not exist (skipped).
    pub missing_projects: Vec<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// New role.
    pub role: Option<Role>,
    /// New organisation (`Some(None)` clears it).
    pub org: Option<Option<String>>,
    /// New default project.
    pub default_project: Option<String>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// Disable (`Some(true)`) or enable.
    pub disabled: Option<bool>,
}

/// A token to store (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTokenRecord {
    /// Token id.
    pub id: String,
    /// Label.
    pub name: String,
    /// SHA-256 of the secret.
    pub hash: String,
    /// The user it acts as (none for worker credentials).
    pub user: Option<String>,
    /// User token or worker credential.
    pub kind: TokenKind,
    /// Scope.
    pub scope: Scope,
    /// Expiry.
    pub expires_at: Option<i64>,
}

/// A valid token found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Token id.
    pub id: String,
    /// The user it acts as.
    pub user: Option<String>,
    /// User token or worker credential.
    pub kind: TokenKind,
    /// Scope.
    pub scope: Scope,
}

/// A browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The user.
    pub user: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Expiry.
    pub expires_at: i64,
}

/// API tokens: hashed at rest, scoped, expiring, revocable, use recorded.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token.
    async fn create_token(&self, t: &NewTokenRecord, now: i64) -> Result<()>;
    /// Finds a token that is unrevoked, unexpired and whose user is enabled,
    /// and records its use (time and source, at most once a minute per
    /// source).
    async fn find_token(
        &self,
        hash: &str,
        now: i64,
        source_ip: &str,
    ) -> Result<Option<TokenRecord>>;
    /// One token's metadata.
    async fn token(&self, id: &str) -> Result<Option<TokenView>>;
    /// Tokens (of one user, or all), newest first.
    async fn list_tokens(
        &self,
        user: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<TokenView>>;
    /// Revokes a token; false when it is unknown or already revoked.
    async fn revoke_token(&self, id: &str, now: i64) -> Result<bool>;
    /// Unrevoked, unexpired tokens last used (or, never used, created)
    /// before `before`.
    async fn unused_tokens(&self, before: i64, now: i64) -> Result<Vec<TokenView>>;
}

/// Users, indexes, projects and members; sessions, login throttling and
/// who owns uploads and workers.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Creates a user, and makes them a member of their default project.
    async fn create_user(&self, u: &UserRecord) -> Result<()>;
    /// One user.
    async fn user(&self, name: &str) -> Result<Option<UserRecord>>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    /// Changes a user; false when unknown.
    async fn update_user(&self, name: &str, c: &UserChanges, now: i64) -> Result<bool>;
    /// Creates the first admin user with a token, a member of the `default`
    /// project, unless an admin user exists; true when created.
    async fn bootstrap_admin(&self, name: &str, token: &NewTokenRecord, now: i64) -> Result<bool>;
    /// Enabled users whose last use (or, never used, creation) is before
    /// `before`, admins excepted when `skip_admins`.
    async fn unused_users(&self, before: i64, skip_admins: bool) -> Result<Vec<UserRecord>>;
    /// The projects a user belongs to.
    async fn memberships(&self, user: &str) -> Result<Vec<Membership>>;
    /// Creates an index.
    async fn create_index(&self, name: &str, description: Option<&str>, now: i64) -> Result<()>;
    /// Every index with its projects.
    async fn list_indexes(&self) -> Result<Vec<IndexView>>;
    /// Creates a project under an existing index.
    async fn create_project(&self, p: &NewProject, now: i64) -> Result<()>;
    /// One project with its members.
    async fn project(&self, name: &str) -> Result<Option<ProjectView>>;
    /// Every project (with members), by name.
    async fn list_projects(&self) -> Result<Vec<ProjectView>>;
    /// Adds a member or changes their role.
    async fn set_member(&self, project: &str, user: &str, role: MemberRole, now: i64)
    -> Result<()>;
    /// Removes a member; false when they were not one.
    async fn remove_member(&self, project: &str, user: &str) -> Result<bool>;
    /// Creates or updates a user from an identity provider, with their
    /// managed memberships, in one transaction (see
    /// [`trestle_core::identity::external`]). Memberships added by hand
    /// are left alone.
    async fn provision_user(&self, p: &Provision, now: i64) -> Result<Provisioned>;
    /// The attributes kept of a user (`None`: no such user).
    async fn user_attributes(
        &self,
        name: &str,
    ) -> Result<Option<trestle_core::identity::external::UserAttributes>>;
    /// Enabled users of a provider: (name, subject).
    async fn external_users(&self, source: &str) -> Result<Vec<(String, String)>>;
    /// Records who created an upload.
    async fn create_upload(&self, id: &str, owner: &str, now: i64) -> Result<()>;
    /// Adds `delta` bytes (negative: removes) to what upload `id` holds,
    /// charged to `project`'s storage.
    async fn add_upload_bytes(&self, id: &str, project: &str, delta: i64) -> Result<()>;
    /// Bytes the uploads charged to `project` hold.
    async fn project_upload_bytes(&self, project: &str) -> Result<u64>;
    /// Who created an upload (`None`: unknown upload).
    async fn upload_owner(&self, id: &str) -> Result<Option<String>>;
    /// True once a job was submitted with the upload as its inputs (the
    /// submit seals it in its transaction): its files never change again.
    async fn upload_sealed(&self, id: &str) -> Result<bool>;
    /// Holds upload `id` unsealed (`None`: it is sealed, or unknown) until
    /// the hold is released: a submit naming it waits, so whatever is
    /// written into the upload while the hold lasts lands before the seal.
    /// Keep it short (the time to make one written file visible).
    async fn hold_unsealed_upload(&self, id: &str) -> Result<Option<Box<dyn UploadHold>>>;
    /// Records which credential registered a worker.
    async fn bind_worker(&self, worker_id: &str, token_id: &str) -> Result<()>;
    /// The credential that registered a worker (`None`: unknown worker or
    /// registered before identity existed).
    async fn worker_registrant(&self, worker_id: &str) -> Result<Option<String>>;
    /// Stores a browser session (by the hash of its secret).
    async fn create_session(&self, hash: &str, s: &SessionRecord, ip: &str, now: i64)
    -> Result<()>;
    /// An unexpired session of an enabled user.
    async fn find_session(&self, hash: &str, now: i64) -> Result<Option<SessionRecord>>;
    /// Ends a session.
    async fn delete_session(&self, hash: &str) -> Result<()>;
    /// Ends every session of `user` but the one whose hash is `keep`;
    /// returns how many ended.
    async fn delete_sessions_of(&self, user: &str, keep: Option<&str>) -> Result<u64>;
    /// Reserves a login attempt for `key` (user and source), atomically on
    /// every server sharing the database: counts it in the key's window
    /// (a window started at or before `now - window` is over, and a new one
    /// starts at `now`) and returns the attempts reserved in the window,
    /// this one included. A caller checks the password only when the count
    /// is within its limit, so parallel attempts cannot all pass the check.
    async fn reserve_login_attempt(&self, key: &str, now: i64, window: i64) -> Result<u64>;
    /// Forgets a key's attempts (after a successful login).
    async fn clear_login_attempts(&self, key: &str) -> Result<()>;

    // OpenID Connect sign-in (issue 11).
    /// Stores a pending OpenID Connect login under `key` (the hash of its
    /// state), deleting the expired ones.
    async fn put_oidc_login(&self, key: &str, p: &crate::oidc::PendingLogin) -> Result<()>;
    /// Takes (deletes and returns) the pending login under `key`: a second
    /// take of the same key finds nothing. `None` also when it expired.
    async fn take_oidc_login(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<crate::oidc::PendingLogin>>;
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends records in one transaction (ids are assigned by the store).
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()>;
    /// Runs a query.
    async fn query_audit(&self, f: &AuditFilter) -> Result<AuditAnswer>;
    /// Deletes records older than `before`; returns how many.
    async fn purge_audit(&self, before: i64) -> Result<u64>;
}
