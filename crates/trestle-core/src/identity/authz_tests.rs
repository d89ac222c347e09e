//! The authorization matrix: every role x action x ownership relation. The
//! expected answers are written out by hand, independently of the rules'
//! code, so any change that leaks (or locks out) fails here.

use super::*;

/// How the asking user relates to a job or project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    /// The user's own job (in a project they do not belong to).
    Own,
    /// Someone else's job in a project where the user is a viewer.
    Viewer,
    /// ... a member.
    Member,
    /// ... a manager.
    Manager,
    /// ... a member, but the project belongs to another organisation.
    OtherOrg,
    /// Someone else's job in a project the user has nothing to do with.
    Stranger,
    /// A job from before identity existed (no owner, no project).
    Legacy,
}

const RELS: [Rel; 7] = [
    Rel::Own,
    Rel::Viewer,
    Rel::Member,
    Rel::Manager,
    Rel::OtherOrg,
    Rel::Stranger,
    Rel::Legacy,
];

fn user(role: Role, scope: Scope) -> Subject {
    let m = |project: &str, org: &str, role| Membership {
        project: project.into(),
        org: Some(org.into()),
        role,
    };
    Subject::User(UserSubject {
        name: "u".into(),
        role,
        org: Some("uni".into()),
        scope,
        memberships: vec![
            m("pv", "uni", MemberRole::Viewer),
            m("pm", "uni", MemberRole::Member),
            m("pg", "uni", MemberRole::Manager),
            m("px", "other", MemberRole::Member),
        ],
    })
}

fn job(rel: Rel) -> Resource<'static> {
    let (owner, project) = match rel {
        Rel::Own => (Some("u"), Some("ps")),
        Rel::Viewer => (Some("v"), Some("pv")),
        Rel::Member => (Some("v"), Some("pm")),
        Rel::Manager => (Some("v"), Some("pg")),
        Rel::OtherOrg => (Some("v"), Some("px")),
        Rel::Stranger => (Some("v"), Some("ps")),
        Rel::Legacy => (None, None),
    };
    Resource::Job {
        owner,
        project,
        leased_by_caller: false,
    }
}

fn project(rel: Rel) -> Resource<'static> {
    match rel {
        Rel::Viewer => Resource::Project {
            name: "pv",
            org: Some("uni"),
        },
        Rel::Member => Resource::Project {
            name: "pm",
            org: Some("uni"),
        },
        Rel::Manager => Resource::Project {
            name: "pg",
            org: Some("uni"),
        },
        Rel::OtherOrg => Resource::Project {
            name: "px",
            org: Some("other"),
        },
        _ => Resource::Project {
            name: "ps",
            org: Some("uni"),
        },
    }
}

/// A compact answer: `A` allow, `N` not found, `F` forbidden.
fn code(d: &Decision) -> char {
    match d {
        Decision::Allow => 'A',
        Decision::Deny(Denial::NotFound) => 'N',
        Decision::Deny(Denial::Forbidden(_)) => 'F',
    }
}

/// Rows: admin, researcher, internal-guest, guest. Columns: [`RELS`].
fn check_jobs(action: Action, scope: Scope, expected: [&str; 4]) {
    for (role, row) in Role::ALL.into_iter().zip(expected) {
        let got: String = RELS
            .iter()
            .map(|r| code(&decide(&user(role, scope), action, job(*r))))
            .collect();
        assert_eq!(got, row, "{action:?} {scope:?} as {role}: columns {RELS:?}");
    }
}

#[test]
fn job_reads() {
    for action in [Action::JobRead, Action::JobInputsRead] {
        for scope in [Scope::Full, Scope::ReadOnly] {
            //                          Own Viewer Member Manager OtherOrg Stranger Legacy
            check_jobs(action, scope, ["AAAAAAA", "AAAAANN", "AAAANNN", "ANNNNNN"]);
        }
    }
}

#[test]
fn job_cancel() {
    check_jobs(
        Action::JobCancel,
        Scope::Full,
        ["AAAAAAA", "AFFFFNN", "AFFFNNN", "ANNNNNN"],
    );
    check_jobs(
        Action::JobCancel,
        Scope::ReadOnly,
        ["FFFFFFF", "FFFFFNN", "FFFFNNN", "FNNNNNN"],
    );
}

