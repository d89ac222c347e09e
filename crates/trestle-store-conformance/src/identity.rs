//! The conformance suite for identity and the audit trail: users, indexes,
//! projects and members, API tokens, sessions, login throttling, job
//! visibility and audit queries. `tests/conformance.rs` runs each check as
//! its own test on SQLite and on PostgreSQL, each on a fresh store.

use std::collections::BTreeMap;
use std::sync::Arc;
use trestle_core::JobSpec;
use trestle_core::api::identity::NewProject;
use trestle_core::audit::{AuditFilter, AuditRecord, GroupBy};
use trestle_core::batch::spec::JobRequest;
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{MemberRole, Role, Scope};
use trestle_store::identity::{NewTokenRecord, SessionRecord, UserChanges, UserRecord};
use trestle_store::{JobFilter, Store, StoreError};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "users_projects",
    "tokens",
    "job_visibility",
    "audit_trail",
    "sessions_and_ownership",
    "login_attempts_are_atomic",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "users_projects" => users_projects(&*s).await,
        "tokens" => tokens(&*s).await,
        "job_visibility" => job_visibility(&*s).await,
        "audit_trail" => audit_trail(&*s).await,
        "sessions_and_ownership" => sessions_and_ownership(&*s).await,
        "login_attempts_are_atomic" => login_attempts_are_atomic(s).await,
        other => panic!("unknown identity conformance check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn new_user(name: &str, role: Role, project: Option<&str>) -> UserRecord {
    UserRecord {
        name: name.into(),
        role,
        org: Some("uni".into()),
        default_project: project.map(str::to_string),
        password_hash: None,
        disabled_at: None,
        created_at: T0,
        last_seen_at: None,
    }
}

fn project(name: &str, index: &str, org: Option<&str>) -> NewProject {
    NewProject {
        name: name.into(),
        index: index.into(),
        org: org.map(str::to_string),
        description: None,
    }
}

fn token(id: &str, user: Option<&str>, scope: Scope, expires_at: Option<i64>) -> NewTokenRecord {
    NewTokenRecord {
        id: id.into(),
        name: format!("{id} label"),
        hash: format!("hash-{id}"),
        user: user.map(str::to_string),
        kind: if user.is_some() {
            TokenKind::User
        } else {
            TokenKind::Worker
        },
        scope,
        expires_at,
    }
}

