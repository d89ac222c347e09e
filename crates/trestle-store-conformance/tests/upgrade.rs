//! Upgrades: a database made by an older Trestle still works after
//! `SqlStore::connect` applies the newer migrations.
//!
//! `fixtures/vN-sqlite.sql` and `fixtures/vN-postgres.sql` are plain SQL
//! dumps (schema and rows) of databases at schema version N, filled through
//! the store's API by [`populate`]: users, a project, API tokens and a
//! worker credential (one revoked), a session, a registered worker, and
//! jobs queued, leased, running, succeeded, failed, cancelled and waiting
//! on a dependency, plus a half-done array and pipeline. `fixtures/vN.json`
//! is what the generator knows about them ([`Manifest`]: job ids and
//! states, token secrets, the lease tokens of the running jobs). For each
//! fixture and database, [`upgrade`] loads the dump into an empty database,
//! opens it with the store, and checks every job still answers, every
//! token still verifies (the revoked one still does not), and every
//! unfinished job, the array and the pipeline run to their end.
//!
//! Adding a newer fixture, after a migration N+1 lands:
//! 1. `cargo nextest run -p trestle-store-conformance --run-ignored only
//!    -E 'test(generate_fixtures)'` writes `fixtures/v{N+1}*` (the version
//!    is the newest migration; it needs the `sqlite3` and `pg_dump`
//!    command-line tools). Keep the older fixtures: each is an upgrade
//!    path still to be tested. Never regenerate an old one.
//! 2. Add `N+1` to [`FIXTURES`] and a pair of tests below like the v4 ones.
//! 3. If the new schema holds something new, fill it in [`populate`]
//!    (which only runs for new fixtures) and check it in [`upgrade`],
//!    keyed on the fixture's version where older fixtures lack it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor};
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
use trestle_store_conformance::db::{Backend, EmptyDb, TestDb};

/// The fixtures' schema versions, each tested below.
const FIXTURES: &[i64] = &[4];

/// When the fixtures were filled (their clock; the tests pass it on).
const T0: i64 = 1_700_000_000_000;
const LEASE_MS: i64 = 30_000;
const WORKER: &str = "w1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v4_sqlite() {
    upgrade(4, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v4_postgres() {
    upgrade(4, Backend::Postgres).await;
}

/// What a fixture holds, as its generator wrote it down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    /// The schema version (the newest migration applied).
    version: i64,
    /// Jobs by role (see [`populate`]).
    jobs: BTreeMap<String, i64>,
    /// Every job with its state, newest first.
    states: Vec<(i64, JobState)>,
    /// Users by name.
    users: Vec<String>,
    /// API tokens and worker credentials.
    tokens: Vec<FixtureToken>,
    /// The session's secret's hash.
    session: String,
    /// Per database (`sqlite`, `postgres`): the jobs still leased, with
    /// the attempt and lease token the worker holds.
    leases: BTreeMap<String, Vec<(i64, u32, String)>>,
}

/// A token in a fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FixtureToken {
    id: String,
    secret: String,
    user: Option<String>,
    kind: TokenKind,
    /// False when it was revoked (and must stay refused).
    valid: bool,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// How the server hashes a token secret (`trestle_service::principal::hash_token`).
fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn spec(json: &str, owner: &str, project: &str) -> JobSpec {
    let req: JobRequest = serde_json::from_str(json).expect("fixture spec parses");
    let mut spec = req.validate().expect("fixture spec is valid");
    spec.owner = Some(owner.into());
    spec.project = Some(project.into());
    spec
}

fn capacity() -> Capacity {
    Capacity {
        cpus: 16,
        mem_mib: 64 * 1024,
        gpus: 0,
    }
}

async fn lease(s: &SqlStore, max: u32, now: i64) -> Vec<Lease> {
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

fn at(job_id: i64, attempt: u32, token: &str) -> AttemptRef {
    AttemptRef {
        job_id,
        attempt,
        token: token.to_string(),
    }
}

fn finished(at: AttemptRef, code: i32, time: i64) -> Update {
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
    }
}

async fn report(s: &SqlStore, updates: Vec<Update>, now: i64) -> trestle_store::UpdateOutcome {
    s.apply_updates(
        WORKER,
        &UpdatesRequest {
            heartbeat: vec![],
            updates,
        },
        LEASE_MS,
        now,
    )
    .await
    .expect("report")
}

