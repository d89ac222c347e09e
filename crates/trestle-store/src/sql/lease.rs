//! The queue's hot path: leasing, heartbeats, attempt reports (all fenced by
//! lease tokens) and the expiry of leases whose workers went away.

use super::multirow::{by_id, id_list, ids_in, per_dialect};
use super::rows;
use super::updates::{Ending, end_attempts};
use super::{Dialect, SqlStore, Tx};
use crate::{LeaseParams, Result, StoreError};
use rand::RngCore;
use sqlx::Row;
use std::collections::HashMap;
use trestle_core::AttemptReason;
use trestle_core::Resources;
use trestle_core::api::Lease;
use trestle_core::batch::placement::{Candidate, pack};

// SQLite's planner, without statistics, may prefer the (state, queue)
// index and sort every runnable row; the partial runnable index yields rows
// already in lease order, so the scan stops after LIMIT matches.
// `$6` lists the task kinds the worker runs (`,batch,`).
// `$5` lists the queues the worker's compute environment does not serve
// (`,a,b,`; just `,` for none).
const CANDIDATES_SQLITE: &str = "SELECT id, cpus, mem_mib, gpus FROM jobs INDEXED BY jobs_runnable \
     WHERE state = 'RUNNABLE' AND cpus <= $1 AND mem_mib <= $2 AND gpus <= $3 \
     AND $5 NOT LIKE '%,' || queue || ',%' AND $6 LIKE '%,' || task_kind || ',%' \
     ORDER BY priority DESC, id LIMIT $4";
const CANDIDATES_POSTGRES: &str = "SELECT id, cpus, mem_mib, gpus FROM jobs \
     WHERE state = 'RUNNABLE' AND cpus <= $1 AND mem_mib <= $2 AND gpus <= $3 \
     AND $5 NOT LIKE '%,' || queue || ',%' AND $6 LIKE '%,' || task_kind || ',%' \
     ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED";
// The same, when some projects are under escrow budgets (`$7`, `,a,b,`):
// their jobs only once they hold a reservation. Without escrow budgets the
// hot path keeps the queries above.
const CANDIDATES_ESCROW_SQLITE: &str = "SELECT id, cpus, mem_mib, gpus FROM jobs INDEXED BY jobs_runnable \
     WHERE state = 'RUNNABLE' AND cpus <= $1 AND mem_mib <= $2 AND gpus <= $3 \
     AND $5 NOT LIKE '%,' || queue || ',%' AND $6 LIKE '%,' || task_kind || ',%' \
     AND ($7 NOT LIKE '%,' || COALESCE(project, '') || ',%' \
     OR id IN (SELECT job_id FROM budget_reservations)) \
     ORDER BY priority DESC, id LIMIT $4";
const CANDIDATES_ESCROW_POSTGRES: &str = "SELECT id, cpus, mem_mib, gpus FROM jobs \
     WHERE state = 'RUNNABLE' AND cpus <= $1 AND mem_mib <= $2 AND gpus <= $3 \
     AND $5 NOT LIKE '%,' || queue || ',%' AND $6 LIKE '%,' || task_kind || ',%' \
     AND ($7 NOT LIKE '%,' || COALESCE(project, '') || ',%' \
     OR id IN (SELECT job_id FROM budget_reservations)) \
     ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED";
const EXPIRED_SQLITE: &str = "SELECT id, attempt_seq FROM jobs \
     WHERE lease_token IS NOT NULL AND lease_expires_at < $1 LIMIT 500";
const EXPIRED_POSTGRES: &str = "SELECT id, attempt_seq FROM jobs \
     WHERE lease_token IS NOT NULL AND lease_expires_at < $1 LIMIT 500 FOR UPDATE SKIP LOCKED";

macro_rules! lease_set_sql {
    ($d:ident) => {
        concat!(
            "UPDATE jobs",
            by_id!($d),
            " SET state = 'STARTING', attempt_seq = attempt_seq + 1, \
             lease_token = $1, lease_worker = $2, lease_expires_at = $3, reason = NULL \
             WHERE state = 'RUNNABLE' AND id IN ",
            ids_in!($d, 4),
            " RETURNING id, attempt_seq, spec"
        )
    };
}
per_dialect!(
    /// Leases the chosen jobs (`$4`, a JSON id list).
    LEASE_SET = lease_set_sql
);
macro_rules! lease_attempts_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO attempts (job_id, attempt, worker_id, state, leased_at) \
             SELECT id, attempt_seq, $2, 'running', $3 FROM jobs",
            by_id!($d),
            " WHERE lease_token = $1 AND id IN ",
            ids_in!($d, 4)
        )
    };
}
per_dialect!(
    /// Opens the attempts of the jobs just leased with token `$1`.
    LEASE_ATTEMPTS = lease_attempts_sql
);