async fn users_projects(s: &dyn Store) {
    // The migration creates one index and one project.
    let idx = s.list_indexes().await.unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(
        (idx[0].name.as_str(), idx[0].projects.clone()),
        ("default", vec!["default".to_string()])
    );
    s.create_index("nsf-123", Some("a grant"), T0)
        .await
        .unwrap();
    assert!(matches!(
        s.create_index("nsf-123", None, T0).await,
        Err(StoreError::Conflict { .. })
    ));
    s.create_project(&project("genomics", "nsf-123", Some("uni")), T0)
        .await
        .unwrap();
    assert!(matches!(
        s.create_project(&project("x", "no-such-index", None), T0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_project(&project("genomics", "default", None), T0)
            .await,
        Err(StoreError::Conflict { .. })
    ));

    s.create_user(&new_user("alice", Role::Researcher, Some("genomics")))
        .await
        .unwrap();
    s.create_user(&new_user("bob", Role::Guest, None))
        .await
        .unwrap();
    assert!(matches!(
        s.create_user(&new_user("alice", Role::Guest, None)).await,
        Err(StoreError::Conflict { ref field, .. }) if field == "name"
    ));
    assert!(matches!(
        s.create_user(&new_user("carol", Role::Guest, Some("nope")))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        s.user("carol").await.unwrap().is_none(),
        "nothing half-created"
    );
    let a = s.user("alice").await.unwrap().unwrap();
    assert_eq!(a.role, Role::Researcher);
    assert_eq!(a.default_project.as_deref(), Some("genomics"));
    let m = s.memberships("alice").await.unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].project.as_str(), m[0].role),
        ("genomics", MemberRole::Member)
    );
    assert_eq!(m[0].org.as_deref(), Some("uni"));

    // Members: add, change the role, unknown user or project.
    s.set_member("default", "bob", MemberRole::Viewer, T0)
        .await
        .unwrap();
    s.set_member("default", "bob", MemberRole::Member, T0)
        .await
        .unwrap();
    assert_eq!(
        s.memberships("bob").await.unwrap()[0].role,
        MemberRole::Member
    );
    assert!(matches!(
        s.set_member("default", "nobody", MemberRole::Member, T0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_member("nope", "bob", MemberRole::Member, T0).await,
        Err(StoreError::NotFound(_))
    ));
    let p = s.project("default").await.unwrap().unwrap();
    assert_eq!(p.members.len(), 1);
    assert_eq!(p.members[0].user, "bob");
    assert_eq!(s.list_projects().await.unwrap().len(), 2);
    let idx = s.list_indexes().await.unwrap();
    assert_eq!(
        idx.iter().find(|i| i.name == "nsf-123").unwrap().projects,
        vec!["genomics"]
    );

    // Updates: role, organisation, default project (only one you belong to).
    let ch = UserChanges {
        role: Some(Role::InternalGuest),
        org: Some(None),
        default_project: Some("default".into()),
        ..Default::default()
    };
    assert!(s.update_user("bob", &ch, T0).await.unwrap());
    let b = s.user("bob").await.unwrap().unwrap();
    assert_eq!(
        (b.role, b.org, b.default_project.as_deref()),
        (Role::InternalGuest, None, Some("default"))
    );
    let bad = UserChanges {
        default_project: Some("genomics".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.update_user("bob", &bad, T0).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!s.update_user("nobody", &ch, T0).await.unwrap());
    // Leaving a project clears it as the default.
    assert!(s.remove_member("default", "bob").await.unwrap());
    assert!(!s.remove_member("default", "bob").await.unwrap());
    assert_eq!(s.user("bob").await.unwrap().unwrap().default_project, None);

    // Disable and enable.
    let off = UserChanges {
        disabled: Some(true),
        ..Default::default()
    };
    s.update_user("alice", &off, T0 + 5).await.unwrap();
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().disabled_at,
        Some(T0 + 5)
    );
    let on = UserChanges {
        disabled: Some(false),
        ..Default::default()
    };
    s.update_user("alice", &on, T0 + 6).await.unwrap();
    assert_eq!(s.user("alice").await.unwrap().unwrap().disabled_at, None);
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);

    // The first admin is created once, with its token and the default project.
    assert!(
        s.bootstrap_admin(
            "admin",
            &token("boot", Some("admin"), Scope::Full, None),
            T0
        )
        .await
        .unwrap()
    );
    assert!(
        !s.bootstrap_admin(
            "admin2",
            &token("boot2", Some("admin2"), Scope::Full, None),
            T0
        )
        .await
        .unwrap()
    );
    assert!(s.user("admin2").await.unwrap().is_none());
    let adm = s.memberships("admin").await.unwrap();
    assert_eq!(
        (adm[0].project.as_str(), adm[0].role),
        ("default", MemberRole::Manager)
    );
    assert!(
        s.find_token("hash-boot", T0, "::1")
            .await
            .unwrap()
            .is_some()
    );
}

