//! Authorization: the one place that decides whether a principal may do an
//! action on a resource. A pure function over facts the server has already
//! looked up (who owns the job, which projects the user belongs to), so it
//! is tested exhaustively as a matrix of role x action x ownership.
//!
//! The rules (DESIGN.md section 1, issue 5):
//! - `admin` may do everything (a read-only token still only reads).
//! - `researcher` sees and manages their own jobs, and sees read-only the
//!   jobs of projects they belong to; submits to projects where they are a
//!   `member` or `manager`.
//! - `internal-guest` is like a researcher, but only within projects of
//!   their own organisation.
//! - `guest` submits only to projects an admin made them a member of, and
//!   sees only their own jobs.
//! - Worker credentials lease, report, stage inputs of the jobs they hold
//!   and upload outputs; nothing else.
//! - Something that exists but is not visible to the principal is
//!   [`Denial::NotFound`], never `Forbidden`, so ids cannot be probed.

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Research IT: everything.
    Admin,
    /// Researchers and students.
    Researcher,
    /// A guest from within the organisation: works in their organisation's projects.
    InternalGuest,
    /// An external guest: uses what an admin gave them.
    Guest,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Researcher,
        Role::InternalGuest,
        Role::Guest,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Researcher => "researcher",
            Role::InternalGuest => "internal-guest",
            Role::Guest => "guest",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// True for the two guest roles.
    pub fn is_guest(self) -> bool {
        matches!(self, Role::Guest | Role::InternalGuest)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Everything its user may do.
    Full,
    /// Only reads.
    ReadOnly,
}

impl Scope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::ReadOnly => "read-only",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        match s.trim() {
            "full" => Some(Scope::Full),
            "read-only" | "readonly" | "read" => Some(Scope::ReadOnly),
            _ => None,
        }
    }
}

/// A user's role within one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberRole {
    /// Sees the project's jobs, cannot submit.
    Viewer,
    /// Submits jobs charged to the project and sees its jobs.
    Member,
    /// A member who also manages the project's members.
    Manager,
}

impl MemberRole {
    /// Every member role.
    pub const ALL: [MemberRole; 3] = [MemberRole::Viewer, MemberRole::Member, MemberRole::Manager];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Viewer => "viewer",
            MemberRole::Member => "member",
            MemberRole::Manager => "manager",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<MemberRole> {
        MemberRole::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    /// True when the member may submit jobs.
    pub fn can_submit(self) -> bool {
        matches!(self, MemberRole::Member | MemberRole::Manager)
    }
}

/// One project a user belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Project name.
    pub project: String,
    /// The project's organisation.
    pub org: Option<String>,
    /// The user's role in it.
    pub role: MemberRole,
}

/// An authenticated user as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSubject {
    /// User name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Organisation.
    pub org: Option<String>,
    /// The token's scope.
    pub scope: Scope,
    /// Projects the user belongs to.
    pub memberships: Vec<Membership>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A user (through an API token or a browser session).
    User(UserSubject),
    /// A worker credential (server-issued, short-lived, or the local
    /// environment's in-memory token).
    Worker {
        /// The credential's id.
        token_id: String,
    },
}

