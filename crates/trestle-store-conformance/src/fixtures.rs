//! The upgrade fixtures: what a database of an older schema holds, filled
//! through the store's API by [`populate`] and written down in a
//! [`Manifest`]. `tests/upgrade.rs` loads each fixture and checks it still
//! works after the newer migrations; `examples/generate_fixtures.rs`
//! writes the fixtures of a new schema version.

use crate::db::Backend;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::path::PathBuf;
use trestle_core::api::identity::NewProject;
use trestle_core::api::{AttemptRef, Lease, Update, UpdatesRequest, WorkerRegistration};
use trestle_core::batch::pipeline::PipelineRequest;
use trestle_core::batch::spec::JobRequest;
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{MemberRole, Role, Scope};
use trestle_core::{AttemptReason, Capacity, JobSpec, JobState};
use trestle_store::{
    IdentityStore, JobFilter, JobStore, LeaseParams, NewTokenRecord, SessionRecord, SqlStore,
    TokenStore, UserRecord, WorkerStore, WorkflowStore,
};

/// When the fixtures were filled (their clock; the tests pass it on).
pub const T0: i64 = 1_700_000_000_000;
pub const LEASE_MS: i64 = 30_000;
pub const WORKER: &str = "w1";

/// What a fixture holds, as its generator wrote it down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The schema version (the newest migration applied).
    pub version: i64,
    /// Jobs by role (see [`populate`]).
    pub jobs: BTreeMap<String, i64>,
    /// Every job with its state, newest first.
    pub states: Vec<(i64, JobState)>,
    /// Users by name.
    pub users: Vec<String>,
    /// API tokens and worker credentials.
    pub tokens: Vec<FixtureToken>,
    /// The session's secret's hash.
    pub session: String,
    /// Per database (`sqlite`, `postgres`): the jobs still leased, with
    /// the attempt and lease token the worker holds.
    pub leases: BTreeMap<String, Vec<(i64, u32, String)>>,
}

/// A token in a fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixtureToken {
    pub id: String,
    pub secret: String,
    pub user: Option<String>,
    pub kind: TokenKind,
    /// False when it was revoked (and must stay refused).
    pub valid: bool,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// How the server hashes a token secret (`trestle_service::principal::hash_token`).
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn spec(json: &str, owner: &str, project: &str) -> JobSpec {
    let req: JobRequest = serde_json::from_str(json).expect("fixture spec parses");
    let mut spec = req.validate().expect("fixture spec is valid");
    spec.owner = Some(owner.into());
    spec.project = Some(project.into());
    spec
}

pub fn capacity() -> Capacity {
    Capacity {
        cpus: 16,
        mem_mib: 64 * 1024,
        gpus: 0,
    }
}

pub async fn lease(s: &SqlStore, max: u32, now: i64) -> Vec<Lease> {
    s.lease(&LeaseParams {
        worker_id: WORKER,
        free: capacity(),
        max_jobs: max,
        prefetch: 0,
        lease_ms: LEASE_MS,
        now,
        kinds: &[],
    })
    .await
    .expect("lease")
}

pub fn at(job_id: i64, attempt: u32, token: &str) -> AttemptRef {
    AttemptRef {
        job_id,
        attempt,
        token: token.to_string(),
    }
}

pub fn finished(at: AttemptRef, code: i32, time: i64) -> Update {
    Update::Finished {
        at,
        reason: if code == 0 {
            AttemptReason::Success
        } else {
            AttemptReason::ExitCode
        },
        exit_code: Some(code),
        time,
        message: None,
        cpu_ms: None,
        max_rss_kib: None,
    }
}

pub async fn report(s: &SqlStore, updates: Vec<Update>, now: i64) -> trestle_store::UpdateOutcome {
    s.apply_updates(
        WORKER,
        &UpdatesRequest {
            heartbeat: vec![],
            updates,
            ..Default::default()
        },
        LEASE_MS,
        now,
    )
    .await
    .expect("report")
}

pub fn user(name: &str, role: Role, project: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        role,
        org: Some("uni".into()),
        default_project: Some(project.into()),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$fixture${name}")),
        disabled_at: None,
        created_at: T0,
        last_seen_at: None,
    }
}

