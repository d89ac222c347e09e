//! Authorization of studies: part of the one decision ([`super::authz`]),
//! in its own file like [`super::authz_workspace`]. What a user may do to
//! a study is the union of three sources:
//!
//! - an explicit grant (admin, read-write, read-only, write-only);
//! - its category: **Open Data** is readable by every user;
//!   **Organization** by the members of its project (not guests, and
//!   internal guests only within their organisation); **My Studies**
//!   gives nothing beyond the grants;
//! - the `admin` role, which may do everything (a read-only token still
//!   only reads).
//!
//! A user with nothing on a study is told it does not exist (404); a user
//! who sees it but may not do this gets a 403 with the reason. Only
//! admins and researchers create studies, in projects where they may
//! submit; guests use what they are given. Worker credentials never act
//! on studies directly: jobs attach them through their submitter.

use super::authz::{Decision, Denial, Role, Scope, Subject, UserSubject};
use crate::study::{Category, Permission};

/// What is being done with studies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StudyAction {
    /// List studies (each listed one is filtered by [`StudyAction::Show`]).
    List,
    /// Create a study charged to a project.
    Create,
    /// See a study's name, category, version and size.
    Show,
    /// List its files and download them.
    Read,
    /// Add files (a new version).
    Write,
    /// Replace or delete files (a new version).
    Modify,
    /// Delete the study.
    Delete,
    /// See, grant and revoke permissions.
    Grant,
    /// Attach it read-only to a job or workspace session.
    AttachRead,
    /// Attach it read-write to a job or workspace session.
    AttachWrite,
    /// Set a project's quota for its studies (admins).
    SetQuota,
}

impl StudyAction {
    /// Every action.
    pub const ALL: [StudyAction; 11] = [
        StudyAction::List,
        StudyAction::Create,
        StudyAction::Show,
        StudyAction::Read,
        StudyAction::Write,
        StudyAction::Modify,
        StudyAction::Delete,
        StudyAction::Grant,
        StudyAction::AttachRead,
        StudyAction::AttachWrite,
        StudyAction::SetQuota,
    ];

    /// True for what read-only tokens may do.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            StudyAction::List | StudyAction::Show | StudyAction::Read
        )
    }
}

/// The facts about the study (or project) acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyResource<'a> {
    /// Nothing in particular (listing).
    None,
    /// The project a new study is charged to.
    Project {
        /// Its name.
        name: &'a str,
        /// Its organisation.
        org: Option<&'a str>,
    },
    /// A study.
    Study {
        /// Its category.
        category: Category,
        /// The project charged for it.
        project: &'a str,
        /// The project's organisation.
        org: Option<&'a str>,
        /// The asking user's explicit grant on it.
        grant: Option<Permission>,
    },
}

/// What a user may do to one study: the union of its sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// Read files and the manifest.
    pub read: bool,
    /// Add files.
    pub add: bool,
    /// Replace and delete files.
    pub modify: bool,
    /// Grant, revoke, delete the study.
    pub admin: bool,
}

impl Caps {
    fn of(p: Permission) -> Caps {
        Caps {
            read: p.can_read(),
            add: p.can_write(),
            modify: p.can_modify(),
            admin: p == Permission::Admin,
        }
    }

    fn union(self, o: Caps) -> Caps {
        Caps {
            read: self.read || o.read,
            add: self.add || o.add,
            modify: self.modify || o.modify,
            admin: self.admin || o.admin,
        }
    }

    /// True when the user has anything at all on the study.
    pub fn any(self) -> bool {
        self.read || self.add || self.modify || self.admin
    }

    /// The permission these capabilities amount to (for display).
    pub fn permission(self) -> Option<Permission> {
        if self.admin {
            Some(Permission::Admin)
        } else if self.modify {
            Some(Permission::ReadWrite)
        } else if self.read {
            Some(Permission::ReadOnly)
        } else if self.add {
            Some(Permission::WriteOnly)
        } else {
            None
        }
    }
}

/// What `u` may do to a study.
pub fn caps(u: &UserSubject, resource: StudyResource<'_>) -> Caps {
    let StudyResource::Study {
        category,
        project,
        org,
        grant,
    } = resource
    else {
        return Caps::default();
    };
    if u.role == Role::Admin {
        return Caps::of(Permission::Admin);
    }
    let mut c = grant.map(Caps::of).unwrap_or_default();
    let by_category = match category {
        Category::Open => true,
        Category::Organization => u.role != Role::Guest && u.membership(project, org).is_some(),
        Category::Personal => false,
    };
    if by_category {
        c = c.union(Caps::of(Permission::ReadOnly));
    }
    c
}

