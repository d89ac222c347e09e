//! Budgets, their marks (each threshold once per period, recorded with
//! its notification event in one transaction), admins' per-job
//! overrides, and holding the runnable jobs of over-budget projects.

use super::super::{SqlStore, events, flow};
use crate::cost::BudgetRecord;
use crate::{Result, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::cost::budget::{BudgetSpec, ScopeKind};
use trestle_core::notify::event::NewEvent;

/// The reason held jobs carry.
const REASON: &str = trestle_core::batch::why::OVER_BUDGET;

fn record(r: &AnyRow) -> Result<BudgetRecord> {
    let spec: String = r.try_get("spec")?;
    Ok(BudgetRecord {
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("budget: {e}")))?,
        blocked_at: r.try_get("blocked_at")?,
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) async fn put(s: &SqlStore, spec: &BudgetSpec, by: &str, now: i64) -> Result<()> {
    let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO budgets (scope_kind, scope, spec, enforcement, updated_by, updated_at) \
         VALUES ($1, $2, $3, $6, $4, $5) ON CONFLICT (scope_kind, scope) DO UPDATE \
         SET spec = excluded.spec, enforcement = excluded.enforcement, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(spec.scope_kind.as_str())
    .bind(spec.scope.as_str())
    .bind(json)
    .bind(by)
    .bind(now)
    .bind(spec.enforcement.as_str())
    .execute(&s.write)
    .await?;
    Ok(())
}

pub(super) async fn get(
    s: &SqlStore,
    kind: ScopeKind,
    scope: &str,
) -> Result<Option<BudgetRecord>> {
    let row = sqlx::query(
        "SELECT spec, blocked_at, updated_by, updated_at FROM budgets \
         WHERE scope_kind = $1 AND scope = $2",
    )
    .bind(kind.as_str())
    .bind(scope)
    .fetch_optional(&s.read)
    .await?;
    row.as_ref().map(record).transpose()
}

pub(super) async fn all(s: &SqlStore) -> Result<Vec<BudgetRecord>> {
    let rows = sqlx::query(
        "SELECT spec, blocked_at, updated_by, updated_at FROM budgets \
         ORDER BY scope_kind, scope LIMIT 10000",
    )
    .fetch_all(&s.read)
    .await?;
    rows.iter().map(record).collect()
}

pub(super) async fn delete(s: &SqlStore, kind: ScopeKind, scope: &str) -> Result<bool> {
    let n = sqlx::query("DELETE FROM budgets WHERE scope_kind = $1 AND scope = $2")
        .bind(kind.as_str())
        .bind(scope)
        .execute(&s.write)
        .await?
        .rows_affected();
    Ok(n > 0)
}

pub(super) async fn set_blocked(
    s: &SqlStore,
    kind: ScopeKind,
    scope: &str,
    blocked_at: Option<i64>,
) -> Result<()> {
    sqlx::query("UPDATE budgets SET blocked_at = $3 WHERE scope_kind = $1 AND scope = $2")
        .bind(kind.as_str())
        .bind(scope)
        .bind(blocked_at)
        .execute(&s.write)
        .await?;
    Ok(())
}

pub(super) async fn marks(
    s: &SqlStore,
    kind: ScopeKind,
    scope: &str,
    period_start: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT mark FROM budget_marks WHERE scope_kind = $1 AND scope = $2 \
         AND period_start = $3",
    )
    .bind(kind.as_str())
    .bind(scope)
    .bind(period_start)
    .fetch_all(&s.read)
    .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("mark")?))
        .collect()
}

pub(super) async fn record_mark(
    s: &SqlStore,
    kind: ScopeKind,
    scope: &str,
    period_start: i64,
    mark: &str,
    spend: f64,
    event: &NewEvent,
) -> Result<bool> {
    let mut tx = s.write.begin().await?;
    let n = sqlx::query(
        "INSERT INTO budget_marks (scope_kind, scope, period_start, mark, spend, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(scope)
    .bind(period_start)
    .bind(mark)
    .bind(spend)
    .bind(event.time)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    super::super::notify::record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn override_job(s: &SqlStore, job_id: i64, by: &str, now: i64) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO budget_overrides (job_id, by_user, at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(job_id)
    .bind(by)
    .bind(now)
    .execute(&s.write)
    .await?
    .rows_affected();
    Ok(n > 0)
}

pub(super) async fn hold(s: &SqlStore, projects: &[String], now: i64) -> Result<(u64, u64)> {
    let list = format!(",{},", projects.join(","));
    let mut tx = s.write.begin().await?;
    let mut held = 0;
    if !projects.is_empty() {
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'PENDING', held = 1, reason = $2 \
             WHERE state = 'RUNNABLE' AND kind = 'job' AND $1 LIKE '%,' || project || ',%' \
             AND id NOT IN (SELECT job_id FROM budget_overrides) RETURNING id",
        )
        .bind(list.as_str())
        .bind(REASON)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            events::record(&mut tx, r.try_get("id")?, now).await?;
        }
        held = rows.len() as u64;
    }
    let rows = sqlx::query(
        "UPDATE jobs SET held = 0, reason = NULL WHERE held = 1 AND state = 'PENDING' \
         AND reason = $2 AND (NOT ($1 LIKE '%,' || project || ',%') \
         OR id IN (SELECT job_id FROM budget_overrides)) RETURNING id",
    )
    .bind(list.as_str())
    .bind(REASON)
    .fetch_all(&mut *tx)
    .await?;
    let mut released = 0;
    for r in &rows {
        released += flow::release(&mut tx, r.try_get("id")?, now).await?;
    }
    tx.commit().await?;
    Ok((held, released))
}
