//! A worker's batch of reports, applied in one transaction with a fixed
//! number of statements per kind of report: heartbeats, starts, log chunks
//! and ends each go to the database as one multi-row statement (see
//! [`super::multirow`]), fenced by attempt number and lease token so a
//! stale worker cannot touch a newer attempt.
//!
//! Within a batch the kinds are applied in the order an attempt produces
//! them (start, output, end); an attempt that starts and ends in the same
//! batch still gets its RUNNING event before its final one.

use super::multirow::{by_id, each_of, id_list, ids_in, int_at, per_dialect, row_list, text_at};
use super::rows;
use super::{Dialect, SqlStore, Tx};
use crate::{Result, UpdateOutcome};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use trestle_core::api::{AttemptKey, AttemptRef, Update, UpdatesRequest};
use trestle_core::batch::outcome::{AttemptEnd, next_state};
use trestle_core::task::LostLease;
use trestle_core::{AttemptReason, AttemptState, JobState};

/// `(SELECT ... ) AS u`: the `[job, attempt, token, ...]` rows of JSON
/// parameter `$1` as columns `u_id`, `u_at`, `u_tok`, then whatever the
/// caller adds (`, "..."` pieces of `concat!`).
macro_rules! attempt_rows {
    ($d:ident $($extra:tt)*) => {
        concat!(
            "(SELECT ",
            int_at!($d, 0),
            " AS u_id, ",
            int_at!($d, 1),
            " AS u_at, ",
            text_at!($d, 2),
            " AS u_tok"
            $($extra)*,
            " FROM ",
            each_of!($d, 1),
            ") AS u"
        )
    };
}

/// The fence every report passes: the job's current attempt is that one,
/// under that token, leased to the reporting worker (parameter `$w`), and
/// still active. A token presented by another worker is as stale as an
/// unknown one.
macro_rules! held_by_u {
    ($w:literal) => {
        concat!(
            "id = u_id AND attempt_seq = u_at AND lease_token = u_tok AND lease_worker = ",
            $w,
            " AND state IN ('STARTING', 'RUNNING')"
        )
    };
}

/// A job's cancel flag, or its fail-fast array's: a child of an array
/// stopped by `max_failures` is cancelled through its parent's flag, read
/// without locking the parent, so the stopping transaction never takes
/// running children's rows while it holds the parent's (no lock-order
/// deadlock with a child that finishes at the same moment).
macro_rules! cancel_flag {
    () => {
        "CASE WHEN cancel_requested <> 0 OR (parent_id IS NOT NULL AND EXISTS \
         (SELECT 1 FROM jobs p WHERE p.id = jobs.parent_id AND p.cancel_requested <> 0 \
         AND p.group_max_failures > 0)) THEN 1 ELSE 0 END AS cancel_requested"
    };
}

macro_rules! heartbeat_sql {
    ($d:ident) => {
        concat!(
            "UPDATE jobs",
            by_id!($d),
            " SET lease_expires_at = $2 FROM ",
            attempt_rows!($d),
            " WHERE ",
            held_by_u!("$3"),
            " RETURNING id, attempt_seq, lease_token, ",
            cancel_flag!()
        )
    };
}
per_dialect!(
    /// Extends the leases of `$1` (`[job, attempt, token]` rows) held by
    /// worker `$3` to `$2`.
    HEARTBEAT = heartbeat_sql
);

macro_rules! started_sql {
    ($d:ident) => {
        concat!(
            "UPDATE jobs",
            by_id!($d),
            " SET state = 'RUNNING', started_at = COALESCE(started_at, u_t), \
             lease_expires_at = $2 FROM ",
            attempt_rows!($d, ", ", int_at!($d, 3), " AS u_t"),
            " WHERE ",
            held_by_u!("$3"),
            " RETURNING id, attempt_seq, lease_token, submitted_at, ",
            cancel_flag!()
        )
    };
}
per_dialect!(
    /// Marks `$1` (`[job, attempt, token, time]` rows) held by worker `$3`
    /// running.
    STARTED = started_sql
);

macro_rules! attempts_started_sql {
    ($d:ident) => {
        concat!(
            "UPDATE attempts SET started_at = u_t FROM (SELECT ",
            int_at!($d, 0),
            " AS u_id, ",
            int_at!($d, 1),
            " AS u_at, ",
            int_at!($d, 2),
            " AS u_t FROM ",
            each_of!($d, 1),
            ") AS u WHERE job_id = u_id AND attempt = u_at"
        )
    };
}
per_dialect!(
    /// Records the start time of `$1` (`[job, attempt, time]` rows).
    ATTEMPTS_STARTED = attempts_started_sql
);

