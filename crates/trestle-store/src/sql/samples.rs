//! [`crate::SampleStore`] in SQL: samples go in as one multi-row
//! statement fenced by the reporting worker's leases, alarm states are
//! upserted as one, and downsampling is three statements in one
//! transaction. Percentages are stored in tenths of a percent.

use super::multirow::{each_of, id_list, ids_in, int_at, per_dialect, row_list, text_at};
use super::{SqlStore, notify};
use crate::samples::{MINUTE_MS, SampleStore, SampledAttempt};
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use trestle_core::alarm::{AlarmState, RuleState};
use trestle_core::api::AttemptKey;
use trestle_core::api::samples::{SampleView, TaskSample};
use trestle_core::notify::event::NewEvent;

/// Most samples one read returns.
const MAX_SAMPLES: u32 = 5000;

macro_rules! held_jobs_sql {
    ($d:ident) => {
        concat!(
            "SELECT id, attempt_seq, name, queue, owner, project FROM jobs WHERE id IN ",
            ids_in!($d, 1),
            " AND lease_worker = $2 AND state IN ('STARTING', 'RUNNING')"
        )
    };
}
per_dialect!(
    /// The jobs of `$1` (a JSON id list) leased to worker `$2` and active.
    HELD_JOBS = held_jobs_sql
);

macro_rules! insert_samples_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO task_samples (job_id, attempt, resolution_ms, at, cpu_pm, rss_kib, \
             mem_pm, disk_bytes, disk_pm) SELECT ",
            int_at!($d, 0),
            ", ",
            int_at!($d, 1),
            ", 0, ",
            int_at!($d, 2),
            ", ",
            int_at!($d, 3),
            ", ",
            int_at!($d, 4),
            ", ",
            int_at!($d, 5),
            ", ",
            int_at!($d, 6),
            ", ",
            int_at!($d, 7),
            " FROM ",
            each_of!($d, 1),
            " WHERE true ON CONFLICT DO NOTHING"
        )
    };
}
per_dialect!(
    /// Stores the raw samples of `$1`
    /// (`[job, attempt, at, cpu, rss, mem, disk bytes, disk]` rows).
    INSERT_SAMPLES = insert_samples_sql
);

macro_rules! alarms_of_sql {
    ($d:ident) => {
        concat!(
            "SELECT job_id, attempt, rule, state, breach_since, changed_at, value_pm \
             FROM attempt_alarms WHERE job_id IN ",
            ids_in!($d, 1)
        )
    };
}
per_dialect!(
    /// The alarm states of the jobs of `$1`.
    ALARMS_OF = alarms_of_sql
);

macro_rules! save_alarms_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO attempt_alarms (job_id, attempt, rule, state, breach_since, changed_at, \
             value_pm) SELECT ",
            int_at!($d, 0),
            ", ",
            int_at!($d, 1),
            ", ",
            text_at!($d, 2),
            ", ",
            text_at!($d, 3),
            ", ",
            int_at!($d, 4),
            ", ",
            int_at!($d, 5),
            ", ",
            int_at!($d, 6),
            " FROM ",
            each_of!($d, 1),
            " WHERE true ON CONFLICT (job_id, attempt, rule) DO UPDATE SET \
             state = excluded.state, breach_since = excluded.breach_since, \
             changed_at = excluded.changed_at, value_pm = excluded.value_pm"
        )
    };
}
per_dialect!(
    /// Inserts or replaces the rule states of `$1`.
    SAVE_ALARMS = save_alarms_sql
);

/// A percentage in tenths (what the tables hold).
fn pm(pct: f64) -> i64 {
    if pct.is_finite() {
        (pct * 10.0).round().clamp(0.0, 1e9) as i64
    } else {
        0
    }
}

fn pct(pm: i64) -> f64 {
    pm as f64 / 10.0
}

fn rule_state(r: &AnyRow) -> Result<RuleState> {
    let state: String = r.try_get("state")?;
    Ok(RuleState {
        rule: r.try_get("rule")?,
        state: AlarmState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown alarm state `{state}`")))?,
        breach_since: r.try_get("breach_since")?,
        changed_at: r.try_get("changed_at")?,
        value: r.try_get::<Option<i64>, _>("value_pm")?.map(pct),
    })
}

fn attempt_of(r: &AnyRow, id: &str, attempt: &str) -> Result<AttemptKey> {
    Ok(AttemptKey {
        job_id: r.try_get(id)?,
        attempt: r.try_get::<i64, _>(attempt)? as u32,
    })
}

fn sampled(r: &AnyRow, key: AttemptKey) -> Result<SampledAttempt> {
    Ok(SampledAttempt {
        key,
        name: r.try_get("name")?,
        queue: r.try_get("queue")?,
        owner: r.try_get("owner")?,
        project: r.try_get("project")?,
        alarms: Vec::new(),
    })
}

