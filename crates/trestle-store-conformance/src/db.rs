//! Fresh databases for the tests: a new SQLite file in its own temporary
//! directory, or a new PostgreSQL database on `TRESTLE_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`, trust
//! authentication), removed again when the test is done, passed or not.

use sqlx::Executor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use trestle_store::{SqlStore, Store};

/// The PostgreSQL server's maintenance database, where test databases are
/// created and dropped.
pub fn pg_admin_url() -> String {
    std::env::var("TRESTLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Test databases made by this process so far (keeps names unique when one
/// process runs several tests, as `cargo test` does).
static MADE: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL database name for a test: unique to this process and
/// within PostgreSQL's 63-byte identifier limit.
fn pg_name(label: &str) -> String {
    let n = MADE.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("trestle_t{}_{n}_", std::process::id());
    name.extend(
        label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(63 - name.len()),
    );
    name
}

/// The two databases every store check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Where an [`EmptyDb`] lives.
#[derive(Debug)]
enum Place {
    /// The directory holding the file, removed when dropped.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres(String),
}

/// A fresh, empty database that no store has opened yet (no migrations
/// applied), removed when dropped.
#[derive(Debug)]
pub struct EmptyDb {
    /// The URL to open it with ([`SqlStore::connect`] or sqlx).
    pub url: String,
    place: Place,
}

impl EmptyDb {
    /// An empty SQLite file in a new temporary directory.
    pub fn sqlite() -> EmptyDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        EmptyDb {
            url: format!("sqlite://{}/t.db", dir.path().display()),
            place: Place::Sqlite { _dir: dir },
        }
    }

    /// A new, empty PostgreSQL database named after `label`.
    pub async fn postgres(label: &str) -> EmptyDb {
        sqlx::any::install_default_drivers();
        let admin = pg_admin_url();
        let name = pg_name(label);
        let pool = sqlx::AnyPool::connect(&admin)
            .await
            .expect("PostgreSQL must be running for the store's tests (see README)");
        pool.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .await
        .expect("drop an old test database");
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        pool.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        EmptyDb {
            url: format!("{base}/{name}"),
            place: Place::Postgres(name),
        }
    }

    /// An empty database on either backend.
    pub async fn new(backend: Backend, label: &str) -> EmptyDb {
        match backend {
            Backend::Sqlite => EmptyDb::sqlite(),
            Backend::Postgres => EmptyDb::postgres(label).await,
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.place {
            Place::Sqlite { .. } => Backend::Sqlite,
            Place::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens it as a store, which applies the migrations.
    pub async fn open(self) -> TestDb {
        let store = SqlStore::connect(&self.url).await.expect("open the store");
        TestDb { store, db: self }
    }
}

impl Drop for EmptyDb {
    fn drop(&mut self) {
        let Place::Postgres(name) = &self.place else {
            return; // The temporary directory removes itself.
        };
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        // Drop may run inside the test's runtime, even while it unwinds:
        // the database is dropped from a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let pool = sqlx::AnyPool::connect(&pg_admin_url()).await?;
                pool.execute(sqlx::AssertSqlSafe(sql)).await?;
                pool.close().await;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("test database {name} was not dropped");
        }
    }
}

/// A store on a fresh database, with the migrations applied; the database
/// is removed when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The store.
    pub store: SqlStore,
    db: EmptyDb,
}

impl TestDb {
    /// A store on a fresh SQLite file.
    pub async fn sqlite() -> TestDb {
        EmptyDb::sqlite().open().await
    }

    /// A store on a fresh PostgreSQL database named after `label`.
    pub async fn postgres(label: &str) -> TestDb {
        EmptyDb::postgres(label).await.open().await
    }

    /// A store on a fresh database on either backend.
    pub async fn new(backend: Backend, label: &str) -> TestDb {
        EmptyDb::new(backend, label).await.open().await
    }

    /// The database's URL (for a second connection).
    pub fn url(&self) -> &str {
        &self.db.url
    }

    /// The store as the server sees it.
    pub fn shared(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    /// Closes the store and removes the database.
    pub async fn finish(self) {
        self.store.close().await;
    }
}
