//! The job event outbox: every state change is recorded, in the
//! transaction that makes it, as a row of `job_events`; readers page
//! through them by id (`GET /api/v1/events`).

use super::multirow::{by_id, id_list, ids_in, per_dialect};
use super::rows::parse_state;
use super::{Dialect, SqlStore, Tx};
use crate::{EventFilter, Result};
use sqlx::Row;
use trestle_core::JobState;
use trestle_core::api::workflow::EventView;

/// Most events one read returns.
const MAX_EVENTS: u32 = 1000;

/// Records the job's current state as an event and returns it with the
/// job's parent; `None` if the job does not exist.
pub(super) async fn record(
    tx: &mut Tx<'_>,
    job_id: i64,
    now: i64,
) -> Result<Option<(JobState, Option<i64>)>> {
    let Some(row) = sqlx::query(
        "INSERT INTO job_events (job_id, parent_id, queue, owner, project, state, reason, \
         exit_code, at) \
         SELECT id, parent_id, queue, owner, project, state, reason, exit_code, $2 FROM jobs \
         WHERE id = $1 \
         RETURNING state, parent_id",
    )
    .bind(job_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get("state")?;
    Ok(Some((parse_state(&state)?, row.try_get("parent_id")?)))
}

macro_rules! record_many_sql {
    ($d:ident) => {
        concat!(
            "INSERT INTO job_events (job_id, parent_id, queue, owner, project, state, reason, \
             exit_code, at) \
             SELECT id, parent_id, queue, owner, project, state, reason, exit_code, $2 FROM jobs",
            by_id!($d),
            " WHERE id IN ",
            ids_in!($d, 1),
            " ORDER BY id RETURNING job_id, state, parent_id"
        )
    };
}
per_dialect!(RECORD_MANY = record_many_sql);

/// [`record`] for many jobs in one statement; returns `(job, state,
/// parent)` of each job that exists, in no particular order.
pub(super) async fn record_many(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    ids: &[i64],
    now: i64,
) -> Result<Vec<(i64, JobState, Option<i64>)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(dialect.pick(&RECORD_MANY))
        .bind(id_list(ids))
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.try_get("state")?;
            Ok((
                r.try_get("job_id")?,
                parse_state(&state)?,
                r.try_get("parent_id")?,
            ))
        })
        .collect()
}

/// Records an event for every child of `parent` with an id above `after`
/// (children just created in this transaction).
pub(super) async fn record_children(
    tx: &mut Tx<'_>,
    parent: i64,
    after: i64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO job_events (job_id, parent_id, queue, owner, project, state, reason, \
         exit_code, at) \
         SELECT id, parent_id, queue, owner, project, state, reason, exit_code, $3 FROM jobs \
         WHERE parent_id = $1 AND id > $2 ORDER BY id",
    )
    .bind(parent)
    .bind(after)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SqlStore {
    /// [`crate::WorkflowStore::events`].
    pub(super) async fn events(&self, f: &EventFilter) -> Result<Vec<EventView>> {
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
        let rows = sqlx::query(
            "SELECT id, job_id, parent_id, queue, state, reason, exit_code, at FROM job_events \
             WHERE id > $1 \
             AND (CAST($2 AS BIGINT) IS NULL OR job_id = $2 OR parent_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR queue = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR $4 LIKE '%,' || state || ',%') \
             AND (CAST($6 AS TEXT) IS NULL OR owner = $6 OR $7 LIKE '%,' || project || ',%') \
             AND (CAST($8 AS BIGINT) IS NULL OR id <= $8) \
             ORDER BY id LIMIT $5",
        )
        .bind(f.after)
        .bind(f.job)
        .bind(f.queue.clone())
        .bind(states)
        .bind(i64::from(f.limit.clamp(1, MAX_EVENTS)))
        .bind(f.visible_to.clone())
        .bind(format!(",{},", f.visible_projects.join(",")))
        .bind(f.until)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(EventView {
                    id: r.try_get("id")?,
                    job_id: r.try_get("job_id")?,
                    parent: r.try_get("parent_id")?,
                    queue: r.try_get("queue")?,
                    state: parse_state(&state)?,
                    reason: r.try_get("reason")?,
                    exit_code: r.try_get::<Option<i64>, _>("exit_code")?.map(|c| c as i32),
                    time: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// The id of the newest event (0 when there is none).
    pub(super) async fn last_event_id(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS n FROM job_events")
                .fetch_one(&self.read)
                .await?
                .try_get("n")?,
        )
    }
}