pub fn token(id: &str, user: Option<&str>, kind: TokenKind) -> (NewTokenRecord, FixtureToken) {
    let secret = format!("trestle-fixture-secret-{id}");
    (
        NewTokenRecord {
            id: id.into(),
            name: format!("{id} (fixture)"),
            hash: hash(&secret),
            user: user.map(str::to_string),
            kind,
            scope: Scope::Full,
            expires_at: None,
        },
        FixtureToken {
            id: id.into(),
            secret,
            user: user.map(str::to_string),
            kind,
            valid: true,
        },
    )
}

/// Fills a fresh store with everything a fixture holds; returns its
/// manifest (with this database's leases only).
pub async fn populate(s: &SqlStore) -> Manifest {
    // Identity: an admin with a token, a project under its own index, two
    // researchers (one a member of the project), tokens of each kind.
    let mut tokens = Vec::new();
    let (root, t) = token("t-root", Some("root"), TokenKind::User);
    assert!(s.bootstrap_admin("root", &root, T0).await.unwrap());
    tokens.push(t);
    s.create_index("grant-42", Some("fixture grant"), T0)
        .await
        .unwrap();
    s.create_project(
        &NewProject {
            name: "cfd".into(),
            index: "grant-42".into(),
            org: Some("uni".into()),
            description: Some("fixture project".into()),
        },
        T0,
    )
    .await
    .unwrap();
    s.create_user(&user("alice", Role::Researcher, "cfd"))
        .await
        .unwrap();
    s.create_user(&user("bob", Role::Researcher, "default"))
        .await
        .unwrap();
    s.set_member("cfd", "bob", MemberRole::Viewer, T0)
        .await
        .unwrap();
    for (id, owner, kind) in [
        ("t-alice", Some("alice"), TokenKind::User),
        ("t-bob", Some("bob"), TokenKind::User),
        ("t-worker", None, TokenKind::Worker),
        ("t-revoked", Some("alice"), TokenKind::User),
    ] {
        let (rec, t) = token(id, owner, kind);
        s.create_token(&rec, T0).await.unwrap();
        tokens.push(t);
    }
    assert!(s.revoke_token("t-revoked", T0 + 1).await.unwrap());
    tokens.last_mut().unwrap().valid = false;
    let session = hash("trestle-fixture-session");
    s.create_session(
        &session,
        &SessionRecord {
            user: "alice".into(),
            csrf: "fixture-csrf".into(),
            expires_at: T0 + 400 * 86_400_000,
        },
        "127.0.0.1",
        T0,
    )
    .await
    .unwrap();
    s.register_worker(
        WORKER,
        &WorkerRegistration {
            host: "fixture-host".into(),
            pid: 42,
            capacity: capacity(),
            compute_env: None,
            instance: None,
            version: "fixture".into(),
            isolation: None,
        },
        T0,
    )
    .await
    .unwrap();
    s.bind_worker(WORKER, "t-worker").await.unwrap();

    // Four plain jobs leased at once: one succeeds (with output), one
    // fails, one runs on, one stays leased without starting.
    let mut jobs = BTreeMap::new();
    let ids = s
        .submit(
            &[
                spec(r#"{"command":["ok"],"name":"succeeded"}"#, "alice", "cfd"),
                spec(r#"{"command":["fail"],"name":"failed"}"#, "alice", "cfd"),
                spec(r#"{"command":["run"],"name":"running"}"#, "bob", "default"),
                spec(
                    r#"{"command":"start later","name":"starting","attempts":2}"#,
                    "bob",
                    "default",
                ),
            ],
            T0 + 10,
        )
        .await
        .unwrap();
    for (role, id) in ["succeeded", "failed", "running", "starting"]
        .iter()
        .zip(&ids)
    {
        jobs.insert(role.to_string(), *id);
    }
    let l = lease(s, 4, T0 + 20).await;
    assert_eq!(l.iter().map(|l| l.job_id).collect::<Vec<_>>(), ids);
    let r = |l: &Lease| at(l.job_id, l.attempt, &l.token);
    report(
        s,
        vec![
            Update::Started {
                at: r(&l[0]),
                time: T0 + 21,
            },
            Update::Log {
                at: r(&l[0]),
                seq: 1,
                data: "fixture output\n".into(),
            },
            finished(r(&l[0]), 0, T0 + 22),
            Update::Started {
                at: r(&l[1]),
                time: T0 + 21,
            },
            finished(r(&l[1]), 3, T0 + 22),
            Update::Started {
                at: r(&l[2]),
                time: T0 + 21,
            },
            Update::Log {
                at: r(&l[2]),
                seq: 1,
                data: "still running\n".into(),
            },
        ],
        T0 + 23,
    )
    .await;
    let leases = vec![
        (l[2].job_id, l[2].attempt, l[2].token.clone()),
        (l[3].job_id, l[3].attempt, l[3].token.clone()),
    ];

    // A pipeline (pre, then post) and an array of four tasks; the first
    // step and two tasks are done.
    let req: PipelineRequest = serde_json::from_str(
        r#"{"name":"fixture-pipeline","steps":[
            {"name":"pre","command":"pre"},
            {"name":"post","command":"post","after":["pre"]}
        ]}"#,
    )
    .unwrap();
    let mut pipeline = req.validate().unwrap();
    pipeline.parent.owner = Some("alice".into());
    pipeline.parent.project = Some("cfd".into());
    for step in &mut pipeline.steps {
        step.spec.owner = Some("alice".into());
        step.spec.project = Some("cfd".into());
    }
    let (p, steps) = s.submit_pipeline(&pipeline, T0 + 30).await.unwrap();
    jobs.insert("pipeline".into(), p);
    jobs.insert("pipeline_pre".into(), steps[0]);
    jobs.insert("pipeline_post".into(), steps[1]);
    let array = s
        .submit(
            &[spec(
                r#"{"command":["task"],"name":"sweep","array":"0-3"}"#,
                "alice",
                "cfd",
            )],
            T0 + 31,
        )
        .await
        .unwrap()[0];
    jobs.insert("array".into(), array);
    let l = lease(s, 3, T0 + 40).await;
    assert_eq!(l[0].job_id, steps[0], "{l:?}");
    assert!(l[1..].iter().all(|l| l.spec.flow.array_task.is_some()));
    report(
        s,
        l.iter().map(|l| finished(r(l), 0, T0 + 41)).collect(),
        T0 + 41,
    )
    .await;
    s.resolve_workflows(&[], T0 + 42).await.unwrap();

    // Queued jobs (one in another queue, one with a key), one cancelled
    // before it ran, one waiting for the running job.
    let queued = s
        .submit(
            &[
                spec(
                    r#"{"command":["q"],"name":"queued","key":"fixture-key"}"#,
                    "alice",
                    "cfd",
                ),
                spec(
                    r#"{"command":"q2","name":"queued-other","queue":"other","memory":"1G"}"#,
                    "bob",
                    "default",
                ),
                spec(r#"{"command":["c"],"name":"cancelled"}"#, "bob", "default"),
                spec(
                    &format!(
                        r#"{{"command":["d"],"name":"dependent","after":[{{"kind":"after-ok","job":{}}}]}}"#,
                        jobs["running"]
                    ),
                    "bob",
                    "default",
                ),
            ],
            T0 + 50,
        )
        .await
        .unwrap();
    for (role, id) in ["queued", "queued_other", "cancelled", "dependent"]
        .iter()
        .zip(&queued)
    {
        jobs.insert(role.to_string(), *id);
    }
    s.cancel(jobs["cancelled"], T0 + 51).await.unwrap();

    let states = s
        .list_jobs(&JobFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| (j.id, j.state))
        .collect();
    let mut users: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    users.sort();
    Manifest {
        version: 0,
        jobs,
        states,
        users,
        tokens,
        session,
        leases: BTreeMap::from([(String::new(), leases)]),
    }
}

/// The newest migration a database has.
pub async fn schema_version(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let v: i64 = sqlx::query_scalar("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    v
}
