//! The conformance suite for users from identity providers: provisioning
//! creates and updates users with their attributes, manages only the
//! memberships its rules made, skips projects that do not exist, and lists
//! a provider's users for syncs.

use std::collections::BTreeMap;
use std::sync::Arc;
use trestle_core::api::identity::NewProject;
use trestle_core::identity::authz::{MemberRole, Role};
use trestle_core::identity::external::{LOCAL, UserAttributes};
use trestle_store::Store;
use trestle_store::identity::{Provision, UserChanges, UserRecord};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "provisioning_manages_its_memberships",
    "oidc_logins_are_taken_once",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "provisioning_manages_its_memberships" => provisioning(&*s).await,
        "oidc_logins_are_taken_once" => crate::oidc::taken_once(&*s).await,
        other => panic!("unknown external conformance check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn attrs(source: &str, subject: &str) -> UserAttributes {
    UserAttributes {
        source: source.into(),
        subject: Some(subject.into()),
        email: Some("ada@uni.example".into()),
        unix_name: Some("ada".into()),
        uid: Some(12001),
        groups: vec!["hpc".into()],
        origins: [("email".to_string(), format!("{source} mail"))].into(),
        synced_at: Some(T0),
        ..UserAttributes::default()
    }
}

fn members(list: &[(&str, MemberRole)]) -> BTreeMap<String, MemberRole> {
    list.iter().map(|(p, r)| (p.to_string(), *r)).collect()
}

async fn roles(s: &dyn Store, user: &str) -> BTreeMap<String, MemberRole> {
    let mut out = BTreeMap::new();
    for p in ["genomics", "physics", "hand"] {
        if let Some(v) = s.project(p).await.unwrap()
            && let Some(m) = v.members.iter().find(|m| m.user == user)
        {
            out.insert(p.to_string(), m.role);
        }
    }
    out
}

async fn provisioning(s: &dyn Store) {
    s.create_index("grants", None, T0).await.unwrap();
    for p in ["genomics", "physics", "hand"] {
        s.create_project(
            &NewProject {
                name: p.into(),
                index: "grants".into(),
                org: None,
                description: None,
            },
            T0,
        )
        .await
        .unwrap();
    }
    // First sign-in: created with role, attributes, memberships; a project
    // that does not exist is skipped and reported.
    let first = Provision {
        name: "ada".into(),
        role: Role::Researcher,
        attributes: attrs("ldap:campus", "uid=ada"),
        memberships: members(&[
            ("genomics", MemberRole::Member),
            ("nowhere", MemberRole::Member),
        ]),
    };
    let c = s.provision_user(&first, T0).await.unwrap();
    assert!(c.created);
    assert_eq!(c.added, vec!["genomics".to_string()]);
    assert_eq!(c.missing_projects, vec!["nowhere".to_string()]);
    let u = s.user("ada").await.unwrap().unwrap();
    assert_eq!(u.role, Role::Researcher);
    assert_eq!(u.default_project.as_deref(), Some("genomics"));
    assert!(u.password_hash.is_none());
    assert_eq!(
        s.user_attributes("ada").await.unwrap().unwrap(),
        attrs("ldap:campus", "uid=ada")
    );
    // An admin adds her to a project by hand; the rules never touch it.
    s.set_member("hand", "ada", MemberRole::Viewer, T0)
        .await
        .unwrap();
    // Next sign-in: groups changed: physics instead of genomics, a new role.
    let next = Provision {
        role: Role::InternalGuest,
        memberships: members(&[("physics", MemberRole::Manager)]),
        ..first.clone()
    };
    let c = s.provision_user(&next, T0 + 1).await.unwrap();
    assert!(!c.created);
    assert_eq!(c.role_was, Some(Role::Researcher));
    assert_eq!(c.removed, vec!["genomics".to_string()]);
    assert_eq!(c.added, vec!["physics".to_string()]);
    assert_eq!(
        roles(s, "ada").await,
        members(&[
            ("physics", MemberRole::Manager),
            ("hand", MemberRole::Viewer)
        ])
    );
    // A rule naming the hand-made project leaves it as the admin set it.
    let hand = Provision {
        memberships: members(&[("hand", MemberRole::Manager)]),
        ..next.clone()
    };
    let c = s.provision_user(&hand, T0 + 2).await.unwrap();
    assert_eq!(c.removed, vec!["physics".to_string()]);
    assert!(c.added.is_empty());
    assert_eq!(
        roles(s, "ada").await,
        members(&[("hand", MemberRole::Viewer)])
    );
    // A provider's users, for syncs; local and disabled users are not.
    s.create_user(&UserRecord {
        name: "root-admin".into(),
        role: Role::Admin,
        org: None,
        default_project: None,
        password_hash: None,
        disabled_at: None,
        created_at: T0,
        last_seen_at: None,
    })
    .await
    .unwrap();
    assert_eq!(
        s.user_attributes("root-admin")
            .await
            .unwrap()
            .unwrap()
            .source,
        LOCAL
    );
    assert_eq!(s.user_attributes("nobody").await.unwrap(), None);
    let bob = Provision {
        name: "bob".into(),
        attributes: attrs("ldap:campus", "uid=bob"),
        memberships: BTreeMap::new(),
        ..first.clone()
    };
    s.provision_user(&bob, T0).await.unwrap();
    assert_eq!(
        s.external_users("ldap:campus").await.unwrap(),
        vec![
            ("ada".to_string(), "uid=ada".to_string()),
            ("bob".to_string(), "uid=bob".to_string())
        ]
    );
    let off = UserChanges {
        disabled: Some(true),
        ..UserChanges::default()
    };
    assert!(s.update_user("bob", &off, T0).await.unwrap());
    assert_eq!(s.external_users("ldap:campus").await.unwrap().len(), 1);
    assert!(s.external_users("oidc:other").await.unwrap().is_empty());
}
