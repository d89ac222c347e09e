//! Wire types of identity: users, API tokens, indexes, projects and
//! members, login and "who am I", as the REST API sends and receives them.
//! Names and passwords are validated in [`crate::identity`].

use crate::identity::TokenKind;
use crate::identity::authz::{MemberRole, Role, Scope};
use serde::{Deserialize, Serialize};

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Project jobs are charged to when they name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_project: Option<String>,
    /// Disabled users cannot log in and their tokens stop working.
    pub disabled: bool,
    /// Whether a password is set (web UI login).
    pub has_password: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last time any of the user's credentials was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<i64>,
    /// Where the user comes from and what is kept of them (email, Unix
    /// account, groups), each with its origin (only in `GET
    /// /api/v1/users/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<crate::identity::external::UserAttributes>,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Role (default `researcher`).
    #[serde(default)]
    pub role: Option<String>,
    /// Organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// Default project; the user becomes a member of it.
    #[serde(default)]
    pub default_project: Option<String>,
    /// Password for the web UI.
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /api/v1/users/{name}`: only the fields given change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// New role.
    #[serde(default)]
    pub role: Option<String>,
    /// Disable (true) or enable (false).
    #[serde(default)]
    pub disabled: Option<bool>,
    /// New organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// New default project (the user must belong to it).
    #[serde(default)]
    pub default_project: Option<String>,
    /// New password.
    #[serde(default)]
    pub password: Option<String>,
    /// The current password: needed when users change their own password
    /// (not when an admin sets someone else's, nor for a first password).
    /// Left out when absent, so that older servers still read the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// An API token's metadata (the secret is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Token id (not secret).
    pub id: String,
    /// Label.
    pub name: String,
    /// The user it acts as (none for worker credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User token or worker credential.
    pub kind: TokenKind,
    /// Full or read-only.
    pub scope: Scope,
    /// Creation time.
    pub created_at: i64,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// Source address of the last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ip: Option<String>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Label (default: `token`).
    #[serde(default)]
    pub name: Option<String>,
    /// `full` (default) or `read-only`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Lifetime such as `30d` or `1h` (default: 90 days; workers 1 hour).
    #[serde(default)]
    pub ttl: Option<String>,
    /// The user it acts as (admins only; default: the caller).
    #[serde(default)]
    pub user: Option<String>,
    /// A worker credential instead of a user token (admins only).
    #[serde(default)]
    pub worker: bool,
}

/// The answer to token creation: the secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The secret bearer token.
    pub token: String,
    /// Its metadata.
    pub info: TokenView,
}

/// An index (a funding source) and its projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexView {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Its projects.
    #[serde(default)]
    pub projects: Vec<String>,
}

/// `POST /api/v1/indexes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIndex {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// One member of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// User name.
    pub user: String,
    /// Role in the project.
    pub role: MemberRole,
}

/// A project: the cost centre jobs are charged to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    /// Name.
    pub name: String,
    /// The index (funding source) it belongs to.
    pub index: String,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Members.
    #[serde(default)]
    pub members: Vec<MemberView>,
}

/// `POST /api/v1/projects`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Name.
    pub name: String,
    /// Index it belongs to.
    pub index: String,
    /// Organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `POST /api/v1/projects/{name}/members`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    /// User to add (or whose role to change).
    pub user: String,
    /// `viewer`, `member` (default) or `manager`.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /api/v1/login`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Instead of a browser session, issue an API token (for `trestle login`).
    #[serde(default)]
    pub token: Option<NewToken>,
}

/// The answer to a login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Who logged in.
    pub user: UserView,
    /// For browser sessions: send as `x-csrf-token` (or the `csrf_token`
    /// form field) on every state-changing request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// For token logins: the new API token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenCreated>,
}

/// `GET /api/v1/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The user (none for worker credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    /// The credential's id (`session` for browser sessions).
    pub token_id: String,
    /// User token or worker credential.
    pub kind: TokenKind,
    /// The credential's scope.
    pub scope: Scope,
    /// Projects the user belongs to, with their role in each.
    #[serde(default)]
    pub projects: Vec<crate::identity::authz::Membership>,
}