#[async_trait]
impl SampleStore for SqlStore {
    async fn record_samples(
        &self,
        worker_id: &str,
        samples: &[TaskSample],
    ) -> Result<Vec<SampledAttempt>> {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = samples.iter().map(|s| s.job_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let list = id_list(&ids);
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(self.dialect.pick(&HELD_JOBS))
            .bind(&list)
            .bind(worker_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut held: HashMap<AttemptKey, SampledAttempt> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let key = attempt_of(r, "id", "attempt_seq")?;
            held.insert(key, sampled(r, key)?);
        }
        let kept: Vec<_> = samples
            .iter()
            .filter(|s| {
                held.contains_key(&AttemptKey {
                    job_id: s.job_id,
                    attempt: s.attempt,
                })
            })
            .map(|s| {
                (
                    s.job_id,
                    i64::from(s.attempt),
                    s.time,
                    pm(s.cpu_pct),
                    s.rss_kib as i64,
                    pm(s.mem_pct),
                    s.disk_bytes.map(|b| b as i64),
                    s.disk_pct.map(pm),
                )
            })
            .collect();
        if kept.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        sqlx::query(self.dialect.pick(&INSERT_SAMPLES))
            .bind(row_list(&kept)?)
            .execute(&mut *tx)
            .await?;
        let states = sqlx::query(self.dialect.pick(&ALARMS_OF))
            .bind(&list)
            .fetch_all(&mut *tx)
            .await?;
        for r in &states {
            if let Some(a) = held.get_mut(&attempt_of(r, "job_id", "attempt")?) {
                a.alarms.push(rule_state(r)?);
            }
        }
        tx.commit().await?;
        let mut out: Vec<SampledAttempt> = held.into_values().collect();
        out.sort_by_key(|a| (a.key.job_id, a.key.attempt));
        Ok(out)
    }

    async fn save_alarms(
        &self,
        states: &[(AttemptKey, RuleState)],
        events: &[NewEvent],
    ) -> Result<()> {
        if states.is_empty() && events.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = states
            .iter()
            .map(|(k, s)| {
                (
                    k.job_id,
                    i64::from(k.attempt),
                    s.rule.as_str(),
                    s.state.as_str(),
                    s.breach_since,
                    s.changed_at,
                    s.value.map(pm),
                )
            })
            .collect();
        let mut tx = self.write.begin().await?;
        if !rows.is_empty() {
            sqlx::query(self.dialect.pick(&SAVE_ALARMS))
                .bind(row_list(&rows)?)
                .execute(&mut *tx)
                .await?;
        }
        for e in events {
            notify::record(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ended_alarms(&self) -> Result<Vec<(SampledAttempt, RuleState)>> {
        let rows = sqlx::query(
            "SELECT a.job_id, a.attempt, a.rule, a.state, a.breach_since, a.changed_at, \
             a.value_pm, j.name, j.queue, j.owner, j.project FROM attempt_alarms a \
             JOIN jobs j ON j.id = a.job_id WHERE a.state = 'ALARM' AND NOT \
             (j.attempt_seq = a.attempt AND j.state IN ('STARTING', 'RUNNING')) \
             ORDER BY a.job_id, a.attempt, a.rule LIMIT 1000",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    sampled(r, attempt_of(r, "job_id", "attempt")?)?,
                    rule_state(r)?,
                ))
            })
            .collect()
    }

    async fn alarms(&self, job_id: i64) -> Result<Vec<(u32, RuleState)>> {
        let rows = sqlx::query(
            "SELECT job_id, attempt, rule, state, breach_since, changed_at, value_pm \
             FROM attempt_alarms WHERE job_id = $1 ORDER BY attempt, rule",
        )
        .bind(job_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("attempt")? as u32, rule_state(r)?)))
            .collect()
    }

    async fn samples(&self, job_id: i64, since: i64, limit: u32) -> Result<Vec<SampleView>> {
        let limit = i64::from(limit.clamp(1, MAX_SAMPLES));
        let rows = sqlx::query(
            "SELECT attempt, resolution_ms, at, cpu_pm, rss_kib, mem_pm, disk_bytes, disk_pm \
             FROM task_samples WHERE job_id = $1 AND at >= $2 ORDER BY at DESC, attempt DESC \
             LIMIT $3",
        )
        .bind(job_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(SampleView {
                    attempt: r.try_get::<i64, _>("attempt")? as u32,
                    time: r.try_get("at")?,
                    cpu_pct: pct(r.try_get("cpu_pm")?),
                    rss_kib: r.try_get::<i64, _>("rss_kib")?.max(0) as u64,
                    mem_pct: pct(r.try_get("mem_pm")?),
                    disk_bytes: r
                        .try_get::<Option<i64>, _>("disk_bytes")?
                        .map(|b| b.max(0) as u64),
                    disk_pct: r.try_get::<Option<i64>, _>("disk_pm")?.map(pct),
                    resolution_ms: r.try_get("resolution_ms")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    async fn prune_samples(&self, raw_before: i64, drop_before: i64) -> Result<u64> {
        // Whole minutes only: a minute is aggregated once, from all of it.
        let cut = raw_before.div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO task_samples (job_id, attempt, resolution_ms, at, cpu_pm, rss_kib, \
             mem_pm, disk_bytes, disk_pm) \
             SELECT job_id, attempt, 60000, (at / 60000) * 60000, CAST(AVG(cpu_pm) AS BIGINT), \
             MAX(rss_kib), CAST(AVG(mem_pm) AS BIGINT), MAX(disk_bytes), MAX(disk_pm) \
             FROM task_samples WHERE resolution_ms = 0 AND at < $1 \
             GROUP BY job_id, attempt, (at / 60000) ON CONFLICT DO NOTHING",
        )
        .bind(cut)
        .execute(&mut *tx)
        .await?;
        let raw = sqlx::query("DELETE FROM task_samples WHERE resolution_ms = 0 AND at < $1")
            .bind(cut)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let old = sqlx::query("DELETE FROM task_samples WHERE at < $1")
            .bind(drop_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let states =
            sqlx::query("DELETE FROM attempt_alarms WHERE state = 'OK' AND changed_at < $1")
                .bind(drop_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(raw + old + states)
    }
}
