//! Workflow operations of the SQL store: pipelines, cancelling jobs and
//! whole groups, jobs recorded as rejected (drop folders), holding the
//! jobs of disabled queues, and the resolver tick that is the safety net
//! for everything the same-transaction resolution in `flow` decides.

use super::flow;
use super::jobs::insert_job;
use super::rows::parse_state;
use super::{SqlStore, Tx, events};
use crate::{EventFilter, Result, WorkflowStore, WorkflowTick};
use async_trait::async_trait;
use sqlx::Row;
use trestle_core::api::JobView;
use trestle_core::api::workflow::EventView;
use trestle_core::batch::deps::{DepKind, Dependency};
use trestle_core::batch::pipeline::ValidPipeline;
use trestle_core::{JobSpec, JobState};

/// Most rows one resolver tick looks at per kind of work.
const TICK_LIMIT: i64 = 500;

impl SqlStore {
    /// [`WorkflowStore::submit_pipeline`].
    pub(super) async fn submit_pipeline(
        &self,
        p: &ValidPipeline,
        now: i64,
    ) -> Result<(i64, Vec<i64>)> {
        let mut tx = self.write.begin().await?;
        let specs = p.steps.iter().map(|s| &s.spec).chain([&p.parent]);
        super::uploads::seal_inputs(&mut tx, specs, now).await?;
        let parent = insert_job(&mut tx, self.dialect, &p.parent, now).await?;
        let n = p.steps.len() as i64;
        sqlx::query(
            "UPDATE jobs SET kind = 'pipeline', state = 'RUNNING', group_total = $2, \
             group_created = $2, group_active = $2 WHERE id = $1",
        )
        .bind(parent)
        .bind(n)
        .execute(&mut *tx)
        .await?;
        events::record(&mut tx, parent, now).await?;
        let mut ids: Vec<i64> = Vec::with_capacity(p.steps.len());
        for step in &p.steps {
            let mut spec = step.spec.clone();
            spec.flow.after = step
                .after
                .iter()
                .map(|&i| Dependency {
                    kind: DepKind::AfterOk,
                    job: ids[i],
                })
                .collect();
            let id = insert_job(&mut tx, self.dialect, &spec, now).await?;
            let kind = spec.flow.kind();
            flow::setup(&mut tx, id, kind, &spec, Some(parent), now).await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok((parent, ids))
    }

    /// [`crate::JobStore::cancel`]: cancels a job, or a group and every
    /// unfinished job below it.
    pub(super) async fn cancel(&self, id: i64, now: i64) -> Result<Option<JobView>> {
        let mut tx = self.write.begin().await?;
        let exists = cancel_tree(&mut tx, id, now).await?;
        tx.commit().await?;
        if !exists {
            return Ok(None);
        }
        self.job(id).await
    }

    /// [`WorkflowStore::record_rejected`].
    pub(super) async fn record_rejected(
        &self,
        spec: &JobSpec,
        reason: &str,
        now: i64,
    ) -> Result<i64> {
        let mut tx = self.write.begin().await?;
        let id = insert_job(&mut tx, self.dialect, spec, now).await?;
        sqlx::query(
            "UPDATE jobs SET state = 'FAILED', reason = $2, finished_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        events::record(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`WorkflowStore::job_id_by_key`].
    pub(super) async fn job_id_by_key(&self, owner: &str, key: &str) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT id FROM jobs WHERE key = $1")
            .bind(super::jobs::stored_key(Some(owner), key))
            .fetch_optional(&self.read)
            .await?
            .map(|r| r.try_get("id"))
            .transpose()?)
    }

    /// One round of the resolver: decides dependencies whose jobs moved
    /// on, releases jobs left pending, tops up arrays, finishes groups,
    /// and holds or releases the jobs of disabled queues.
    pub(super) async fn resolve_workflows(
        &self,
        disabled: &[String],
        now: i64,
    ) -> Result<WorkflowTick> {
        let mut out = WorkflowTick::default();
        let mut tx = self.write.begin().await?;
        let disabled_list = format!(",{},", disabled.join(","));
        // Hold runnable jobs of disabled queues.
        if !disabled.is_empty() {
            let held = sqlx::query(
                "UPDATE jobs SET state = 'PENDING', held = 1, reason = 'queue-disabled' \
                 WHERE state = 'RUNNABLE' AND kind = 'job' AND $1 LIKE '%,' || queue || ',%' \
                 RETURNING id",
            )
            .bind(disabled_list.as_str())
            .fetch_all(&mut *tx)
            .await?;
            for r in &held {
                events::record(&mut tx, r.try_get("id")?, now).await?;
            }
            out.held += held.len() as u64;
        }
        // Release held jobs of queues that are enabled again.
        let unheld = sqlx::query(
            "UPDATE jobs SET held = 0, reason = NULL \
             WHERE held = 1 AND state = 'PENDING' AND reason = 'queue-disabled' \
             AND NOT ($1 LIKE '%,' || queue || ',%') \
             RETURNING id",
        )
        .bind(disabled_list.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for r in &unheld {
            out.runnable += flow::release(&mut tx, r.try_get("id")?, now).await?;
        }
        // Dependencies on jobs that started or ended.
        let deps = sqlx::query(
            "SELECT DISTINCT d.dep_id, j.state FROM job_deps d JOIN jobs j ON j.id = d.dep_id \
             WHERE d.resolved = 0 AND (j.state IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED') \
             OR j.started_at IS NOT NULL) LIMIT $1",
        )
        .bind(TICK_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        for r in &deps {
            let dep: i64 = r.try_get("dep_id")?;
            let state = parse_state(&r.try_get::<String, _>("state")?)?;
            let mut work = Vec::new();
            out.runnable += flow::resolve_dependents(&mut tx, dep, state, now, &mut work).await?;
            for id in work {
                out.runnable += flow::changed(&mut tx, id, now).await?;
            }
        }
        // Jobs whose dependencies are all met but that are still pending.
        let stuck = sqlx::query(
            "SELECT id FROM jobs WHERE state = 'PENDING' AND deps_pending <= 0 AND held = 0 \
             LIMIT $1",
        )
        .bind(TICK_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        for r in &stuck {
            out.runnable += flow::release(&mut tx, r.try_get("id")?, now).await?;
        }
        // Groups: refill arrays, finish groups whose children all ended.
        let groups = sqlx::query(
            "SELECT id FROM jobs WHERE kind <> 'job' AND state = 'RUNNING' ORDER BY id LIMIT $1",
        )
        .bind(TICK_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        for r in &groups {
            let id: i64 = r.try_get("id")?;
            out.runnable += settle_group(&mut tx, id, now).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// Locks a running group and refills or finishes it as needed.
async fn settle_group(tx: &mut Tx<'_>, id: i64, now: i64) -> Result<u64> {
    // A no-op update takes the row lock (PostgreSQL), so two servers never
    // create the same children.
    let row = sqlx::query(
        "UPDATE jobs SET group_active = group_active WHERE id = $1 AND state = 'RUNNING' \
         RETURNING kind, group_total, group_created, group_active, cancel_requested",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(0);
    };
    let total: i64 = row.try_get("group_total")?;
    let created: i64 = row.try_get("group_created")?;
    let active: i64 = row.try_get("group_active")?;
    let cancelled = row.try_get::<i64, _>("cancel_requested")? != 0;
    if active <= 0 && (created >= total || cancelled) {
        if flow::finalize_group(tx, id, now).await? {
            return flow::changed(tx, id, now).await;
        }
        return Ok(0);
    }
    if row.try_get::<String, _>("kind")? == "array" && !cancelled && created < total {
        return flow::top_up(tx, id, now).await;
    }
    Ok(0)
}

/// Cancels `id` and everything unfinished below it; false if unknown.
async fn cancel_tree(tx: &mut Tx<'_>, id: i64, now: i64) -> Result<bool> {
    let mut stack = vec![id];
    let mut first = true;
    while let Some(j) = stack.pop() {
        let row = sqlx::query("SELECT kind, state FROM jobs WHERE id = $1")
            .bind(j)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            if first {
                return Ok(false);
            }
            continue;
        };
        first = false;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        if state.is_terminal() {
            continue;
        }
        let kind: String = row.try_get("kind")?;
        if kind == "job" && state.is_leased() {
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
                .bind(j)
                .execute(&mut **tx)
                .await?;
            continue;
        }
        if kind == "job" || state != JobState::Running {
            if flow::cancel_waiting(tx, j, "cancelled", now).await? {
                flow::changed(tx, j, now).await?;
            }
            continue;
        }
        // A running group: stop creating children, cancel those that exist.
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
            .bind(j)
            .execute(&mut **tx)
            .await?;
        let children = sqlx::query(
            "SELECT id FROM jobs WHERE parent_id = $1 \
             AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') ORDER BY id DESC",
        )
        .bind(j)
        .fetch_all(&mut **tx)
        .await?;
        if children.is_empty() {
            settle_group(tx, j, now).await?;
        }
        for c in &children {
            stack.push(c.try_get("id")?);
        }
    }
    Ok(true)
}

// Each method is the inherent method of the same name (here, in
// `events.rs` and `flow_views.rs`); `SqlStore::name` picks the inherent
// method over the trait's.
#[async_trait]
impl WorkflowStore for SqlStore {
    async fn submit_pipeline(&self, p: &ValidPipeline, now: i64) -> Result<(i64, Vec<i64>)> {
        SqlStore::submit_pipeline(self, p, now).await
    }
    async fn events(&self, filter: &EventFilter) -> Result<Vec<EventView>> {
        SqlStore::events(self, filter).await
    }
    async fn last_event_id(&self) -> Result<i64> {
        SqlStore::last_event_id(self).await
    }
    async fn resolve_workflows(
        &self,
        disabled_queues: &[String],
        now: i64,
    ) -> Result<WorkflowTick> {
        SqlStore::resolve_workflows(self, disabled_queues, now).await
    }
    async fn job_id_by_key(&self, owner: &str, key: &str) -> Result<Option<i64>> {
        SqlStore::job_id_by_key(self, owner, key).await
    }
    async fn record_rejected(&self, spec: &JobSpec, reason: &str, now: i64) -> Result<i64> {
        SqlStore::record_rejected(self, spec, reason, now).await
    }
    async fn children(&self, parent: i64) -> Result<Vec<(i64, JobState)>> {
        SqlStore::children(self, parent).await
    }
}
