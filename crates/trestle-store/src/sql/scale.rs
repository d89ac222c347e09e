//! Compute environments, queues, CE events, the autoscaler's snapshot
//! queries and leader leases.

use super::{Dialect, SqlStore};
use crate::scale::{ComputeEnvRecord, LeaderRecord, QueueRecord, ScaleStore};
use crate::{LeaseParams, Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use trestle_core::Resources;
use trestle_core::api::Lease;
use trestle_core::api::compute::{ComputeEnvEvent, STATUS_VALID};
use trestle_core::compute::scale::DemandBucket;
use trestle_core::compute::{ComputeEnvSpec, QUEUE_PRIORITY_STEP, QueueSpec};

/// Events kept per CE.
const EVENTS_KEPT: i64 = 500;

// Runnable demand in lease order, grouped. SQLite reads the runnable index
// in order (see lease.rs) so a long queue costs no more than `limit` rows.
const BUCKETS_SQLITE: &str = "SELECT queue, cpus, mem_mib, gpus, COUNT(*) AS n, \
     MAX(priority) AS p, MIN(id) AS first FROM \
     (SELECT queue, cpus, mem_mib, gpus, priority, id FROM jobs INDEXED BY jobs_runnable \
      WHERE state = 'RUNNABLE' ORDER BY priority DESC, id LIMIT $1) AS r \
     GROUP BY queue, cpus, mem_mib, gpus ORDER BY p DESC, first";
const BUCKETS_POSTGRES: &str = "SELECT queue, cpus, mem_mib, gpus, COUNT(*) AS n, \
     MAX(priority) AS p, MIN(id) AS first FROM \
     (SELECT queue, cpus, mem_mib, gpus, priority, id FROM jobs \
      WHERE state = 'RUNNABLE' ORDER BY priority DESC, id LIMIT $1) AS r \
     GROUP BY queue, cpus, mem_mib, gpus ORDER BY p DESC, first";

// Leader leases: insert, or take over a lease that ran out, or renew one's
// own. `excluded.acquired_at` is "now": the caller's clock on SQLite (one
// host), the database's on PostgreSQL (servers' clocks may disagree).
const LEAD_SQLITE: &str = "INSERT INTO leader_leases (name, holder, expires_at, acquired_at) \
     VALUES ($1, $2, $4 + $3, $4) \
     ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at, \
     acquired_at = CASE WHEN leader_leases.holder = excluded.holder \
         THEN leader_leases.acquired_at ELSE excluded.acquired_at END, \
     holder = excluded.holder \
     WHERE leader_leases.holder = excluded.holder \
        OR leader_leases.expires_at < excluded.acquired_at \
     RETURNING holder";
const LEAD_POSTGRES: &str = "INSERT INTO leader_leases (name, holder, expires_at, acquired_at) \
     SELECT $1, $2, t.now + $3, t.now FROM \
     (SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now) AS t \
     ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at, \
     acquired_at = CASE WHEN leader_leases.holder = excluded.holder \
         THEN leader_leases.acquired_at ELSE excluded.acquired_at END, \
     holder = excluded.holder \
     WHERE leader_leases.holder = excluded.holder \
        OR leader_leases.expires_at < excluded.acquired_at \
     RETURNING holder";
const LEADERS_SQLITE: &str = "SELECT name, holder, acquired_at, expires_at, \
     CAST($1 AS BIGINT) AS now FROM leader_leases ORDER BY name";
const LEADERS_POSTGRES: &str = "SELECT name, holder, acquired_at, expires_at, \
     CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now \
     FROM leader_leases ORDER BY name";

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn env_record(r: &sqlx::any::AnyRow) -> Result<ComputeEnvRecord> {
    let spec: String = r.try_get("spec")?;
    Ok(ComputeEnvRecord {
        spec: serde_json::from_str(&spec).map_err(|e| corrupt("compute environment", e))?,
        source: r.try_get("source")?,
        status: r.try_get("status")?,
        status_reason: r.try_get("status_reason")?,
        status_at: r.try_get("status_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn queue_spec(text: &str) -> Result<QueueSpec> {
    serde_json::from_str(text).map_err(|e| corrupt("queue", e))
}

#[async_trait]
impl ScaleStore for SqlStore {
    async fn put_compute_env(&self, spec: &ComputeEnvSpec, source: &str, now: i64) -> Result<bool> {
        let json = serde_json::to_string(spec).map_err(|e| corrupt("compute environment", e))?;
        let mut tx = self.write.begin().await?;
        let existed = sqlx::query("SELECT 1 AS one FROM compute_envs WHERE name = $1")
            .bind(spec.name.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if existed {
            sqlx::query(
                "UPDATE compute_envs SET spec = $1, source = $2, updated_at = $3, \
                 status = $4, status_reason = NULL, status_at = $3 WHERE name = $5",
            )
            .bind(json)
            .bind(source)
            .bind(now)
            .bind(STATUS_VALID)
            .bind(spec.name.as_str())
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO compute_envs (name, spec, source, status, status_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(spec.name.as_str())
            .bind(json)
            .bind(source)
            .bind(STATUS_VALID)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(!existed)
    }

    async fn compute_envs(&self) -> Result<Vec<ComputeEnvRecord>> {
        sqlx::query(
            "SELECT spec, source, status, status_reason, status_at, updated_at \
             FROM compute_envs ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(env_record)
        .collect()
    }

    async fn delete_compute_env(&self, name: &str) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let queues = sqlx::query("SELECT spec FROM queues ORDER BY name")
            .fetch_all(&mut *tx)
            .await?;
        for r in &queues {
            let q = queue_spec(&r.try_get::<String, _>("spec")?)?;
            if q.compute_environments.iter().any(|e| e == name) {
                return Err(StoreError::Conflict {
                    what: format!(
                        "queue `{}` lists compute environment `{name}`; a reference to it",
                        q.name
                    ),
                    field: "name".into(),
                });
            }
        }
        let n = sqlx::query("DELETE FROM compute_envs WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn set_compute_env_status(
        &self,
        name: &str,
        status: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE compute_envs SET status = $1, status_reason = $2, status_at = $3 \
             WHERE name = $4 AND (status <> $1 OR COALESCE(status_reason, '') <> COALESCE($2, ''))",
        )
        .bind(status)
        .bind(reason)
        .bind(now)
        .bind(name)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn add_compute_env_event(
        &self,
        env: &str,
        kind: &str,
        message: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO compute_env_events (env, at, kind, message) VALUES ($1, $2, $3, $4)",
        )
        .bind(env)
        .bind(now)
        .bind(kind)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM compute_env_events WHERE env = $1 AND id < \
             (SELECT MIN(id) FROM (SELECT id FROM compute_env_events WHERE env = $1 \
              ORDER BY id DESC LIMIT $2) AS k)",
        )
        .bind(env)
        .bind(EVENTS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn compute_env_events(&self, env: &str, limit: u32) -> Result<Vec<ComputeEnvEvent>> {
        let rows = sqlx::query(
            "SELECT at, kind, message FROM compute_env_events WHERE env = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(env)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ComputeEnvEvent {
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    async fn put_queue(&self, spec: &QueueSpec, source: &str, now: i64) -> Result<bool> {
        let json = serde_json::to_string(spec).map_err(|e| corrupt("queue", e))?;
        let mut tx = self.write.begin().await?;
        let old: Option<i64> = sqlx::query("SELECT priority FROM queues WHERE name = $1")
            .bind(spec.name.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("priority"))
            .transpose()?;
        match old {
            Some(_) => {
                sqlx::query(
                    "UPDATE queues SET priority = $1, spec = $2, source = $3, updated_at = $4 \
                     WHERE name = $5",
                )
                .bind(spec.priority)
                .bind(json)
                .bind(source)
                .bind(now)
                .bind(spec.name.as_str())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO queues (name, priority, spec, source, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(spec.name.as_str())
                .bind(spec.priority)
                .bind(json)
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        let delta = (spec.priority - old.unwrap_or(0)) * QUEUE_PRIORITY_STEP;
        if delta != 0 {
            shift_priority(&mut tx, &spec.name, delta).await?;
        }
        tx.commit().await?;
        Ok(old.is_none())
    }

    async fn queue_records(&self) -> Result<Vec<QueueRecord>> {
        sqlx::query("SELECT spec, source, updated_at FROM queues ORDER BY name")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                Ok(QueueRecord {
                    spec: queue_spec(&r.try_get::<String, _>("spec")?)?,
                    source: r.try_get("source")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn delete_queue(&self, name: &str) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let Some(row) = sqlx::query("SELECT priority FROM queues WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let old: i64 = row.try_get("priority")?;
        sqlx::query("DELETE FROM queues WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if old != 0 {
            shift_priority(&mut tx, name, -old * QUEUE_PRIORITY_STEP).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_source(
        &self,
        source: &str,
        keep_envs: &[String],
        keep_queues: &[String],
    ) -> Result<()> {
        for q in self.queue_records().await? {
            if q.source == source && !keep_queues.contains(&q.spec.name) {
                self.delete_queue(&q.spec.name).await?;
            }
        }
        for e in self.compute_envs().await? {
            if e.source == source && !keep_envs.contains(&e.spec.name) {
                match self.delete_compute_env(&e.spec.name).await {
                    Ok(_) => {}
                    // Still listed by a queue made through the API: keep it.
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn runnable_buckets(&self, limit: u32) -> Result<Vec<DemandBucket>> {
        let sql = match self.dialect {
            Dialect::Sqlite => BUCKETS_SQLITE,
            Dialect::Postgres => BUCKETS_POSTGRES,
        };
        let rows = sqlx::query(sql)
            .bind(i64::from(limit.max(1)))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DemandBucket {
                    queue: r.try_get("queue")?,
                    resources: Resources {
                        cpus: r.try_get::<i64, _>("cpus")? as u32,
                        mem_mib: r.try_get::<i64, _>("mem_mib")? as u64,
                        gpus: r.try_get::<i64, _>("gpus")? as u32,
                    },
                    count: r.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }

    async fn leased_by_worker(&self) -> Result<Vec<(String, Resources)>> {
        let rows = sqlx::query(
            "SELECT lease_worker, CAST(SUM(cpus) AS BIGINT) AS c, \
             CAST(SUM(mem_mib) AS BIGINT) AS m, CAST(SUM(gpus) AS BIGINT) AS g \
             FROM jobs WHERE lease_token IS NOT NULL AND lease_worker IS NOT NULL \
             GROUP BY lease_worker",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("lease_worker")?,
                    Resources {
                        cpus: r.try_get::<i64, _>("c")? as u32,
                        mem_mib: r.try_get::<i64, _>("m")? as u64,
                        gpus: r.try_get::<i64, _>("g")? as u32,
                    },
                ))
            })
            .collect()
    }

    async fn worker_compute_env(&self, worker_id: &str) -> Result<Option<Option<String>>> {
        Ok(sqlx::query("SELECT compute_env FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_optional(&self.read)
            .await?
            .map(|r| r.try_get("compute_env"))
            .transpose()?)
    }

    async fn lease_routed(&self, params: &LeaseParams<'_>, exclude: &str) -> Result<Vec<Lease>> {
        self.lease_excluding(params, exclude).await
    }

    async fn try_lead(&self, name: &str, holder: &str, ttl_ms: i64, now: i64) -> Result<bool> {
        let q = match self.dialect {
            Dialect::Sqlite => sqlx::query(LEAD_SQLITE)
                .bind(name)
                .bind(holder)
                .bind(ttl_ms)
                .bind(now),
            Dialect::Postgres => sqlx::query(LEAD_POSTGRES)
                .bind(name)
                .bind(holder)
                .bind(ttl_ms),
        };
        let row = q.fetch_optional(&self.write).await?;
        Ok(match row {
            Some(r) => r.try_get::<String, _>("holder")? == holder,
            None => false,
        })
    }

    async fn resign(&self, holder: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM leader_leases WHERE holder = $1")
            .bind(holder)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    async fn leaders(&self, now: i64) -> Result<Vec<LeaderRecord>> {
        let rows = match self.dialect {
            Dialect::Sqlite => {
                sqlx::query(LEADERS_SQLITE)
                    .bind(now)
                    .fetch_all(&self.read)
                    .await?
            }
            Dialect::Postgres => sqlx::query(LEADERS_POSTGRES).fetch_all(&self.read).await?,
        };
        rows.iter()
            .map(|r| {
                Ok(LeaderRecord {
                    name: r.try_get("name")?,
                    holder: r.try_get("holder")?,
                    acquired_at: r.try_get("acquired_at")?,
                    expires_at: r.try_get("expires_at")?,
                    now: r.try_get("now")?,
                })
            })
            .collect()
    }
}

/// Moves a queue's unfinished jobs by `delta` in the lease order.
async fn shift_priority(tx: &mut super::Tx<'_>, queue: &str, delta: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET priority = priority + $1 WHERE queue = $2 \
         AND state IN ('SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING')",
    )
    .bind(delta)
    .bind(queue)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