#[test]
fn job_submit_by_project_relation() {
    let rels = [
        Rel::Viewer,
        Rel::Member,
        Rel::Manager,
        Rel::OtherOrg,
        Rel::Stranger,
    ];
    let expect = |scope, rows: [&str; 4]| {
        for (role, row) in Role::ALL.into_iter().zip(rows) {
            let got: String = rels
                .iter()
                .map(|r| code(&decide(&user(role, scope), Action::JobSubmit, project(*r))))
                .collect();
            assert_eq!(got, row, "submit {scope:?} as {role}");
        }
    };
    //                   Viewer Member Manager OtherOrg Stranger
    expect(Scope::Full, ["AAAAA", "FAAAF", "FAAFF", "FAAAF"]);
    expect(Scope::ReadOnly, ["FFFFF", "FFFFF", "FFFFF", "FFFFF"]);
    // The reasons say what is wrong.
    let Decision::Deny(Denial::Forbidden(msg)) = decide(
        &user(Role::Researcher, Scope::Full),
        Action::JobSubmit,
        project(Rel::Stranger),
    ) else {
        panic!("a stranger's project must be forbidden");
    };
    assert!(msg.contains("not a member of project `ps`"), "{msg}");
    assert!(
        !decide(
            &user(Role::Researcher, Scope::Full),
            Action::JobSubmit,
            Resource::None
        )
        .is_allowed()
    );
}

