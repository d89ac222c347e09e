//! Workers, and the job and worker store traits wired to the SQL methods.

use super::{Dialect, SqlStore, conflict_or, rows};
use crate::{Demand, JobFilter, JobStore, LeaseParams, Result, UpdateOutcome, WorkerStore};
use async_trait::async_trait;
use sqlx::Row;
use std::collections::HashMap;
use trestle_core::api::{JobView, Lease, LogSlice, UpdatesRequest, WorkerRegistration, WorkerView};
use trestle_core::{JobSpec, JobState};

#[async_trait]
impl WorkerStore for SqlStore {
    async fn register_worker(
        &self,
        id: &str,
        reg: &WorkerRegistration,
        now: i64,
    ) -> Result<WorkerView> {
        sqlx::query(
            "INSERT INTO workers (id, host, pid, cpus, mem_mib, gpus, compute_env, version, \
             started_at, last_heartbeat, instance, isolation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)",
        )
        .bind(id)
        .bind(reg.host.as_str())
        .bind(i64::from(reg.pid))
        .bind(i64::from(reg.capacity.cpus))
        .bind(reg.capacity.mem_mib as i64)
        .bind(i64::from(reg.capacity.gpus))
        .bind(reg.compute_env.clone())
        .bind(reg.version.as_str())
        .bind(now)
        .bind(reg.instance.clone())
        .bind(
            reg.isolation
                .as_ref()
                .and_then(|i| serde_json::to_string(i).ok()),
        )
        .execute(&self.write)
        .await
        .map_err(|e| conflict_or(e, &format!("worker `{id}`"), "id"))?;
        Ok(WorkerView {
            id: id.to_string(),
            host: reg.host.clone(),
            pid: reg.pid,
            capacity: reg.capacity,
            compute_env: reg.compute_env.clone(),
            instance: reg.instance.clone(),
            isolation: reg.isolation.clone(),
            running_jobs: Vec::new(),
            started_at: now,
            last_heartbeat: now,
            tunnel: false,
        })
    }

    async fn touch_worker(&self, id: &str, now: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE workers SET last_heartbeat = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.write)
            .await?
            .rows_affected();
        if n > 0 {
            self.mark_touched(id, now);
        }
        Ok(n > 0)
    }

    async fn list_workers(&self) -> Result<Vec<WorkerView>> {
        let rows = sqlx::query(
            "SELECT id, host, pid, cpus, mem_mib, gpus, compute_env, instance, isolation, \
             started_at, last_heartbeat FROM workers ORDER BY started_at, id",
        )
        .fetch_all(&self.read)
        .await?;
        let mut workers: Vec<WorkerView> = rows.iter().map(rows::worker).collect::<Result<_>>()?;
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT id, lease_worker FROM jobs INDEXED BY jobs_leased WHERE lease_token IS NOT NULL"
            }
            Dialect::Postgres => "SELECT id, lease_worker FROM jobs WHERE lease_token IS NOT NULL",
        };
        let leased = sqlx::query(sql).fetch_all(&self.read).await?;
        let mut by_worker: HashMap<String, Vec<i64>> = HashMap::new();
        for r in &leased {
            let w: Option<String> = r.try_get("lease_worker")?;
            if let Some(w) = w {
                by_worker.entry(w).or_default().push(r.try_get("id")?);
            }
        }
        for w in &mut workers {
            w.running_jobs = by_worker.remove(&w.id).unwrap_or_default();
            w.running_jobs.sort_unstable();
        }
        Ok(workers)
    }

    async fn worker_version(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT version FROM workers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("version")?),
            None => None,
        })
    }

    async fn remove_worker(&self, id: &str) -> Result<bool> {
        self.forget_touched(id);
        let mut tx = self.write.begin().await?;
        // The meter prices the worker's idle time up to its last sign of life.
        sqlx::query(
            "UPDATE worker_history SET ended_at = \
             (SELECT last_heartbeat FROM workers WHERE id = $1) \
             WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn reap_workers(&self, before: i64, now: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM workers WHERE last_heartbeat < $1")
            .bind(before)
            .fetch_all(&self.read)
            .await?;
        let mut gone = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            self.release_worker_leases(&id, now).await?;
            if self.remove_worker(&id).await? {
                gone.push(id);
            }
        }
        Ok(gone)
    }
}

// Each method is the inherent method of the same name (in `jobs.rs`,
// `lease.rs`, `updates.rs` and `flow_ops.rs`, next to their SQL);
// `SqlStore::name` picks the inherent method over the trait's. `lease` is
// `lease_excluding` with no queue excluded.
#[async_trait]
impl JobStore for SqlStore {
    fn set_log_limits(&self, limits: trestle_core::batch::logs::LogLimits) {
        self.set_log_limits_now(limits);
    }

    async fn submit(&self, specs: &[JobSpec], now: i64) -> Result<Vec<i64>> {
        SqlStore::submit(self, specs, now).await
    }
    async fn job(&self, id: i64) -> Result<Option<JobView>> {
        SqlStore::job(self, id).await
    }
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobView>> {
        SqlStore::list_jobs(self, filter).await
    }
    async fn cancel(&self, id: i64, now: i64) -> Result<Option<JobView>> {
        SqlStore::cancel(self, id, now).await
    }
    async fn lease(&self, params: &LeaseParams<'_>) -> Result<Vec<Lease>> {
        self.lease_excluding(params, ",").await
    }
    async fn apply_updates(
        &self,
        worker_id: &str,
        req: &UpdatesRequest,
        lease_ms: i64,
        now: i64,
    ) -> Result<UpdateOutcome> {
        SqlStore::apply_updates(self, worker_id, req, lease_ms, now).await
    }
    async fn expire_leases(&self, now: i64) -> Result<u64> {
        SqlStore::expire_leases(self, now).await
    }
    async fn release_worker_leases(&self, worker_id: &str, now: i64) -> Result<u64> {
        SqlStore::release_worker_leases(self, worker_id, now).await
    }
    async fn read_log(
        &self,
        job_id: i64,
        attempt: Option<u32>,
        after: u32,
    ) -> Result<Option<LogSlice>> {
        SqlStore::read_log(self, job_id, attempt, after).await
    }
    async fn lease_holds(
        &self,
        job_id: i64,
        attempt: u32,
        token: &str,
        registrant: &str,
    ) -> Result<bool> {
        SqlStore::lease_holds(self, job_id, attempt, token, registrant).await
    }
    async fn counts(&self) -> Result<Vec<(String, JobState, u64)>> {
        SqlStore::counts(self).await
    }
    async fn owner_counts(&self, owner: &str) -> Result<Vec<(JobState, u64)>> {
        SqlStore::owner_counts(self, owner).await
    }
    async fn runnable_demand(&self, max_cpus: u32, limit: u32) -> Result<Demand> {
        SqlStore::runnable_demand(self, max_cpus, limit).await
    }
    fn damaged(&self) -> &crate::DamagedRows {
        &self.damaged
    }
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1 AS one").fetch_one(&self.read).await?;
        Ok(())
    }
}
