//! Submitting, reading, listing and cancelling jobs; counts and demand.

use super::multirow::{each_ordered, int_at, per_dialect, row_list, text_at};
use super::rows::{self, job_columns};
use super::{Dialect, SqlStore, Tx, conflict_or};
use crate::{Demand, JobFilter, Result, StoreError};
use sqlx::Row;
use trestle_core::api::{JobView, LogSlice};
use trestle_core::{JobSpec, JobState};

/// The first runnable jobs in lease order, summarised for the autoscaler.
/// SQLite, without statistics, may sort every runnable row through another
/// index; `INDEXED BY` keeps the scan in order and bounded by the limit.
macro_rules! demand_sql {
    ($from:literal) => {
        concat!(
            "SELECT \
               CAST(COALESCE(SUM(CASE WHEN cpus <= $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS jobs, \
               CAST(COALESCE(SUM(CASE WHEN cpus <= $1 THEN cpus ELSE 0 END), 0) AS BIGINT) AS cpus, \
               CAST(COALESCE(SUM(CASE WHEN cpus > $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS too_big \
             FROM (SELECT cpus FROM ",
            $from,
            " WHERE state = 'RUNNABLE' ORDER BY priority DESC, id LIMIT $2) AS r"
        )
    };
}
const DEMAND_SQLITE: &str = demand_sql!("jobs INDEXED BY jobs_runnable");
const DEMAND_POSTGRES: &str = demand_sql!("jobs");
const LEASED_CPUS_SQLITE: &str = "SELECT CAST(COALESCE(SUM(cpus), 0) AS BIGINT) AS n \
     FROM jobs INDEXED BY jobs_leased WHERE lease_token IS NOT NULL";
const LEASED_CPUS_POSTGRES: &str = "SELECT CAST(COALESCE(SUM(cpus), 0) AS BIGINT) AS n \
     FROM jobs WHERE lease_token IS NOT NULL";

/// Most jobs one listing returns.
const MAX_LIST: u32 = 1000;
/// Most log chunks one read returns.
const MAX_LOG_CHUNKS: i64 = 256;