/// Every resource a test can name, with whether it is the asking user's
/// own (`u`) or related to them.
fn all_resources() -> Vec<(Resource<'static>, bool)> {
    let mut v: Vec<(Resource<'static>, bool)> = RELS
        .iter()
        .map(|r| (job(*r), !matches!(r, Rel::Stranger | Rel::Legacy)))
        .collect();
    for r in [Rel::Viewer, Rel::Member, Rel::Manager, Rel::OtherOrg] {
        v.push((project(r), true));
    }
    v.push((project(Rel::Stranger), false));
    for target_role in Role::ALL {
        v.push((
            Resource::Membership {
                project: "pg",
                org: Some("uni"),
                target_role,
            },
            true,
        ));
        v.push((
            Resource::Membership {
                project: "ps",
                org: Some("uni"),
                target_role,
            },
            false,
        ));
    }
    v.extend([
        (Resource::None, false),
        (Resource::Upload { owner: Some("u") }, true),
        (Resource::Upload { owner: Some("v") }, false),
        (Resource::Upload { owner: None }, false),
        (Resource::User { name: "u" }, true),
        (Resource::User { name: "v" }, false),
        (Resource::Token { owner: Some("u") }, true),
        (Resource::Token { owner: Some("v") }, false),
        (Resource::Token { owner: None }, false),
        (
            Resource::Worker {
                registered_by: Some("t1"),
            },
            false,
        ),
        (Resource::NotifyTarget { owner: Some("u") }, true),
        (Resource::NotifyTarget { owner: Some("v") }, false),
        (Resource::NotifyTarget { owner: None }, false),
    ]);
    v
}

/// Actions on one object: a stranger's object must be invisible.
const OBJECT_ACTIONS: [Action; 13] = [
    Action::JobRead,
    Action::JobInputsRead,
    Action::JobCancel,
    Action::UploadRead,
    Action::UploadWrite,
    Action::UserRead,
    Action::UserSelfUpdate,
    Action::TokenRead,
    Action::TokenRevoke,
    Action::ProjectRead,
    Action::NotifyTargetRead,
    Action::NotifyTargetManage,
    Action::NotifySubscribe,
];

#[test]
fn nothing_of_a_stranger_leaks_to_non_admins() {
    for role in [Role::Researcher, Role::InternalGuest, Role::Guest] {
        for scope in [Scope::Full, Scope::ReadOnly] {
            let s = user(role, scope);
            for (res, related) in all_resources() {
                if related || res == Resource::None {
                    continue;
                }
                for action in OBJECT_ACTIONS {
                    let d = decide(&s, action, res);
                    if matches!(
                        (action, res),
                        (
                            Action::JobRead | Action::JobInputsRead | Action::JobCancel,
                            Resource::Job { .. }
                        ) | (
                            Action::UploadRead | Action::UploadWrite,
                            Resource::Upload { .. }
                        ) | (Action::UserRead, Resource::User { .. })
                            | (
                                Action::TokenRead | Action::TokenRevoke,
                                Resource::Token { .. }
                            )
                            | (
                                Action::NotifyTargetRead | Action::NotifyTargetManage,
                                Resource::NotifyTarget { .. }
                            )
                            | (Action::NotifySubscribe, Resource::User { .. })
                            | (Action::ProjectRead, Resource::Project { .. })
                    ) {
                        assert_eq!(
                            d,
                            Decision::Deny(Denial::NotFound),
                            "{role} {scope:?} {action:?} on {res:?} must be a 404"
                        );
                    } else {
                        assert!(!d.is_allowed(), "{role} {action:?} on {res:?}: {d:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn read_only_tokens_never_change_anything() {
    for role in Role::ALL {
        let s = user(role, Scope::ReadOnly);
        for (res, _) in all_resources() {
            for action in Action::ALL.into_iter().filter(|a| !a.is_read()) {
                assert!(
                    !decide(&s, action, res).is_allowed(),
                    "read-only {role} may {action:?} on {res:?}"
                );
            }
        }
    }
}

#[test]
fn admin_only_actions() {
    let admin_only = [
        Action::UserList,
        Action::UserCreate,
        Action::UserUpdate,
        Action::WorkerTokenCreate,
        Action::IndexCreate,
        Action::ProjectCreate,
        Action::AuditRead,
        Action::AuditManage,
        Action::NotifyRuleRead,
        Action::NotifyRuleManage,
        Action::NotifyAdmin,
    ];
    for (res, _) in all_resources() {
        for action in admin_only {
            assert!(decide(&user(Role::Admin, Scope::Full), action, res).is_allowed());
            for role in [Role::Researcher, Role::InternalGuest, Role::Guest] {
                assert!(
                    !decide(&user(role, Scope::Full), action, res).is_allowed(),
                    "{role} may {action:?}"
                );
            }
        }
    }
    // Admins may do anything with a full token, and read with a read-only
    // one, except open a worker's tunnel (which receives other users'
    // workspace traffic): only the worker's own credential may.
    for (res, _) in all_resources() {
        for action in Action::ALL {
            if action == Action::WorkerTunnel {
                assert_eq!(
                    code(&decide(&user(Role::Admin, Scope::Full), action, res)),
                    'F'
                );
                continue;
            }
            assert!(decide(&user(Role::Admin, Scope::Full), action, res).is_allowed());
            assert_eq!(
                decide(&user(Role::Admin, Scope::ReadOnly), action, res).is_allowed(),
                action.is_read()
            );
        }
    }
}

#[test]
fn workers_only_lease_report_stage_and_upload() {
    let w = Subject::Worker {
        token_id: "t1".into(),
    };
    for (res, _) in all_resources() {
        for action in Action::ALL {
            let d = decide(&w, action, res);
            let expected = match (action, res) {
                (Action::WorkerRegister | Action::OutputUpload, _) => 'A',
                (Action::WorkerOperate | Action::WorkerTunnel, Resource::Worker { .. }) => 'A', // registered by t1
                (Action::JobInputsRead, Resource::Job { .. }) => 'N', // not leased by it: hidden
                _ => 'F',
            };
            assert_eq!(code(&d), expected, "worker {action:?} on {res:?}");
        }
    }
    let other = Resource::Worker {
        registered_by: Some("t2"),
    };
    assert_eq!(
        decide(&w, Action::WorkerOperate, other),
        Decision::Deny(Denial::NotFound)
    );
    assert_eq!(
        decide(&w, Action::WorkerTunnel, other),
        Decision::Deny(Denial::NotFound),
        "another worker's tunnel looks like one that does not exist"
    );
    let held = Resource::Job {
        owner: Some("v"),
        project: Some("ps"),
        leased_by_caller: true,
    };
    assert!(decide(&w, Action::JobInputsRead, held).is_allowed());
    // Holding a lease never opens logs, cancel or anything else.
    for action in [Action::JobRead, Action::JobCancel, Action::JobSubmit] {
        assert!(!decide(&w, action, held).is_allowed());
    }
}

#[test]
fn users_are_not_workers() {
    for role in [Role::Researcher, Role::InternalGuest, Role::Guest] {
        for action in [
            Action::WorkerRegister,
            Action::WorkerOperate,
            Action::WorkerTunnel,
            Action::OutputUpload,
        ] {
            let d = decide(
                &user(role, Scope::Full),
                action,
                Resource::Worker {
                    registered_by: Some("u"),
                },
            );
            assert_eq!(code(&d), 'F', "{role} {action:?}");
        }
    }
}

#[test]
fn own_things_and_global_actions() {
    for role in [Role::Researcher, Role::InternalGuest, Role::Guest] {
        let s = user(role, Scope::Full);
        let allow = |a, r| decide(&s, a, r).is_allowed();
        assert!(allow(Action::UploadCreate, Resource::None));
        assert!(allow(Action::TokenCreate, Resource::None));
        assert!(allow(Action::WorkersList, Resource::None));
        assert!(allow(
            Action::UploadWrite,
            Resource::Upload { owner: Some("u") }
        ));
        assert!(allow(Action::UserRead, Resource::User { name: "u" }));
        assert!(allow(Action::UserSelfUpdate, Resource::User { name: "u" }));
        assert!(!allow(Action::UserUpdate, Resource::User { name: "u" }));
        assert!(allow(
            Action::TokenRevoke,
            Resource::Token { owner: Some("u") }
        ));
        assert_eq!(
            allow(Action::IndexRead, Resource::None),
            role == Role::Researcher
        );
    }
}

#[test]
fn project_membership_management() {
    let target = |project, target_role| Resource::Membership {
        project,
        org: Some("uni"),
        target_role,
    };
    let r = user(Role::Researcher, Scope::Full);
    // A researcher who manages `pg` adds researchers, not guests.
    assert!(
        decide(
            &r,
            Action::ProjectManageMembers,
            target("pg", Role::Researcher)
        )
        .is_allowed()
    );
    for g in [Role::Guest, Role::InternalGuest] {
        assert_eq!(
            code(&decide(&r, Action::ProjectManageMembers, target("pg", g))),
            'F'
        );
    }
    // A plain member or viewer cannot; a stranger's project is hidden.
    assert_eq!(
        code(&decide(
            &r,
            Action::ProjectManageMembers,
            target("pm", Role::Researcher)
        )),
        'F'
    );
    assert_eq!(
        code(&decide(
            &r,
            Action::ProjectManageMembers,
            target("ps", Role::Researcher)
        )),
        'N'
    );
    // Guests never manage members, even as managers.
    for g in [Role::Guest, Role::InternalGuest] {
        let d = decide(
            &user(g, Scope::Full),
            Action::ProjectManageMembers,
            target("pg", Role::Researcher),
        );
        assert_eq!(code(&d), 'F', "{g}");
    }
}

#[test]
fn readable_projects_follow_the_rules() {
    let names = |role| match user(role, Scope::Full) {
        Subject::User(u) => u.readable_projects(),
        Subject::Worker { .. } => unreachable!(),
    };
    assert_eq!(names(Role::Researcher), vec!["pv", "pm", "pg", "px"]);
    assert_eq!(names(Role::InternalGuest), vec!["pv", "pm", "pg"]);
    assert!(names(Role::Guest).is_empty());
}

#[test]
fn names_round_trip() {
    for r in Role::ALL {
        assert_eq!(Role::parse(r.as_str()), Some(r));
    }
    for r in MemberRole::ALL {
        assert_eq!(MemberRole::parse(r.as_str()), Some(r));
    }
    assert_eq!(Scope::parse("read-only"), Some(Scope::ReadOnly));
    assert_eq!(Role::parse("root"), None);
}

#[test]
fn notification_targets_are_their_owners_and_guests_only_subscribe() {
    let mine = Resource::NotifyTarget { owner: Some("u") };
    let shared = Resource::NotifyTarget { owner: None };
    for role in [Role::Researcher, Role::InternalGuest, Role::Guest] {
        let s = user(role, Scope::Full);
        assert!(decide(&s, Action::NotifyTargetRead, mine).is_allowed());
        assert_eq!(
            code(&decide(&s, Action::NotifyTargetManage, mine)),
            if role == Role::Guest { 'F' } else { 'A' },
            "{role}"
        );
        assert_eq!(code(&decide(&s, Action::NotifyTargetRead, shared)), 'N');
        assert_eq!(code(&decide(&s, Action::NotifyTargetManage, shared)), 'N');
        assert!(decide(&s, Action::NotifySubscribe, Resource::User { name: "u" }).is_allowed());
        assert_eq!(
            code(&decide(
                &s,
                Action::NotifySubscribe,
                Resource::User { name: "v" }
            )),
            'N'
        );
        let ro = user(role, Scope::ReadOnly);
        assert!(decide(&ro, Action::NotifyTargetRead, mine).is_allowed());
        assert!(!decide(&ro, Action::NotifySubscribe, Resource::User { name: "u" }).is_allowed());
    }
}
