//! Runs the conformance suite against SQLite (a fresh file per check) and
//! PostgreSQL (a fresh database per check on `TRESTLE_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::sync::Arc;
use trestle_store::conformance::{CHECKS, run};
use trestle_store::conformance_identity as identity;
use trestle_store::{SqlStore, Store};

mod common;

use common::{drop_postgres, fresh_postgres};

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