macro_rules! held_sql {
    ($d:ident) => {
        concat!(
            "SELECT id, attempt_seq, lease_token FROM jobs",
            by_id!($d),
            " JOIN ",
            attempt_rows!($d),
            " ON ",
            held_by_u!("$2")
        )
    };
}
per_dialect!(
    /// Which of `$1` (`[job, attempt, token]` rows) worker `$2` still holds.
    HELD = held_sql
);

macro_rules! logs_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO log_chunks (job_id, attempt, seq, data) SELECT ",
            int_at!($d, 0),
            ", ",
            int_at!($d, 1),
            ", ",
            int_at!($d, 2),
            ", ",
            text_at!($d, 3),
            " FROM ",
            each_of!($d, 1),
            " WHERE true ON CONFLICT DO NOTHING"
        )
    };
}
per_dialect!(
    /// Stores the chunks of `$1` (`[job, attempt, seq, text]` rows); a
    /// chunk sent twice is kept once.
    LOGS = logs_sql
);

macro_rules! ending_sql {
    ($d:ident) => {
        concat!(
            "SELECT id, attempt_seq, attempts_used, interruptions, max_attempts, ",
            cancel_flag!(),
            ", lease_token, lease_worker, submitted_at, spec FROM jobs",
            by_id!($d),
            " WHERE state IN ('STARTING', 'RUNNING') AND id IN ",
            ids_in!($d, 1)
        )
    };
}
per_dialect!(
    /// The jobs `$1` (a JSON id list) whose attempts may end.
    ENDING = ending_sql
);

macro_rules! end_jobs_sql {
    ($d:ident) => {
        concat!(
            "UPDATE jobs",
            by_id!($d),
            " SET state = u_state, attempts_used = u_used, interruptions = u_int, \
             exit_code = u_code, reason = u_reason, finished_at = u_fin, lease_token = NULL, \
             lease_worker = NULL, lease_expires_at = NULL, \
             started_at = COALESCE(started_at, u_start) FROM (SELECT ",
            int_at!($d, 0),
            " AS u_id, ",
            text_at!($d, 1),
            " AS u_state, ",
            int_at!($d, 2),
            " AS u_used, ",
            int_at!($d, 3),
            " AS u_int, ",
            int_at!($d, 4),
            " AS u_code, ",
            text_at!($d, 5),
            " AS u_reason, ",
            int_at!($d, 6),
            " AS u_fin, ",
            int_at!($d, 7),
            " AS u_start FROM ",
            each_of!($d, 1),
            ") AS u WHERE id = u_id"
        )
    };
}
per_dialect!(
    /// Moves the jobs of `$1` to their decided states.
    END_JOBS = end_jobs_sql
);

macro_rules! end_attempts_sql {
    ($d:ident) => {
        concat!(
            "UPDATE attempts SET state = u_state, reason = u_reason, exit_code = u_code, \
             message = u_msg, ended_at = u_t, started_at = COALESCE(started_at, u_start), \
             cpu_ms = u_cpu, max_rss_kib = u_rss FROM (SELECT ",
            int_at!($d, 0),
            " AS u_id, ",
            int_at!($d, 1),
            " AS u_at, ",
            text_at!($d, 2),
            " AS u_state, ",
            text_at!($d, 3),
            " AS u_reason, ",
            int_at!($d, 4),
            " AS u_code, ",
            text_at!($d, 5),
            " AS u_msg, ",
            int_at!($d, 6),
            " AS u_t, ",
            int_at!($d, 7),
            " AS u_start, ",
            int_at!($d, 8),
            " AS u_cpu, ",
            int_at!($d, 9),
            " AS u_rss FROM ",
            each_of!($d, 1),
            ") AS u WHERE job_id = u_id AND attempt = u_at"
        )
    };
}
per_dialect!(
    /// Closes the attempts of `$1`.
    END_ATTEMPTS = end_attempts_sql
);

macro_rules! running_events_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO job_events (job_id, parent_id, queue, owner, project, state, reason, \
             exit_code, at) \
             SELECT id, parent_id, queue, owner, project, 'RUNNING', reason, exit_code, $2 \
             FROM jobs",
            by_id!($d),
            " WHERE id IN ",
            ids_in!($d, 1),
            " ORDER BY id"
        )
    };
}
per_dialect!(
    /// The RUNNING events of jobs `$1` whose start is applied together
    /// with their end (the row goes from STARTING to its final state).
    RUNNING_EVENTS = running_events_sql
);

