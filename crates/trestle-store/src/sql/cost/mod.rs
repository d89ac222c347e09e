//! Metering in SQL (migration 16) and the [`CostStore`] implementation:
//! worker prices, the unmetered-attempt queue (a partial index of ended
//! attempts with `metered = 0`), usage records with their daily roll-up
//! in one transaction, and reports summed from the roll-up. Budgets are
//! in [`budgets`].

mod budgets;
mod escrow;

use super::SqlStore;
use crate::cost::{
    CostStore, EndedWorker, Grouping, RunningAttempt, Unmetered, UsageFilter, UsageKind, UsageOf,
    UsageRecord, UsageSum,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use trestle_core::cost::WorkerPrice;
use trestle_core::cost::budget::{BudgetSpec, ScopeKind};
use trestle_core::cost::daily;
use trestle_core::notify::event::NewEvent;
use trestle_core::{Capacity, Resources};

fn u32_of(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn resources(r: &AnyRow) -> Result<Resources> {
    Ok(Resources {
        cpus: u32_of(r.try_get("cpus")?),
        mem_mib: r.try_get::<i64, _>("mem_mib")?.max(0) as u64,
        gpus: u32_of(r.try_get("gpus")?),
    })
}

/// The worker price of a row joined with `worker_history` (`w_` columns).
fn price(r: &AnyRow) -> Result<Option<WorkerPrice>> {
    let Some(shape) = r.try_get::<Option<String>, _>("w_shape")? else {
        return Ok(None);
    };
    Ok(Some(WorkerPrice {
        shape,
        size: Capacity {
            cpus: u32_of(r.try_get("w_cpus")?),
            mem_mib: r.try_get::<i64, _>("w_mem")?.max(0) as u64,
            gpus: u32_of(r.try_get("w_gpus")?),
        },
        price_per_hour: r.try_get("w_price")?,
    }))
}

const WORKER_COLUMNS: &str = "w.shape AS w_shape, w.size_cpus AS w_cpus, \
    w.size_mem_mib AS w_mem, w.size_gpus AS w_gpus, w.price_per_hour AS w_price, \
    w.compute_env AS w_env";

const RECORD_COLUMNS: &str = "id, kind, job_id, attempt, parent_id, workspace_id, worker_id, \
    compute_env, user_name, project, index_name, started_at, ended_at, cpus, mem_mib, gpus, \
    rate_per_hour, charge, cpu_used_ms";

fn record(r: &AnyRow) -> Result<UsageRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(UsageRecord {
        id: r.try_get("id")?,
        kind: UsageKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("usage record kind `{kind}`")))?,
        job_id: r.try_get("job_id")?,
        attempt: r.try_get::<Option<i64>, _>("attempt")?.map(u32_of),
        parent_id: r.try_get("parent_id")?,
        workspace_id: r.try_get("workspace_id")?,
        worker_id: r.try_get("worker_id")?,
        compute_env: r.try_get("compute_env")?,
        user: r.try_get("user_name")?,
        project: r.try_get("project")?,
        index_name: r.try_get("index_name")?,
        started_at: r.try_get("started_at")?,
        ended_at: r.try_get("ended_at")?,
        resources: resources(r)?,
        rate_per_hour: r.try_get("rate_per_hour")?,
        charge: r.try_get("charge")?,
        cpu_used_ms: r
            .try_get::<Option<i64>, _>("cpu_used_ms")?
            .map(|v| v.max(0) as u64),
    })
}

/// Records per multi-row insert (20 parameters each: few, since binding
/// is per parameter).
const INSERT_CHUNK: usize = 50;
/// Attempts per metering update (one JSON parameter).
const UPDATE_CHUNK: usize = 2_000;

