//! Fresh databases for the store's integration tests: a new PostgreSQL
//! database per check on `TRESTLE_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(dead_code)]

use trestle_store::SqlStore;

pub fn pg_admin_url() -> String {
    std::env::var("TRESTLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub async fn fresh_postgres(check: &str) -> (SqlStore, String) {
    let (s, name, _) = fresh_postgres_url(check).await;
    (s, name)
}

/// A fresh database and its URL.
pub async fn fresh_postgres_url(check: &str) -> (SqlStore, String, String) {
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
    let url = format!("{base}/{name}");
    let store = SqlStore::connect(&url).await.unwrap();
    (store, name, url)
}

pub async fn drop_postgres(name: &str) {
    use sqlx::Executor;
    let pool = sqlx::AnyPool::connect(&pg_admin_url()).await.unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await
    .unwrap();
}
