//! Workflows inside the transactions that change job states: the event of
//! every change, dependency resolution (met -> RUNNABLE, failed ->
//! CANCELLED `dependency-failed`, cascading), array children created
//! lazily in windows, and groups (arrays, pipelines) finishing when their
//! last child does. Everything here runs in the caller's transaction, so a
//! state change, its event and its consequences commit together.

use super::events;
use super::multirow::{id_list, ids_in, per_dialect};
use super::rows::{parse_spec, parse_state};
use super::{Dialect, Tx};
use crate::{Result, StoreError};
use sqlx::Row;
use std::collections::HashSet;
use trestle_core::JobSpec;
use trestle_core::JobState;
use trestle_core::batch::array::children_to_create;
use trestle_core::batch::deps::{DepKind, DepStatus, status};
use trestle_core::batch::progress::{GroupCounters, GroupStep, next_step, parents_in_lock_order};
use trestle_core::batch::workflow::{ChildCounts, JobKind};

/// To be called after a job's state changed in `tx`: records the event and
/// applies the consequences (dependents, the job's array or pipeline).
/// Returns how many jobs became runnable.
pub(super) async fn changed(tx: &mut Tx<'_>, job_id: i64, now: i64) -> Result<u64> {
    follow(tx, vec![job_id], now).await
}

macro_rules! open_deps_sql {
    ($d:ident) => {
        concat!(
            "SELECT DISTINCT dep_id FROM job_deps WHERE resolved = 0 AND dep_id IN ",
            ids_in!($d, 1)
        )
    };
}
per_dialect!(OPEN_DEPS = open_deps_sql);

/// [`changed`] for a batch of jobs: their events in one statement, then
/// the consequences, looked up only for the jobs that have open
/// dependents or a parent.
pub(super) async fn changed_many(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    ids: &[i64],
    now: i64,
) -> Result<u64> {
    let recorded = events::record_many(tx, dialect, ids, now).await?;
    let decided: Vec<i64> = recorded
        .iter()
        .filter(|(_, s, _)| *s == JobState::Running || s.is_terminal())
        .map(|(id, _, _)| *id)
        .collect();
    let with_deps = with_open_deps(tx, dialect, &decided).await?;
    let mut work = Vec::new();
    let mut made = 0;
    let mut ended_children = Vec::new();
    for (id, state, parent) in recorded {
        if with_deps.contains(&id) {
            made += resolve_dependents(tx, id, state, now, &mut work).await?;
        }
        if state.is_terminal()
            && let Some(p) = parent
        {
            ended_children.push(p);
        }
    }
    // The groups' counters, each parent once and in ascending id order:
    // every batch takes their locks in the same order (no deadlock between
    // two batches that end children of the same groups).
    for (parent, n) in parents_in_lock_order(ended_children) {
        made += child_done(tx, parent, n, now, &mut work).await?;
    }
    Ok(made + follow(tx, work, now).await?)
}

/// Which of `ids` other jobs wait for (open dependencies).
pub(super) async fn with_open_deps(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    ids: &[i64],
) -> Result<HashSet<i64>> {
    let mut with_deps = HashSet::new();
    if ids.is_empty() {
        return Ok(with_deps);
    }
    let rows = sqlx::query(dialect.pick(&OPEN_DEPS))
        .bind(id_list(ids))
        .fetch_all(&mut **tx)
        .await?;
    for r in &rows {
        with_deps.insert(r.try_get::<i64, _>("dep_id")?);
    }
    Ok(with_deps)
}

/// Records the events of the jobs in `work` and applies their
/// consequences, including the jobs those change in turn.
async fn follow(tx: &mut Tx<'_>, mut work: Vec<i64>, now: i64) -> Result<u64> {
    let mut made = 0;
    while let Some(id) = work.pop() {
        let Some((state, parent)) = events::record(tx, id, now).await? else {
            continue;
        };
        if state == JobState::Running || state.is_terminal() {
            made += resolve_dependents(tx, id, state, now, &mut work).await?;
        }
        if state.is_terminal()
            && let Some(p) = parent
        {
            made += child_done(tx, p, 1, now, &mut work).await?;
        }
    }
    Ok(made)
}

