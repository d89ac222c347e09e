//! The SQL store: one query layer over sqlx's `Any` driver, with the few
//! places where SQLite and PostgreSQL differ isolated in [`Dialect`].
//!
//! SQLite runs with WAL and a single writer connection (SQLite serialises
//! writers anyway; one connection avoids busy retries), plus a small pool of
//! readers. PostgreSQL uses one pool and `FOR UPDATE SKIP LOCKED` so several
//! servers can lease concurrently without blocking each other.

mod audit;
mod cost;
mod events;
mod external;
mod flow;
mod flow_ops;
mod flow_views;
mod jobs;
mod lease;
mod logs;
mod migrate;
mod multirow;
pub(crate) mod notify;
mod oidc;
mod projects;
mod rows;
mod samples;
mod scale;
mod study;
mod tokens;
mod updates;
mod uploads;
mod users;
mod workers;
mod workspace;

use crate::{Result, StoreError};
use sqlx::any::{Any, AnyPoolOptions};
use sqlx::{AnyPool, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A transaction on either database (every module of the store uses this
/// one).
type Tx<'a> = Transaction<'a, Any>;

/// The database behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (embedded default).
    Sqlite,
    /// PostgreSQL (production).
    Postgres,
}

/// The SQL implementation of every store trait.
#[derive(Debug, Clone)]
pub struct SqlStore {
    write: AnyPool,
    read: AnyPool,
    dialect: Dialect,
    /// Workers whose heartbeat time was written recently (id -> ms): the
    /// hot path skips rewriting it more than once per [`TOUCH_EVERY_MS`].
    touched: Arc<Mutex<HashMap<String, i64>>>,
    /// Rows met that cannot be decoded (skipped, reported).
    damaged: Arc<crate::damaged::DamagedRows>,
    /// How much of each attempt's log is kept.
    log_limits: Arc<std::sync::RwLock<trestle_core::batch::logs::LogLimits>>,
    /// Projects under an escrow budget (`,a,b,`; empty: none): their jobs
    /// are leased only once they hold a reservation.
    escrow: Arc<std::sync::RwLock<String>>,
}

/// How often a worker's `last_heartbeat` is written at most.
const TOUCH_EVERY_MS: i64 = 1000;

impl SqlStore {
    fn recently_touched(&self, worker_id: &str, now: i64) -> bool {
        let map = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        map.get(worker_id).is_some_and(|t| now - t < TOUCH_EVERY_MS)
    }

    fn mark_touched(&self, worker_id: &str, now: i64) {
        let mut map = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(worker_id.to_string(), now);
    }

    fn forget_touched(&self, worker_id: &str) {
        let mut map = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(worker_id);
    }
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 10000; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;";

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH`, `postgres://...`) and applies
    /// pending migrations. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL `{url}`: use sqlite://PATH or postgres://..."
            )));
        };
        let store = match dialect {
            Dialect::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                                Ok(())
                            })
                        })
                };
                let write = opts().max_connections(1).connect(&url).await?;
                let read = opts().max_connections(4).connect(&url).await?;
                SqlStore {
                    write,
                    read,
                    dialect,
                    touched: Arc::default(),
                    damaged: Arc::default(),
                    log_limits: Arc::default(),
                    escrow: Arc::default(),
                }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?;
                SqlStore {
                    write: pool.clone(),
                    read: pool,
                    dialect,
                    touched: Arc::default(),
                    damaged: Arc::default(),
                    log_limits: Arc::default(),
                    escrow: Arc::default(),
                }
            }
        };
        migrate::run(&store.write, dialect).await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict_or(e: sqlx::Error, what: &str, field: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict {
            what: what.to_string(),
            field: field.to_string(),
        };
    }
    StoreError::Database(e)
}
