//! The queue's hot path: leasing, heartbeats, attempt reports (all fenced by
//! lease tokens) and the expiry of leases whose workers went away.

use super::rows;
use super::{Dialect, SqlStore};
use crate::{LeaseParams, Result, StoreError, UpdateOutcome};
use rand::RngCore;
use sqlx::any::Any;
use sqlx::{Row, Transaction};
use trestle_core::api::{AttemptKey, Lease, Update, UpdatesRequest};
use trestle_core::outcome::{AttemptEnd, next_state};
use trestle_core::placement::{Candidate, pack};
use trestle_core::{AttemptReason, AttemptState, JobState, Resources};

// SQLite's planner, without statistics, may prefer the (state, queue)
// index and sort every runnable row; the partial runnable index yields rows
// already in lease order, so the scan stops after LIMIT matches.
// `$5` lists the queues the worker's compute environment does not serve
// (`,a,b,`; just `,` for none).
const CANDIDATES_SQLITE: &str = "SELECT id, cpus, mem_mib, gpus FROM jobs INDEXED BY jobs_runnable \
     WHERE state = 'RUNNABLE' AND cpus <= $1 AND mem_mib <= $2 AND gpus <= $3 \
     AND $5 NOT LIKE '%,' || queue || ',%' \
     ORDER BY priority DESC, id LIMIT $4";
const CANDIDATES_POSTGRES: &str = "SELECT id, cpus, mem_mib, gpus FROM jobs \
     WHERE state = 'RUNNABLE' AND cpus <= $1 AND mem_mib <= $2 AND gpus <= $3 \
     AND $5 NOT LIKE '%,' || queue || ',%' \
     ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED";
const EXPIRED_SQLITE: &str = "SELECT id, attempt_seq FROM jobs \
     WHERE lease_token IS NOT NULL AND lease_expires_at < $1 LIMIT 500";
const EXPIRED_POSTGRES: &str = "SELECT id, attempt_seq FROM jobs \
     WHERE lease_token IS NOT NULL AND lease_expires_at < $1 LIMIT 500 FOR UPDATE SKIP LOCKED";

/// A fresh, unguessable lease token.
fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

type Tx<'a> = Transaction<'a, Any>;