async fn tokens(s: &dyn Store) {
    s.create_user(&new_user("alice", Role::Researcher, None))
        .await
        .unwrap();
    s.create_token(
        &token("t1", Some("alice"), Scope::ReadOnly, Some(T0 + DAY)),
        T0,
    )
    .await
    .unwrap();
    s.create_token(&token("t2", Some("alice"), Scope::Full, None), T0)
        .await
        .unwrap();
    s.create_token(&token("w1", None, Scope::Full, Some(T0 + 1000)), T0)
        .await
        .unwrap();
    assert!(matches!(
        s.create_token(&token("t3", Some("nobody"), Scope::Full, None), T0)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_token(&token("t1", Some("alice"), Scope::Full, None), T0)
            .await,
        Err(StoreError::Conflict { .. })
    ));

    // Finding records the use: time and source.
    let t = s
        .find_token("hash-t1", T0 + 10, "10.0.0.7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.user.as_deref(), Some("alice"));
    assert_eq!((t.kind, t.scope), (TokenKind::User, Scope::ReadOnly));
    let v = s.token("t1").await.unwrap().unwrap();
    assert_eq!(v.last_used_at, Some(T0 + 10));
    assert_eq!(v.last_used_ip.as_deref(), Some("10.0.0.7"));
    assert_eq!(v.expires_at, Some(T0 + DAY));
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().last_seen_at,
        Some(T0 + 10)
    );
    // A new source is recorded at once.
    s.find_token("hash-t1", T0 + 20, "10.0.0.8")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.token("t1")
            .await
            .unwrap()
            .unwrap()
            .last_used_ip
            .as_deref(),
        Some("10.0.0.8")
    );

    // Expiry.
    assert!(
        s.find_token("hash-w1", T0 + 999, "h")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.find_token("hash-w1", T0 + 1000, "h")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.find_token("hash-t1", T0 + DAY, "h")
            .await
            .unwrap()
            .is_none()
    );

    // A disabled user's tokens stop working, and work again when enabled.
    let off = UserChanges {
        disabled: Some(true),
        ..Default::default()
    };
    s.update_user("alice", &off, T0).await.unwrap();
    assert!(
        s.find_token("hash-t2", T0 + 30, "h")
            .await
            .unwrap()
            .is_none()
    );
    let on = UserChanges {
        disabled: Some(false),
        ..Default::default()
    };
    s.update_user("alice", &on, T0).await.unwrap();
    assert!(
        s.find_token("hash-t2", T0 + 40, "h")
            .await
            .unwrap()
            .is_some()
    );

    // Revocation.
    assert!(s.revoke_token("t2", T0 + 50).await.unwrap());
    assert!(!s.revoke_token("t2", T0 + 51).await.unwrap());
    assert!(!s.revoke_token("nope", T0).await.unwrap());
    assert!(
        s.find_token("hash-t2", T0 + 60, "h")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.token("t2").await.unwrap().unwrap().revoked_at,
        Some(T0 + 50)
    );

    let mine: Vec<String> = s
        .list_tokens(Some("alice"), false)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(mine, vec!["t1"]);
    assert_eq!(s.list_tokens(Some("alice"), true).await.unwrap().len(), 2);
    assert_eq!(s.list_tokens(None, true).await.unwrap().len(), 3);

    // Unused: last used (or created) before the cut-off, still valid.
    s.create_token(
        &token("old", Some("alice"), Scope::Full, None),
        T0 - 90 * DAY,
    )
    .await
    .unwrap();
    let unused: Vec<String> = s
        .unused_tokens(T0 - 60 * DAY, T0)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(unused, vec!["old"]);
    s.create_token(&token("fresh", Some("alice"), Scope::Full, None), T0)
        .await
        .unwrap();
    let all: Vec<String> = s
        .unused_tokens(T0 + 15, T0 + 15)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        all,
        vec!["old", "fresh"],
        "t1 and w1 were used later, t2 is revoked"
    );
}

fn job(owner: &str, project: &str) -> JobSpec {
    let req = JobRequest {
        command: Some(trestle_core::batch::spec::CommandRequest::Argv(vec![
            "x".into(),
        ])),
        project: Some(project.into()),
        ..Default::default()
    };
    let mut spec = req.validate().expect("valid");
    spec.owner = Some(owner.into());
    spec
}