/// Whether a job (or any child of a group) has started.
async fn has_started(tx: &mut Tx<'_>, id: i64) -> Result<bool> {
    let row = sqlx::query("SELECT kind, started_at FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    if row.try_get::<Option<i64>, _>("started_at")?.is_some() {
        return Ok(true);
    }
    let kind: String = row.try_get("kind")?;
    if kind == "job" {
        return Ok(false);
    }
    Ok(sqlx::query(
        "SELECT 1 AS one FROM jobs WHERE parent_id = $1 AND started_at IS NOT NULL LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// Decides the open dependencies on `dep_id` given its state.
pub(super) async fn resolve_dependents(
    tx: &mut Tx<'_>,
    dep_id: i64,
    state: JobState,
    now: i64,
    work: &mut Vec<i64>,
) -> Result<u64> {
    let rows = sqlx::query("SELECT job_id, kind FROM job_deps WHERE dep_id = $1 AND resolved = 0")
        .bind(dep_id)
        .fetch_all(&mut **tx)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let needs_start = rows
        .iter()
        .any(|r| r.try_get::<String, _>("kind").is_ok_and(|k| k == "after"));
    let started = needs_start && has_started(tx, dep_id).await?;
    let mut made = 0;
    for r in &rows {
        let job: i64 = r.try_get("job_id")?;
        let kind_text: String = r.try_get("kind")?;
        let kind = DepKind::parse(&kind_text)
            .ok_or_else(|| StoreError::Corrupt(format!("dependency kind `{kind_text}`")))?;
        let decided = status(kind, state, started);
        if decided == DepStatus::Waiting {
            continue;
        }
        let n = sqlx::query(
            "UPDATE job_deps SET resolved = 1 \
             WHERE job_id = $1 AND dep_id = $2 AND kind = $3 AND resolved = 0",
        )
        .bind(job)
        .bind(dep_id)
        .bind(kind_text.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            continue;
        }
        match decided {
            DepStatus::Met => {
                let row = sqlx::query(
                    "UPDATE jobs SET deps_pending = deps_pending - 1 WHERE id = $1 \
                     RETURNING deps_pending, state, held",
                )
                .bind(job)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(row) = row
                    && row.try_get::<i64, _>("deps_pending")? <= 0
                    && row.try_get::<i64, _>("held")? == 0
                    && row.try_get::<String, _>("state")? == "PENDING"
                {
                    made += release(tx, job, now).await?;
                }
            }
            DepStatus::Never(reason) => {
                if cancel_waiting(tx, job, reason, now).await? {
                    work.push(job);
                }
            }
            DepStatus::Waiting => {}
        }
    }
    Ok(made)
}

/// A PENDING job whose dependencies are all met becomes RUNNABLE (an
/// array starts creating children). Returns how many jobs became runnable.
pub(super) async fn release(tx: &mut Tx<'_>, id: i64, now: i64) -> Result<u64> {
    let row = sqlx::query(
        "UPDATE jobs SET state = CASE WHEN kind = 'job' THEN 'RUNNABLE' ELSE 'RUNNING' END, \
         reason = NULL WHERE id = $1 AND state = 'PENDING' AND deps_pending <= 0 AND held = 0 \
         RETURNING kind",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(0);
    };
    events::record(tx, id, now).await?;
    let kind: String = row.try_get("kind")?;
    if kind == "array" {
        top_up(tx, id, now).await
    } else {
        Ok(1)
    }
}

/// Cancels a job that has not started (dependency failed, user cancel);
/// false if it was not waiting. The caller records the event.
pub(super) async fn cancel_waiting(
    tx: &mut Tx<'_>,
    id: i64,
    reason: &str,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE jobs SET state = 'CANCELLED', reason = $2, finished_at = $3 \
         WHERE id = $1 AND state IN ('SUBMITTED', 'PENDING', 'RUNNABLE')",
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// `ended` children of group `parent` finished: count them, then do what
/// the plan says ([`next_step`]): finish the group, create more children
/// of an array, or wait.
async fn child_done(
    tx: &mut Tx<'_>,
    parent: i64,
    ended: u64,
    now: i64,
    work: &mut Vec<i64>,
) -> Result<u64> {
    let row = sqlx::query(
        "UPDATE jobs SET group_active = group_active - $2 WHERE id = $1 AND state = 'RUNNING' \
         RETURNING kind, group_total, group_created, group_active, group_parallel, \
         cancel_requested, group_max_failures",
    )
    .bind(parent)
    .bind(ended as i64)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(0);
    };
    let max_failures = row.try_get::<i64, _>("group_max_failures")?;
    if max_failures > 0
        && row.try_get::<i64, _>("cancel_requested")? == 0
        && failed_children(tx, parent).await? >= max_failures
    {
        // The children cancelled here come back through `work`, each
        // ending this group's count as it is followed.
        stop_array(tx, parent, max_failures, now, work).await?;
        return Ok(0);
    }
    let count = |c: &str| -> Result<u64> { Ok(row.try_get::<i64, _>(c)?.max(0) as u64) };
    let parallel = row.try_get::<i64, _>("group_parallel")?;
    let counters = GroupCounters {
        array: row.try_get::<String, _>("kind")? == "array",
        total: count("group_total")?,
        created: count("group_created")?,
        active: count("group_active")?,
        parallel: (parallel > 0).then_some(parallel as u32),
        cancelled: row.try_get::<i64, _>("cancel_requested")? != 0,
    };
    match next_step(&counters) {
        GroupStep::Finish => {
            if finalize_group(tx, parent, now).await? {
                work.push(parent);
            }
            Ok(0)
        }
        GroupStep::Create(_) => top_up(tx, parent, now).await,
        GroupStep::Wait => Ok(0),
    }
}

/// How many children of `parent` failed.
async fn failed_children(tx: &mut Tx<'_>, parent: i64) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM jobs WHERE parent_id = $1 AND state = 'FAILED'",
    )
    .bind(parent)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}

/// Fail fast: an array with `max_failures` failed children creates no
/// more, its waiting children are cancelled with the reason (and pushed to
/// `work`, whose followers count them off the group), and its running
/// ones are stopped through the parent's flag at their next heartbeat.
async fn stop_array(
    tx: &mut Tx<'_>,
    parent: i64,
    max_failures: i64,
    now: i64,
    work: &mut Vec<i64>,
) -> Result<()> {
    sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
        .bind(parent)
        .execute(&mut **tx)
        .await?;
    let reason = format!("max-failures: {max_failures} children of array {parent} failed");
    let waiting = sqlx::query(
        "UPDATE jobs SET state = 'CANCELLED', reason = $2, finished_at = $3 \
         WHERE parent_id = $1 AND state IN ('SUBMITTED', 'PENDING', 'RUNNABLE') RETURNING id",
    )
    .bind(parent)
    .bind(&reason)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    for r in &waiting {
        work.push(r.try_get("id")?);
    }
    // Running children are not touched here (this transaction holds the
    // parent's row; a child finishing now holds its own and waits for the
    // parent's): their workers learn of the stop from the parent's flag at
    // their next heartbeat (`updates::HEARTBEAT`).
    if waiting.is_empty() {
        // Nothing comes back through `work`: finish now if nothing runs.
        let active: i64 = sqlx::query("SELECT group_active FROM jobs WHERE id = $1")
            .bind(parent)
            .fetch_one(&mut **tx)
            .await?
            .try_get("group_active")?;
        if active <= 0 && finalize_group(tx, parent, now).await? {
            work.push(parent);
        }
    }
    Ok(())
}

/// Children of a group per state; children of an array not created yet
/// count as RUNNABLE (PENDING while the array waits, CANCELLED once it
/// was cancelled).
pub(super) async fn child_counts(
    conn: &mut sqlx::AnyConnection,
    parent: i64,
    total: i64,
    created: i64,
    parent_state: JobState,
    cancelled: bool,
) -> Result<ChildCounts> {
    let rows =
        sqlx::query("SELECT state, COUNT(*) AS n FROM jobs WHERE parent_id = $1 GROUP BY state")
            .bind(parent)
            .fetch_all(&mut *conn)
            .await?;
    let mut c = ChildCounts {
        total: total.max(0) as u64,
        created: created.max(0) as u64,
        counts: Default::default(),
    };
    for r in &rows {
        let s: String = r.try_get("state")?;
        let n: i64 = r.try_get("n")?;
        *c.counts.entry(parse_state(&s)?).or_default() += n as u64;
    }
    let uncreated = (total - created).max(0) as u64;
    if uncreated > 0 {
        let as_state = if cancelled || parent_state.is_terminal() {
            JobState::Cancelled
        } else if parent_state == JobState::Pending {
            JobState::Pending
        } else {
            JobState::Runnable
        };
        *c.counts.entry(as_state).or_default() += uncreated;
    }
    Ok(c)
}

/// Ends a group whose children all ended: SUCCEEDED, FAILED or CANCELLED
/// from the children's states. True if it changed.
pub(super) async fn finalize_group(tx: &mut Tx<'_>, parent: i64, now: i64) -> Result<bool> {
    let row = sqlx::query(
        "SELECT group_total, group_created, cancel_requested, group_max_failures \
         FROM jobs WHERE id = $1",
    )
    .bind(parent)
    .fetch_one(&mut **tx)
    .await?;
    let total: i64 = row.try_get("group_total")?;
    let created: i64 = row.try_get("group_created")?;
    let cancelled = row.try_get::<i64, _>("cancel_requested")? != 0;
    let max_failures = row.try_get::<i64, _>("group_max_failures")?;
    let counts = child_counts(tx, parent, total, created, JobState::Running, cancelled).await?;
    let state = counts.summary();
    let failed = counts.get(JobState::Failed);
    let reason = match state {
        JobState::Failed if max_failures > 0 && failed >= max_failures as u64 => Some(format!(
            "max-failures: stopped after {failed} of {} children failed (max_failures {max_failures}); {} cancelled",
            counts.total,
            counts.get(JobState::Cancelled)
        )),
        JobState::Failed => Some(format!(
            "{} of {} children failed",
            counts.get(JobState::Failed),
            counts.total
        )),
        JobState::Cancelled if cancelled => Some("cancelled".to_string()),
        JobState::Cancelled => Some(format!(
            "{} of {} children were cancelled",
            counts.get(JobState::Cancelled),
            counts.total
        )),
        _ => None,
    };
    let n = sqlx::query(
        "UPDATE jobs SET state = $2, reason = $3, finished_at = $4 \
         WHERE id = $1 AND state = 'RUNNING'",
    )
    .bind(parent)
    .bind(state.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Creates the next children of an array, as many as its window allows.
/// Returns how many.
pub(super) async fn top_up(tx: &mut Tx<'_>, parent: i64, now: i64) -> Result<u64> {
    let row = sqlx::query(
        "SELECT spec, state, group_total, group_created, group_active, group_parallel, \
         cancel_requested FROM jobs WHERE id = $1",
    )
    .bind(parent)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(0);
    };
    if row.try_get::<String, _>("state")? != "RUNNING"
        || row.try_get::<i64, _>("cancel_requested")? != 0
    {
        return Ok(0);
    }
    let spec: JobSpec = match parse_spec(&row.try_get::<String, _>("spec")?) {
        Ok(s) => s,
        Err(e) => {
            // No children can be made from a spec that cannot be read; the
            // rest of the transaction goes on.
            tracing::error!(job = parent, error = %e, "an array's stored spec cannot be read; no more children are created");
            return Ok(0);
        }
    };
    let Some(array) = spec.flow.array else {
        return Ok(0);
    };
    let created = row.try_get::<i64, _>("group_created")?.max(0) as u64;
    let active = row.try_get::<i64, _>("group_active")?.max(0) as u64;
    let total = row.try_get::<i64, _>("group_total")?.max(0) as u64;
    let n = children_to_create(total, created, active, array.parallel);
    if n == 0 {
        return Ok(0);
    }
    let before: i64 = sqlx::query("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS m FROM jobs")
        .fetch_one(&mut **tx)
        .await?
        .try_get("m")?;
    for b in array.batches(created, created + n) {
        // The child's spec is the parent's with its array task appended
        // (the parent's JSON is an object, so it ends with `}`).
        sqlx::query(
            "WITH RECURSIVE seq(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM seq WHERE k + 1 < $2) \
             INSERT INTO jobs (name, queue, state, spec, cpus, mem_mib, gpus, priority, \
             max_attempts, submitted_at, parent_id, array_index, kind, owner, project) \
             SELECT p.name, p.queue, 'RUNNABLE', \
             substr(p.spec, 1, length(p.spec) - 1) || ',\"array_task\":{\"parent\":' \
             || CAST(p.id AS TEXT) || ',\"index\":' || CAST($3 + $4 * seq.k AS TEXT) || '}}', \
             p.cpus, p.mem_mib, p.gpus, p.priority, p.max_attempts, p.submitted_at, p.id, \
             $3 + $4 * seq.k, 'job', p.owner, p.project FROM jobs p, seq WHERE p.id = $1 \
             ORDER BY seq.k",
        )
        .bind(parent)
        .bind(i64::from(b.count))
        .bind(i64::from(b.first))
        .bind(i64::from(b.step))
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE jobs SET group_created = group_created + $2, group_active = group_active + $2 \
         WHERE id = $1",
    )
    .bind(parent)
    .bind(n as i64)
    .execute(&mut **tx)
    .await?;
    events::record_children(tx, parent, before, now).await?;
    Ok(n)
}

/// Sets up the workflow parts of freshly inserted jobs (in the submitting
/// transaction): dependencies, arrays, initial state and first event.
pub(super) async fn after_submit(
    tx: &mut Tx<'_>,
    dialect: Dialect,
    specs: &[JobSpec],
    ids: &[i64],
    now: i64,
) -> Result<u64> {
    let mut made = 0;
    // Plain jobs are RUNNABLE already: their events go in one statement.
    let mut plain = Vec::with_capacity(ids.len());
    for (spec, &id) in specs.iter().zip(ids) {
        let kind = spec.flow.kind();
        if kind == JobKind::Job && spec.flow.after.is_empty() {
            plain.push(id);
            continue;
        }
        made += setup(tx, id, kind, spec, None, now).await?;
    }
    events::record_many(tx, dialect, &plain, now).await?;
    Ok(made)
}

/// Records a job's dependencies and kind, and moves it to its first state.
pub(super) async fn setup(
    tx: &mut Tx<'_>,
    id: i64,
    kind: JobKind,
    spec: &JobSpec,
    parent: Option<i64>,
    now: i64,
) -> Result<u64> {
    let mut pending: i64 = 0;
    let mut never: Option<&'static str> = None;
    for d in &spec.flow.after {
        let row = sqlx::query("SELECT state FROM jobs WHERE id = $1")
            .bind(d.job)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("dependency job {}", d.job)));
        };
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let started = d.kind == DepKind::After && has_started(tx, d.job).await?;
        let decided = status(d.kind, state, started);
        sqlx::query(
            "INSERT INTO job_deps (job_id, dep_id, kind, resolved) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(d.job)
        .bind(d.kind.as_str())
        .bind(i64::from(decided != DepStatus::Waiting))
        .execute(&mut **tx)
        .await?;
        match decided {
            DepStatus::Waiting => pending += 1,
            DepStatus::Met => {}
            DepStatus::Never(r) => never = never.or(Some(r)),
        }
    }
    let (total, parallel, max_failures) = match &spec.flow.array {
        Some(a) if kind == JobKind::Array => (
            a.len() as i64,
            i64::from(a.parallel.unwrap_or(0)),
            i64::from(a.max_failures.unwrap_or(0)),
        ),
        _ => (0, 0, 0),
    };
    sqlx::query(
        "UPDATE jobs SET kind = $2, parent_id = $3, deps_pending = $4, group_total = $5, \
         group_parallel = $6, group_max_failures = $7, state = 'PENDING' WHERE id = $1",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(parent)
    .bind(pending)
    .bind(total)
    .bind(parallel)
    .bind(max_failures)
    .execute(&mut **tx)
    .await?;
    if let Some(reason) = never {
        cancel_waiting(tx, id, reason, now).await?;
        return changed(tx, id, now).await;
    }
    if pending > 0 {
        events::record(tx, id, now).await?;
        return Ok(0);
    }
    release(tx, id, now).await
}
