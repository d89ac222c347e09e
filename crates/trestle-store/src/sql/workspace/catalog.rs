//! Workspace type versions and configurations in SQL, and the
//! [`WorkspaceStore`] implementation.

use super::super::{SqlStore, conflict_or};
use crate::workspace::{
    ConfigRecord, Grant, TypeRecord, WorkspaceFilter, WorkspaceRecord, WorkspaceStore,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::workspace::WorkspaceState;
use trestle_core::workspace::idle::Activity;
use trestle_core::workspace::kind::Approval;

fn type_record(r: &AnyRow) -> Result<TypeRecord> {
    let name: String = r.try_get("name")?;
    let spec: String = r.try_get("spec")?;
    let approval: String = r.try_get("approval")?;
    Ok(TypeRecord {
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("workspace type `{name}`: {e}")))?,
        approval: Approval::parse(&approval).ok_or_else(|| {
            StoreError::Corrupt(format!("workspace type `{name}`: approval `{approval}`"))
        })?,
        imported_by: r.try_get("imported_by")?,
        imported_at: r.try_get("imported_at")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
    })
}

fn config_record(r: &AnyRow) -> Result<ConfigRecord> {
    let name: String = r.try_get("name")?;
    let spec: String = r.try_get("spec")?;
    Ok(ConfigRecord {
        config: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("workspace configuration `{name}`: {e}")))?,
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const TYPE_COLUMNS: &str =
    "name, version, spec, approval, imported_by, imported_at, decided_by, decided_at";

#[async_trait]
impl WorkspaceStore for SqlStore {
    async fn put_ws_type(&self, t: &TypeRecord) -> Result<()> {
        let spec =
            serde_json::to_string(&t.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO workspace_types (name, version, spec, approval, imported_by, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.spec.name)
        .bind(&t.spec.version)
        .bind(spec)
        .bind(t.approval.as_str())
        .bind(t.imported_by.clone())
        .bind(t.imported_at)
        .execute(&self.write)
        .await
        .map_err(|e| {
            conflict_or(
                e,
                &format!("workspace type {}@{}", t.spec.name, t.spec.version),
                "version",
            )
        })?;
        Ok(())
    }

    async fn ws_types(&self) -> Result<Vec<TypeRecord>> {
        let q = format!(
            "SELECT {TYPE_COLUMNS} FROM workspace_types ORDER BY name, imported_at, version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(type_record).collect()
    }

    async fn ws_type(&self, name: &str, version: &str) -> Result<Option<TypeRecord>> {
        let q =
            format!("SELECT {TYPE_COLUMNS} FROM workspace_types WHERE name = $1 AND version = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(name)
            .bind(version)
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(type_record).transpose()
    }

    async fn decide_ws_type(
        &self,
        name: &str,
        version: &str,
        approval: Approval,
        by: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workspace_types SET approval = $1, decided_by = $2, decided_at = $3 \
             WHERE name = $4 AND version = $5",
        )
        .bind(approval.as_str())
        .bind(by)
        .bind(now)
        .bind(name)
        .bind(version)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_ws_config(&self, c: &ConfigRecord) -> Result<()> {
        let spec =
            serde_json::to_string(&c.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO workspace_configs (name, spec, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
        )
        .bind(&c.config.name)
        .bind(spec)
        .bind(c.updated_by.clone())
        .bind(c.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn ws_configs(&self) -> Result<Vec<ConfigRecord>> {
        let rows = sqlx::query(
            "SELECT name, spec, updated_by, updated_at FROM workspace_configs ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(config_record).collect()
    }

    async fn ws_config(&self, name: &str) -> Result<Option<ConfigRecord>> {
        let row = sqlx::query(
            "SELECT name, spec, updated_by, updated_at FROM workspace_configs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(config_record).transpose()
    }

    async fn delete_ws_config(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM workspace_configs WHERE name = $1")
            .bind(name)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_workspace(&self, w: &WorkspaceRecord) -> Result<i64> {
        self.ws_insert(w).await
    }

    async fn workspace(&self, id: i64) -> Result<Option<WorkspaceRecord>> {
        self.ws_get(id).await
    }

    async fn workspace_by_job(&self, job_id: i64) -> Result<Option<WorkspaceRecord>> {
        self.ws_by_job(job_id).await
    }

    async fn workspaces(&self, f: &WorkspaceFilter) -> Result<Vec<WorkspaceRecord>> {
        self.ws_list(f).await
    }

    async fn set_ws_lifecycle(
        &self,
        w: &WorkspaceRecord,
        expected: WorkspaceState,
        event: Option<&trestle_core::notify::event::NewEvent>,
    ) -> Result<bool> {
        self.ws_lifecycle(w, expected, event).await
    }

    async fn ws_session_ready(&self, job_id: i64, secret: &str) -> Result<bool> {
        self.ws_ready(job_id, secret).await
    }

    async fn ws_home_saved(
        &self,
        job_id: i64,
        key: &str,
        bytes: u64,
        now: i64,
    ) -> Result<Option<String>> {
        self.ws_saved(job_id, key, bytes, now).await
    }

    async fn ws_save_failed(&self, job_id: i64, error: &str) -> Result<bool> {
        self.ws_save_error(job_id, error).await
    }

    async fn ws_clear_home(&self, id: i64) -> Result<Option<String>> {
        self.ws_clear(id).await
    }

    async fn ws_app_activity(&self, job_id: i64, a: &Activity) -> Result<bool> {
        self.ws_app_act(job_id, a).await
    }

    async fn ws_request_activity(&self, id: i64, at: i64) -> Result<()> {
        self.ws_request_act(id, at).await
    }

    async fn put_ws_grant(&self, g: &Grant) -> Result<()> {
        sqlx::query("DELETE FROM workspace_grants WHERE expires_at < $1")
            .bind(trestle_core::clock::now_ms())
            .execute(&self.write)
            .await?;
        sqlx::query(
            "INSERT INTO workspace_grants (hash, kind, workspace_id, user_name, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&g.hash)
        .bind(&g.kind)
        .bind(g.workspace)
        .bind(&g.user)
        .bind(g.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn take_ws_ticket(&self, hash: &str, now: i64) -> Result<Option<Grant>> {
        let row = sqlx::query(
            "DELETE FROM workspace_grants WHERE hash = $1 AND kind = 'ticket' \
             RETURNING hash, kind, workspace_id, user_name, expires_at",
        )
        .bind(hash)
        .fetch_optional(&self.write)
        .await?;
        let g = row.as_ref().map(grant).transpose()?;
        Ok(g.filter(|g| g.expires_at > now))
    }

    async fn ws_cookie(&self, hash: &str, now: i64) -> Result<Option<Grant>> {
        let row = sqlx::query(
            "SELECT hash, kind, workspace_id, user_name, expires_at FROM workspace_grants \
             WHERE hash = $1 AND kind = 'cookie' AND expires_at > $2",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(grant).transpose()
    }
}

fn grant(r: &AnyRow) -> Result<Grant> {
    Ok(Grant {
        hash: r.try_get("hash")?,
        kind: r.try_get("kind")?,
        workspace: r.try_get("workspace_id")?,
        user: r.try_get("user_name")?,
        expires_at: r.try_get("expires_at")?,
    })
}