/// Most jobs one lease request gets.
const MAX_LEASE_BATCH: u32 = 1000;

/// A fresh, unguessable lease token.
fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl SqlStore {
    /// Records that the worker is alive (at most once a second).
    pub(super) async fn touch_in(&self, tx: &mut Tx<'_>, worker_id: &str, now: i64) -> Result<()> {
        if self.recently_touched(worker_id, now) {
            return Ok(());
        }
        let n = sqlx::query("UPDATE workers SET last_heartbeat = $1 WHERE id = $2")
            .bind(now)
            .bind(worker_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("worker `{worker_id}`")));
        }
        self.mark_touched(worker_id, now);
        Ok(())
    }

    /// Leases for a worker; `exclude` lists the queues it must not take
    /// jobs from (`,a,b,`, or `,` for none). The whole batch costs a fixed
    /// number of statements: the candidates, one multi-row `UPDATE`, one
    /// `INSERT` of the attempts and one of the events. The attempts of one
    /// lease response share a token (they go to one worker; every new
    /// attempt still gets a new token, and reports are fenced by attempt
    /// number too). [`crate::JobStore::lease`] is this excluding nothing,
    /// [`crate::ScaleStore::lease_routed`] is this.
    pub(super) async fn lease_excluding(
        &self,
        p: &LeaseParams<'_>,
        exclude: &str,
    ) -> Result<Vec<Lease>> {
        let mut tx = self.write.begin().await?;
        self.touch_in(&mut tx, p.worker_id, p.now).await?;
        if p.max_jobs == 0 || p.free.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let escrow = self
            .escrow
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let sql = match (self.dialect, escrow.is_empty()) {
            (Dialect::Sqlite, true) => CANDIDATES_SQLITE,
            (Dialect::Postgres, true) => CANDIDATES_POSTGRES,
            (Dialect::Sqlite, false) => CANDIDATES_ESCROW_SQLITE,
            (Dialect::Postgres, false) => CANDIDATES_ESCROW_POSTGRES,
        };
        let max_jobs = p.max_jobs.min(MAX_LEASE_BATCH);
        // Every candidate fits `free` on its own; a few more than wanted
        // leave room for backfill when they do not fit together.
        let limit = (i64::from(max_jobs) + 3 * i64::from(max_jobs.min(p.free.cpus))).clamp(8, 4000);
        let rows = sqlx::query(sql)
            .bind(i64::from(p.free.cpus))
            .bind(p.free.mem_mib as i64)
            .bind(i64::from(p.free.gpus))
            .bind(limit)
            .bind(exclude)
            .bind(trestle_core::task::kind_list(p.kinds));
        let rows = if escrow.is_empty() {
            rows
        } else {
            rows.bind(escrow)
        }
        .fetch_all(&mut *tx)
        .await?;
        let mut candidates = Vec::with_capacity(rows.len());
        for r in &rows {
            candidates.push(Candidate {
                id: r.try_get("id")?,
                resources: Resources {
                    cpus: r.try_get::<i64, _>("cpus")? as u32,
                    mem_mib: r.try_get::<i64, _>("mem_mib")? as u64,
                    gpus: r.try_get::<i64, _>("gpus")? as u32,
                },
            });
        }
        let chosen = pack(p.free, &candidates, max_jobs as usize, p.prefetch as usize);
        if chosen.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let expires_at = p.now + p.lease_ms;
        let token = new_token();
        let ids = id_list(&chosen);
        let rows = sqlx::query(self.dialect.pick(&LEASE_SET))
            .bind(token.as_str())
            .bind(p.worker_id)
            .bind(expires_at)
            .bind(ids.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let mut taken = HashMap::with_capacity(rows.len());
        let mut damaged = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let attempt: i64 = r.try_get("attempt_seq")?;
            let spec: String = r.try_get("spec")?;
            match rows::parse_spec(&spec) {
                Ok(spec) => {
                    taken.insert(id, (attempt, spec));
                }
                Err(e) => {
                    self.damaged.report(id, &e.to_string(), p.now);
                    damaged.push((id, attempt));
                }
            }
        }
        sqlx::query(self.dialect.pick(&LEASE_ATTEMPTS))
            .bind(token.as_str())
            .bind(p.worker_id)
            .bind(p.now)
            .bind(ids.as_str())
            .execute(&mut *tx)
            .await?;
        // A job whose spec cannot be read can never run: it fails at once
        // (once, not on every lease), and the rest of the batch goes on.
        for &(id, attempt) in &damaged {
            fail_damaged(&mut tx, id, attempt, p.now).await?;
        }
        // In the order the packer chose (priority, then age).
        let leased: Vec<i64> = chosen
            .into_iter()
            .filter(|id| taken.contains_key(id))
            .collect();
        let mut changed = leased.clone();
        changed.extend(damaged.iter().map(|&(id, _)| id));
        super::flow::changed_many(&mut tx, self.dialect, &changed, p.now).await?;
        let mut leases = Vec::with_capacity(leased.len());
        for id in leased {
            if let Some((attempt, spec)) = taken.remove(&id) {
                leases.push(Lease {
                    job_id: id,
                    attempt: attempt as u32,
                    token: token.clone(),
                    spec,
                    expires_at,
                    full_log: false,
                    run_as: None,
                });
            }
        }
        tx.commit().await?;
        Ok(leases)
    }

    /// [`crate::JobStore::expire_leases`].
    pub(super) async fn expire_leases(&self, now: i64) -> Result<u64> {
        let sql = match self.dialect {
            Dialect::Sqlite => EXPIRED_SQLITE,
            Dialect::Postgres => EXPIRED_POSTGRES,
        };
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(sql).bind(now).fetch_all(&mut *tx).await?;
        let n = lose_attempts(
            &mut tx,
            self.dialect,
            &rows,
            "lease expired: the worker stopped reporting",
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// [`crate::JobStore::release_worker_leases`].
    pub(super) async fn release_worker_leases(&self, worker_id: &str, now: i64) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(
            "SELECT id, attempt_seq FROM jobs WHERE lease_token IS NOT NULL AND lease_worker = $1",
        )
        .bind(worker_id)
        .fetch_all(&mut *tx)
        .await?;
        let n = lose_attempts(&mut tx, self.dialect, &rows, "the worker left", now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// [`crate::JobStore::lease_holds`]: one statement, the lease's worker
    /// joined for the credential that registered it.
    pub(super) async fn lease_holds(
        &self,
        job_id: i64,
        attempt: u32,
        token: &str,
        registrant: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 AS ok FROM jobs JOIN workers ON workers.id = jobs.lease_worker \
             WHERE jobs.id = $1 AND jobs.attempt_seq = $2 AND jobs.lease_token = $3 \
             AND workers.registered_by = $4 AND jobs.state IN ('STARTING', 'RUNNING')",
        )
        .bind(job_id)
        .bind(i64::from(attempt))
        .bind(token)
        .bind(registrant)
        .fetch_optional(&self.write)
        .await?
        .is_some())
    }
}

