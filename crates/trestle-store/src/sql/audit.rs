//! The audit trail: batched appends, filtered and grouped queries, and the
//! retention purge. Every query is constant SQL text; optional filters are
//! `CAST($n AS ...) IS NULL OR ...` so unused ones match everything.

use super::SqlStore;
use crate::Result;
use crate::identity::AuditStore;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::audit::{AuditAnswer, AuditFilter, AuditGroup, AuditRecord, GroupBy};

/// The WHERE clause shared by every audit query ($1-$11, $13).
macro_rules! audit_where {
    () => {
        " FROM audit WHERE (CAST($1 AS TEXT) IS NULL OR user_name = $1 OR token_id = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR action LIKE $3) \
         AND (CAST($4 AS TEXT) IS NULL OR resource = $4) \
         AND (CAST($5 AS TEXT) IS NULL OR source_ip = $5) \
         AND (CAST($6 AS TEXT) IS NULL OR method = $6) \
         AND (CAST($7 AS BIGINT) IS NULL OR at >= $7) \
         AND (CAST($8 AS BIGINT) IS NULL OR at < $8) \
         AND (CAST($9 AS BIGINT) IS NULL OR status >= $9) \
         AND (CAST($10 AS BIGINT) IS NULL OR status <= $10) \
         AND ($11 = 0 OR method NOT IN ('GET', 'HEAD')) \
         AND ($13 = 0 OR action NOT LIKE 'worker.%')"
    };
}

/// Grouped selects, one per grouping column.
macro_rules! grouped {
    ($key:literal) => {
        concat!(
            "SELECT ",
            $key,
            " AS key, CAST(SUM(count) AS BIGINT) AS n, MIN(at) AS first, MAX(at) AS last",
            audit_where!(),
            " GROUP BY ",
            $key,
            " ORDER BY n DESC, key LIMIT $12"
        )
    };
}

const LIST: &str = concat!(
    "SELECT id, at, user_name, token_id, source_ip, method, path, action, resource, status, \
     latency_us, user_agent, count",
    audit_where!(),
    " ORDER BY at DESC, id DESC LIMIT $12"
);
const BY_PRINCIPAL: &str = grouped!("COALESCE(user_name, token_id, '-')");
const BY_IP: &str = grouped!("source_ip");
const BY_ACTION: &str = grouped!("action");
const BY_RESOURCE: &str = grouped!("COALESCE(resource, '-')");

fn record(r: &AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        user: r.try_get("user_name")?,
        token: r.try_get("token_id")?,
        source_ip: r.try_get("source_ip")?,
        method: r.try_get("method")?,
        path: r.try_get("path")?,
        action: r.try_get("action")?,
        resource: r.try_get("resource")?,
        status: r.try_get::<i64, _>("status")? as u16,
        latency_us: r.try_get("latency_us")?,
        user_agent: r.try_get("user_agent")?,
        count: r.try_get::<i64, _>("count")? as u32,
    })
}

/// An action filter: exact, or a prefix when it ends in `.` or `*`.
fn action_filter(a: Option<&str>) -> (Option<String>, Option<String>) {
    match a {
        None => (None, None),
        Some(a) if a.ends_with('*') => (None, Some(format!("{}%", a.trim_end_matches('*')))),
        Some(a) if a.ends_with('.') => (None, Some(format!("{a}%"))),
        Some(a) => (Some(a.to_string()), None),
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for r in records {
            sqlx::query(
                "INSERT INTO audit (at, user_name, token_id, source_ip, method, path, action, \
                 resource, status, latency_us, user_agent, count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(r.at)
            .bind(r.user.clone())
            .bind(r.token.clone())
            .bind(r.source_ip.as_str())
            .bind(r.method.as_str())
            .bind(r.path.as_str())
            .bind(r.action.as_str())
            .bind(r.resource.clone())
            .bind(i64::from(r.status))
            .bind(r.latency_us)
            .bind(r.user_agent.clone())
            .bind(i64::from(r.count))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn query_audit(&self, f: &AuditFilter) -> Result<AuditAnswer> {
        let sql = match f.group_by {
            None => LIST,
            Some(GroupBy::Principal) => BY_PRINCIPAL,
            Some(GroupBy::SourceIp) => BY_IP,
            Some(GroupBy::Action) => BY_ACTION,
            Some(GroupBy::Resource) => BY_RESOURCE,
        };
        let (action, action_like) = action_filter(f.action.as_deref());
        let rows = sqlx::query(sql)
            .bind(f.principal.clone())
            .bind(action)
            .bind(action_like)
            .bind(f.resource.clone())
            .bind(f.source_ip.clone())
            .bind(f.method.clone())
            .bind(f.since)
            .bind(f.until)
            .bind(f.status_min.map(i64::from))
            .bind(f.status_max.map(i64::from))
            .bind(i64::from(f.changes_only))
            .bind(i64::from(f.limit.clamp(1, 10_000)))
            .bind(i64::from(f.people_only))
            .fetch_all(&self.read)
            .await?;
        let mut answer = AuditAnswer::default();
        if f.group_by.is_some() {
            for r in &rows {
                answer.groups.push(AuditGroup {
                    key: r.try_get("key")?,
                    count: r.try_get::<i64, _>("n")? as u64,
                    first: r.try_get("first")?,
                    last: r.try_get("last")?,
                });
            }
        } else {
            answer.records = rows.iter().map(record).collect::<Result<_>>()?;
        }
        Ok(answer)
    }

    async fn purge_audit(&self, before: i64) -> Result<u64> {
        // In chunks, so the single SQLite writer is never held for long.
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM audit WHERE id IN \
                 (SELECT id FROM audit WHERE at < $1 ORDER BY id LIMIT 5000)",
            )
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected();
            total += n;
            if n < 5000 {
                return Ok(total);
            }
        }
    }
}