/// What is being done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Submit a job charged to a project.
    JobSubmit,
    /// See a job, its attempts, log and outputs.
    JobRead,
    /// Cancel a job.
    JobCancel,
    /// Read a job's input files (users: like `JobRead`; workers: staging).
    JobInputsRead,
    /// Create an upload (input folder).
    UploadCreate,
    /// List or read an upload.
    UploadRead,
    /// Add files to an upload.
    UploadWrite,
    /// List workers (running jobs are filtered by visibility).
    WorkersList,
    /// Register a worker.
    WorkerRegister,
    /// Lease, report, deregister as a registered worker.
    WorkerOperate,
    /// Open the worker's workspace tunnel: only the credential that
    /// registered the worker, never a user (admins included), since the
    /// tunnel receives the traffic of the workspaces it hosts.
    WorkerTunnel,
    /// Upload an attempt's outputs (fenced by the lease token too).
    OutputUpload,
    /// List users.
    UserList,
    /// See one user.
    UserRead,
    /// Create a user.
    UserCreate,
    /// Change a user's role, organisation or state.
    UserUpdate,
    /// Change one's own password or default project.
    UserSelfUpdate,
    /// Create an API token for oneself (or, for admins, for anyone).
    TokenCreate,
    /// Create a worker credential.
    WorkerTokenCreate,
    /// See a token's metadata.
    TokenRead,
    /// Revoke a token.
    TokenRevoke,
    /// Create an index (funding source).
    IndexCreate,
    /// List indexes.
    IndexRead,
    /// Create a project.
    ProjectCreate,
    /// See a project and its members.
    ProjectRead,
    /// Add or remove a project's members.
    ProjectManageMembers,
    /// Query the audit trail.
    AuditRead,
    /// Disable unused credentials.
    AuditManage,
    /// See compute environments, queues and which server leads which loop.
    ComputeRead,
    /// Create, change or delete compute environments and queues.
    ComputeManage,
    /// See the stored rows that cannot be decoded (damaged jobs).
    DamagedRead,
    /// See a notification target and its deliveries.
    NotifyTargetRead,
    /// Create, change, delete or test a notification target.
    NotifyTargetManage,
    /// Subscribe or unsubscribe a user, see their subscriptions.
    NotifySubscribe,
    /// See notification rules.
    NotifyRuleRead,
    /// Create or delete notification rules.
    NotifyRuleManage,
    /// Let targets reach loopback, private or link-local addresses; set
    /// users' notification addresses; rotate the secrets key.
    NotifyAdmin,
}

impl Action {
    /// Every action (for exhaustive tests).
    pub const ALL: [Action; 37] = [
        Action::JobSubmit,
        Action::JobRead,
        Action::JobCancel,
        Action::JobInputsRead,
        Action::UploadCreate,
        Action::UploadRead,
        Action::UploadWrite,
        Action::WorkersList,
        Action::WorkerRegister,
        Action::WorkerOperate,
        Action::WorkerTunnel,
        Action::OutputUpload,
        Action::UserList,
        Action::UserRead,
        Action::UserCreate,
        Action::UserUpdate,
        Action::UserSelfUpdate,
        Action::TokenCreate,
        Action::WorkerTokenCreate,
        Action::TokenRead,
        Action::TokenRevoke,
        Action::IndexCreate,
        Action::IndexRead,
        Action::ProjectCreate,
        Action::ProjectRead,
        Action::ProjectManageMembers,
        Action::AuditRead,
        Action::AuditManage,
        Action::ComputeRead,
        Action::ComputeManage,
        Action::DamagedRead,
        Action::NotifyTargetRead,
        Action::NotifyTargetManage,
        Action::NotifySubscribe,
        Action::NotifyRuleRead,
        Action::NotifyRuleManage,
        Action::NotifyAdmin,
    ];

    /// True for actions that change nothing (allowed to read-only tokens).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Action::JobRead
                | Action::JobInputsRead
                | Action::UploadRead
                | Action::WorkersList
                | Action::UserList
                | Action::UserRead
                | Action::TokenRead
                | Action::IndexRead
                | Action::ProjectRead
                | Action::AuditRead
                | Action::ComputeRead
                | Action::DamagedRead
                | Action::NotifyTargetRead
                | Action::NotifyRuleRead
        )
    }

    /// True for what worker credentials may do.
    pub fn is_worker_action(self) -> bool {
        matches!(
            self,
            Action::WorkerRegister
                | Action::WorkerOperate
                | Action::WorkerTunnel
                | Action::JobInputsRead
                | Action::OutputUpload
        )
    }
}

