//! Workspaces in SQL (migration 13): the catalogue in [`catalog`], the
//! workspaces here. Lifecycle writes are a compare-and-set on `state`;
//! the columns the worker and the proxy report (readiness, home saves,
//! activity) are written by their own statements and never by a
//! lifecycle write, so neither overwrites the other.

mod catalog;

use super::{SqlStore, conflict_or};
use crate::workspace::{WorkspaceFilter, WorkspaceRecord};
use crate::{Result, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::workspace::WorkspaceState;
use trestle_core::workspace::idle::Activity;

const COLUMNS: &str = "id, name, owner, project, config, spec, state, reason, shared, job_id, \
    created_at, updated_at, running_since, deadline, extended_secs, secret, ready_job, home_key, \
    home_bytes, home_saved_at, home_saved_job, save_error, save_error_job, last_request, last_app, \
    app_busy, last_attached, attached, assist_by, assist_until";

fn opt_u64(r: &AnyRow, col: &str) -> Result<Option<u64>> {
    Ok(r.try_get::<Option<i64>, _>(col)?.map(|v| v.max(0) as u64))
}

fn record(r: &AnyRow) -> Result<WorkspaceRecord> {
    let id: i64 = r.try_get("id")?;
    let spec: String = r.try_get("spec")?;
    let launch = serde_json::from_str(&spec)
        .map_err(|e| StoreError::Corrupt(format!("workspace {id}: {e}")))?;
    let state: String = r.try_get("state")?;
    let state = WorkspaceState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("workspace {id}: unknown state `{state}`")))?;
    let running_since: Option<i64> = r.try_get("running_since")?;
    Ok(WorkspaceRecord {
        id,
        name: r.try_get("name")?,
        owner: r.try_get("owner")?,
        project: r.try_get("project")?,
        launch,
        state,
        reason: r.try_get("reason")?,
        shared: r.try_get::<i64, _>("shared")? != 0,
        job_id: r.try_get("job_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        running_since,
        deadline: r.try_get("deadline")?,
        extended_secs: r.try_get::<i64, _>("extended_secs")?.max(0) as u64,
        secret: r.try_get("secret")?,
        ready_job: r.try_get("ready_job")?,
        home_key: r.try_get("home_key")?,
        home_bytes: opt_u64(r, "home_bytes")?,
        home_saved_at: r.try_get("home_saved_at")?,
        home_saved_job: r.try_get("home_saved_job")?,
        save_error: r.try_get("save_error")?,
        save_error_job: r.try_get("save_error_job")?,
        activity: Activity {
            running_since: running_since.unwrap_or(0),
            last_request: r.try_get("last_request")?,
            last_app: r.try_get("last_app")?,
            app_busy: r.try_get::<i64, _>("app_busy")? != 0,
            last_attached: r.try_get("last_attached")?,
            attached: r.try_get::<i64, _>("attached")?.max(0) as u32,
        },
        assist_by: r.try_get("assist_by")?,
        assist_until: r.try_get("assist_until")?,
    })
}

impl SqlStore {
    pub(crate) async fn ws_insert(&self, w: &WorkspaceRecord) -> Result<i64> {
        let spec =
            serde_json::to_string(&w.launch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = sqlx::query(
            "INSERT INTO workspaces (name, owner, project, config, spec, state, reason, shared, \
             job_id, created_at, updated_at, running_since, deadline, extended_secs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(&w.name)
        .bind(&w.owner)
        .bind(w.project.clone())
        .bind(&w.launch.config.name)
        .bind(spec)
        .bind(w.state.as_str())
        .bind(w.reason.clone())
        .bind(w.shared as i64)
        .bind(w.job_id)
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(w.running_since)
        .bind(w.deadline)
        .bind(w.extended_secs as i64)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, "workspace", "name"))?;
        Ok(row.try_get("id")?)
    }