/// How one attempt ended, as reported or decided.
#[derive(Debug, Clone)]
pub(super) struct Ending<'a> {
    pub job_id: i64,
    pub attempt: u32,
    /// With a token, only the lease holder may end the attempt.
    pub token: Option<&'a str>,
    /// With a worker, only while the lease is that worker's (a report;
    /// the server's own endings, expiry and release, name none).
    pub worker: Option<&'a str>,
    pub reason: AttemptReason,
    pub exit_code: Option<i32>,
    pub message: Option<&'a str>,
    /// When it ended.
    pub time: i64,
    /// When it started, if that report came in the same batch (and the
    /// job has no open dependents): the start is applied with the end.
    pub started: Option<i64>,
    /// CPU time and peak memory, as the worker reported them.
    pub cpu_ms: Option<i64>,
    /// See `cpu_ms`.
    pub max_rss_kib: Option<i64>,
}

/// What [`end_attempts`] did.
#[derive(Debug, Default)]
pub(super) struct Ended {
    /// Per ending, in order: the job's new state, or `None` when the
    /// attempt was no longer current.
    pub states: Vec<Option<JobState>>,
    /// Jobs that became runnable as a consequence.
    pub unblocked: u64,
    /// Submit-to-start latencies (ms) of the starts applied with ends.
    pub started_latency_ms: Vec<i64>,
}

/// The job's side of an ended attempt: its counters and the next state,
/// decided by the pure state machine.
struct Decision {
    state: JobState,
    attempts_used: u32,
    interruptions: u32,
    reason: Option<String>,
    finished_at: Option<i64>,
}

/// The job row an ending is decided against.
struct Current {
    attempt: u32,
    token: Option<String>,
    worker: Option<String>,
    attempts_used: u32,
    interruptions: u32,
    max_attempts: u32,
    cancel_requested: bool,
    submitted_at: i64,
    spec: String,
}

