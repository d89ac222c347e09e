//! Indexes (funding sources), projects and their members.

use super::users::member_role;
use super::{SqlStore, conflict_or};
use crate::{Result, StoreError};
use sqlx::Row;
use std::collections::BTreeMap;
use trestle_core::api::identity::{IndexView, MemberView, NewProject, ProjectView};

impl SqlStore {
    /// [`crate::IdentityStore::create_index`].
    pub(super) async fn create_index(
        &self,
        name: &str,
        description: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO indexes (name, description, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(description.map(str::to_string))
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(|e| conflict_or(e, &format!("index `{name}`"), "name"))?;
        Ok(())
    }

    /// [`crate::IdentityStore::list_indexes`].
    pub(super) async fn list_indexes(&self) -> Result<Vec<IndexView>> {
        let rows = sqlx::query("SELECT name, description, created_at FROM indexes ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        let projects = sqlx::query("SELECT name, index_name FROM projects ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        let mut by_index: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in &projects {
            by_index
                .entry(p.try_get("index_name")?)
                .or_default()
                .push(p.try_get("name")?);
        }
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                Ok(IndexView {
                    projects: by_index.remove(&name).unwrap_or_default(),
                    name,
                    description: r.try_get("description")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// [`crate::IdentityStore::create_project`].
    pub(super) async fn create_project(&self, p: &NewProject, now: i64) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let index = sqlx::query("SELECT 1 AS one FROM indexes WHERE name = $1")
            .bind(p.index.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if index.is_none() {
            return Err(StoreError::NotFound(format!("index `{}`", p.index)));
        }
        sqlx::query(
            "INSERT INTO projects (name, index_name, org, description, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(p.name.as_str())
        .bind(p.index.as_str())
        .bind(p.org.clone())
        .bind(p.description.clone())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, &format!("project `{}`", p.name), "name"))?;
        tx.commit().await?;
        Ok(())
    }

    /// One project (`Some(name)`) or all, with members: what
    /// [`crate::IdentityStore::project`] and
    /// [`crate::IdentityStore::list_projects`] answer.
    pub(super) async fn projects_matching(&self, only: Option<&str>) -> Result<Vec<ProjectView>> {
        let rows = sqlx::query(
            "SELECT name, index_name, org, description, created_at FROM projects \
             WHERE (CAST($1 AS TEXT) IS NULL OR name = $1) ORDER BY name",
        )
        .bind(only.map(str::to_string))
        .fetch_all(&self.read)
        .await?;
        let members = sqlx::query(
            "SELECT project, user_name, role FROM project_members \
             WHERE (CAST($1 AS TEXT) IS NULL OR project = $1) ORDER BY project, user_name",
        )
        .bind(only.map(str::to_string))
        .fetch_all(&self.read)
        .await?;
        let mut by_project: BTreeMap<String, Vec<MemberView>> = BTreeMap::new();
        for m in &members {
            let role: String = m.try_get("role")?;
            by_project
                .entry(m.try_get("project")?)
                .or_default()
                .push(MemberView {
                    user: m.try_get("user_name")?,
                    role: member_role(&role)?,
                });
        }
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                Ok(ProjectView {
                    members: by_project.remove(&name).unwrap_or_default(),
                    name,
                    index: r.try_get("index_name")?,
                    org: r.try_get("org")?,
                    description: r.try_get("description")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