fn user(name: &str, role: Role, project: &str) -> UserRecord {
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

fn token(id: &str, user: Option<&str>, kind: TokenKind) -> (NewTokenRecord, FixtureToken) {
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
async fn populate(s: &SqlStore) -> Manifest {
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
async fn schema_version(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let v: i64 = sqlx::query_scalar("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    v
}

/// Writes `fixtures/vN-sqlite.sql`, `vN-postgres.sql` and `vN.json` for
/// the current schema. Needs `sqlite3` and `pg_dump` on the PATH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes fixtures/ for the current schema; run by hand (see the top of this file)"]
async fn generate_fixtures() {
    let mut manifest: Option<Manifest> = None;
    let mut files = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend, "fixture").await;
        let mut m = populate(&db.store).await;
        db.store.close().await;
        m.version = schema_version(db.url()).await;
        let name = backend_name(backend);
        let dump = match backend {
            Backend::Sqlite => {
                let path = db.url().trim_start_matches("sqlite://").to_string();
                run(std::process::Command::new("sqlite3")
                    .arg(&path)
                    .arg(".dump"))
            }
            Backend::Postgres => run(std::process::Command::new("pg_dump")
                .args([
                    "--inserts",
                    "--no-owner",
                    "--no-privileges",
                    "--no-comments",
                ])
                .arg(db.url())),
        };
        // Plain SQL only: newer pg_dump brackets its output in psql
        // meta-commands (`\restrict`).
        let dump: String = dump
            .lines()
            .filter(|l| !l.starts_with('\\'))
            .map(|l| format!("{l}\n"))
            .collect();
        files.push((
            fixtures_dir().join(format!("v{}-{name}.sql", m.version)),
            dump,
        ));
        let leases = m.leases.remove("").unwrap();
        match &mut manifest {
            None => {
                m.leases.insert(name.into(), leases);
                manifest = Some(m);
            }
            Some(first) => {
                let mut other = first.clone();
                other.leases = BTreeMap::new();
                assert_eq!(other, m, "both databases hold the same fixture");
                first.leases.insert(name.into(), leases);
            }
        }
        db.finish().await;
    }
    let m = manifest.unwrap();
    let json = serde_json::to_string_pretty(&m).unwrap() + "\n";
    files.push((fixtures_dir().join(format!("v{}.json", m.version)), json));
    for (file, _) in &files {
        assert!(
            !file.exists(),
            "{} exists: fixtures of a released schema are never made again \
             (delete them by hand only if they were never committed)",
            file.display()
        );
    }
    for (file, text) in files {
        std::fs::write(file, text).unwrap();
    }
}

fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("the dump tool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Loads a plain SQL dump into an empty database.
async fn load(db: &EmptyDb, sql: String) {
    match db.backend() {
        Backend::Sqlite => {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .unwrap()
                .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// Loads fixture `version` into a fresh database, opens it with the
/// store, and checks what it holds still works.
async fn upgrade(version: i64, backend: Backend) {
    let name = backend_name(backend);
    let dir = fixtures_dir();
    let m: Manifest = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("v{version}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(m.version, version);
    let empty = EmptyDb::new(backend, &format!("upgrade_v{version}")).await;
    let sql = std::fs::read_to_string(dir.join(format!("v{version}-{name}.sql"))).unwrap();
    load(&empty, sql).await;
    assert_eq!(schema_version(&empty.url).await, version);
    let db = empty.open().await;
    let s = &db.store;

    // Every migration is applied, as on a new database.
    let fresh = TestDb::new(backend, "upgrade_fresh").await;
    fresh.store.close().await;
    assert_eq!(
        schema_version(db.url()).await,
        schema_version(fresh.url()).await
    );
    fresh.finish().await;

    // Every job answers, in the state it was left in.
    let listed: Vec<(i64, JobState)> = s
        .list_jobs(&JobFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| (j.id, j.state))
        .collect();
    assert_eq!(listed, m.states);
    for (id, state) in &m.states {
        let j = s.job(*id).await.unwrap().expect("the job is still there");
        assert_eq!(j.state, *state, "job {id}");
    }
    assert!(s.damaged().rows().is_empty(), "{:?}", s.damaged().rows());
    let job = |role: &str| m.jobs[role];
    let log = s
        .read_log(job("succeeded"), None, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.data, "fixture output\n");
    assert_eq!(
        s.job_id_by_key("fixture-key").await.unwrap(),
        Some(job("queued"))
    );

    // Users, projects, sessions; every token verifies but the revoked one.
    let mut users: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    users.sort();
    assert_eq!(users, m.users);
    let cfd = s.project("cfd").await.unwrap().expect("project cfd");
    assert_eq!(cfd.index, "grant-42");
    assert!(cfd.members.iter().any(|x| x.user == "bob"));
    let now = T0 + 1000;
    let session = s.find_session(&m.session, now).await.unwrap();
    assert_eq!(session.map(|x| x.user).as_deref(), Some("alice"));
    for t in &m.tokens {
        let found = s.find_token(&hash(&t.secret), now, "127.0.0.1").await;
        let found = found.unwrap();
        if t.valid {
            let found = found.unwrap_or_else(|| panic!("token {} no longer verifies", t.id));
            assert_eq!(
                (&found.id, &found.user, found.kind),
                (&t.id, &t.user, t.kind)
            );
        } else {
            assert!(found.is_none(), "revoked token {} verifies", t.id);
        }
    }
    assert_eq!(
        s.worker_registrant(WORKER).await.unwrap().as_deref(),
        Some("t-worker")
    );

    // The running job finishes with its lease token; the one that never
    // started loses its lease and runs again.
    let leases = &m.leases[name];
    let (running, attempt, token) = leases
        .iter()
        .find(|(id, _, _)| *id == job("running"))
        .unwrap();
    assert!(s.lease_holds(*running, *attempt, token).await.unwrap());
    let out = report(
        s,
        vec![finished(at(*running, *attempt, token), 0, now)],
        now,
    )
    .await;
    assert_eq!(out.finished, vec![(*running, JobState::Succeeded)]);
    assert_eq!(
        s.job(job("dependent")).await.unwrap().unwrap().state,
        JobState::Runnable,
        "its dependent is released"
    );
    let later = T0 + 3_600_000;
    assert_eq!(s.expire_leases(later).await.unwrap(), 1);
    assert_eq!(
        s.job(job("starting")).await.unwrap().unwrap().state,
        JobState::Runnable
    );

    // Everything left runs to its end, the array and the pipeline too.
    let mut t = later;
    for _ in 0..20 {
        t += 10;
        s.resolve_workflows(&[], t).await.unwrap();
        let l = lease(s, 16, t).await;
        if l.is_empty() {
            break;
        }
        let updates = l
            .iter()
            .map(|l| finished(at(l.job_id, l.attempt, &l.token), 0, t + 1))
            .collect();
        report(s, updates, t + 1).await;
    }
    for (role, state) in [
        ("succeeded", JobState::Succeeded),
        ("failed", JobState::Failed),
        ("cancelled", JobState::Cancelled),
        ("running", JobState::Succeeded),
        ("starting", JobState::Succeeded),
        ("queued", JobState::Succeeded),
        ("queued_other", JobState::Succeeded),
        ("dependent", JobState::Succeeded),
        ("array", JobState::Succeeded),
        ("pipeline", JobState::Succeeded),
        ("pipeline_post", JobState::Succeeded),
    ] {
        let j = s.job(job(role)).await.unwrap().unwrap();
        assert_eq!(j.state, state, "{role} (job {})", j.id);
    }
    let tasks = s.children(job("array")).await.unwrap();
    assert_eq!(tasks.len(), 4);
    assert!(tasks.iter().all(|(_, st)| *st == JobState::Succeeded));

    // New rows get new ids (the sequences came along).
    let newest = m.states.iter().map(|(id, _)| *id).max().unwrap();
    let fresh_id = s
        .submit(&[spec(r#"{"command":["new"]}"#, "alice", "cfd")], t)
        .await
        .unwrap()[0];
    assert!(fresh_id > newest, "{fresh_id} <= {newest}");
    db.finish().await;
}

/// Every fixture in `fixtures/` is in [`FIXTURES`] (and so has its tests).
#[test]
fn every_fixture_is_tested() {
    let mut found: Vec<i64> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let v = name.strip_prefix('v')?.strip_suffix(".json")?;
            Some(v.parse().unwrap())
        })
        .collect();
    found.sort();
    assert_eq!(found, FIXTURES);
    for v in FIXTURES {
        for name in ["sqlite", "postgres"] {
            assert!(fixtures_dir().join(format!("v{v}-{name}.sql")).exists());
        }
    }
}