impl SqlStore {
    /// [`crate::JobStore::submit`].
    pub(super) async fn submit(&self, specs: &[JobSpec], now: i64) -> Result<Vec<i64>> {
        let mut tx = self.write.begin().await?;
        super::uploads::seal_inputs(&mut tx, specs, now).await?;
        let ids = insert_jobs(&mut tx, self.dialect, specs, now).await?;
        super::flow::after_submit(&mut tx, self.dialect, specs, &ids, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// [`crate::JobStore::job`]: the job with its attempts and workflow
    /// parts.
    pub(super) async fn job(&self, id: i64) -> Result<Option<JobView>> {
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let mut view = rows::one_job(&row, &self.damaged)?;
        let attempts = sqlx::query(
            "SELECT attempt, worker_id, state, reason, exit_code, leased_at, started_at, ended_at, \
             cpu_ms, max_rss_kib FROM attempts WHERE job_id = $1 ORDER BY attempt",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        view.attempts = attempts.iter().map(rows::attempt).collect::<Result<_>>()?;
        let r = &view.spec.resources;
        for a in &mut view.attempts {
            a.efficiency = trestle_core::batch::efficiency::efficiency(
                a.started_at,
                a.ended_at,
                r.cpus,
                r.mem_mib,
                a.cpu_ms,
                a.max_rss_kib,
            );
        }
        Ok(Some(self.with_flow(view).await?))
    }

    /// [`crate::JobStore::list_jobs`].
    pub(super) async fn list_jobs(&self, f: &JobFilter) -> Result<Vec<JobView>> {
        let limit = i64::from(f.limit.clamp(1, MAX_LIST));
        let before = f.before.unwrap_or(i64::MAX);
        // States are passed as one comma-separated parameter and matched with
        // a delimiter search, so the SQL text stays constant.
        let states: Option<String> = if f.states.is_empty() {
            None
        } else {
            Some(format!(
                ",{},",
                f.states
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ))
        };
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id < $1 \
             AND (CAST($2 AS TEXT) IS NULL OR queue = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR $3 LIKE '%,' || state || ',%') \
             AND (CAST($5 AS TEXT) IS NULL OR owner = $5 OR $6 LIKE '%,' || project || ',%') \
             AND (CAST($7 AS TEXT) IS NULL OR project = $7) \
             AND (CAST($8 AS TEXT) IS NULL OR owner = $8) \
             AND (CAST($9 AS TEXT) IS NULL OR name = $9) \
             AND (CAST($10 AS BIGINT) IS NULL OR parent_id = $10) \
             AND (CAST($11 AS BIGINT) IS NULL OR array_index = $11) \
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(before)
        .bind(f.queue.clone())
        .bind(states)
        .bind(limit)
        .bind(f.visible_to.clone())
        .bind(format!(",{},", f.visible_projects.join(",")))
        .bind(f.project.clone())
        .bind(f.owner.clone())
        .bind(f.name.clone())
        .bind(f.parent)
        .bind(f.array_index.map(i64::from))
        .fetch_all(&self.read)
        .await?;
        let mut jobs = rows::jobs(&rows, &self.damaged)?;
        for j in &mut jobs {
            self.with_counts(j).await?;
        }
        Ok(jobs)
    }

    /// [`crate::JobStore::counts`].
    pub(super) async fn counts(&self) -> Result<Vec<(String, JobState, u64)>> {
        let rows = sqlx::query(
            "SELECT queue, state, COUNT(*) AS n FROM jobs WHERE kind = 'job' GROUP BY queue, state",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok((
                    r.try_get("queue")?,
                    rows::parse_state(&state)?,
                    r.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect()
    }

    /// [`crate::JobStore::owner_counts`].
    pub(super) async fn owner_counts(&self, owner: &str) -> Result<Vec<(JobState, u64)>> {
        let rows = sqlx::query(
            "SELECT state, CAST(COUNT(*) AS BIGINT) AS n FROM jobs WHERE owner = $1 GROUP BY state",
        )
        .bind(owner)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok((rows::parse_state(&state)?, r.try_get::<i64, _>("n")? as u64))
            })
            .collect()
    }

    /// [`crate::JobStore::runnable_demand`].
    pub(super) async fn runnable_demand(&self, max_cpus: u32, limit: u32) -> Result<Demand> {
        let sql = match self.dialect {
            Dialect::Sqlite => DEMAND_SQLITE,
            Dialect::Postgres => DEMAND_POSTGRES,
        };
        let row = sqlx::query(sql)
            .bind(i64::from(max_cpus))
            .bind(i64::from(limit.max(1)))
            .fetch_one(&self.read)
            .await?;
        let leased_sql = match self.dialect {
            Dialect::Sqlite => LEASED_CPUS_SQLITE,
            Dialect::Postgres => LEASED_CPUS_POSTGRES,
        };
        let leased: i64 = sqlx::query(leased_sql)
            .fetch_one(&self.read)
            .await?
            .try_get("n")?;
        Ok(Demand {
            jobs: row.try_get::<i64, _>("jobs")? as u64,
            cpus: row.try_get::<i64, _>("cpus")? as u64,
            too_big: row.try_get::<i64, _>("too_big")? as u64,
            leased_cpus: leased as u64,
        })
    }

    /// [`crate::JobStore::read_log`].
    pub(super) async fn read_log(
        &self,
        job_id: i64,
        attempt: Option<u32>,
        after: u32,
    ) -> Result<Option<LogSlice>> {
        let Some(row) = sqlx::query("SELECT state, attempt_seq FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let state: String = row.try_get("state")?;
        let latest = row.try_get::<i64, _>("attempt_seq")? as u32;
        let attempt = attempt.unwrap_or(latest);
        let chunks = sqlx::query(
            "SELECT seq, data FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND seq > $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(job_id)
        .bind(i64::from(attempt))
        .bind(i64::from(after))
        .bind(MAX_LOG_CHUNKS)
        .fetch_all(&self.read)
        .await?;
        let mut data = String::new();
        let mut next = after;
        for c in &chunks {
            data.push_str(&c.try_get::<String, _>("data")?);
            next = c.try_get::<i64, _>("seq")? as u32;
        }
        Ok(Some(LogSlice {
            attempt,
            data,
            next,
            state: rows::parse_state(&state)?,
        }))
    }
}

/// Inserts one job as RUNNABLE (the caller's transaction applies its
/// workflow parts); returns its id.
macro_rules! insert_jobs_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO jobs (key, name, queue, state, spec, cpus, mem_mib, gpus, priority, \
             max_attempts, submitted_at, owner, project, task_kind) SELECT ",
            text_at!($d, 0),
            ", ",
            text_at!($d, 1),
            ", ",
            text_at!($d, 2),
            ", 'RUNNABLE', ",
            text_at!($d, 3),
            ", ",
            int_at!($d, 4),
            ", ",
            int_at!($d, 5),
            ", ",
            int_at!($d, 6),
            ", ",
            int_at!($d, 7),
            " + COALESCE((SELECT q.priority FROM queues q WHERE q.name = ",
            text_at!($d, 2),
            "), 0) * 4294967296, ",
            int_at!($d, 8),
            ", $2, ",
            text_at!($d, 9),
            ", ",
            text_at!($d, 10),
            ", ",
            text_at!($d, 11),
            " FROM ",
            each_ordered!($d, 1),
            " ORDER BY key RETURNING id"
        )
    };
}
per_dialect!(
    /// Inserts the jobs of `$1`, in order, submitted at `$2`.
    INSERT_JOBS = insert_jobs_sql
);

/// The stored form of a job key. Keys are unique per owner (another user's
/// key neither blocks nor reveals yours), so the unique column holds
/// `owner/key`; user names never contain `/`.
pub(super) fn stored_key(owner: Option<&str>, key: &str) -> String {
    format!("{}/{key}", owner.unwrap_or(""))
}

/// Inserts a batch of jobs (RUNNABLE, no event yet) in one statement;
/// returns their ids in the order of `specs`.
pub(super) async fn insert_jobs(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    specs: &[JobSpec],
    now: i64,
) -> Result<Vec<i64>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(specs.len());
    for spec in specs {
        let json = serde_json::to_string(spec)
            .map_err(|e| StoreError::Corrupt(format!("job spec: {e}")))?;
        rows.push((
            spec.key
                .as_deref()
                .map(|k| stored_key(spec.owner.as_deref(), k)),
            spec.name.as_str(),
            spec.queue.as_str(),
            json,
            i64::from(spec.resources.cpus),
            spec.resources.mem_mib as i64,
            i64::from(spec.resources.gpus),
            i64::from(spec.priority),
            i64::from(spec.max_attempts),
            spec.owner.as_deref(),
            spec.project.as_deref(),
            spec.task.as_str(),
        ));
    }
    let inserted = sqlx::query(dialect.pick(&INSERT_JOBS))
        .bind(row_list(&rows)?)
        .bind(now)
        .fetch_all(&mut **tx)
        .await;
    let inserted = match inserted {
        Ok(r) => r,
        Err(e) => {
            let keys: Vec<&str> = specs.iter().filter_map(|s| s.key.as_deref()).collect();
            let what = match keys.as_slice() {
                [one] => format!("a job with key `{one}`"),
                many => format!("a job with one of the keys `{}`", many.join("`, `")),
            };
            return Err(conflict_or(e, &what, "key"));
        }
    };
    // Ids are handed out in insertion order, which follows the array's.
    let mut ids = inserted
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect::<std::result::Result<Vec<i64>, _>>()?;
    ids.sort_unstable();
    if ids.len() != specs.len() {
        return Err(StoreError::Corrupt(format!(
            "inserted {} of {} jobs",
            ids.len(),
            specs.len()
        )));
    }
    Ok(ids)
}

/// [`insert_jobs`] for one job.
pub(super) async fn insert_job(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    spec: &JobSpec,
    now: i64,
) -> Result<i64> {
    let ids = insert_jobs(tx, dialect, std::slice::from_ref(spec), now).await?;
    ids.first()
        .copied()
        .ok_or_else(|| StoreError::Corrupt("a job insert returned no id".into()))
}
