//! Log limits: after a batch of log chunks is stored, each attempt's stored
//! size is counted, and an attempt over its queue's limit loses its oldest
//! chunks to one marker ([`trestle_core::batch::logs`] decides what goes).
//! Logs under the smallest limit cost one counter update per attempt and
//! batch.

use super::{SqlStore, Tx};
use crate::Result;
use sqlx::Row;
use std::collections::BTreeMap;
use trestle_core::batch::logs::{LogLimits, marker, plan_trim};

/// An attempt's chunks with their sizes in bytes, newest first.
const CHUNK_SIZES: [&str; 2] = [
    "SELECT seq, length(CAST(data AS BLOB)) AS n FROM log_chunks \
     WHERE job_id = $1 AND attempt = $2 ORDER BY seq DESC",
    "SELECT seq, CAST(octet_length(data) AS BIGINT) AS n FROM log_chunks \
     WHERE job_id = $1 AND attempt = $2 ORDER BY seq DESC",
];

impl SqlStore {
    /// Replaces the log limits (set by the service from its queue settings).
    pub fn set_log_limits_now(&self, limits: LogLimits) {
        *self.log_limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    fn log_limits(&self) -> LogLimits {
        self.log_limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Counts the stored chunks `(job, attempt, seq, data)` and trims every
    /// attempt that went over its limit.
    pub(super) async fn limit_logs(
        &self,
        tx: &mut Tx<'_>,
        chunks: &[(i64, i64, i64, &str)],
    ) -> Result<()> {
        let mut added: BTreeMap<(i64, i64), u64> = BTreeMap::new();
        for (job, attempt, _, data) in chunks {
            *added.entry((*job, *attempt)).or_default() += data.len() as u64;
        }
        let limits = self.log_limits();
        let smallest = limits.smallest();
        for ((job, attempt), n) in added {
            let row = sqlx::query(
                "UPDATE attempts SET log_bytes = log_bytes + $3 WHERE job_id = $1 AND attempt = $2 \
                 RETURNING log_bytes, log_dropped",
            )
            .bind(job)
            .bind(attempt)
            .bind(n as i64)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { continue };
            let stored = row.try_get::<i64, _>("log_bytes")? as u64;
            if stored <= smallest {
                continue;
            }
            let dropped_before = row.try_get::<i64, _>("log_dropped")? as u64;
            let queue: String = sqlx::query("SELECT queue FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&mut **tx)
                .await?
                .try_get("queue")?;
            let limit = limits.of(&queue);
            if stored > limit {
                self.trim_log(tx, job, attempt, limit, dropped_before)
                    .await?;
            }
        }
        Ok(())
    }

    async fn trim_log(
        &self,
        tx: &mut Tx<'_>,
        job: i64,
        attempt: i64,
        limit: u64,
        dropped_before: u64,
    ) -> Result<()> {
        let rows = sqlx::query(self.dialect.pick(&CHUNK_SIZES))
            .bind(job)
            .bind(attempt)
            .fetch_all(&mut **tx)
            .await?;
        let mut chunks = Vec::with_capacity(rows.len());
        for r in &rows {
            chunks.push((
                r.try_get::<i64, _>("seq")?,
                r.try_get::<i64, _>("n")? as u64,
            ));
        }
        let Some(trim) = plan_trim(&chunks, limit) else {
            // Counted high (a chunk sent twice is stored once): recount.
            let actual: u64 = chunks.iter().map(|(_, n)| n).sum();
            sqlx::query("UPDATE attempts SET log_bytes = $3 WHERE job_id = $1 AND attempt = $2")
                .bind(job)
                .bind(attempt)
                .bind(actual as i64)
                .execute(&mut **tx)
                .await?;
            return Ok(());
        };
        // The oldest chunk is an earlier marker, if there was one: it is not
        // output.
        let old_marker = if dropped_before > 0 {
            marker(dropped_before, limit).len() as u64
        } else {
            0
        };
        let dropped = dropped_before + trim.dropped.saturating_sub(old_marker);
        let text = marker(dropped, limit);
        sqlx::query("DELETE FROM log_chunks WHERE job_id = $1 AND attempt = $2 AND seq < $3")
            .bind(job)
            .bind(attempt)
            .bind(trim.marker_seq)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE log_chunks SET data = $4 WHERE job_id = $1 AND attempt = $2 AND seq = $3",
        )
        .bind(job)
        .bind(attempt)
        .bind(trim.marker_seq)
        .bind(&text)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE attempts SET log_bytes = $3, log_dropped = $4 WHERE job_id = $1 AND attempt = $2",
        )
        .bind(job)
        .bind(attempt)
        .bind((trim.kept + text.len() as u64) as i64)
        .bind(dropped as i64)
        .execute(&mut **tx)
        .await?;
        tracing::debug!(
            job,
            attempt,
            dropped,
            "log over its limit: oldest output dropped"
        );
        Ok(())
    }
}
