//! Authorization of workspaces: part of the one decision ([`super::authz`]),
//! kept in its own file because its rules differ from the rest in one
//! way: **getting into** a workspace (its proxy, shell and port forwards)
//! is for its owner (and, when shared, its project's members) only;
//! admins see and stop every workspace but get in only through an
//! audited *assist*, and a refused request looks like a workspace that
//! does not exist.

use super::authz::{Decision, Denial, Role, Scope, Subject, UserSubject};

/// What is being done with workspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WsAction {
    /// List types and configurations (users see the approved ones they may
    /// launch; admins see all).
    CatalogRead,
    /// Import, approve or revoke type versions; create or change
    /// configurations (admins).
    CatalogManage,
    /// Launch a configuration (charged to a project: the service also
    /// checks the user may submit there).
    Launch,
    /// See a workspace.
    Read,
    /// Stop, start, terminate, extend, share.
    Operate,
    /// Reach the app through the proxy, a shell, a port forward.
    Connect,
    /// An admin grants themselves access to a user's workspace (audited).
    Assist,
}

impl WsAction {
    /// Every action.
    pub const ALL: [WsAction; 7] = [
        WsAction::CatalogRead,
        WsAction::CatalogManage,
        WsAction::Launch,
        WsAction::Read,
        WsAction::Operate,
        WsAction::Connect,
        WsAction::Assist,
    ];

    /// True for what read-only tokens may do.
    pub fn is_read(self) -> bool {
        matches!(self, WsAction::CatalogRead | WsAction::Read)
    }
}

/// The facts about the workspace (or configuration) acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsResource<'a> {
    /// Nothing in particular (listing, importing).
    None,
    /// A configuration to launch.
    Config {
        /// The configuration allows the user's role (deny wins, empty
        /// allow list allows nobody).
        role_allowed: bool,
    },
    /// A workspace.
    Workspace {
        /// Its owner.
        owner: &'a str,
        /// Its project.
        project: Option<&'a str>,
        /// Shared with its project's members.
        shared: bool,
        /// The asking admin holds an active assist grant for it.
        assisted: bool,
    },
}

const HIDDEN: Decision = Decision::Deny(Denial::NotFound);

fn forbid(msg: &str) -> Decision {
    Decision::Deny(Denial::Forbidden(msg.to_string()))
}

/// Decides whether `subject` may do `action` on `resource`.
pub fn decide(subject: &Subject, action: WsAction, resource: WsResource<'_>) -> Decision {
    let Subject::User(u) = subject else {
        return forbid("a worker credential cannot act on workspaces");
    };
    let d = decide_user(u, action, resource);
    if d.is_allowed() && u.scope == Scope::ReadOnly && !action.is_read() {
        return forbid("this token is read-only");
    }
    d
}

fn member(u: &UserSubject, project: Option<&str>) -> bool {
    let Some(p) = project else { return false };
    let org = u
        .memberships
        .iter()
        .find(|m| m.project == p)
        .and_then(|m| m.org.as_deref());
    u.membership(p, org).is_some()
}