    pub(crate) async fn ws_get(&self, id: i64) -> Result<Option<WorkspaceRecord>> {
        let q = format!("SELECT {COLUMNS} FROM workspaces WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(record).transpose()
    }

    pub(crate) async fn ws_by_job(&self, job_id: i64) -> Result<Option<WorkspaceRecord>> {
        let q = format!("SELECT {COLUMNS} FROM workspaces WHERE job_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(job_id)
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(record).transpose()
    }

    pub(crate) async fn ws_list(&self, f: &WorkspaceFilter) -> Result<Vec<WorkspaceRecord>> {
        let states: String = if f.states.is_empty() {
            String::new()
        } else {
            let mut s = String::from(",");
            for st in &f.states {
                s.push_str(st.as_str());
                s.push(',');
            }
            s
        };
        let q = format!(
            "SELECT {COLUMNS} FROM workspaces WHERE ($1 IS NULL OR owner = $1) \
             AND ($2 = 1 OR state <> 'TERMINATED') AND ($3 = '' OR $3 LIKE '%,' || state || ',%') \
             ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(f.owner.clone())
            .bind(f.include_terminated as i64)
            .bind(states)
            .bind(i64::from(if f.limit == 0 {
                500
            } else {
                f.limit.min(5000)
            }))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(record).collect()
    }

    pub(crate) async fn ws_lifecycle(
        &self,
        w: &WorkspaceRecord,
        expected: WorkspaceState,
        event: Option<&trestle_core::notify::event::NewEvent>,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE workspaces SET state = $1, reason = $2, shared = $3, job_id = $4, \
             running_since = $5, deadline = $6, extended_secs = $7, assist_by = $8, \
             assist_until = $9, updated_at = $10, name = $11 WHERE id = $12 AND state = $13",
        )
        .bind(w.state.as_str())
        .bind(w.reason.clone())
        .bind(w.shared as i64)
        .bind(w.job_id)
        .bind(w.running_since)
        .bind(w.deadline)
        .bind(w.extended_secs as i64)
        .bind(w.assist_by.clone())
        .bind(w.assist_until)
        .bind(w.updated_at)
        .bind(&w.name)
        .bind(w.id)
        .bind(expected.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(e) = event {
            crate::sql::notify::record(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) async fn ws_ready(&self, job_id: i64, secret: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE workspaces SET secret = $1, ready_job = $2 WHERE job_id = $2")
                .bind(secret)
                .bind(job_id)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn ws_saved(
        &self,
        job_id: i64,
        key: &str,
        bytes: u64,
        now: i64,
    ) -> Result<Option<String>> {
        let mut tx = self.write.begin().await?;
        let old: Option<Option<String>> =
            sqlx::query("SELECT home_key FROM workspaces WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("home_key"))
                .transpose()?;
        let Some(old) = old else {
            return Err(StoreError::NotFound(format!("session {job_id}")));
        };
        sqlx::query(
            "UPDATE workspaces SET home_key = $1, home_bytes = $2, home_saved_at = $3, \
             home_saved_job = $4, save_error = NULL, save_error_job = NULL WHERE job_id = $4",
        )
        .bind(key)
        .bind(bytes as i64)
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old.filter(|k| k != key))
    }

    pub(crate) async fn ws_save_error(&self, job_id: i64, error: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workspaces SET save_error = $1, save_error_job = $2 WHERE job_id = $2",
        )
        .bind(error)
        .bind(job_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn ws_clear(&self, id: i64) -> Result<Option<String>> {
        let mut tx = self.write.begin().await?;
        let old: Option<String> = sqlx::query("SELECT home_key FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("home_key"))
            .transpose()?
            .flatten();
        sqlx::query(
            "UPDATE workspaces SET home_key = NULL, home_bytes = NULL, home_saved_at = NULL \
             WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(old)
    }

    pub(crate) async fn ws_app_act(&self, job_id: i64, a: &Activity) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workspaces SET last_app = $1, app_busy = $2, last_attached = $3, attached = $4 \
             WHERE job_id = $5",
        )
        .bind(a.last_app)
        .bind(a.app_busy as i64)
        .bind(a.last_attached)
        .bind(i64::from(a.attached))
        .bind(job_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn ws_request_act(&self, id: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE workspaces SET last_request = $1 WHERE id = $2 \
             AND (last_request IS NULL OR last_request < $1)",
        )
        .bind(at)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