/// Sets a batch of attempts' rate and charge and marks them metered; `$1`
/// is a JSON array of `[job, attempt, rate, charge]`. Returns the
/// attempts that were not metered before.
const METER_ATTEMPTS: [&str; 2] = [
    "UPDATE attempts SET metered = 1, rate_per_hour = v.value ->> 2, charge = v.value ->> 3 \
     FROM json_each($1) AS v \
     WHERE attempts.job_id = (v.value ->> 0) AND attempts.attempt = (v.value ->> 1) \
     AND attempts.metered = 0 RETURNING attempts.job_id, attempts.attempt",
    "UPDATE attempts SET metered = 1, \
     rate_per_hour = CAST(v.value ->> 2 AS DOUBLE PRECISION), \
     charge = CAST(v.value ->> 3 AS DOUBLE PRECISION) \
     FROM jsonb_array_elements(CAST($1 AS JSONB)) AS v(value) \
     WHERE attempts.job_id = CAST(v.value ->> 0 AS BIGINT) \
     AND attempts.attempt = CAST(v.value ->> 1 AS BIGINT) \
     AND attempts.metered = 0 RETURNING attempts.job_id, attempts.attempt",
];

/// A finite float as JSON (never NaN or infinite: prices are checked).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "0".into()
    }
}

/// One roll-up row's key and sums.
#[derive(Default)]
struct Daily {
    charge: f64,
    seconds: f64,
    core_seconds: f64,
    measured_core_seconds: f64,
    used_core_seconds: f64,
    records: i64,
}

/// A report row (`k`, `d`, the sums) as [`UsageSum`].
fn usage_sum(r: &AnyRow, per_day: bool) -> Result<UsageSum> {
    Ok(UsageSum {
        key: r.try_get("k")?,
        day: if per_day { Some(r.try_get("d")?) } else { None },
        charge: r.try_get("charge")?,
        seconds: r.try_get("seconds")?,
        core_seconds: r.try_get("core_seconds")?,
        measured_core_seconds: r.try_get("measured")?,
        used_core_seconds: r.try_get("used")?,
        records: r.try_get::<i64, _>("records")?.max(0) as u64,
    })
}

/// The workspace a session task's attempt ran for, from its stored spec
/// (a workspace's earlier sessions are no longer its current job).
fn session_workspace(spec: Option<String>) -> Option<i64> {
    let spec: trestle_core::JobSpec = serde_json::from_str(&spec?).ok()?;
    spec.session.map(|s| s.workspace)
}