async fn job_visibility(s: &dyn Store) {
    let ids = s
        .submit(
            &[
                job("alice", "p1"),
                job("bob", "p1"),
                job("bob", "p2"),
                job("carol", "p3"),
            ],
            T0,
        )
        .await
        .unwrap();
    let got = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(got.spec.owner.as_deref(), Some("alice"));
    assert_eq!(got.spec.project.as_deref(), Some("p1"));
    let list = |f: JobFilter| async move {
        s.list_jobs(&JobFilter { limit: 100, ..f })
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect::<Vec<_>>()
    };
    // Alice sees her own jobs and those of p1 and p2.
    let v = list(JobFilter {
        visible_to: Some("alice".into()),
        visible_projects: vec!["p1".into(), "p2".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(v, vec![ids[2], ids[1], ids[0]]);
    // With no projects, only her own.
    let v = list(JobFilter {
        visible_to: Some("alice".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(v, vec![ids[0]]);
    // A project name that is a prefix of another matches only itself.
    let v = list(JobFilter {
        visible_to: Some("zed".into()),
        visible_projects: vec!["p".into()],
        ..Default::default()
    })
    .await;
    assert!(v.is_empty());
    let v = list(JobFilter {
        project: Some("p1".into()),
        owner: Some("bob".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(v, vec![ids[1]]);
    assert_eq!(list(JobFilter::default()).await.len(), 4);
}

fn rec(
    at: i64,
    user: Option<&str>,
    ip: &str,
    method: &str,
    action: &str,
    resource: Option<&str>,
    status: u16,
) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        user: user.map(str::to_string),
        token: user.map(|u| format!("tok-{u}")),
        source_ip: ip.into(),
        method: method.into(),
        path: "/api/v1/x".into(),
        action: action.into(),
        resource: resource.map(str::to_string),
        status,
        latency_us: 120,
        user_agent: Some("test".into()),
        count: 1,
    }
}

async fn audit_trail(s: &dyn Store) {
    let rows = vec![
        rec(
            T0,
            Some("alice"),
            "10.0.0.1",
            "POST",
            "job.submit",
            None,
            201,
        ),
        rec(
            T0 + 1,
            Some("alice"),
            "10.0.0.1",
            "POST",
            "job.cancel",
            Some("job:7"),
            200,
        ),
        rec(
            T0 + 2,
            Some("bob"),
            "10.0.0.2",
            "GET",
            "job.show",
            Some("job:7"),
            404,
        ),
        rec(T0 + 3, None, "203.0.113.5", "POST", "login", None, 401),
        rec(T0 + 4, None, "203.0.113.5", "POST", "login", None, 401),
        rec(T0 + 5, None, "198.51.100.1", "POST", "login", None, 429),
        AuditRecord {
            count: 40,
            ..rec(
                T0 + 6,
                None,
                "127.0.0.1",
                "POST",
                "worker.updates",
                Some("worker:w-1"),
                200,
            )
        },
    ];
    s.append_audit(&rows).await.unwrap();
    s.append_audit(&[]).await.unwrap();
    let q = |kv: &[(&str, &str)]| {
        let params: BTreeMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = AuditFilter::from_params(&params, T0 + 100).unwrap();
        async move { s.query_audit(&f).await.unwrap() }
    };
    let all = q(&[]).await.records;
    assert_eq!(all.len(), 7);
    assert!(all[0].id > all[6].id, "newest first");
    assert_eq!(all[0].count, 40);
    assert_eq!(all[6].user_agent.as_deref(), Some("test"));
    let actions = |r: Vec<AuditRecord>| r.into_iter().map(|r| r.action).collect::<Vec<_>>();
    assert_eq!(
        actions(q(&[("principal", "alice")]).await.records),
        vec!["job.cancel", "job.submit"]
    );
    assert_eq!(
        actions(q(&[("principal", "tok-bob")]).await.records),
        vec!["job.show"]
    );
    assert_eq!(actions(q(&[("action", "job.")]).await.records).len(), 3);
    assert_eq!(
        actions(q(&[("action", "job")]).await.records).len(),
        0,
        "exact unless a prefix"
    );
    assert_eq!(
        actions(q(&[("resource", "job:7")]).await.records),
        vec!["job.show", "job.cancel"]
    );
    assert_eq!(q(&[("status", "4xx")]).await.records.len(), 4);
    assert_eq!(q(&[("status", "429")]).await.records.len(), 1);
    assert_eq!(q(&[("changes", "true")]).await.records.len(), 6);
    assert_eq!(q(&[("method", "get")]).await.records.len(), 1);
    assert_eq!(q(&[("ip", "10.0.0.1")]).await.records.len(), 2);
    let since = (T0 + 3).to_string();
    let until = (T0 + 5).to_string();
    assert_eq!(
        q(&[("since", &since), ("until", &until)])
            .await
            .records
            .len(),
        2
    );
    assert_eq!(q(&[("limit", "2")]).await.records.len(), 2);
    // Grouped: failed logins by source address, largest first.
    let g = q(&[
        ("action", "login"),
        ("status", "4xx"),
        ("group-by", "source-ip"),
    ])
    .await
    .groups;
    assert_eq!(g.len(), 2);
    assert_eq!(
        (g[0].key.as_str(), g[0].count, g[0].first, g[0].last),
        ("203.0.113.5", 2, T0 + 3, T0 + 4)
    );
    assert_eq!(g[1].key, "198.51.100.1");
    let f = AuditFilter {
        group_by: Some(GroupBy::Principal),
        limit: 10,
        ..Default::default()
    };
    let g = s.query_audit(&f).await.unwrap().groups;
    assert_eq!(g[0].key, "-", "aggregated rows count every request: {g:?}");
    assert_eq!(g[0].count, 43);
    // Retention.
    assert_eq!(s.purge_audit(T0 + 3).await.unwrap(), 3);
    assert_eq!(q(&[("since", "all")]).await.records.len(), 4);
}

async fn sessions_and_ownership(s: &dyn Store) {
    s.create_user(&new_user("alice", Role::Researcher, None))
        .await
        .unwrap();
    let sess = SessionRecord {
        user: "alice".into(),
        csrf: "c1".into(),
        expires_at: T0 + 1000,
    };
    s.create_session("sh1", &sess, "10.0.0.1", T0)
        .await
        .unwrap();
    assert_eq!(
        s.find_session("sh1", T0 + 1).await.unwrap(),
        Some(sess.clone())
    );
    assert!(
        s.find_session("sh1", T0 + 1000).await.unwrap().is_none(),
        "expired"
    );
    assert!(s.find_session("nope", T0).await.unwrap().is_none());
    // Disabling a user ends their sessions.
    let off = UserChanges {
        disabled: Some(true),
        ..Default::default()
    };
    s.update_user("alice", &off, T0).await.unwrap();
    assert!(s.find_session("sh1", T0 + 1).await.unwrap().is_none());
    let on = UserChanges {
        disabled: Some(false),
        ..Default::default()
    };
    s.update_user("alice", &on, T0).await.unwrap();
    assert!(
        s.find_session("sh1", T0 + 1).await.unwrap().is_none(),
        "deleted, not hidden"
    );
    s.create_session("sh2", &sess, "10.0.0.1", T0)
        .await
        .unwrap();
    s.delete_session("sh2").await.unwrap();
    assert!(s.find_session("sh2", T0 + 1).await.unwrap().is_none());

    // Ending a user's sessions, keeping one (a password change made
    // through that session).
    let bob = SessionRecord {
        user: "bob".into(),
        ..sess.clone()
    };
    s.create_user(&new_user("bob", Role::Researcher, None))
        .await
        .unwrap();
    for (h, r) in [("a1", &sess), ("a2", &sess), ("a3", &sess), ("b1", &bob)] {
        s.create_session(h, r, "10.0.0.1", T0).await.unwrap();
    }
    assert_eq!(s.delete_sessions_of("alice", Some("a2")).await.unwrap(), 2);
    assert!(s.find_session("a1", T0 + 1).await.unwrap().is_none());
    assert!(s.find_session("a3", T0 + 1).await.unwrap().is_none());
    assert!(
        s.find_session("a2", T0 + 1).await.unwrap().is_some(),
        "kept"
    );
    assert!(
        s.find_session("b1", T0 + 1).await.unwrap().is_some(),
        "bob's"
    );
    assert_eq!(s.delete_sessions_of("alice", None).await.unwrap(), 1);
    assert!(s.find_session("a2", T0 + 1).await.unwrap().is_none());
    assert!(s.find_session("b1", T0 + 1).await.unwrap().is_some());

    // Login throttling counts attempts per key in a window.
    let w = 1000;
    for n in 1..=3 {
        assert_eq!(
            s.reserve_login_attempt("alice|1.2.3.4", T0 + n, w)
                .await
                .unwrap(),
            n as u64
        );
    }
    assert_eq!(
        s.reserve_login_attempt("alice|5.6.7.8", T0, w)
            .await
            .unwrap(),
        1,
        "another source is another key"
    );
    // A success forgets the key's attempts; others keep theirs.
    s.clear_login_attempts("alice|1.2.3.4").await.unwrap();
    assert_eq!(
        s.reserve_login_attempt("alice|1.2.3.4", T0 + 10, w)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.reserve_login_attempt("alice|5.6.7.8", T0 + 10, w)
            .await
            .unwrap(),
        2
    );
    // The window ends `w` after it started; the count starts again.
    assert_eq!(
        s.reserve_login_attempt("alice|5.6.7.8", T0 + w - 1, w)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.reserve_login_attempt("alice|5.6.7.8", T0 + w, w)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.reserve_login_attempt("alice|5.6.7.8", T0 + w + 1, w)
            .await
            .unwrap(),
        2
    );

    // Upload and worker ownership.
    s.create_upload("u1", "alice", T0).await.unwrap();
    assert_eq!(
        s.upload_owner("u1").await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(s.upload_owner("u2").await.unwrap(), None);
    assert!(matches!(
        s.create_upload("u1", "bob", T0).await,
        Err(StoreError::Conflict { .. })
    ));
    s.register_worker(
        "w1",
        &trestle_core::api::WorkerRegistration {
            host: "h".into(),
            pid: 1,
            capacity: trestle_core::Capacity {
                cpus: 1,
                mem_mib: 1,
                gpus: 0,
            },
            compute_env: None,
            instance: None,
            version: "t".into(),
            isolation: None,
        },
        T0,
    )
    .await
    .unwrap();
    assert_eq!(s.worker_registrant("w1").await.unwrap(), None);
    s.bind_worker("w1", "tok-w").await.unwrap();
    assert_eq!(
        s.worker_registrant("w1").await.unwrap().as_deref(),
        Some("tok-w")
    );
    assert!(matches!(
        s.bind_worker("w9", "tok-w").await,
        Err(StoreError::NotFound(_))
    ));

    // Unused users: never seen since creation, admins optionally spared.
    s.create_user(&UserRecord {
        created_at: T0 - 90 * DAY,
        ..new_user("old", Role::Researcher, None)
    })
    .await
    .unwrap();
    s.create_user(&UserRecord {
        created_at: T0 - 90 * DAY,
        ..new_user("oldadmin", Role::Admin, None)
    })
    .await
    .unwrap();
    let names = |v: Vec<UserRecord>| v.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.unused_users(T0 - 60 * DAY, true).await.unwrap()),
        vec!["old"]
    );
    assert_eq!(
        names(s.unused_users(T0 - 60 * DAY, false).await.unwrap()),
        vec!["old", "oldadmin"]
    );
}

/// 40 parallel reservations of one key, over the store's connection pool:
/// each gets its own count, so with a limit of 5 exactly 5 are allowed
/// (the throttle of issue 19 checked 13 of 40 passwords). On PostgreSQL
/// the reservations run on several connections at once, as several
/// servers' would.
async fn login_attempts_are_atomic(s: Arc<dyn Store>) {
    const LIMIT: u64 = 5;
    let window = 60_000;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let st = s.clone();
        tasks.spawn(async move {
            st.reserve_login_attempt("carol|10.0.0.9", T0, window)
                .await
                .unwrap()
        });
    }
    let mut counts = Vec::new();
    while let Some(n) = tasks.join_next().await {
        counts.push(n.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u64>>(), "every count once");
    assert_eq!(counts.iter().filter(|n| **n <= LIMIT).count(), 5);
}
