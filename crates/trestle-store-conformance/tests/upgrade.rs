//! Upgrades: a database made by an older Trestle still works after
//! `SqlStore::connect` applies the newer migrations.
//!
//! `fixtures/vN-sqlite.sql` and `fixtures/vN-postgres.sql` are plain SQL
//! dumps (schema and rows) of databases at schema version N, filled through
//! the store's API by `populate`: users, a project, API tokens and a
//! worker credential (one revoked), a session, a registered worker, and
//! jobs queued, leased, running, succeeded, failed, cancelled and waiting
//! on a dependency, plus a half-done array and pipeline. `fixtures/vN.json`
//! is what the generator knows about them (`Manifest`: job ids and
//! states, token secrets, the lease tokens of the running jobs). For each
//! fixture and database, [`upgrade`] loads the dump into an empty database,
//! opens it with the store, and checks every job still answers, every
//! token still verifies (the revoked one still does not), and every
//! unfinished job, the array and the pipeline run to their end.
//!
//! Adding a newer fixture, after a migration N+1 lands:
//! 1. `cargo run -p trestle-store-conformance --example generate_fixtures`
//!    writes `fixtures/v{N+1}*` (the version is the newest migration; it
//!    needs the `sqlite3` and `pg_dump` command-line tools). Keep the older fixtures: each is an upgrade
//!    path still to be tested. Never regenerate an old one.
//! 2. Add `N+1` to [`FIXTURES`] and a pair of tests below like the v4 ones.
//! 3. If the new schema holds something new, fill it in [`populate`]
//!    (which only runs for new fixtures) and check it in [`upgrade`],
//!    keyed on the fixture's version where older fixtures lack it.

use sqlx::{Connection, Executor};
use trestle_core::JobState;
use trestle_store::{IdentityStore, JobFilter, JobStore, TokenStore, WorkflowStore};
use trestle_store_conformance::db::{Backend, EmptyDb, TestDb};
use trestle_store_conformance::fixtures::*;

/// The fixtures' schema versions, each tested below.
const FIXTURES: &[i64] = &[4, 5];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v4_sqlite() {
    upgrade(4, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v4_postgres() {
    upgrade(4, Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v5_sqlite() {
    upgrade(5, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_v5_postgres() {
    upgrade(5, Backend::Postgres).await;
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
        s.job_id_by_key("alice", "fixture-key").await.unwrap(),
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
    assert!(
        s.lease_holds(*running, *attempt, token, "t-worker")
            .await
            .unwrap()
    );
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