/// A site-wide report from the single-dimension roll-up.
async fn usage_by_dim(s: &SqlStore, f: &UsageFilter) -> Result<Vec<UsageSum>> {
    let dim = match f.by {
        Grouping::User => "user",
        Grouping::Project => "project",
        Grouping::Index => "index",
        Grouping::Env => "env",
        // Per day only: every kind's rows of the day together.
        Grouping::Kind | Grouping::Day => "kind",
    };
    let (key, group) = match (f.by, f.per_day) {
        (Grouping::Day, _) => ("CAST(day AS TEXT)", "day"),
        (_, true) => ("key", "key, day"),
        (_, false) => ("key", "key"),
    };
    let day_select = if f.per_day || f.by == Grouping::Day {
        "day"
    } else {
        "0"
    };
    let q = format!(
        "SELECT {key} AS k, {day_select} AS d, COALESCE(SUM(charge), 0.0) AS charge, \
         COALESCE(SUM(seconds), 0.0) AS seconds, COALESCE(SUM(core_seconds), 0.0) AS core_seconds, \
         COALESCE(SUM(measured_core_seconds), 0.0) AS measured, \
         COALESCE(SUM(used_core_seconds), 0.0) AS used, \
         CAST(COALESCE(SUM(records), 0) AS BIGINT) AS records \
         FROM usage_daily_dim WHERE dim = $1 AND day >= $2 AND day <= $3 \
         GROUP BY {group} ORDER BY charge DESC LIMIT 10000"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(dim)
        .bind(f.from_day)
        .bind(f.to_day)
        .fetch_all(&s.read)
        .await?;
    rows.iter().map(|r| usage_sum(r, f.per_day)).collect()
}

#[async_trait]
impl CostStore for SqlStore {
    async fn record_worker_price(
        &self,
        id: &str,
        compute_env: Option<&str>,
        price: &WorkerPrice,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO worker_history (id, compute_env, shape, size_cpus, size_mem_mib, \
             size_gpus, price_per_hour, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(compute_env.map(str::to_string))
        .bind(price.shape.as_str())
        .bind(i64::from(price.size.cpus))
        .bind(price.size.mem_mib as i64)
        .bind(i64::from(price.size.gpus))
        .bind(price.price_per_hour)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn unmetered(&self, limit: u32) -> Result<Vec<Unmetered>> {
        let q = format!(
            "SELECT a.job_id, a.attempt, a.worker_id, a.started_at, a.ended_at, a.cpu_ms, \
             j.owner, j.project, j.cpus, j.mem_mib, j.gpus, j.parent_id, \
             p.index_name, {WORKER_COLUMNS}, \
             CASE WHEN j.task_kind = 'session' THEN j.spec END AS session_spec \
             FROM attempts a JOIN jobs j ON j.id = a.job_id \
             LEFT JOIN projects p ON p.name = j.project \
             LEFT JOIN worker_history w ON w.id = a.worker_id \
             WHERE a.metered = 0 AND a.ended_at IS NOT NULL LIMIT $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let worker = price(r)?.map(|p| -> Result<_> { Ok((r.try_get("w_env")?, p)) });
            out.push(Unmetered {
                job_id: r.try_get("job_id")?,
                attempt: u32_of(r.try_get("attempt")?),
                worker_id: r.try_get("worker_id")?,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                cpu_ms: r
                    .try_get::<Option<i64>, _>("cpu_ms")?
                    .map(|v| v.max(0) as u64),
                owner: r.try_get::<Option<String>, _>("owner")?.unwrap_or_default(),
                project: r
                    .try_get::<Option<String>, _>("project")?
                    .unwrap_or_default(),
                index_name: r
                    .try_get::<Option<String>, _>("index_name")?
                    .unwrap_or_default(),
                resources: resources(r)?,
                parent_id: r.try_get("parent_id")?,
                workspace_id: session_workspace(r.try_get("session_spec")?),
                worker: worker.transpose()?,
            });
        }
        Ok(out)
    }

    async fn ended_workers(&self, before: i64, limit: u32) -> Result<Vec<EndedWorker>> {
        let q = format!(
            "SELECT w.id, w.started_at, w.ended_at, {WORKER_COLUMNS}, \
             w.charged AS charged FROM worker_history w \
             WHERE w.overhead_metered = 0 AND w.ended_at IS NOT NULL AND w.ended_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.metered = 0 \
             AND a.ended_at IS NOT NULL AND a.worker_id = w.id) \
             ORDER BY w.ended_at LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(p) = price(r)? else { continue };
            out.push(EndedWorker {
                id: r.try_get("id")?,
                compute_env: r.try_get("w_env")?,
                price: p,
                started_at: r.try_get("started_at")?,
                ended_at: r.try_get("ended_at")?,
                charged: r.try_get("charged")?,
            });
        }
        Ok(out)
    }

    async fn record_usage(
        &self,
        records: &[UsageRecord],
        attempts: &[(i64, u32)],
        workers: &[String],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let mut days: HashMap<(i64, &str, &str, &str, &str, &str), Daily> = HashMap::new();
        let mut added = 0u64;
        // Multi-row inserts; a record whose id exists is skipped, and
        // RETURNING names the new ones (they alone go to the roll-up).
        let mut new_ids = std::collections::HashSet::new();
        // A batch attempt's record is its own row: one multi-row UPDATE
        // per chunk sets its rate and charge and marks it metered, and
        // RETURNING names the attempts that were not metered before.
        let (own, others): (Vec<&UsageRecord>, Vec<&UsageRecord>) = records
            .iter()
            .partition(|r| r.kind == UsageKind::Job && r.job_id.is_some() && r.attempt.is_some());
        // One JSON parameter per chunk (binding thousands of parameters
        // one by one costs more than the update itself).
        for chunk in own.chunks(UPDATE_CHUNK) {
            let mut list = String::with_capacity(chunk.len() * 48);
            list.push('[');
            for (i, rec) in chunk.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(&format!(
                    "[{},{},{},{}]",
                    rec.job_id.unwrap_or(0),
                    rec.attempt.unwrap_or(0),
                    json_number(rec.rate_per_hour),
                    json_number(rec.charge)
                ));
            }
            list.push(']');
            let rows = sqlx::query(self.dialect.pick(&METER_ATTEMPTS))
                .bind(list)
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                let job: i64 = r.try_get("job_id")?;
                let attempt: i64 = r.try_get("attempt")?;
                new_ids.insert(format!("a:{job}:{attempt}"));
            }
        }
        for chunk in others.chunks(INSERT_CHUNK) {
            let mut q =
                format!("INSERT INTO usage_records ({RECORD_COLUMNS}, recorded_at) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    q.push_str(", ");
                }
                q.push('(');
                for c in 0..20 {
                    if c > 0 {
                        q.push_str(", ");
                    }
                    q.push_str(&format!("${}", i * 20 + c + 1));
                }
                q.push(')');
            }
            q.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
            for rec in chunk {
                query = query
                    .bind(rec.id.as_str())
                    .bind(rec.kind.as_str())
                    .bind(rec.job_id)
                    .bind(rec.attempt.map(i64::from))
                    .bind(rec.parent_id)
                    .bind(rec.workspace_id)
                    .bind(rec.worker_id.clone())
                    .bind(rec.compute_env.as_str())
                    .bind(rec.user.as_str())
                    .bind(rec.project.as_str())
                    .bind(rec.index_name.as_str())
                    .bind(rec.started_at)
                    .bind(rec.ended_at)
                    .bind(i64::from(rec.resources.cpus))
                    .bind(rec.resources.mem_mib as i64)
                    .bind(i64::from(rec.resources.gpus))
                    .bind(rec.rate_per_hour)
                    .bind(rec.charge)
                    .bind(rec.cpu_used_ms.map(|v| v as i64))
                    .bind(now);
            }
            for r in query.fetch_all(&mut *tx).await? {
                new_ids.insert(r.try_get::<String, _>("id")?);
            }
        }
        let mut per_worker: HashMap<&str, f64> = HashMap::new();
        for rec in records.iter().filter(|r| new_ids.contains(&r.id)) {
            added += 1;
            if let Some(w) = rec.worker_id.as_deref()
                && rec.kind != UsageKind::Overhead
            {
                *per_worker.entry(w).or_default() += rec.charge;
            }
            let pieces = daily::split(rec.started_at, rec.ended_at);
            let total: i64 = pieces.iter().map(|(_, ms)| ms).sum();
            for (i, (day, ms)) in pieces.iter().enumerate() {
                let part = if total == 0 {
                    1.0
                } else {
                    *ms as f64 / total as f64
                };
                let d = days
                    .entry((
                        *day,
                        rec.project.as_str(),
                        rec.user.as_str(),
                        rec.index_name.as_str(),
                        rec.compute_env.as_str(),
                        rec.kind.as_str(),
                    ))
                    .or_default();
                d.charge += rec.charge * part;
                d.seconds += *ms as f64 / 1000.0;
                let cores = *ms as f64 / 1000.0 * f64::from(rec.resources.cpus);
                d.core_seconds += cores;
                if let Some(used) = rec.cpu_used_ms {
                    d.measured_core_seconds += cores;
                    d.used_core_seconds += used as f64 / 1000.0 * part;
                }
                // A record counts once, on its first day.
                d.records += i64::from(i == 0);
            }
        }
        for ((day, project, user, index, env, kind), d) in &days {
            sqlx::query(
                "INSERT INTO usage_daily (day, project, user_name, index_name, compute_env, kind, \
                 charge, seconds, core_seconds, measured_core_seconds, used_core_seconds, records) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $10) \
                 ON CONFLICT (day, project, user_name, index_name, compute_env, kind) DO UPDATE \
                 SET charge = usage_daily.charge + excluded.charge, \
                 seconds = usage_daily.seconds + excluded.seconds, \
                 core_seconds = usage_daily.core_seconds + excluded.core_seconds, \
                 measured_core_seconds = usage_daily.measured_core_seconds + excluded.measured_core_seconds, \
                 used_core_seconds = usage_daily.used_core_seconds + excluded.used_core_seconds, \
                 records = usage_daily.records + excluded.records",
            )
            .bind(*day)
            .bind(*project)
            .bind(*user)
            .bind(*index)
            .bind(*env)
            .bind(*kind)
            .bind(d.charge)
            .bind(d.seconds)
            .bind(d.core_seconds)
            .bind(d.records)
            .bind(d.measured_core_seconds)
            .bind(d.used_core_seconds)
            .execute(&mut *tx)
            .await?;
        }
        // The single-dimension roll-ups.
        let mut dims: HashMap<(&str, i64, &str), Daily> = HashMap::new();
        for ((day, project, user, index, env, kind), d) in &days {
            for (dim, key) in [
                ("project", *project),
                ("user", *user),
                ("index", *index),
                ("env", *env),
                ("kind", *kind),
            ] {
                let e = dims.entry((dim, *day, key)).or_default();
                e.charge += d.charge;
                e.seconds += d.seconds;
                e.core_seconds += d.core_seconds;
                e.measured_core_seconds += d.measured_core_seconds;
                e.used_core_seconds += d.used_core_seconds;
                e.records += d.records;
            }
        }
        for ((dim, day, key), d) in &dims {
            sqlx::query(
                "INSERT INTO usage_daily_dim (dim, day, key, charge, seconds, core_seconds, \
                 measured_core_seconds, used_core_seconds, records) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (dim, day, key) DO UPDATE \
                 SET charge = usage_daily_dim.charge + excluded.charge, \
                 seconds = usage_daily_dim.seconds + excluded.seconds, \
                 core_seconds = usage_daily_dim.core_seconds + excluded.core_seconds, \
                 measured_core_seconds = usage_daily_dim.measured_core_seconds + excluded.measured_core_seconds, \
                 used_core_seconds = usage_daily_dim.used_core_seconds + excluded.used_core_seconds, \
                 records = usage_daily_dim.records + excluded.records",
            )
            .bind(*dim)
            .bind(*day)
            .bind(*key)
            .bind(d.charge)
            .bind(d.seconds)
            .bind(d.core_seconds)
            .bind(d.measured_core_seconds)
            .bind(d.used_core_seconds)
            .bind(d.records)
            .execute(&mut *tx)
            .await?;
        }
        // What each worker's tasks were charged (its overhead is the rest).
        for (w, c) in &per_worker {
            sqlx::query("UPDATE worker_history SET charged = charged + $2 WHERE id = $1")
                .bind(*w)
                .bind(*c)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in attempts.chunks(INSERT_CHUNK) {
            let mut q = String::from(
                "UPDATE attempts SET metered = 1 WHERE metered = 0 AND (job_id, attempt) IN (VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    q.push_str(", ");
                }
                q.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            }
            q.push(')');
            let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
            for (job, attempt) in chunk {
                query = query.bind(*job).bind(i64::from(*attempt));
            }
            query.execute(&mut *tx).await?;
        }
        for w in workers {
            sqlx::query("UPDATE worker_history SET overhead_metered = 1 WHERE id = $1")
                .bind(w.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn running_attempts(&self) -> Result<Vec<RunningAttempt>> {
        let q = format!(
            "SELECT j.id, j.owner, j.project, j.cpus, j.mem_mib, j.gpus, a.started_at, \
             p.index_name, {WORKER_COLUMNS} \
             FROM jobs j JOIN attempts a ON a.job_id = j.id AND a.attempt = j.attempt_seq \
             LEFT JOIN projects p ON p.name = j.project \
             LEFT JOIN worker_history w ON w.id = a.worker_id \
             WHERE j.state = 'RUNNING' AND a.started_at IS NOT NULL AND a.ended_at IS NULL"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(RunningAttempt {
                job_id: r.try_get("id")?,
                project: r
                    .try_get::<Option<String>, _>("project")?
                    .unwrap_or_default(),
                index_name: r
                    .try_get::<Option<String>, _>("index_name")?
                    .unwrap_or_default(),
                owner: r.try_get::<Option<String>, _>("owner")?.unwrap_or_default(),
                started_at: r.try_get("started_at")?,
                resources: resources(r)?,
                price: price(r)?,
            });
        }
        Ok(out)
    }

    async fn usage(&self, f: &UsageFilter) -> Result<Vec<UsageSum>> {
        if f.project.is_none() && f.user.is_none() && f.index.is_none() && f.visible.is_none() {
            return usage_by_dim(self, f).await;
        }
        let col = f.by.column();
        let key = if col == "day" {
            "CAST(day AS TEXT)".to_string()
        } else {
            col.to_string()
        };
        let (day_select, day_group) = if f.per_day {
            (", day AS d", ", day")
        } else {
            (", 0 AS d", "")
        };
        let (visible_user, visible_projects) = match &f.visible {
            Some((u, ps)) => (Some(u.clone()), format!(",{},", ps.join(","))),
            None => (None, String::new()),
        };
        let q = format!(
            "SELECT {key} AS k{day_select}, COALESCE(SUM(charge), 0.0) AS charge, \
             COALESCE(SUM(seconds), 0.0) AS seconds, \
             COALESCE(SUM(core_seconds), 0.0) AS core_seconds, \
             COALESCE(SUM(measured_core_seconds), 0.0) AS measured, \
             COALESCE(SUM(used_core_seconds), 0.0) AS used, \
             CAST(COALESCE(SUM(records), 0) AS BIGINT) AS records \
             FROM usage_daily WHERE day >= $1 AND day <= $2 \
             AND ($3 IS NULL OR project = $3) AND ($4 IS NULL OR user_name = $4) \
             AND ($5 IS NULL OR index_name = $5) \
             AND ($6 IS NULL OR user_name = $6 OR $7 LIKE '%,' || project || ',%') \
             GROUP BY {col}{day_group} ORDER BY charge DESC LIMIT 10000"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(f.from_day)
            .bind(f.to_day)
            .bind(f.project.clone())
            .bind(f.user.clone())
            .bind(f.index.clone())
            .bind(visible_user)
            .bind(visible_projects)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| usage_sum(r, f.per_day)).collect()
    }

    async fn spend(&self, kind: ScopeKind, scope: &str, from_day: i64, to_day: i64) -> Result<f64> {
        let col = match kind {
            ScopeKind::Project => "project",
            ScopeKind::Index => "index_name",
        };
        let q = format!(
            "SELECT COALESCE(SUM(charge), 0.0) AS s FROM usage_daily \
             WHERE {col} = $1 AND day >= $2 AND day < $3"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(scope)
            .bind(from_day)
            .bind(to_day)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("s")?)
    }

    async fn usage_of(&self, of: UsageOf) -> Result<(f64, u64, Vec<UsageRecord>)> {
        let (col, id) = match of {
            UsageOf::Job(id) => ("job_id", id),
            UsageOf::Group(id) => ("parent_id", id),
            UsageOf::Workspace(id) => ("workspace_id", id),
        };
        // Records kept apart: workspace sessions, overhead, storage.
        let q = format!(
            "SELECT COALESCE(SUM(charge), 0.0) AS s, COUNT(*) AS n FROM usage_records \
             WHERE {col} = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .fetch_one(&self.read)
            .await?;
        let mut total: f64 = row.try_get("s")?;
        let mut n: i64 = row.try_get("n")?;
        let q = format!(
            "SELECT {RECORD_COLUMNS} FROM usage_records WHERE {col} = $1 \
             ORDER BY ended_at DESC LIMIT 100"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        let mut recs = rows.iter().map(record).collect::<Result<Vec<_>>>()?;
        // Batch attempts: their own rows.
        let filter = match of {
            UsageOf::Job(_) => Some("a.job_id = $1"),
            UsageOf::Group(_) => Some("a.job_id IN (SELECT id FROM jobs WHERE parent_id = $1)"),
            UsageOf::Workspace(_) => None,
        };
        if let Some(filter) = filter {
            let q = format!(
                "SELECT COALESCE(SUM(a.charge), 0.0) AS s, COUNT(*) AS n FROM attempts a \
                 WHERE {filter} AND a.metered = 1 AND a.charge IS NOT NULL"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(id)
                .fetch_one(&self.read)
                .await?;
            total += row.try_get::<f64, _>("s")?;
            n += row.try_get::<i64, _>("n")?;
            let q = format!(
                "SELECT a.job_id, a.attempt, a.worker_id, a.started_at, a.ended_at, \
                 a.rate_per_hour, a.charge, a.cpu_ms, j.owner, j.project, j.cpus, j.mem_mib, \
                 j.gpus, j.parent_id, w.compute_env AS w_env FROM attempts a \
                 JOIN jobs j ON j.id = a.job_id \
                 LEFT JOIN worker_history w ON w.id = a.worker_id \
                 WHERE {filter} AND a.metered = 1 AND a.charge IS NOT NULL \
                 ORDER BY a.ended_at DESC LIMIT 100"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(id)
                .fetch_all(&self.read)
                .await?;
            for r in &rows {
                let job: i64 = r.try_get("job_id")?;
                let attempt = u32_of(r.try_get("attempt")?);
                let ended: i64 = r.try_get::<Option<i64>, _>("ended_at")?.unwrap_or(0);
                recs.push(UsageRecord {
                    id: format!("a:{job}:{attempt}"),
                    kind: UsageKind::Job,
                    job_id: Some(job),
                    attempt: Some(attempt),
                    parent_id: r.try_get("parent_id")?,
                    workspace_id: None,
                    worker_id: Some(r.try_get("worker_id")?),
                    compute_env: r
                        .try_get::<Option<String>, _>("w_env")?
                        .unwrap_or_else(|| "-".into()),
                    user: r.try_get::<Option<String>, _>("owner")?.unwrap_or_default(),
                    project: r
                        .try_get::<Option<String>, _>("project")?
                        .unwrap_or_default(),
                    index_name: String::new(),
                    started_at: r
                        .try_get::<Option<i64>, _>("started_at")?
                        .unwrap_or(ended)
                        .min(ended),
                    ended_at: ended,
                    resources: resources(r)?,
                    rate_per_hour: r.try_get::<Option<f64>, _>("rate_per_hour")?.unwrap_or(0.0),
                    charge: r.try_get::<Option<f64>, _>("charge")?.unwrap_or(0.0),
                    cpu_used_ms: r
                        .try_get::<Option<i64>, _>("cpu_ms")?
                        .map(|v| v.max(0) as u64),
                });
            }
            recs.sort_by_key(|r| std::cmp::Reverse(r.ended_at));
            recs.truncate(100);
        }
        Ok((total, n.max(0) as u64, recs))
    }

    async fn put_budget(&self, spec: &BudgetSpec, by: &str, now: i64) -> Result<()> {
        budgets::put(self, spec, by, now).await
    }

    async fn budget(
        &self,
        kind: ScopeKind,
        scope: &str,
    ) -> Result<Option<crate::cost::BudgetRecord>> {
        budgets::get(self, kind, scope).await
    }

    async fn budgets(&self) -> Result<Vec<crate::cost::BudgetRecord>> {
        budgets::all(self).await
    }

    async fn delete_budget(&self, kind: ScopeKind, scope: &str) -> Result<bool> {
        budgets::delete(self, kind, scope).await
    }

    async fn set_budget_blocked(
        &self,
        kind: ScopeKind,
        scope: &str,
        blocked_at: Option<i64>,
    ) -> Result<()> {
        budgets::set_blocked(self, kind, scope, blocked_at).await
    }

    async fn budget_marks(
        &self,
        kind: ScopeKind,
        scope: &str,
        period_start: i64,
    ) -> Result<Vec<String>> {
        budgets::marks(self, kind, scope, period_start).await
    }

    async fn record_budget_mark(
        &self,
        kind: ScopeKind,
        scope: &str,
        period_start: i64,
        mark: &str,
        spend: f64,
        event: &NewEvent,
    ) -> Result<bool> {
        budgets::record_mark(self, kind, scope, period_start, mark, spend, event).await
    }

    async fn override_budget(&self, job_id: i64, by: &str, now: i64) -> Result<bool> {
        budgets::override_job(self, job_id, by, now).await
    }

    async fn hold_over_budget(&self, projects: &[String], now: i64) -> Result<(u64, u64)> {
        budgets::hold(self, projects, now).await
    }

    fn set_escrow_projects(&self, projects: &[String]) {
        let list = if projects.is_empty() {
            String::new()
        } else {
            format!(",{},", projects.join(","))
        };
        *self.escrow.write().unwrap_or_else(|e| e.into_inner()) = list;
    }

    async fn escrow_candidates(
        &self,
        projects: &[String],
        limit: u32,
    ) -> Result<Vec<crate::cost::EscrowCandidate>> {
        escrow::candidates(self, projects, limit).await
    }

    async fn reserve(
        &self,
        job_id: i64,
        kind: ScopeKind,
        scope: &str,
        amount: f64,
        now: i64,
    ) -> Result<bool> {
        escrow::reserve(self, job_id, kind, scope, amount, now).await
    }

    async fn reserved(&self, kind: ScopeKind, scope: &str) -> Result<f64> {
        escrow::reserved(self, kind, scope).await
    }

    async fn set_waiting_reason(&self, ids: &[i64], reason: Option<&str>) -> Result<()> {
        escrow::set_reason(self, ids, reason).await
    }
}