/// The facts about the thing acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// Nothing in particular (listing, creating).
    None,
    /// A job.
    Job {
        /// Who submitted it (jobs from before identity existed have none).
        owner: Option<&'a str>,
        /// The project it is charged to.
        project: Option<&'a str>,
        /// The asking worker credential holds the job's current lease.
        leased_by_caller: bool,
    },
    /// A project (submitting to it, reading it, managing its members).
    Project {
        /// Name.
        name: &'a str,
        /// Its organisation.
        org: Option<&'a str>,
    },
    /// Adding a user with `role` to a project.
    Membership {
        /// The project.
        project: &'a str,
        /// Its organisation.
        org: Option<&'a str>,
        /// The role of the user being added.
        target_role: Role,
    },
    /// An upload.
    Upload {
        /// Who created it.
        owner: Option<&'a str>,
    },
    /// A user.
    User {
        /// The user's name.
        name: &'a str,
    },
    /// An API token.
    Token {
        /// Its user.
        owner: Option<&'a str>,
    },
    /// A registered worker.
    Worker {
        /// The credential that registered it.
        registered_by: Option<&'a str>,
    },
    /// A notification target (or a delivery to it).
    NotifyTarget {
        /// The user who owns it (`None`: an admin's shared target).
        owner: Option<&'a str>,
    },
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Answer as if the thing did not exist (HTTP 404).
    NotFound,
    /// Refuse with a reason (HTTP 403).
    Forbidden(String),
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny(Denial),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

fn forbid(msg: impl Into<String>) -> Decision {
    Decision::Deny(Denial::Forbidden(msg.into()))
}

const HIDDEN: Decision = Decision::Deny(Denial::NotFound);

impl UserSubject {
    /// The user's membership in `project`, if it counts for them: an
    /// internal guest's memberships count only in their own organisation.
    pub fn membership(&self, project: &str, org: Option<&str>) -> Option<MemberRole> {
        let m = self.memberships.iter().find(|m| m.project == project)?;
        if self.role == Role::InternalGuest {
            let same_org = self.org.is_some() && org == self.org.as_deref();
            if !same_org {
                return None;
            }
        }
        Some(m.role)
    }

    /// Projects whose jobs this user may read besides their own (guests:
    /// none).
    pub fn readable_projects(&self) -> Vec<String> {
        if self.role == Role::Guest {
            return Vec::new();
        }
        self.memberships
            .iter()
            .filter(|m| self.membership(&m.project, m.org.as_deref()).is_some())
            .map(|m| m.project.clone())
            .collect()
    }

    fn sees_job(&self, owner: Option<&str>, project: Option<&str>) -> bool {
        if owner == Some(self.name.as_str()) {
            return true;
        }
        if self.role == Role::Guest {
            return false;
        }
        let Some(p) = project else { return false };
        // The project's organisation is the membership's record of it.
        let org = self
            .memberships
            .iter()
            .find(|m| m.project == p)
            .and_then(|m| m.org.as_deref());
        self.membership(p, org).is_some()
    }
}

/// Decides whether `subject` may do `action` on `resource`.
pub fn decide(subject: &Subject, action: Action, resource: Resource<'_>) -> Decision {
    match subject {
        Subject::Worker { token_id } => decide_worker(token_id, action, resource),
        Subject::User(u) => {
            let d = decide_user(u, action, resource);
            // A read-only token reads; what it may not see stays hidden.
            if d.is_allowed() && u.scope == Scope::ReadOnly && !action.is_read() {
                return forbid("this token is read-only");
            }
            d
        }
    }
}

fn decide_worker(token_id: &str, action: Action, resource: Resource<'_>) -> Decision {
    const ONLY: &str =
        "a worker credential may only register, lease, report, stage inputs and upload outputs";
    if !action.is_worker_action() {
        return forbid(ONLY);
    }
    match (action, resource) {
        (Action::WorkerRegister, _) | (Action::OutputUpload, _) => Decision::Allow,
        (Action::WorkerOperate | Action::WorkerTunnel, Resource::Worker { registered_by }) => {
            if registered_by == Some(token_id) {
                Decision::Allow
            } else {
                HIDDEN
            }
        }
        (
            Action::JobInputsRead,
            Resource::Job {
                leased_by_caller, ..
            },
        ) => {
            // A job the worker does not hold looks like one that does not
            // exist: a worker credential cannot probe which jobs exist.
            if leased_by_caller {
                Decision::Allow
            } else {
                HIDDEN
            }
        }
        _ => forbid(ONLY),
    }
}

