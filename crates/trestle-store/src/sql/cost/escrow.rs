//! Escrow budgets: runnable jobs of their projects wait for a
//! reservation of their largest possible charge, which the budget loop
//! grants while it fits; the lease query skips them until then.

use super::super::SqlStore;
use crate::Result;
use crate::cost::EscrowCandidate;
use sqlx::Row;
use trestle_core::cost::budget::ScopeKind;
use trestle_core::{JobSpec, Resources};

pub(super) async fn candidates(
    s: &SqlStore,
    projects: &[String],
    limit: u32,
) -> Result<Vec<EscrowCandidate>> {
    if projects.is_empty() {
        return Ok(Vec::new());
    }
    let list = format!(",{},", projects.join(","));
    let rows = sqlx::query(
        "SELECT id, project, queue, cpus, mem_mib, gpus, max_attempts, spec, reason FROM jobs \
         WHERE state = 'RUNNABLE' AND $1 LIKE '%,' || project || ',%' \
         AND id NOT IN (SELECT job_id FROM budget_reservations) \
         ORDER BY priority DESC, id LIMIT $2",
    )
    .bind(list)
    .bind(i64::from(limit))
    .fetch_all(&s.read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let spec: String = r.try_get("spec")?;
        // A spec that cannot be read reserves as if it had no time limit.
        let timeout_secs = serde_json::from_str::<JobSpec>(&spec)
            .map(|s| s.timeout_secs)
            .unwrap_or(0);
        out.push(EscrowCandidate {
            job_id: r.try_get("id")?,
            project: r.try_get("project")?,
            queue: r.try_get("queue")?,
            resources: Resources {
                cpus: r.try_get::<i64, _>("cpus")?.max(0) as u32,
                mem_mib: r.try_get::<i64, _>("mem_mib")?.max(0) as u64,
                gpus: r.try_get::<i64, _>("gpus")?.max(0) as u32,
            },
            timeout_secs,
            max_attempts: r.try_get::<i64, _>("max_attempts")?.max(1) as u32,
            reason: r.try_get("reason")?,
        });
    }
    Ok(out)
}

pub(super) async fn reserve(
    s: &SqlStore,
    job_id: i64,
    kind: ScopeKind,
    scope: &str,
    amount: f64,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO budget_reservations (job_id, scope_kind, scope, amount, at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(job_id)
    .bind(kind.as_str())
    .bind(scope)
    .bind(amount)
    .bind(now)
    .execute(&s.write)
    .await?
    .rows_affected();
    if n > 0 {
        sqlx::query("UPDATE jobs SET reason = NULL WHERE id = $1 AND state = 'RUNNABLE'")
            .bind(job_id)
            .execute(&s.write)
            .await?;
    }
    Ok(n > 0)
}

pub(super) async fn reserved(s: &SqlStore, kind: ScopeKind, scope: &str) -> Result<f64> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(CASE WHEN r.amount > COALESCE(u.charged, 0.0) \
         THEN r.amount - COALESCE(u.charged, 0.0) ELSE 0.0 END), 0.0) AS held \
         FROM budget_reservations r JOIN jobs j ON j.id = r.job_id \
         LEFT JOIN (SELECT job_id, SUM(charge) AS charged FROM usage_records \
         WHERE job_id IN (SELECT job_id FROM budget_reservations WHERE scope_kind = $1 AND scope = $2) \
         GROUP BY job_id) u ON u.job_id = r.job_id \
         WHERE r.scope_kind = $1 AND r.scope = $2 \
         AND j.state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')",
    )
    .bind(kind.as_str())
    .bind(scope)
    .fetch_one(&s.read)
    .await?;
    Ok(row.try_get("held")?)
}

pub(super) async fn set_reason(s: &SqlStore, ids: &[i64], reason: Option<&str>) -> Result<()> {
    for id in ids {
        sqlx::query("UPDATE jobs SET reason = $2 WHERE id = $1 AND state = 'RUNNABLE'")
            .bind(*id)
            .bind(reason.map(str::to_string))
            .execute(&s.write)
            .await?;
    }
    Ok(())
}
