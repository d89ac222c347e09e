//! The migrations: applying them twice changes nothing.

use trestle_store::SqlStore;
use trestle_store_conformance::db::TestDb;

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::sqlite().await;
    db.store.close().await;
    let again = SqlStore::connect(db.url()).await.unwrap();
    again.close().await;
    assert!(SqlStore::connect("mysql://x").await.is_err());
    db.finish().await;
}