fn decide_user(u: &UserSubject, action: WsAction, resource: WsResource<'_>) -> Decision {
    let admin = u.role == Role::Admin;
    match (action, resource) {
        (WsAction::CatalogRead, _) => Decision::Allow,
        (WsAction::CatalogManage, _) => {
            if admin {
                Decision::Allow
            } else {
                forbid("only admins manage workspace types and configurations")
            }
        }
        // The allow list binds admins too: it is theirs to edit.
        (WsAction::Launch, WsResource::Config { role_allowed }) => {
            if role_allowed {
                Decision::Allow
            } else {
                HIDDEN
            }
        }
        (WsAction::Launch, _) => HIDDEN,
        (WsAction::Assist, WsResource::Workspace { .. }) => {
            if admin {
                Decision::Allow
            } else {
                HIDDEN
            }
        }
        (WsAction::Assist, _) => HIDDEN,
        (
            act @ (WsAction::Read | WsAction::Operate | WsAction::Connect),
            WsResource::Workspace {
                owner,
                project,
                shared,
                assisted,
            },
        ) => {
            let own = owner == u.name;
            let sharer = shared && !own && member(u, project) && u.role != Role::Guest;
            match act {
                WsAction::Read if own || admin || sharer => Decision::Allow,
                WsAction::Operate if own || admin => Decision::Allow,
                WsAction::Operate if sharer => forbid(
                    "only the workspace's owner (or an admin) can stop, start or terminate it",
                ),
                WsAction::Connect if own || sharer || (admin && assisted) => Decision::Allow,
                _ => HIDDEN,
            }
        }
        (WsAction::Read | WsAction::Operate | WsAction::Connect, _) => HIDDEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::authz::{MemberRole, Membership};

    fn user(role: Role, scope: Scope) -> Subject {
        Subject::User(UserSubject {
            name: "u".into(),
            role,
            org: Some("uni".into()),
            scope,
            memberships: vec![Membership {
                project: "p".into(),
                org: Some("uni".into()),
                role: MemberRole::Member,
            }],
        })
    }

    fn ws(owner: &'static str, shared: bool, assisted: bool) -> WsResource<'static> {
        WsResource::Workspace {
            owner,
            project: Some("p"),
            shared,
            assisted,
        }
    }

    fn code(d: Decision) -> char {
        match d {
            Decision::Allow => 'A',
            Decision::Deny(Denial::NotFound) => 'N',
            Decision::Deny(Denial::Forbidden(_)) => 'F',
        }
    }

    /// Read, Operate, Connect, Assist for each relation, written by hand.
    #[test]
    fn matrix() {
        let rows: &[(Role, WsResource<'static>, &str)] = &[
            (Role::Researcher, ws("u", false, false), "AAAN"),
            (Role::Researcher, ws("v", false, false), "NNNN"),
            (Role::Researcher, ws("v", true, false), "AFAN"),
            (Role::Guest, ws("v", true, false), "NNNN"),
            (Role::Guest, ws("u", false, false), "AAAN"),
            (Role::Admin, ws("v", false, false), "AANA"),
            (Role::Admin, ws("v", false, true), "AAAA"),
            (Role::Admin, ws("u", false, false), "AAAA"),
        ];
        for (role, res, want) in rows {
            let s = user(*role, Scope::Full);
            let got: String = [
                WsAction::Read,
                WsAction::Operate,
                WsAction::Connect,
                WsAction::Assist,
            ]
            .into_iter()
            .map(|a| code(decide(&s, a, *res)))
            .collect();
            assert_eq!(&got, want, "{role} on {res:?}");
        }
    }

    #[test]
    fn launch_follows_the_allow_list_for_everyone() {
        for role in Role::ALL {
            let s = user(role, Scope::Full);
            assert!(
                decide(
                    &s,
                    WsAction::Launch,
                    WsResource::Config { role_allowed: true }
                )
                .is_allowed()
            );
            assert_eq!(
                code(decide(
                    &s,
                    WsAction::Launch,
                    WsResource::Config {
                        role_allowed: false
                    }
                )),
                'N'
            );
            assert_eq!(
                decide(&s, WsAction::CatalogManage, WsResource::None).is_allowed(),
                role == Role::Admin
            );
        }
    }

    #[test]
    fn read_only_tokens_and_workers() {
        let ro = user(Role::Admin, Scope::ReadOnly);
        for a in WsAction::ALL {
            let d = decide(&ro, a, ws("u", false, true));
            assert_eq!(d.is_allowed(), a.is_read(), "{a:?}");
        }
        let w = Subject::Worker {
            token_id: "t".into(),
        };
        for a in WsAction::ALL {
            assert!(!decide(&w, a, ws("u", false, false)).is_allowed());
        }
    }
}
