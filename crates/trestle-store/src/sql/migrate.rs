//! Versioned migrations, embedded in the binary: one directory per dialect,
//! every version not yet recorded is applied in order, each in its own transaction, recorded in
//! `schema_migrations`.

use super::Dialect;
use crate::Result;
use sqlx::{AnyPool, AssertSqlSafe, Row};

/// (version, SQL) for SQLite.
const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_workflows.sql"),
    ),
    (3, include_str!("../../migrations/sqlite/0003_identity.sql")),
    (4, include_str!("../../migrations/sqlite/0004_scale.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_task_kinds.sql"),
    ),
    (6, include_str!("../../migrations/sqlite/0006_limits.sql")),
    (
        7,
        include_str!("../../migrations/sqlite/0007_login_attempts.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_sealed_uploads.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_external_identity.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_oidc_logins.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_worker_isolation.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_workspaces.sql"),
    ),
    (14, include_str!("../../migrations/sqlite/0014_notify.sql")),
    (15, include_str!("../../migrations/sqlite/0015_studies.sql")),
    (16, include_str!("../../migrations/sqlite/0016_costs.sql")),
    (17, include_str!("../../migrations/sqlite/0017_samples.sql")),
    (
        18,
        include_str!("../../migrations/sqlite/0018_array_fail_fast.sql"),
    ),
];
/// (version, SQL) for PostgreSQL.
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_workflows.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_identity.sql"),
    ),
    (4, include_str!("../../migrations/postgres/0004_scale.sql")),
    (
        5,
        include_str!("../../migrations/postgres/0005_task_kinds.sql"),
    ),
    (6, include_str!("../../migrations/postgres/0006_limits.sql")),
    (
        7,
        include_str!("../../migrations/postgres/0007_login_attempts.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_sealed_uploads.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_external_identity.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_oidc_logins.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_worker_isolation.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_workspaces.sql"),
    ),
    (
        14,
        include_str!("../../migrations/postgres/0014_notify.sql"),
    ),
    (
        15,
        include_str!("../../migrations/postgres/0015_studies.sql"),
    ),
    (16, include_str!("../../migrations/postgres/0016_costs.sql")),
    (
        17,
        include_str!("../../migrations/postgres/0017_samples.sql"),
    ),
    (
        18,
        include_str!("../../migrations/postgres/0018_array_fail_fast.sql"),
    ),
];

/// Applies every migration newer than the database's version.
pub(super) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    if dialect == Dialect::Postgres {
        // Serialise concurrent servers starting at once.
        sqlx::query("SELECT pg_advisory_lock(72116)")
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(&mut conn, dialect).await;
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(72116)")
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(conn: &mut sqlx::AnyConnection, dialect: Dialect) -> Result<()> {
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get("version"))
        .collect::<std::result::Result<_, sqlx::Error>>()?;
    let list = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    for (version, sql) in list.iter().filter(|(v, _)| !applied.contains(v)) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // Migration files are compiled into the binary; nothing user-supplied.
        sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(super::rows::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}