impl SqlStore {
    async fn touch_in(&self, tx: &mut Tx<'_>, worker_id: &str, now: i64) -> Result<()> {
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
    /// jobs from (`,a,b,`, or `,` for none).
    pub(super) async fn lease_jobs(
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
        let sql = match self.dialect {
            Dialect::Sqlite => CANDIDATES_SQLITE,
            Dialect::Postgres => CANDIDATES_POSTGRES,
        };
        let limit = (i64::from(p.max_jobs) * 4).clamp(8, 1000);
        let rows = sqlx::query(sql)
            .bind(i64::from(p.free.cpus))
            .bind(p.free.mem_mib as i64)
            .bind(i64::from(p.free.gpus))
            .bind(limit)
            .bind(exclude)
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
        let chosen = pack(p.free, &candidates, p.max_jobs as usize);
        let expires_at = p.now + p.lease_ms;
        let mut leases = Vec::with_capacity(chosen.len());
        for id in chosen {
            let token = new_token();
            let Some(row) = sqlx::query(
                "UPDATE jobs SET state = 'STARTING', attempt_seq = attempt_seq + 1, \
                 lease_token = $1, lease_worker = $2, lease_expires_at = $3, reason = NULL \
                 WHERE id = $4 AND state = 'RUNNABLE' RETURNING attempt_seq, spec",
            )
            .bind(token.clone())
            .bind(p.worker_id)
            .bind(expires_at)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            let attempt: i64 = row.try_get("attempt_seq")?;
            let spec: String = row.try_get("spec")?;
            sqlx::query(
                "INSERT INTO attempts (job_id, attempt, worker_id, state, leased_at) \
                 VALUES ($1, $2, $3, 'running', $4)",
            )
            .bind(id)
            .bind(attempt)
            .bind(p.worker_id)
            .bind(p.now)
            .execute(&mut *tx)
            .await?;
            super::flow::changed(&mut tx, id, p.now).await?;
            leases.push(Lease {
                job_id: id,
                attempt: attempt as u32,
                token,
                spec: rows::parse_spec(&spec)?,
                expires_at,
            });
        }
        tx.commit().await?;
        Ok(leases)
    }

    pub(super) async fn updates(
        &self,
        worker_id: &str,
        req: &UpdatesRequest,
        lease_ms: i64,
        now: i64,
    ) -> Result<UpdateOutcome> {
        let mut out = UpdateOutcome::default();
        let mut tx = self.write.begin().await?;
        self.touch_in(&mut tx, worker_id, now).await?;
        let expires = now + lease_ms;
        for hb in &req.heartbeat {
            let key = AttemptKey {
                job_id: hb.job_id,
                attempt: hb.attempt,
            };
            let row = sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1 \
                 WHERE id = $2 AND attempt_seq = $3 AND lease_token = $4 \
                 AND state IN ('STARTING', 'RUNNING') RETURNING cancel_requested",
            )
            .bind(expires)
            .bind(hb.job_id)
            .bind(i64::from(hb.attempt))
            .bind(hb.token.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => out.stale.push(key),
                Some(r) if r.try_get::<i64, _>("cancel_requested")? != 0 => out.cancel.push(key),
                Some(_) => {}
            }
        }
        for u in &req.updates {
            let at = u.attempt();
            let key = AttemptKey {
                job_id: at.job_id,
                attempt: at.attempt,
            };
            match u {
                Update::Started { time, .. } => {
                    let row = sqlx::query(
                        "UPDATE jobs SET state = 'RUNNING', \
                         started_at = COALESCE(started_at, $1), lease_expires_at = $2 \
                         WHERE id = $3 AND attempt_seq = $4 AND lease_token = $5 \
                         AND state IN ('STARTING', 'RUNNING') \
                         RETURNING submitted_at, cancel_requested",
                    )
                    .bind(*time)
                    .bind(expires)
                    .bind(at.job_id)
                    .bind(i64::from(at.attempt))
                    .bind(at.token.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        out.stale.push(key);
                        continue;
                    };
                    sqlx::query(
                        "UPDATE attempts SET started_at = $1 WHERE job_id = $2 AND attempt = $3",
                    )
                    .bind(*time)
                    .bind(at.job_id)
                    .bind(i64::from(at.attempt))
                    .execute(&mut *tx)
                    .await?;
                    out.unblocked += super::flow::changed(&mut tx, at.job_id, now).await?;
                    let submitted: i64 = row.try_get("submitted_at")?;
                    out.started_latency_ms.push((*time - submitted).max(0));
                    if row.try_get::<i64, _>("cancel_requested")? != 0 {
                        out.cancel.push(key);
                    }
                }
                Update::Log { seq, data, .. } => {
                    let held = sqlx::query(
                        "SELECT 1 AS ok FROM jobs WHERE id = $1 AND attempt_seq = $2 \
                         AND lease_token = $3 AND state IN ('STARTING', 'RUNNING')",
                    )
                    .bind(at.job_id)
                    .bind(i64::from(at.attempt))
                    .bind(at.token.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if held.is_none() {
                        out.stale.push(key);
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO log_chunks (job_id, attempt, seq, data) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(at.job_id)
                    .bind(i64::from(at.attempt))
                    .bind(i64::from(*seq))
                    .bind(data.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                Update::Finished {
                    reason,
                    exit_code,
                    time,
                    message,
                    ..
                } => {
                    let end = AttemptOutcome {
                        reason: *reason,
                        exit_code: *exit_code,
                        message: message.as_deref(),
                        now: *time,
                    };
                    match end_attempt(&mut tx, at.job_id, at.attempt, Some(&at.token), &end).await?
                    {
                        Some(state) => {
                            out.finished.push((at.job_id, state));
                            out.unblocked += super::flow::changed(&mut tx, at.job_id, now).await?;
                        }
                        None => out.stale.push(key),
                    }
                }
            }
        }
        tx.commit().await?;
        out.stale.dedup();
        out.cancel.dedup();
        Ok(out)
    }

    pub(super) async fn expire(&self, now: i64) -> Result<u64> {
        let sql = match self.dialect {
            Dialect::Sqlite => EXPIRED_SQLITE,
            Dialect::Postgres => EXPIRED_POSTGRES,
        };
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(sql).bind(now).fetch_all(&mut *tx).await?;
        let n = lose_attempts(
            &mut tx,
            &rows,
            "lease expired: the worker stopped reporting",
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn release_worker(&self, worker_id: &str, now: i64) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(
            "SELECT id, attempt_seq FROM jobs WHERE lease_token IS NOT NULL AND lease_worker = $1",
        )
        .bind(worker_id)
        .fetch_all(&mut *tx)
        .await?;
        let n = lose_attempts(&mut tx, &rows, "the worker left", now).await?;
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn holds(&self, job_id: i64, attempt: u32, token: &str) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 AS ok FROM jobs WHERE id = $1 AND attempt_seq = $2 AND lease_token = $3 \
             AND state IN ('STARTING', 'RUNNING')",
        )
        .bind(job_id)
        .bind(i64::from(attempt))
        .bind(token)
        .fetch_optional(&self.write)
        .await?
        .is_some())
    }
}

/// Ends the current attempt of every `(id, attempt_seq)` row as `lost`
/// (an interruption, not counted) and records the change; returns how many
/// attempts were still current.
async fn lose_attempts(
    tx: &mut Tx<'_>,
    rows: &[sqlx::any::AnyRow],
    message: &str,
    now: i64,
) -> Result<u64> {
    let mut n = 0;
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let attempt = r.try_get::<i64, _>("attempt_seq")? as u32;
        let end = AttemptOutcome {
            reason: AttemptReason::Lost,
            exit_code: None,
            message: Some(message),
            now,
        };
        if end_attempt(tx, id, attempt, None, &end).await?.is_some() {
            n += 1;
            super::flow::changed(tx, id, now).await?;
        }
    }
    Ok(n)
}

/// How an attempt ended, as reported or decided.
struct AttemptOutcome<'a> {
    reason: AttemptReason,
    exit_code: Option<i32>,
    message: Option<&'a str>,
    now: i64,
}

/// Ends an attempt and moves its job to the state the pure state machine
/// decides. With a token, only the lease holder may end it. Returns the
/// job's new state, or `None` when the attempt is no longer current.
async fn end_attempt(
    tx: &mut Tx<'_>,
    job_id: i64,
    attempt: u32,
    token: Option<&str>,
    end: &AttemptOutcome<'_>,
) -> Result<Option<JobState>> {
    let Some(row) = sqlx::query(
        "SELECT attempts_used, interruptions, max_attempts, cancel_requested, spec, lease_token \
         FROM jobs WHERE id = $1 AND attempt_seq = $2 AND state IN ('STARTING', 'RUNNING')",
    )
    .bind(job_id)
    .bind(i64::from(attempt))
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let held: Option<String> = row.try_get("lease_token")?;
    if let Some(t) = token
        && held.as_deref() != Some(t)
    {
        return Ok(None);
    }
    let interruption = end.reason.is_interruption();
    let counted = row.try_get::<i64, _>("attempts_used")? as u32 + u32::from(!interruption);
    let interruptions = row.try_get::<i64, _>("interruptions")? as u32 + u32::from(interruption);
    let spec = rows::parse_spec(&row.try_get::<String, _>("spec")?)?;
    let next = next_state(&AttemptEnd {
        reason: end.reason,
        exit_code: end.exit_code,
        counted_attempts: counted,
        interruptions,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        retry_exit_codes: &spec.retry_exit_codes,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
    });
    let job_reason = match next {
        JobState::Succeeded => None,
        JobState::Cancelled => Some("cancelled".to_string()),
        JobState::Runnable => Some(format!("retrying after {}", end.reason.as_str())),
        _ => Some(end.reason.as_str().to_string()),
    };
    let finished_at = next.is_terminal().then_some(end.now);
    sqlx::query(
        "UPDATE jobs SET state = $1, attempts_used = $2, interruptions = $3, exit_code = $4, \
         reason = $5, finished_at = $6, lease_token = NULL, lease_worker = NULL, \
         lease_expires_at = NULL WHERE id = $7",
    )
    .bind(next.as_str())
    .bind(i64::from(counted))
    .bind(i64::from(interruptions))
    .bind(end.exit_code.map(i64::from))
    .bind(job_reason)
    .bind(finished_at)
    .bind(job_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE attempts SET state = $1, reason = $2, exit_code = $3, message = $4, ended_at = $5 \
         WHERE job_id = $6 AND attempt = $7",
    )
    .bind(AttemptState::from_reason(end.reason).as_str())
    .bind(end.reason.as_str())
    .bind(end.exit_code.map(i64::from))
    .bind(end.message)
    .bind(end.now)
    .bind(job_id)
    .bind(i64::from(attempt))
    .execute(&mut **tx)
    .await?;
    Ok(Some(next))
}
