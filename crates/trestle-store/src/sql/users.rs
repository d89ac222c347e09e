//! Users, browser sessions, login throttling, and who owns uploads and
//! workers. Indexes and projects are in `projects.rs`.

use super::{SqlStore, conflict_or};
use crate::identity::{IdentityStore, NewTokenRecord, SessionRecord, UserChanges, UserRecord};
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::api::identity::{IndexView, NewProject, ProjectView};
use trestle_core::identity::authz::{MemberRole, Membership, Role};

/// Columns selected for a [`UserRecord`], as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "name, role, org, default_project, password_hash, disabled_at, created_at, last_seen_at"
    };
}

fn user(row: &AnyRow) -> Result<UserRecord> {
    let role: String = row.try_get("role")?;
    Ok(UserRecord {
        name: row.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role `{role}`")))?,
        org: row.try_get("org")?,
        default_project: row.try_get("default_project")?,
        password_hash: row.try_get("password_hash")?,
        disabled_at: row.try_get("disabled_at")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

pub(super) fn member_role(s: &str) -> Result<MemberRole> {
    MemberRole::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown member role `{s}`")))
}

/// Maps a foreign-key failure (unknown project or user) to `NotFound`.
fn missing_or(e: sqlx::Error, what: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_foreign_key_violation()
    {
        return StoreError::NotFound(what.to_string());
    }
    StoreError::Database(e)
}

impl SqlStore {
    async fn project_exists(&self, tx: &mut sqlx::AnyConnection, name: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some())
    }
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn create_user(&self, u: &UserRecord) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if let Some(p) = &u.default_project
            && !self.project_exists(&mut tx, p).await?
        {
            return Err(StoreError::NotFound(format!("project `{p}`")));
        }
        sqlx::query(
            "INSERT INTO users (name, role, org, default_project, password_hash, disabled_at, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.name.as_str())
        .bind(u.role.as_str())
        .bind(u.org.clone())
        .bind(u.default_project.clone())
        .bind(u.password_hash.clone())
        .bind(u.disabled_at)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, &format!("user `{}`", u.name), "name"))?;
        if let Some(p) = &u.default_project {
            sqlx::query(
                "INSERT INTO project_members (project, user_name, role, added_at) \
                 VALUES ($1, $2, 'member', $3)",
            )
            .bind(p.as_str())
            .bind(u.name.as_str())
            .bind(u.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE name = $1");
        let row = sqlx::query(SQL)
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY name"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(user).collect()
    }

    async fn update_user(&self, name: &str, c: &UserChanges, now: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let exists = sqlx::query("SELECT name FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        if let Some(r) = c.role {
            sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
                .bind(r.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(org) = &c.org {
            sqlx::query("UPDATE users SET org = $1 WHERE name = $2")
                .bind(org.clone())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(p) = &c.default_project {
            let member = sqlx::query(
                "SELECT 1 AS one FROM project_members WHERE project = $1 AND user_name = $2",
            )
            .bind(p.as_str())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if member.is_none() {
                return Err(StoreError::NotFound(format!(
                    "membership of `{name}` in project `{p}`"
                )));
            }
            sqlx::query("UPDATE users SET default_project = $1 WHERE name = $2")
                .bind(p.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(h) = &c.password_hash {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(h.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(d) = c.disabled {
            sqlx::query("UPDATE users SET disabled_at = $1 WHERE name = $2")
                .bind(d.then_some(now))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if d {
                sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn bootstrap_admin(&self, name: &str, token: &NewTokenRecord, now: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if n > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO users (name, role, default_project, created_at) \
             VALUES ($1, 'admin', 'default', $2)",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, &format!("user `{name}`"), "name"))?;
        sqlx::query(
            "INSERT INTO project_members (project, user_name, role, added_at) \
             VALUES ('default', $1, 'manager', $2)",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::tokens::create_token_in(&mut tx, token, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unused_users(&self, before: i64, skip_admins: bool) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE disabled_at IS NULL \
             AND COALESCE(last_seen_at, created_at) < $1 AND ($2 = 0 OR role <> 'admin') \
             ORDER BY name"
        ))
        .bind(before)
        .bind(i64::from(skip_admins))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(user).collect()
    }

    async fn memberships(&self, user_name: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT m.project, m.role, p.org FROM project_members m \
             JOIN projects p ON p.name = m.project WHERE m.user_name = $1 ORDER BY m.project",
        )
        .bind(user_name)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(Membership {
                    project: r.try_get("project")?,
                    org: r.try_get("org")?,
                    role: member_role(&role)?,
                })
            })
            .collect()
    }

    // The inherent methods of the same names (sql/projects.rs) do the work;
    // `SqlStore::name` picks the inherent method over the trait's.
    async fn create_index(&self, name: &str, description: Option<&str>, now: i64) -> Result<()> {
        SqlStore::create_index(self, name, description, now).await
    }

    async fn list_indexes(&self) -> Result<Vec<IndexView>> {
        SqlStore::list_indexes(self).await
    }

    async fn create_project(&self, p: &NewProject, now: i64) -> Result<()> {
        SqlStore::create_project(self, p, now).await
    }

    async fn project(&self, name: &str) -> Result<Option<ProjectView>> {
        Ok(self.projects_matching(Some(name)).await?.into_iter().next())
    }

    async fn list_projects(&self) -> Result<Vec<ProjectView>> {
        self.projects_matching(None).await
    }

    async fn set_member(
        &self,
        project: &str,
        user_name: &str,
        role: MemberRole,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if !self.project_exists(&mut tx, project).await? {
            return Err(StoreError::NotFound(format!("project `{project}`")));
        }
        let updated = sqlx::query(
            "UPDATE project_members SET role = $1, managed_by = NULL \
             WHERE project = $2 AND user_name = $3",
        )
        .bind(role.as_str())
        .bind(project)
        .bind(user_name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO project_members (project, user_name, role, added_at) \
                 SELECT $1, name, $3, $4 FROM users WHERE name = $2",
            )
            .bind(project)
            .bind(user_name)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| missing_or(e, &format!("user `{user_name}`")))
            .and_then(|r| {
                if r.rows_affected() == 0 {
                    Err(StoreError::NotFound(format!("user `{user_name}`")))
                } else {
                    Ok(r)
                }
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn remove_member(&self, project: &str, user_name: &str) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n = sqlx::query("DELETE FROM project_members WHERE project = $1 AND user_name = $2")
            .bind(project)
            .bind(user_name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // A default project one no longer belongs to is no default.
        sqlx::query(
            "UPDATE users SET default_project = NULL WHERE name = $1 AND default_project = $2",
        )
        .bind(user_name)
        .bind(project)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn create_upload(&self, id: &str, owner: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO uploads (id, owner, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(|e| conflict_or(e, &format!("upload `{id}`"), "id"))?;
        Ok(())
    }

    async fn add_upload_bytes(&self, id: &str, project: &str, delta: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_usage (upload_id, project, bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (upload_id) DO UPDATE SET bytes = upload_usage.bytes + excluded.bytes",
        )
        .bind(id)
        .bind(project)
        .bind(delta)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn project_upload_bytes(&self, project: &str) -> Result<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS n FROM upload_usage WHERE project = $1",
        )
        .bind(project)
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }

    async fn provision_user(
        &self,
        p: &crate::identity::Provision,
        now: i64,
    ) -> Result<crate::identity::Provisioned> {
        self.provision(p, now).await
    }

    async fn user_attributes(
        &self,
        name: &str,
    ) -> Result<Option<trestle_core::identity::external::UserAttributes>> {
        self.attributes_of(name).await
    }

    async fn external_users(&self, source: &str) -> Result<Vec<(String, String)>> {
        self.users_of(source).await
    }

    async fn upload_owner(&self, id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT owner FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get("owner")).transpose()?)
    }

    async fn upload_sealed(&self, id: &str) -> Result<bool> {
        SqlStore::upload_sealed(self, id).await
    }

    async fn hold_unsealed_upload(
        &self,
        id: &str,
    ) -> Result<Option<Box<dyn crate::identity::UploadHold>>> {
        SqlStore::hold_unsealed_upload(self, id).await
    }

    async fn bind_worker(&self, worker_id: &str, token_id: &str) -> Result<()> {
        let n = sqlx::query("UPDATE workers SET registered_by = $1 WHERE id = $2")
            .bind(token_id)
            .bind(worker_id)
            .execute(&self.write)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("worker `{worker_id}`")));
        }
        Ok(())
    }

    async fn worker_registrant(&self, worker_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT registered_by FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("registered_by")?,
            None => None,
        })
    }

    async fn create_session(
        &self,
        hash: &str,
        s: &SessionRecord,
        ip: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (hash, user_name, csrf, source_ip, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hash)
        .bind(s.user.as_str())
        .bind(s.csrf.as_str())
        .bind(ip)
        .bind(now)
        .bind(s.expires_at)
        .execute(&self.write)
        .await?;
        // Expired sessions are of no use to anyone.
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn find_session(&self, hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT s.user_name, s.csrf, s.expires_at FROM sessions s \
             JOIN users u ON u.name = s.user_name \
             WHERE s.hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            user: r.try_get("user_name")?,
            csrf: r.try_get("csrf")?,
            expires_at: r.try_get("expires_at")?,
        }))
    }

    async fn delete_session(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn delete_sessions_of(&self, user: &str, keep: Option<&str>) -> Result<u64> {
        let n = sqlx::query("DELETE FROM sessions WHERE user_name = $1 AND hash <> $2")
            .bind(user)
            .bind(keep.unwrap_or(""))
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n)
    }

    async fn reserve_login_attempt(&self, key: &str, now: i64, window: i64) -> Result<u64> {
        // One statement: the row is locked (PostgreSQL) or the database
        // written (SQLite) while it is counted, so every reservation sees
        // the ones before it. In `SET`, both right-hand sides read the old
        // row.
        let n: i64 = sqlx::query(
            "INSERT INTO login_attempts (key, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
             count = CASE WHEN login_attempts.window_start <= $3 THEN 1 \
                     ELSE login_attempts.count + 1 END, \
             window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2 \
                     ELSE login_attempts.window_start END \
             RETURNING count",
        )
        .bind(key)
        .bind(now)
        .bind(now - window)
        .fetch_one(&self.write)
        .await?
        .try_get("count")?;
        if n == 1 {
            // A new window: forget keys whose windows ended long ago.
            sqlx::query("DELETE FROM login_attempts WHERE window_start < $1")
                .bind(now - 4 * window)
                .execute(&self.write)
                .await?;
        }
        Ok(n.max(0) as u64)
    }

    async fn clear_login_attempts(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE key = $1")
            .bind(key)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    // OpenID Connect sign-in (issue 11): see `oidc.rs`.
    async fn put_oidc_login(&self, key: &str, p: &crate::oidc::PendingLogin) -> Result<()> {
        self.put_pending_login(key, p).await
    }

    async fn take_oidc_login(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<crate::oidc::PendingLogin>> {
        self.take_pending_login(key, now).await
    }
}
