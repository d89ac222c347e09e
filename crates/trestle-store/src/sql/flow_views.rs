//! How workflow jobs are shown: a group's children per state and the
//! state that summarises them, a job's dependencies and where they stand,
//! a pipeline's steps for its graph, and the jobs whose outputs a job
//! receives.

use super::SqlStore;
use super::flow::child_counts;
use super::rows::parse_state;
use crate::Result;
use sqlx::Row;
use std::collections::HashMap;
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::api::workflow::{DepView, StepView};
use trestle_core::batch::deps::DepKind;

/// Most children listed for a job's upstream outputs.
const MAX_UPSTREAM: i64 = 10_000;

impl SqlStore {
    /// Adds children counts to a group and shows its summary state.
    pub(super) async fn with_counts(&self, v: &mut JobView) -> Result<()> {
        if !v.flow.kind.is_group() {
            return Ok(());
        }
        let row = sqlx::query(
            "SELECT group_total, group_created, cancel_requested FROM jobs WHERE id = $1",
        )
        .bind(v.id)
        .fetch_one(&self.read)
        .await?;
        let mut conn = self.read.acquire().await?;
        let counts = child_counts(
            &mut conn,
            v.id,
            row.try_get("group_total")?,
            row.try_get("group_created")?,
            v.state,
            row.try_get::<i64, _>("cancel_requested")? != 0,
        )
        .await?;
        if v.state == JobState::Running {
            let s = counts.summary();
            if !s.is_terminal() {
                v.state = s;
            }
        }
        v.flow.children = Some(counts);
        Ok(())
    }

    /// Adds dependencies, children counts and pipeline steps to a view.
    pub(super) async fn with_flow(&self, mut v: JobView) -> Result<JobView> {
        self.with_counts(&mut v).await?;
        let deps = sqlx::query(
            "SELECT d.dep_id, d.kind, d.resolved, j.state FROM job_deps d \
             LEFT JOIN jobs j ON j.id = d.dep_id WHERE d.job_id = $1 ORDER BY d.dep_id, d.kind",
        )
        .bind(v.id)
        .fetch_all(&self.read)
        .await?;
        for r in &deps {
            let kind: String = r.try_get("kind")?;
            let state: Option<String> = r.try_get("state")?;
            v.flow.dependencies.push(DepView {
                kind: DepKind::parse(&kind).unwrap_or(DepKind::AfterAny),
                job: r.try_get("dep_id")?,
                state: state.as_deref().map(parse_state).transpose()?,
                resolved: r.try_get::<i64, _>("resolved")? != 0,
            });
        }
        if v.flow.kind == trestle_core::batch::workflow::JobKind::Pipeline {
            v.flow.steps = self.steps(v.id).await?;
        }
        Ok(v)
    }

    async fn steps(&self, parent: i64) -> Result<Vec<StepView>> {
        let rows = sqlx::query(
            "SELECT id, name, state, reason, kind FROM jobs WHERE parent_id = $1 ORDER BY id",
        )
        .bind(parent)
        .fetch_all(&self.read)
        .await?;
        let edges = sqlx::query(
            "SELECT d.job_id, d.dep_id FROM job_deps d JOIN jobs j ON j.id = d.job_id \
             WHERE j.parent_id = $1 ORDER BY d.dep_id",
        )
        .bind(parent)
        .fetch_all(&self.read)
        .await?;
        let mut after: HashMap<i64, Vec<i64>> = HashMap::new();
        for e in &edges {
            after
                .entry(e.try_get("job_id")?)
                .or_default()
                .push(e.try_get("dep_id")?);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            out.push(StepView {
                id,
                name: r.try_get("name")?,
                state: parse_state(&r.try_get::<String, _>("state")?)?,
                reason: r.try_get("reason")?,
                after: after.remove(&id).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Children of a group with their states, oldest first.
    pub(super) async fn children(&self, parent: i64) -> Result<Vec<(i64, JobState)>> {
        let rows =
            sqlx::query("SELECT id, state FROM jobs WHERE parent_id = $1 ORDER BY id LIMIT $2")
                .bind(parent)
                .bind(MAX_UPSTREAM)
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    parse_state(&r.try_get::<String, _>("state")?)?,
                ))
            })
            .collect()
    }
}
