//! Users from identity providers: provisioning with managed memberships,
//! their kept attributes, and the users of one provider (for syncs).

use super::{SqlStore, Tx};
use crate::identity::{Provision, Provisioned};
use crate::{Result, StoreError};
use sqlx::Row;
use trestle_core::identity::authz::Role;
use trestle_core::identity::external::UserAttributes;

impl SqlStore {
    /// [`crate::IdentityStore::provision_user`].
    pub(super) async fn provision(&self, p: &Provision, now: i64) -> Result<Provisioned> {
        let attrs = serde_json::to_string(&p.attributes)
            .map_err(|e| StoreError::Corrupt(format!("user attributes: {e}")))?;
        let source = p.attributes.source.as_str();
        let mut out = Provisioned::default();
        let mut tx = self.write.begin().await?;
        let row = sqlx::query("SELECT role, default_project FROM users WHERE name = $1")
            .bind(&p.name)
            .fetch_optional(&mut *tx)
            .await?;
        match row {
            None => {
                sqlx::query(
                    "INSERT INTO users (name, role, created_at, source, subject, attributes) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&p.name)
                .bind(p.role.as_str())
                .bind(now)
                .bind(source)
                .bind(p.attributes.subject.as_deref())
                .bind(&attrs)
                .execute(&mut *tx)
                .await?;
                out.created = true;
            }
            Some(r) => {
                let was: String = r.try_get("role")?;
                let was = Role::parse(&was)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown role `{was}`")))?;
                if was != p.role {
                    out.role_was = Some(was);
                }
                sqlx::query(
                    "UPDATE users SET role = $2, source = $3, subject = $4, attributes = $5, \
                     last_seen_at = $6 WHERE name = $1",
                )
                .bind(&p.name)
                .bind(p.role.as_str())
                .bind(source)
                .bind(p.attributes.subject.as_deref())
                .bind(&attrs)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        self.apply_memberships(&mut tx, p, now, &mut out).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn apply_memberships(
        &self,
        tx: &mut Tx<'_>,
        p: &Provision,
        now: i64,
        out: &mut Provisioned,
    ) -> Result<()> {
        let source = p.attributes.source.as_str();
        let rows = sqlx::query(
            "SELECT project, role, managed_by FROM project_members WHERE user_name = $1",
        )
        .bind(&p.name)
        .fetch_all(&mut **tx)
        .await?;
        let mut have: Vec<(String, String, Option<String>)> = Vec::with_capacity(rows.len());
        for r in &rows {
            have.push((
                r.try_get("project")?,
                r.try_get("role")?,
                r.try_get("managed_by")?,
            ));
        }
        // Managed memberships the rules no longer give.
        for (project, _, managed) in &have {
            if managed.as_deref() == Some(source) && !p.memberships.contains_key(project) {
                sqlx::query("DELETE FROM project_members WHERE project = $1 AND user_name = $2")
                    .bind(project)
                    .bind(&p.name)
                    .execute(&mut **tx)
                    .await?;
                out.removed.push(project.clone());
            }
        }
        for (project, role) in &p.memberships {
            match have.iter().find(|(pr, _, _)| pr == project) {
                // Added by hand (or by another provider): left alone.
                Some((_, _, managed)) if managed.as_deref() != Some(source) => {}
                Some((_, have_role, _)) if have_role == role.as_str() => {}
                Some(_) => {
                    sqlx::query(
                        "UPDATE project_members SET role = $3 WHERE project = $1 AND user_name = $2",
                    )
                    .bind(project)
                    .bind(&p.name)
                    .bind(role.as_str())
                    .execute(&mut **tx)
                    .await?;
                    out.added.push(project.clone());
                }
                None => {
                    let n = sqlx::query(
                        "INSERT INTO project_members (project, user_name, role, added_at, managed_by) \
                         SELECT name, $2, $3, $4, $5 FROM projects WHERE name = $1",
                    )
                    .bind(project)
                    .bind(&p.name)
                    .bind(role.as_str())
                    .bind(now)
                    .bind(source)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        out.missing_projects.push(project.clone());
                    } else {
                        out.added.push(project.clone());
                    }
                }
            }
        }
        // A user without a default project gets the first they may submit to.
        if let Some(first) = p
            .memberships
            .iter()
            .find(|(pr, r)| !out.missing_projects.contains(pr) && r.can_submit())
            .map(|(pr, _)| pr)
        {
            sqlx::query(
                "UPDATE users SET default_project = $2 WHERE name = $1 AND default_project IS NULL",
            )
            .bind(&p.name)
            .bind(first)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// [`crate::IdentityStore::user_attributes`].
    pub(super) async fn attributes_of(&self, name: &str) -> Result<Option<UserAttributes>> {
        let row = sqlx::query("SELECT attributes FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let text: Option<String> = row.try_get("attributes")?;
        match text {
            None => Ok(Some(UserAttributes::local())),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("attributes of user `{name}`: {e}"))),
        }
    }

    /// [`crate::IdentityStore::external_users`].
    pub(super) async fn users_of(&self, source: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT name, subject FROM users WHERE source = $1 AND subject IS NOT NULL \
             AND disabled_at IS NULL ORDER BY name",
        )
        .bind(source)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("subject")?)))
            .collect()
    }
}
