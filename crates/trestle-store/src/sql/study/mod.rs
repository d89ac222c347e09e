//! Studies in SQL (migration 15) and the [`StudyStore`] implementation.
//! A commit is one transaction: the compare-and-set on the study's
//! current version, the quota checks (the study's and its project's,
//! decided by `trestle_core::study::quota`), the version row, the new
//! objects' rows and the study's counters.

use super::{SqlStore, conflict_or};
use crate::study::{
    Committed, GrantRecord, NewVersion, StudyFilter, StudyRecord, StudyStore, VersionRecord,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeSet;
use trestle_core::study::manifest::Manifest;
use trestle_core::study::{Category, Permission, quota};

const COLUMNS: &str = "id, name, category, project, org, owner, description, quota_bytes, \
    version, stored_bytes, created_at";

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

fn record(r: &AnyRow) -> Result<StudyRecord> {
    let id: i64 = r.try_get("id")?;
    let cat: String = r.try_get("category")?;
    Ok(StudyRecord {
        id,
        name: r.try_get("name")?,
        category: Category::parse(&cat)
            .ok_or_else(|| StoreError::Corrupt(format!("study {id}: category `{cat}`")))?,
        project: r.try_get("project")?,
        org: r.try_get("org")?,
        owner: r.try_get("owner")?,
        description: r.try_get("description")?,
        quota_bytes: r.try_get::<Option<i64>, _>("quota_bytes")?.map(u),
        version: u(r.try_get("version")?),
        stored_bytes: u(r.try_get("stored_bytes")?),
        created_at: r.try_get("created_at")?,
    })
}

fn grant(r: &AnyRow) -> Result<GrantRecord> {
    let p: String = r.try_get("permission")?;
    Ok(GrantRecord {
        user: r.try_get("username")?,
        permission: Permission::parse(&p)
            .ok_or_else(|| StoreError::Corrupt(format!("study grant: permission `{p}`")))?,
        granted_by: r.try_get("granted_by")?,
        granted_at: r.try_get("granted_at")?,
    })
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl StudyStore for SqlStore {
    async fn insert_study(&self, s: &StudyRecord) -> Result<i64> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "INSERT INTO studies (name, category, project, org, owner, description, quota_bytes, \
             version, stored_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8) \
             RETURNING id",
        )
        .bind(&s.name)
        .bind(s.category.as_str())
        .bind(&s.project)
        .bind(s.org.clone())
        .bind(&s.owner)
        .bind(s.description.clone())
        .bind(s.quota_bytes.map(i))
        .bind(s.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "study", "name"))?;
        let id: i64 = row.try_get("id")?;
        sqlx::query(
            "INSERT INTO study_grants (study_id, username, permission, granted_by, granted_at) \
             VALUES ($1, $2, $3, $2, $4)",
        )
        .bind(id)
        .bind(&s.owner)
        .bind(Permission::Admin.as_str())
        .bind(s.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn study(&self, name: &str) -> Result<Option<StudyRecord>> {
        let q = format!("SELECT {COLUMNS} FROM studies WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn studies(&self, f: &StudyFilter) -> Result<Vec<StudyRecord>> {
        let mut projects = String::from(",");
        for p in &f.projects {
            projects.push_str(p);
            projects.push(',');
        }
        let q = format!(
            "SELECT {COLUMNS} FROM studies WHERE ($1 = '' OR category = $1) AND ($2 IS NULL \
             OR category = 'open' \
             OR (category = 'organization' AND $3 LIKE '%,' || project || ',%') \
             OR id IN (SELECT study_id FROM study_grants WHERE username = $2)) \
             ORDER BY name LIMIT 5000"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(f.category.map_or("", Category::as_str))
            .bind(f.user.clone())
            .bind(projects)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(record).collect()
    }

    async fn delete_study(&self, id: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        for t in ["study_grants", "study_versions", "study_objects"] {
            let q = format!("DELETE FROM {t} WHERE study_id = $1");
            sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM studies WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn study_grants(&self, id: i64) -> Result<Vec<GrantRecord>> {
        let rows = sqlx::query(
            "SELECT username, permission, granted_by, granted_at FROM study_grants \
             WHERE study_id = $1 ORDER BY username",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(grant).collect()
    }

    async fn study_grant(&self, id: i64, user: &str) -> Result<Option<Permission>> {
        let row = sqlx::query(
            "SELECT username, permission, granted_by, granted_at FROM study_grants \
             WHERE study_id = $1 AND username = $2",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(grant).transpose()?.map(|g| g.permission))
    }

    async fn put_study_grant(&self, id: i64, g: &GrantRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO study_grants (study_id, username, permission, granted_by, granted_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (study_id, username) DO UPDATE SET \
             permission = excluded.permission, granted_by = excluded.granted_by, \
             granted_at = excluded.granted_at",
        )
        .bind(id)
        .bind(&g.user)
        .bind(g.permission.as_str())
        .bind(g.granted_by.clone())
        .bind(g.granted_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn revoke_study_grant(&self, id: i64, user: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM study_grants WHERE study_id = $1 AND username = $2")
            .bind(id)
            .bind(user)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn study_versions(&self, id: i64) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT version, files, bytes, created_by, job_id, message, created_at, deleted_at \
             FROM study_versions WHERE study_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionRecord {
                    version: u(r.try_get("version")?),
                    files: u(r.try_get("files")?),
                    bytes: u(r.try_get("bytes")?),
                    created_by: r.try_get("created_by")?,
                    job_id: r.try_get("job_id")?,
                    message: r.try_get("message")?,
                    created_at: r.try_get("created_at")?,
                    deleted_at: r.try_get("deleted_at")?,
                })
            })
            .collect()
    }

    async fn study_manifest(&self, id: i64, version: u64) -> Result<Option<Manifest>> {
        if version == 0 {
            let exists = sqlx::query("SELECT id FROM studies WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
            return Ok(exists.map(|_| Manifest::default()));
        }
        let row =
            sqlx::query("SELECT manifest FROM study_versions WHERE study_id = $1 AND version = $2 AND deleted_at IS NULL")
                .bind(id)
                .bind(i(version))
                .fetch_optional(&self.read)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let text: String = row.try_get("manifest")?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("study {id} version {version}: {e}")))
    }

    async fn commit_study_version(&self, v: &NewVersion<'_>) -> Result<Committed> {
        let text =
            serde_json::to_string(v.manifest).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.write.begin().await?;
        let q = format!("SELECT {COLUMNS} FROM studies WHERE id = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(v.study_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Committed::Gone);
        };
        let s = record(&row)?;
        if s.version != v.after {
            return Ok(Committed::Moved { current: s.version });
        }
        let have: BTreeSet<String> =
            sqlx::query("SELECT sha256 FROM study_objects WHERE study_id = $1")
                .bind(v.study_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("sha256"))
                .collect::<std::result::Result<_, sqlx::Error>>()?;
        let objects = v.manifest.objects();
        let adding = quota::added_bytes(&objects, |sha| have.contains(sha));
        if adding > 0 {
            if let Err(e) = quota::check(
                &format!("study `{}`", s.name),
                s.stored_bytes,
                adding,
                s.quota_bytes,
            ) {
                return Ok(Committed::Quota(e));
            }
            let limit: Option<i64> =
                sqlx::query("SELECT quota_bytes FROM study_project_quotas WHERE project = $1")
                    .bind(&s.project)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("quota_bytes"))
                    .transpose()?;
            if let Some(limit) = limit {
                let used: Option<i64> =
                    sqlx::query("SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) AS used FROM studies WHERE project = $1")
                        .bind(&s.project)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("used")?;
                if let Err(e) = quota::check(
                    &format!("project `{}` (all its studies)", s.project),
                    u(used.unwrap_or(0)),
                    adding,
                    Some(u(limit)),
                ) {
                    return Ok(Committed::Quota(e));
                }
            }
        }
        let next = s.version + 1;
        sqlx::query(
            "INSERT INTO study_versions (study_id, version, manifest, files, bytes, created_by, \
             job_id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(v.study_id)
        .bind(i(next))
        .bind(text)
        .bind(i(v.manifest.files.len() as u64))
        .bind(i(v.manifest.bytes()))
        .bind(v.created_by.map(str::to_string))
        .bind(v.job_id)
        .bind(v.message.map(str::to_string))
        .bind(v.now)
        .execute(&mut *tx)
        .await?;
        for (sha, size) in objects.iter().filter(|(sha, _)| !have.contains(**sha)) {
            sqlx::query("INSERT INTO study_objects (study_id, sha256, size) VALUES ($1, $2, $3)")
                .bind(v.study_id)
                .bind(*sha)
                .bind(i(*size))
                .execute(&mut *tx)
                .await?;
        }
        let stored = s.stored_bytes.saturating_add(adding);
        sqlx::query("UPDATE studies SET version = $1, stored_bytes = $2 WHERE id = $3")
            .bind(i(next))
            .bind(i(stored))
            .bind(v.study_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Committed::Done {
            version: next,
            stored_bytes: stored,
        })
    }

    async fn study_versions_in_use(&self, name: &str) -> Result<BTreeSet<u64>> {
        let rows = sqlx::query(
            "SELECT id, spec FROM jobs WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') \
             AND spec LIKE $1",
        )
        .bind(format!("%\"study\":\"{name}\"%"))
        .fetch_all(&self.read)
        .await?;
        let mut out = BTreeSet::new();
        for r in rows {
            let text: String = r.try_get("spec")?;
            let Ok(spec) = serde_json::from_str::<trestle_core::JobSpec>(&text) else {
                continue;
            };
            out.extend(
                spec.studies
                    .iter()
                    .filter(|a| a.study == name)
                    .filter_map(|a| a.version),
            );
        }
        Ok(out)
    }

    async fn prune_study_versions(
        &self,
        id: i64,
        versions: &[u64],
        now: i64,
    ) -> Result<Vec<String>> {
        let mut tx = self.write.begin().await?;
        for v in versions {
            sqlx::query(
                "UPDATE study_versions SET manifest = '{\"files\":{}}', deleted_at = $1 \
                 WHERE study_id = $2 AND version = $3 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .bind(i(*v))
            .execute(&mut *tx)
            .await?;
        }
        let mut kept: BTreeSet<String> = BTreeSet::new();
        let rows = sqlx::query(
            "SELECT version, manifest FROM study_versions WHERE study_id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            let text: String = r.try_get("manifest")?;
            let m: Manifest = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("study {id}: {e}")))?;
            kept.extend(m.files.into_values().map(|e| e.sha256));
        }
        let all = sqlx::query("SELECT sha256, size FROM study_objects WHERE study_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let mut gone = Vec::new();
        let mut freed = 0u64;
        for r in all {
            let sha: String = r.try_get("sha256")?;
            if !kept.contains(&sha) {
                freed += u(r.try_get("size")?);
                sqlx::query("DELETE FROM study_objects WHERE study_id = $1 AND sha256 = $2")
                    .bind(id)
                    .bind(&sha)
                    .execute(&mut *tx)
                    .await?;
                gone.push(sha);
            }
        }
        sqlx::query(
            "UPDATE studies SET stored_bytes = CASE WHEN stored_bytes > $1 THEN stored_bytes - $1 \
             ELSE 0 END WHERE id = $2",
        )
        .bind(i(freed))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }

    async fn project_study_bytes(&self, project: &str) -> Result<u64> {
        let used: Option<i64> =
            sqlx::query("SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) AS used FROM studies WHERE project = $1")
                .bind(project)
                .fetch_one(&self.read)
                .await?
                .try_get("used")?;
        Ok(u(used.unwrap_or(0)))
    }

    async fn project_study_quota(&self, project: &str) -> Result<Option<u64>> {
        let q: Option<i64> =
            sqlx::query("SELECT quota_bytes FROM study_project_quotas WHERE project = $1")
                .bind(project)
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get("quota_bytes"))
                .transpose()?;
        Ok(q.map(u))
    }

    async fn set_project_study_quota(
        &self,
        project: &str,
        quota: Option<u64>,
        by: &str,
        now: i64,
    ) -> Result<()> {
        match quota {
            None => {
                sqlx::query("DELETE FROM study_project_quotas WHERE project = $1")
                    .bind(project)
                    .execute(&self.write)
                    .await?;
            }
            Some(q) => {
                sqlx::query(
                    "INSERT INTO study_project_quotas (project, quota_bytes, set_by, set_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project) DO UPDATE SET \
                     quota_bytes = excluded.quota_bytes, set_by = excluded.set_by, \
                     set_at = excluded.set_at",
                )
                .bind(project)
                .bind(i(q))
                .bind(by)
                .bind(now)
                .execute(&self.write)
                .await?;
            }
        }
        Ok(())
    }
}