const HIDDEN: Decision = Decision::Deny(Denial::NotFound);

fn forbid(msg: &str) -> Decision {
    Decision::Deny(Denial::Forbidden(msg.to_string()))
}

/// Decides whether `subject` may do `action` on `resource`.
pub fn decide(subject: &Subject, action: StudyAction, resource: StudyResource<'_>) -> Decision {
    let Subject::User(u) = subject else {
        return forbid("a worker credential cannot act on studies");
    };
    let d = decide_user(u, action, resource);
    if d.is_allowed() && u.scope == Scope::ReadOnly && !action.is_read() {
        return forbid("this token is read-only");
    }
    d
}

fn decide_user(u: &UserSubject, action: StudyAction, resource: StudyResource<'_>) -> Decision {
    match (action, resource) {
        (StudyAction::List, _) => Decision::Allow,
        (StudyAction::Create, StudyResource::Project { name, org }) => match u.role {
            Role::Admin => Decision::Allow,
            Role::Researcher => match u.membership(name, org) {
                Some(r) if r.can_submit() => Decision::Allow,
                _ => forbid("studies are created in projects where you are a member or manager"),
            },
            Role::InternalGuest | Role::Guest => {
                forbid("only admins and researchers create studies; guests use what they are given")
            }
        },
        (StudyAction::Create, _) => forbid("a study belongs to a project"),
        (StudyAction::SetQuota, _) => {
            if u.role == Role::Admin {
                Decision::Allow
            } else {
                forbid("only admins set project quotas")
            }
        }
        (act, r @ StudyResource::Study { .. }) => {
            let c = caps(u, r);
            if !c.any() {
                return HIDDEN;
            }
            let (ok, why) = match act {
                StudyAction::Show => (true, ""),
                StudyAction::Read | StudyAction::AttachRead => (
                    c.read,
                    "you may add files to this study but not read it (write-only)",
                ),
                StudyAction::Write => (c.add, "you may only read this study"),
                StudyAction::Modify => (
                    c.modify,
                    "replacing or deleting files needs read-write on this study",
                ),
                StudyAction::AttachWrite => (
                    c.read && c.modify,
                    "attaching read-write needs read-write on this study",
                ),
                StudyAction::Delete | StudyAction::Grant => {
                    (c.admin, "only the study's admins may do this")
                }
                StudyAction::List | StudyAction::Create | StudyAction::SetQuota => (true, ""),
            };
            if ok { Decision::Allow } else { forbid(why) }
        }
        (_, _) => HIDDEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::authz::{MemberRole, Membership};

    fn user(role: Role, scope: Scope, member: Option<MemberRole>) -> Subject {
        Subject::User(UserSubject {
            name: "u".into(),
            role,
            org: Some("uni".into()),
            scope,
            memberships: member
                .map(|role| Membership {
                    project: "p".into(),
                    org: Some("uni".into()),
                    role,
                })
                .into_iter()
                .collect(),
        })
    }

    fn study(category: Category, grant: Option<Permission>) -> StudyResource<'static> {
        StudyResource::Study {
            category,
            project: "p",
            org: Some("uni"),
            grant,
        }
    }

    fn code(d: Decision) -> char {
        match d {
            Decision::Allow => 'A',
            Decision::Deny(Denial::NotFound) => 'N',
            Decision::Deny(Denial::Forbidden(_)) => 'F',
        }
    }

    const ACTS: [StudyAction; 8] = [
        StudyAction::Show,
        StudyAction::Read,
        StudyAction::Write,
        StudyAction::Modify,
        StudyAction::Delete,
        StudyAction::Grant,
        StudyAction::AttachRead,
        StudyAction::AttachWrite,
    ];

    /// Show, Read, Write, Modify, Delete, Grant, AttachRead, AttachWrite
    /// for each role, relation and grant, written by hand.
    #[test]
    fn matrix() {
        use Category::*;
        use Permission::*;
        let member = Some(MemberRole::Member);
        let viewer = Some(MemberRole::Viewer);
        let rows: &[(Role, Option<MemberRole>, StudyResource<'static>, &str)] = &[
            // Grants alone (My Studies).
            (
                Role::Researcher,
                None,
                study(Personal, Some(Admin)),
                "AAAAAAAA",
            ),
            (
                Role::Researcher,
                None,
                study(Personal, Some(ReadWrite)),
                "AAAAFFAA",
            ),
            (
                Role::Researcher,
                None,
                study(Personal, Some(ReadOnly)),
                "AAFFFFAF",
            ),
            (
                Role::Researcher,
                None,
                study(Personal, Some(WriteOnly)),
                "AFAFFFFF",
            ),
            (Role::Researcher, member, study(Personal, None), "NNNNNNNN"),
            (
                Role::Guest,
                None,
                study(Personal, Some(ReadOnly)),
                "AAFFFFAF",
            ),
            (Role::Guest, None, study(Personal, None), "NNNNNNNN"),
            // Organization: members of its project read.
            (
                Role::Researcher,
                member,
                study(Organization, None),
                "AAFFFFAF",
            ),
            (
                Role::Researcher,
                viewer,
                study(Organization, None),
                "AAFFFFAF",
            ),
            (
                Role::Researcher,
                None,
                study(Organization, None),
                "NNNNNNNN",
            ),
            (Role::Guest, member, study(Organization, None), "NNNNNNNN"),
            (
                Role::InternalGuest,
                member,
                study(Organization, None),
                "AAFFFFAF",
            ),
            // A write-only grant with the category's read is both.
            (
                Role::Researcher,
                member,
                study(Organization, Some(WriteOnly)),
                "AAAFFFAF",
            ),
            // Open Data: every user reads, only its admins write.
            (Role::Guest, None, study(Open, None), "AAFFFFAF"),
            (Role::Researcher, None, study(Open, None), "AAFFFFAF"),
            (Role::Researcher, None, study(Open, Some(Admin)), "AAAAAAAA"),
            // Admins do everything.
            (Role::Admin, None, study(Personal, None), "AAAAAAAA"),
        ];
        for (role, m, res, want) in rows {
            let s = user(*role, Scope::Full, *m);
            let got: String = ACTS
                .into_iter()
                .map(|a| code(decide(&s, a, *res)))
                .collect();
            assert_eq!(&got, want, "{role} {m:?} on {res:?}");
        }
    }

    #[test]
    fn internal_guests_only_within_their_organisation() {
        let s = user(Role::InternalGuest, Scope::Full, Some(MemberRole::Member));
        let other_org = StudyResource::Study {
            category: Category::Organization,
            project: "p",
            org: Some("elsewhere"),
            grant: None,
        };
        assert_eq!(code(decide(&s, StudyAction::Show, other_org)), 'N');
    }

    #[test]
    fn who_creates() {
        let project = StudyResource::Project {
            name: "p",
            org: Some("uni"),
        };
        let other = StudyResource::Project {
            name: "q",
            org: Some("uni"),
        };
        let cases = [
            (Role::Admin, None, project, 'A'),
            (Role::Admin, None, other, 'A'),
            (Role::Researcher, Some(MemberRole::Member), project, 'A'),
            (Role::Researcher, Some(MemberRole::Manager), project, 'A'),
            (Role::Researcher, Some(MemberRole::Viewer), project, 'F'),
            (Role::Researcher, Some(MemberRole::Member), other, 'F'),
            (Role::InternalGuest, Some(MemberRole::Member), project, 'F'),
            (Role::Guest, Some(MemberRole::Member), project, 'F'),
        ];
        for (role, m, res, want) in cases {
            let s = user(role, Scope::Full, m);
            assert_eq!(
                code(decide(&s, StudyAction::Create, res)),
                want,
                "{role} {m:?} {res:?}"
            );
        }
        let s = user(Role::Admin, Scope::Full, None);
        assert_eq!(
            code(decide(&s, StudyAction::Create, StudyResource::None)),
            'F'
        );
    }

    #[test]
    fn read_only_tokens_and_workers() {
        let ro = user(Role::Admin, Scope::ReadOnly, None);
        let res = study(Category::Personal, None);
        for a in StudyAction::ALL {
            if a == StudyAction::Create {
                continue;
            }
            assert_eq!(decide(&ro, a, res).is_allowed(), a.is_read(), "{a:?}");
        }
        let w = Subject::Worker {
            token_id: "t".into(),
        };
        for a in StudyAction::ALL {
            assert!(!decide(&w, a, study(Category::Open, None)).is_allowed());
        }
    }

    #[test]
    fn caps_name_a_permission() {
        let u = match user(Role::Researcher, Scope::Full, Some(MemberRole::Member)) {
            Subject::User(u) => u,
            Subject::Worker { .. } => unreachable!(),
        };
        let c = caps(
            &u,
            study(Category::Organization, Some(Permission::WriteOnly)),
        );
        assert_eq!(c.permission(), Some(Permission::ReadOnly));
        assert!(c.add);
        assert_eq!(caps(&u, study(Category::Personal, None)).permission(), None);
    }
}
