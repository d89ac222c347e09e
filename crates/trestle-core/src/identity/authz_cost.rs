//! Authorization of costs and budgets: part of the one decision
//! ([`super::authz`]), in its own file like [`super::authz_workspace`].
//! Admins see every charge and manage budgets; a project's managers see
//! its costs and its budget; everyone sees their own usage and the
//! budget of the projects they belong to. Raising a budget and letting a
//! job past it are for admins only (both audited by the API).

use super::authz::{Decision, Denial, MemberRole, Role, Scope, Subject, UserSubject};

/// What is being done with costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostAction {
    /// Read usage and charges.
    UsageRead,
    /// See a budget and its state.
    BudgetRead,
    /// Create, change or delete a budget.
    BudgetManage,
    /// Let one job past its budget.
    BudgetOverride,
}

impl CostAction {
    /// Every action.
    pub const ALL: [CostAction; 4] = [
        CostAction::UsageRead,
        CostAction::BudgetRead,
        CostAction::BudgetManage,
        CostAction::BudgetOverride,
    ];

    /// True for what read-only tokens may do.
    pub fn is_read(self) -> bool {
        matches!(self, CostAction::UsageRead | CostAction::BudgetRead)
    }
}

/// What the costs are of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostResource<'a> {
    /// Everything (a site-wide report, every budget).
    All,
    /// One project.
    Project {
        /// Its name.
        name: &'a str,
        /// Its organisation.
        org: Option<&'a str>,
    },
    /// One index.
    Index,
    /// One user's own usage.
    User {
        /// The user.
        name: &'a str,
    },
}

/// What usage a subject may read: `None` for everything, otherwise its
/// own and that of the projects it manages.
pub fn visible_usage(u: &UserSubject) -> Option<(String, Vec<String>)> {
    if u.role == Role::Admin {
        return None;
    }
    let managed = u
        .memberships
        .iter()
        .filter(|m| {
            u.membership(&m.project, m.org.as_deref()) == Some(MemberRole::Manager)
                && u.role == Role::Researcher
        })
        .map(|m| m.project.clone())
        .collect();
    Some((u.name.clone(), managed))
}

const HIDDEN: Decision = Decision::Deny(Denial::NotFound);

fn forbid(msg: &str) -> Decision {
    Decision::Deny(Denial::Forbidden(msg.to_string()))
}

/// Decides whether `subject` may do `action` on `resource`.
pub fn decide(subject: &Subject, action: CostAction, resource: CostResource<'_>) -> Decision {
    let Subject::User(u) = subject else {
        return forbid("a worker credential cannot read costs");
    };
    let d = decide_user(u, action, resource);
    if d.is_allowed() && u.scope == Scope::ReadOnly && !action.is_read() {
        return forbid("this token is read-only");
    }
    d
}

fn decide_user(u: &UserSubject, action: CostAction, resource: CostResource<'_>) -> Decision {
    if u.role == Role::Admin {
        return Decision::Allow;
    }
    match (action, resource) {
        (CostAction::BudgetManage | CostAction::BudgetOverride, _) => {
            forbid("only admins set budgets or let jobs past them")
        }
        (CostAction::UsageRead, CostResource::User { name }) if name == u.name => Decision::Allow,
        (CostAction::UsageRead, CostResource::Project { name, org }) => {
            match u.membership(name, org) {
                Some(MemberRole::Manager) if u.role == Role::Researcher => Decision::Allow,
                Some(_) => forbid("only the project's managers and admins see its costs"),
                None => HIDDEN,
            }
        }
        (CostAction::BudgetRead, CostResource::Project { name, org }) => {
            if u.membership(name, org).is_some() {
                Decision::Allow
            } else {
                HIDDEN
            }
        }
        (CostAction::UsageRead | CostAction::BudgetRead, CostResource::All) => {
            forbid("only admins see every project's costs")
        }
        _ => HIDDEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::authz::Membership;

    fn user(role: Role, member: Option<MemberRole>) -> Subject {
        Subject::User(UserSubject {
            name: "ada".into(),
            role,
            org: None,
            scope: Scope::Full,
            memberships: member
                .map(|role| Membership {
                    project: "genomics".into(),
                    org: None,
                    role,
                })
                .into_iter()
                .collect(),
        })
    }

    const P: CostResource<'static> = CostResource::Project {
        name: "genomics",
        org: None,
    };

    #[test]
    fn managers_see_their_projects_costs_and_members_their_budget() {
        let m = user(Role::Researcher, Some(MemberRole::Manager));
        assert!(decide(&m, CostAction::UsageRead, P).is_allowed());
        let r = user(Role::Researcher, Some(MemberRole::Member));
        assert!(!decide(&r, CostAction::UsageRead, P).is_allowed());
        assert!(decide(&r, CostAction::BudgetRead, P).is_allowed());
        let o = user(Role::Researcher, None);
        assert_eq!(decide(&o, CostAction::BudgetRead, P), HIDDEN);
        assert!(
            decide(
                &o,
                CostAction::UsageRead,
                CostResource::User { name: "ada" }
            )
            .is_allowed()
        );
        assert_eq!(
            decide(
                &o,
                CostAction::UsageRead,
                CostResource::User { name: "bob" }
            ),
            HIDDEN
        );
        assert_eq!(
            visible_usage(match &m {
                Subject::User(u) => u,
                Subject::Worker { .. } => unreachable!(),
            }),
            Some(("ada".into(), vec!["genomics".into()]))
        );
    }

    #[test]
    fn only_admins_manage_and_override_budgets() {
        for a in CostAction::ALL {
            assert!(decide(&user(Role::Admin, None), a, CostResource::All).is_allowed());
        }
        let m = user(Role::Researcher, Some(MemberRole::Manager));
        assert!(!decide(&m, CostAction::BudgetManage, P).is_allowed());
        assert!(!decide(&m, CostAction::BudgetOverride, P).is_allowed());
        let w = Subject::Worker {
            token_id: "t".into(),
        };
        assert!(!decide(&w, CostAction::UsageRead, CostResource::All).is_allowed());
    }
}