fn decide_user(u: &UserSubject, action: Action, resource: Resource<'_>) -> Decision {
    if action == Action::WorkerTunnel {
        return forbid("only the worker's own credential may open its tunnel");
    }
    if u.role == Role::Admin {
        return Decision::Allow;
    }
    match action {
        Action::JobRead | Action::JobInputsRead | Action::JobCancel => {
            let Resource::Job { owner, project, .. } = resource else {
                return HIDDEN;
            };
            if !u.sees_job(owner, project) {
                return HIDDEN;
            }
            if action == Action::JobCancel && owner != Some(u.name.as_str()) {
                return forbid(
                    "you can only cancel your own jobs; this one is visible to you because you belong to its project",
                );
            }
            Decision::Allow
        }
        Action::JobSubmit => {
            let Resource::Project { name, org } = resource else {
                return forbid("a job must be charged to a project");
            };
            let raw = u.memberships.iter().find(|m| m.project == name);
            match (raw, u.membership(name, org)) {
                (_, Some(r)) if r.can_submit() => Decision::Allow,
                (_, Some(_)) => forbid(format!(
                    "you are a viewer of project `{name}` and cannot submit jobs to it"
                )),
                (Some(_), None) => forbid(format!(
                    "project `{name}` is outside your organisation; internal guests submit only to their organisation's projects"
                )),
                (None, None) => forbid(format!(
                    "you are not a member of project `{name}`; ask its manager or an admin to add you"
                )),
            }
        }
        Action::UploadCreate | Action::TokenCreate => Decision::Allow,
        Action::UploadRead | Action::UploadWrite => match resource {
            Resource::Upload { owner } if owner == Some(u.name.as_str()) => Decision::Allow,
            _ => HIDDEN,
        },
        Action::WorkersList | Action::ComputeRead => Decision::Allow,
        Action::WorkerRegister
        | Action::WorkerOperate
        | Action::WorkerTunnel
        | Action::OutputUpload => forbid(
            "only worker credentials may do this; create one with `trestle token create --worker`",
        ),
        Action::UserRead | Action::UserSelfUpdate => match resource {
            Resource::User { name } if name == u.name => Decision::Allow,
            _ => HIDDEN,
        },
        Action::TokenRead | Action::TokenRevoke => match resource {
            Resource::Token { owner } if owner == Some(u.name.as_str()) => Decision::Allow,
            _ => HIDDEN,
        },
        Action::IndexRead => {
            if u.role == Role::Researcher {
                Decision::Allow
            } else {
                forbid("guests cannot list indexes")
            }
        }
        Action::ProjectRead => match resource {
            Resource::Project { name, org } if u.membership(name, org).is_some() => Decision::Allow,
            _ => HIDDEN,
        },
        Action::ProjectManageMembers => {
            let (name, org, target) = match resource {
                Resource::Membership {
                    project,
                    org,
                    target_role,
                } => (project, org, Some(target_role)),
                Resource::Project { name, org } => (name, org, None),
                _ => return HIDDEN,
            };
            match u.membership(name, org) {
                None => HIDDEN,
                Some(MemberRole::Manager) if u.role == Role::Researcher => {
                    if target.is_some_and(Role::is_guest) {
                        forbid("only admins can give guests access to a project")
                    } else {
                        Decision::Allow
                    }
                }
                Some(_) => forbid(format!(
                    "only managers of project `{name}` and admins manage its members"
                )),
            }
        }
        Action::UserList
        | Action::UserCreate
        | Action::UserUpdate
        | Action::WorkerTokenCreate
        | Action::IndexCreate
        | Action::ProjectCreate
        | Action::AuditRead
        | Action::AuditManage
        | Action::ComputeManage
        | Action::DamagedRead => forbid("only admins may do this"),
        Action::NotifyTargetRead | Action::NotifyTargetManage => match resource {
            Resource::NotifyTarget { owner } if owner == Some(u.name.as_str()) => {
                if action == Action::NotifyTargetManage && u.role == Role::Guest {
                    forbid("guests cannot add notification targets; their email reaches them")
                } else {
                    Decision::Allow
                }
            }
            _ => HIDDEN,
        },
        Action::NotifySubscribe => match resource {
            Resource::User { name } if name == u.name => Decision::Allow,
            _ => HIDDEN,
        },
        Action::NotifyRuleRead | Action::NotifyRuleManage | Action::NotifyAdmin => {
            forbid("only admins manage notification rules, addresses and keys")
        }
    }
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
