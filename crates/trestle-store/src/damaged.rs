//! Rows that cannot be decoded. One damaged row must never take down a
//! listing, the scheduler or the dashboard: the store skips it, logs it
//! once, counts it, and keeps its id here for the admins' view and the
//! metrics. The row itself is left as it is (nothing is deleted), so an
//! admin can look at it and repair it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most damaged rows remembered by id (the count goes on past it).
const REMEMBERED: usize = 1000;

/// A damaged job row as the admins see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DamagedRow {
    /// The job id.
    pub job_id: i64,
    /// What could not be decoded (for admins; never shown to users).
    pub problem: String,
    /// When this server first met it (ms since the epoch).
    pub first_seen: i64,
}

/// Damaged rows this process has met.
#[derive(Debug, Default)]
pub struct DamagedRows {
    rows: Mutex<BTreeMap<i64, DamagedRow>>,
    skipped: AtomicU64,
}

impl DamagedRows {
    /// Records that job `job_id` was skipped because of `problem`; logs
    /// the first time a row is met.
    pub fn report(&self, job_id: i64, problem: &str, now: i64) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if rows.contains_key(&job_id) || rows.len() >= REMEMBERED {
            return;
        }
        tracing::error!(
            job = job_id,
            problem,
            "a stored job cannot be decoded; it is skipped (an admin can see it under /api/v1/admin/damaged-jobs)"
        );
        rows.insert(
            job_id,
            DamagedRow {
                job_id,
                problem: problem.to_string(),
                first_seen: now,
            },
        );
    }

    /// The damaged rows met so far, by id.
    pub fn rows(&self) -> Vec<DamagedRow> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.values().cloned().collect()
    }

    /// How many times a damaged row was skipped (a metric).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_remembered_once_and_every_skip_counted() {
        let d = DamagedRows::default();
        d.report(7, "job spec: duplicate field", 10);
        d.report(7, "job spec: duplicate field", 20);
        d.report(3, "unknown job state `X`", 30);
        let rows = d.rows();
        assert_eq!(
            rows.iter().map(|r| r.job_id).collect::<Vec<_>>(),
            vec![3, 7]
        );
        assert_eq!(rows[1].first_seen, 10);
        assert_eq!(d.skipped(), 3);
    }
}
