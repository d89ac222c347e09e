//! Runs the conformance suite against SQLite (a fresh file per check) and
//! PostgreSQL (a fresh database per check on `TRESTLE_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;
use trestle_store::conformance::{CHECKS, run};
use trestle_store::conformance_identity as identity;
use trestle_store::{SqlStore, Store};

fn pg_admin_url() -> String {
    std::env::var("TRESTLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

async fn fresh_postgres(check: &str) -> (SqlStore, String) {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let admin = pg_admin_url();
    let name = format!("trestle_conf_{}_{}", check, std::process::id());
    let pool = sqlx::AnyPool::connect(&admin)
        .await
        .expect("PostgreSQL must be running for the conformance suite (see README)");
    pool.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .await
    .unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let store = SqlStore::connect(&format!("{base}/{name}")).await.unwrap();
    (store, name)
}

async fn drop_postgres(name: &str) {
    use sqlx::Executor;
    let pool = sqlx::AnyPool::connect(&pg_admin_url()).await.unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_every_check() {
    for check in CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqlStore::connect(&url).await.unwrap();
        eprintln!("sqlite: {check}");
        run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_every_check() {
    for check in CHECKS {
        let (store, name) = fresh_postgres(check).await;
        eprintln!("postgres: {check}");
        run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
        drop_postgres(&name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_every_identity_check() {
    for check in identity::CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqlStore::connect(&url).await.unwrap();
        eprintln!("sqlite: {check}");
        identity::run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_every_identity_check() {
    for check in identity::CHECKS {
        let (store, name) = fresh_postgres(&format!("id_{check}")).await;
        eprintln!("postgres: {check}");
        identity::run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
        drop_postgres(&name).await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let a = SqlStore::connect(&url).await.unwrap();
    a.close().await;
    let b = SqlStore::connect(&url).await.unwrap();
    b.close().await;
    assert!(SqlStore::connect("mysql://x").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_every_workflow_check() {
    use trestle_store::conformance_workflows as wf;
    for check in wf::CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqlStore::connect(&url).await.unwrap();
        eprintln!("sqlite: {check}");
        wf::run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_every_workflow_check() {
    use trestle_store::conformance_workflows as wf;
    for check in wf::CHECKS {
        let (store, name) = fresh_postgres(&format!("wf_{check}")).await;
        eprintln!("postgres: {check}");
        wf::run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
        drop_postgres(&name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_every_scale_check() {
    use trestle_store::conformance_scale as sc;
    for check in sc::CHECKS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = SqlStore::connect(&url).await.unwrap();
        eprintln!("sqlite: {check}");
        sc::run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_every_scale_check() {
    use trestle_store::conformance_scale as sc;
    for check in sc::CHECKS {
        let (store, name) = fresh_postgres(&format!("sc_{check}")).await;
        eprintln!("postgres: {check}");
        sc::run(check, Arc::new(store.clone()) as Arc<dyn Store>).await;
        store.close().await;
        drop_postgres(&name).await;
    }
}