fn decide(cur: &Current, end: &Ending<'_>) -> Result<Decision> {
    let interruption = end.reason.is_interruption();
    let attempts_used = cur.attempts_used + u32::from(!interruption);
    let interruptions = cur.interruptions + u32::from(interruption);
    // Only a failing exit code consults the spec (its retry codes).
    let retry_codes = if end.reason == AttemptReason::ExitCode {
        // A spec that cannot be read retries every code, the default (the
        // job was reported when it was leased).
        rows::parse_spec(&cur.spec)
            .map(|s| s.retry_exit_codes)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    // Only an interruption consults the task's kind (what a lost lease
    // means); batch specs do not name it.
    let task = if interruption {
        rows::parse_spec(&cur.spec)
            .map(|s| s.task)
            .unwrap_or_default()
    } else {
        trestle_core::task::TaskKind::Batch
    };
    let state = next_state(&AttemptEnd {
        reason: end.reason,
        exit_code: end.exit_code,
        counted_attempts: attempts_used,
        interruptions,
        max_attempts: cur.max_attempts,
        retry_exit_codes: &retry_codes,
        cancel_requested: cur.cancel_requested,
        task,
    });
    let reason = match state {
        JobState::Succeeded => None,
        JobState::Cancelled => Some("cancelled".to_string()),
        JobState::Runnable => Some(format!("retrying after {}", end.reason.as_str())),
        JobState::Failed if interruption && task.lost_lease() == LostLease::Fail => Some(format!(
            "{}: a {} is never re-run elsewhere",
            end.reason.as_str(),
            task.as_str()
        )),
        _ => Some(end.reason.as_str().to_string()),
    };
    Ok(Decision {
        state,
        attempts_used,
        interruptions,
        reason,
        finished_at: state.is_terminal().then_some(end.time),
    })
}

/// Ends attempts and moves their jobs to the states the pure state machine
/// decides, recording the changes and their consequences. An ending whose
/// attempt is no longer current (or whose token does not match) changes
/// nothing.
pub(super) async fn end_attempts(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    ends: &[Ending<'_>],
    now: i64,
) -> Result<Ended> {
    let mut out = Ended {
        states: vec![None; ends.len()],
        ..Ended::default()
    };
    if ends.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = ends.iter().map(|e| e.job_id).collect();
    let rows = sqlx::query(dialect.pick(&ENDING))
        .bind(id_list(&ids))
        .fetch_all(&mut **tx)
        .await?;
    let mut current = HashMap::with_capacity(rows.len());
    for r in &rows {
        current.insert(
            r.try_get::<i64, _>("id")?,
            Current {
                attempt: r.try_get::<i64, _>("attempt_seq")? as u32,
                token: r.try_get("lease_token")?,
                worker: r.try_get("lease_worker")?,
                attempts_used: r.try_get::<i64, _>("attempts_used")? as u32,
                interruptions: r.try_get::<i64, _>("interruptions")? as u32,
                max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
                cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
                submitted_at: r.try_get("submitted_at")?,
                spec: r.try_get("spec")?,
            },
        );
    }
    let mut job_rows = Vec::new();
    let mut attempt_rows = Vec::new();
    let mut changed = Vec::new();
    let mut started = Vec::new();
    for (i, end) in ends.iter().enumerate() {
        // Removing the row also makes a second ending of the same attempt
        // in one batch a no-op.
        let Some(cur) = current.remove(&end.job_id) else {
            continue;
        };
        let holder = end.token.is_none_or(|t| cur.token.as_deref() == Some(t))
            && end.worker.is_none_or(|w| cur.worker.as_deref() == Some(w));
        if cur.attempt != end.attempt || !holder {
            current.insert(end.job_id, cur);
            continue;
        }
        let d = decide(&cur, end)?;
        let code = end.exit_code.map(i64::from);
        job_rows.push((
            end.job_id,
            d.state.as_str(),
            i64::from(d.attempts_used),
            i64::from(d.interruptions),
            code,
            d.reason,
            d.finished_at,
            end.started,
        ));
        attempt_rows.push((
            end.job_id,
            i64::from(end.attempt),
            AttemptState::from_reason(end.reason).as_str(),
            end.reason.as_str(),
            code,
            end.message,
            end.time,
            end.started,
            end.cpu_ms,
            end.max_rss_kib,
        ));
        if let Some(t) = end.started {
            started.push(end.job_id);
            out.started_latency_ms.push((t - cur.submitted_at).max(0));
        }
        out.states[i] = Some(d.state);
        changed.push(end.job_id);
    }
    if changed.is_empty() {
        return Ok(out);
    }
    if !started.is_empty() {
        started.sort_unstable();
        sqlx::query(dialect.pick(&RUNNING_EVENTS))
            .bind(id_list(&started))
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(dialect.pick(&END_JOBS))
        .bind(row_list(&job_rows)?)
        .execute(&mut **tx)
        .await?;
    sqlx::query(dialect.pick(&END_ATTEMPTS))
        .bind(row_list(&attempt_rows)?)
        .execute(&mut **tx)
        .await?;
    out.unblocked = super::flow::changed_many(tx, dialect, &changed, now).await?;
    Ok(out)
}

/// The attempt and token a fenced statement returned for a row (a job
/// has one current attempt, so the key maps to one token).
fn held_row(r: &sqlx::any::AnyRow) -> Result<(AttemptKey, String)> {
    Ok((
        AttemptKey {
            job_id: r.try_get("id")?,
            attempt: r.try_get::<i64, _>("attempt_seq")? as u32,
        },
        r.try_get("lease_token")?,
    ))
}

fn key_of(at: &AttemptRef) -> AttemptKey {
    AttemptKey {
        job_id: at.job_id,
        attempt: at.attempt,
    }
}

impl SqlStore {
    /// [`crate::JobStore::apply_updates`].
    pub(super) async fn apply_updates(
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
        self.heartbeats(&mut tx, worker_id, req, expires, &mut out)
            .await?;
        let mut started = Vec::new();
        let mut logs = Vec::new();
        let mut ends = Vec::new();
        for u in &req.updates {
            match u {
                Update::Started { at, time } => started.push((at, *time)),
                Update::Log { at, seq, data } => logs.push((at, *seq, data.as_str())),
                Update::Finished {
                    at,
                    reason,
                    exit_code,
                    time,
                    message,
                    cpu_ms,
                    max_rss_kib,
                } => ends.push(Ending {
                    job_id: at.job_id,
                    attempt: at.attempt,
                    token: Some(at.token.as_str()),
                    worker: Some(worker_id),
                    reason: *reason,
                    exit_code: *exit_code,
                    message: message.as_deref(),
                    time: *time,
                    started: None,
                    cpu_ms: *cpu_ms,
                    max_rss_kib: *max_rss_kib,
                }),
            }
        }
        let started = self.fold_starts(&mut tx, started, &mut ends).await?;
        self.starts(&mut tx, worker_id, &started, expires, now, &mut out)
            .await?;
        self.logs(&mut tx, worker_id, &logs, &mut out).await?;
        let ended = end_attempts(&mut tx, self.dialect, &ends, now).await?;
        for (end, state) in ends.iter().zip(&ended.states) {
            match state {
                Some(s) => out.finished.push((end.job_id, *s)),
                None => out.stale.push(AttemptKey {
                    job_id: end.job_id,
                    attempt: end.attempt,
                }),
            }
        }
        out.unblocked += ended.unblocked;
        out.started_latency_ms.extend(ended.started_latency_ms);
        tx.commit().await?;
        out.stale.sort_unstable_by_key(|k| (k.job_id, k.attempt));
        out.stale.dedup();
        out.cancel.sort_unstable_by_key(|k| (k.job_id, k.attempt));
        out.cancel.dedup();
        Ok(out)
    }

    /// Moves the starts of attempts that also end in this batch into their
    /// endings (one write of the job row instead of two; the RUNNING event
    /// is still recorded), unless the job has open dependents (they may
    /// wait for its start). Returns the starts left to apply on their own.
    async fn fold_starts<'a>(
        &self,
        tx: &mut Tx<'_>,
        started: Vec<(&'a AttemptRef, i64)>,
        ends: &mut [Ending<'_>],
    ) -> Result<Vec<(&'a AttemptRef, i64)>> {
        if started.is_empty() || ends.is_empty() {
            return Ok(started);
        }
        // The first ending of each attempt (a second one is stale anyway).
        let mut ending: HashMap<(i64, u32, &str), usize> = HashMap::new();
        for (i, e) in ends.iter().enumerate() {
            if let Some(t) = e.token {
                ending.entry((e.job_id, e.attempt, t)).or_insert(i);
            }
        }
        let candidates: Vec<i64> = started
            .iter()
            .filter(|(at, _)| ending.contains_key(&(at.job_id, at.attempt, at.token.as_str())))
            .map(|(at, _)| at.job_id)
            .collect();
        if candidates.is_empty() {
            return Ok(started);
        }
        let with_deps = super::flow::with_open_deps(tx, self.dialect, &candidates).await?;
        let mut left = Vec::new();
        let mut folded = HashSet::new();
        for (at, t) in started {
            let key = (at.job_id, at.attempt, at.token.as_str());
            match ending.get(&key) {
                Some(&i)
                    if !with_deps.contains(&at.job_id)
                        && ends[i].started.is_none()
                        && folded.insert(key) =>
                {
                    ends[i].started = Some(t);
                }
                _ => left.push((at, t)),
            }
        }
        Ok(left)
    }

    /// Extends the leases heartbeated that `worker_id` holds; the others
    /// are stale.
    async fn heartbeats(
        &self,
        tx: &mut Tx<'_>,
        worker_id: &str,
        req: &UpdatesRequest,
        expires: i64,
        out: &mut UpdateOutcome,
    ) -> Result<()> {
        if req.heartbeat.is_empty() {
            return Ok(());
        }
        let beats: Vec<(i64, i64, &str)> = req
            .heartbeat
            .iter()
            .map(|h| (h.job_id, i64::from(h.attempt), h.token.as_str()))
            .collect();
        let rows = sqlx::query(self.dialect.pick(&HEARTBEAT))
            .bind(row_list(&beats)?)
            .bind(expires)
            .bind(worker_id)
            .fetch_all(&mut **tx)
            .await?;
        let mut held = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (key, token) = held_row(r)?;
            held.insert(key, token);
            if r.try_get::<i64, _>("cancel_requested")? != 0 {
                out.cancel.push(key);
            }
        }
        for h in &req.heartbeat {
            let key = key_of(h);
            if held.get(&key) != Some(&h.token) {
                out.stale.push(key);
            }
        }
        Ok(())
    }

    /// Marks attempts `worker_id` holds running (their jobs RUNNING, with
    /// the event); the others are stale.
    async fn starts(
        &self,
        tx: &mut Tx<'_>,
        worker_id: &str,
        started: &[(&AttemptRef, i64)],
        expires: i64,
        now: i64,
        out: &mut UpdateOutcome,
    ) -> Result<()> {
        if started.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, i64, &str, i64)> = started
            .iter()
            .map(|(at, t)| (at.job_id, i64::from(at.attempt), at.token.as_str(), *t))
            .collect();
        let done = sqlx::query(self.dialect.pick(&STARTED))
            .bind(row_list(&rows)?)
            .bind(expires)
            .bind(worker_id)
            .fetch_all(&mut **tx)
            .await?;
        let mut held = HashMap::with_capacity(done.len());
        for r in &done {
            let (key, token) = held_row(r)?;
            held.insert(key, (token, r.try_get::<i64, _>("submitted_at")?));
            if r.try_get::<i64, _>("cancel_requested")? != 0 {
                out.cancel.push(key);
            }
        }
        let mut times = Vec::with_capacity(held.len());
        let mut ids = Vec::with_capacity(held.len());
        for (at, t) in started {
            let key = key_of(at);
            match held.get(&key) {
                Some((token, submitted)) if *token == at.token => {
                    out.started_latency_ms.push((*t - submitted).max(0));
                    times.push((at.job_id, i64::from(at.attempt), *t));
                    ids.push(at.job_id);
                }
                _ => out.stale.push(key),
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(self.dialect.pick(&ATTEMPTS_STARTED))
            .bind(row_list(&times)?)
            .execute(&mut **tx)
            .await?;
        ids.sort_unstable();
        ids.dedup();
        out.unblocked += super::flow::changed_many(tx, self.dialect, &ids, now).await?;
        Ok(())
    }

    /// Stores log chunks of attempts `worker_id` still holds; the others
    /// are stale.
    async fn logs(
        &self,
        tx: &mut Tx<'_>,
        worker_id: &str,
        logs: &[(&AttemptRef, u32, &str)],
        out: &mut UpdateOutcome,
    ) -> Result<()> {
        if logs.is_empty() {
            return Ok(());
        }
        let mut asked: Vec<(i64, i64, &str)> = logs
            .iter()
            .map(|(at, _, _)| (at.job_id, i64::from(at.attempt), at.token.as_str()))
            .collect();
        asked.sort_unstable();
        asked.dedup();
        let rows = sqlx::query(self.dialect.pick(&HELD))
            .bind(row_list(&asked)?)
            .bind(worker_id)
            .fetch_all(&mut **tx)
            .await?;
        let mut held = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (key, token) = held_row(r)?;
            held.insert(key, token);
        }
        let mut chunks = Vec::with_capacity(logs.len());
        for (at, seq, data) in logs {
            let key = key_of(at);
            if held.get(&key) == Some(&at.token) {
                chunks.push((at.job_id, i64::from(at.attempt), i64::from(*seq), *data));
            } else {
                out.stale.push(key);
            }
        }
        if !chunks.is_empty() {
            sqlx::query(self.dialect.pick(&LOGS))
                .bind(row_list(&chunks)?)
                .execute(&mut **tx)
                .await?;
            self.limit_logs(tx, &chunks).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_statements_read_their_rows_and_check_the_fence() {
        assert_eq!(
            Dialect::Sqlite.pick(&STARTED),
            "UPDATE jobs NOT INDEXED SET state = 'RUNNING', \
             started_at = COALESCE(started_at, u_t), lease_expires_at = $2 FROM \
             (SELECT (value ->> 0) AS u_id, (value ->> 1) AS u_at, (value ->> 2) AS u_tok, \
             (value ->> 3) AS u_t FROM json_each($1)) AS u WHERE id = u_id AND \
             attempt_seq = u_at AND lease_token = u_tok AND lease_worker = $3 \
             AND state IN ('STARTING', 'RUNNING') RETURNING id, attempt_seq, lease_token, submitted_at, \
             CASE WHEN cancel_requested <> 0 OR (parent_id IS NOT NULL AND EXISTS \
             (SELECT 1 FROM jobs p WHERE p.id = jobs.parent_id AND p.cancel_requested <> 0 \
             AND p.group_max_failures > 0)) THEN 1 ELSE 0 END AS cancel_requested"
        );
        assert!(Dialect::Postgres.pick(&HELD).ends_with(
            "AS u_tok FROM jsonb_array_elements(CAST($1 AS JSONB)) AS j(value)) AS u ON \
             id = u_id AND attempt_seq = u_at AND lease_token = u_tok AND lease_worker = $2 \
             AND state IN ('STARTING', 'RUNNING')"
        ));
    }
}
