//! Decoding rows into API views.

use crate::{DamagedRows, Result, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::api::workflow::FlowView;
use trestle_core::api::{AttemptView, JobView, WorkerView};
use trestle_core::batch::workflow::JobKind;
use trestle_core::{AttemptReason, AttemptState, Capacity, JobSpec, JobState};

/// Columns selected for a [`JobView`], as a literal for `concat!`.
macro_rules! job_columns {
    () => {
        "id, name, queue, state, reason, attempts_used, max_attempts, exit_code, \
         lease_worker, submitted_at, started_at, finished_at, spec, kind, parent_id, array_index"
    };
}
pub(super) use job_columns;

pub(crate) use trestle_core::clock::now_ms;

pub(super) fn parse_state(s: &str) -> Result<JobState> {
    JobState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown job state `{s}`")))
}

pub(super) fn parse_spec(s: &str) -> Result<JobSpec> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("job spec: {e}")))
}

pub(super) fn job(row: &AnyRow) -> Result<JobView> {
    let state: String = row.try_get("state")?;
    let spec: String = row.try_get("spec")?;
    let kind: String = row.try_get("kind")?;
    Ok(JobView {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        state: parse_state(&state)?,
        reason: row.try_get("reason")?,
        attempts_used: row.try_get::<i64, _>("attempts_used")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        exit_code: row
            .try_get::<Option<i64>, _>("exit_code")?
            .map(|c| c as i32),
        worker: row.try_get("lease_worker")?,
        submitted_at: row.try_get("submitted_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        spec: parse_spec(&spec)?,
        attempts: Vec::new(),
        abridged: false,
        env_hidden: false,
        alarms: Vec::new(),
        flow: FlowView {
            kind: JobKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown job kind `{kind}`")))?,
            parent: row.try_get("parent_id")?,
            array_index: row
                .try_get::<Option<i64>, _>("array_index")?
                .map(|i| i as u32),
            ..FlowView::default()
        },
    })
}

/// Decodes the rows of a listing; a row that cannot be decoded is
/// reported to `damaged` and skipped, so one bad row never hides the rest.
pub(super) fn jobs(rows: &[AnyRow], damaged: &DamagedRows) -> Result<Vec<JobView>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        match job(r) {
            Ok(j) => out.push(j),
            Err(e) => {
                // Without even an id there is nothing to skip: fail loudly.
                let id: i64 = r.try_get("id")?;
                damaged.report(id, &e.to_string(), now_ms());
            }
        }
    }
    Ok(out)
}

/// Decodes one job row; a row that cannot be decoded is reported and
/// answered as [`StoreError::Damaged`].
pub(super) fn one_job(row: &AnyRow, damaged: &DamagedRows) -> Result<JobView> {
    job(row).map_err(|e| match row.try_get::<i64, _>("id") {
        Ok(id) => {
            damaged.report(id, &e.to_string(), now_ms());
            StoreError::Damaged(id)
        }
        Err(_) => e,
    })
}

pub(super) fn attempt(row: &AnyRow) -> Result<AttemptView> {
    let state: String = row.try_get("state")?;
    let reason: Option<String> = row.try_get("reason")?;
    Ok(AttemptView {
        attempt: row.try_get::<i64, _>("attempt")? as u32,
        worker: row.try_get("worker_id")?,
        state: AttemptState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown attempt state `{state}`")))?,
        reason: reason.as_deref().and_then(AttemptReason::parse),
        exit_code: row
            .try_get::<Option<i64>, _>("exit_code")?
            .map(|c| c as i32),
        leased_at: row.try_get("leased_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        cpu_ms: row.try_get("cpu_ms")?,
        max_rss_kib: row.try_get("max_rss_kib")?,
        efficiency: None,
    })
}

pub(super) fn worker(row: &AnyRow) -> Result<WorkerView> {
    Ok(WorkerView {
        id: row.try_get("id")?,
        host: row.try_get("host")?,
        pid: row.try_get::<i64, _>("pid")? as u32,
        capacity: Capacity {
            cpus: row.try_get::<i64, _>("cpus")? as u32,
            mem_mib: row.try_get::<i64, _>("mem_mib")? as u64,
            gpus: row.try_get::<i64, _>("gpus")? as u32,
        },
        compute_env: row.try_get("compute_env")?,
        instance: row.try_get("instance")?,
        isolation: row
            .try_get::<Option<String>, _>("isolation")?
            .and_then(|t| serde_json::from_str(&t).ok()),
        running_jobs: Vec::new(),
        started_at: row.try_get("started_at")?,
        last_heartbeat: row.try_get("last_heartbeat")?,
        tunnel: false,
    })
}