/// Fails a job just leased whose stored specification cannot be decoded,
/// with its new attempt.
async fn fail_damaged(tx: &mut Tx<'_>, id: i64, attempt: i64, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'FAILED', reason = $2, finished_at = $3, lease_token = NULL, \
         lease_worker = NULL, lease_expires_at = NULL WHERE id = $1",
    )
    .bind(id)
    .bind("its stored specification cannot be read (reported to the admins)")
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE attempts SET state = 'failed', reason = 'worker-error', ended_at = $3 \
         WHERE job_id = $1 AND attempt = $2",
    )
    .bind(id)
    .bind(attempt)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends the current attempt of every `(id, attempt_seq)` row as `lost`
/// (an interruption, not counted) and records the change; returns how many
/// attempts were still current.
async fn lose_attempts(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    rows: &[sqlx::any::AnyRow],
    message: &str,
    now: i64,
) -> Result<u64> {
    let mut ends = Vec::with_capacity(rows.len());
    for r in rows {
        ends.push(Ending {
            job_id: r.try_get("id")?,
            attempt: r.try_get::<i64, _>("attempt_seq")? as u32,
            token: None,
            worker: None,
            reason: AttemptReason::Lost,
            exit_code: None,
            message: Some(message),
            time: now,
            started: None,
            cpu_ms: None,
            max_rss_kib: None,
        });
    }
    let ended = end_attempts(tx, dialect, &ends, now).await?;
    Ok(ended.states.iter().filter(|s| s.is_some()).count() as u64)
}
