//! Studies in storage (see migration 15): the studies, their grants,
//! their versions (each a whole manifest) and the distinct objects the
//! versions refer to. Which version a change applies to is decided by
//! the service with `trestle_core::study::merge`; the store commits it
//! with a compare-and-set on the study's current version and checks the
//! quotas in the same transaction.

use crate::Result;
use async_trait::async_trait;
use trestle_core::ValidationError;
use trestle_core::study::manifest::Manifest;
use trestle_core::study::{Category, Permission};

/// A stored study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyRecord {
    /// Id (0 before it is inserted).
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Category.
    pub category: Category,
    /// The project charged.
    pub project: String,
    /// The project's organisation.
    pub org: Option<String>,
    /// Who created it.
    pub owner: String,
    /// A line about it.
    pub description: Option<String>,
    /// Its quota.
    pub quota_bytes: Option<u64>,
    /// Current version (0: empty).
    pub version: u64,
    /// Bytes of the distinct objects of every kept version.
    pub stored_bytes: u64,
    /// Created at.
    pub created_at: i64,
}

/// One user's grant on a study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// The user.
    pub user: String,
    /// The permission.
    pub permission: Permission,
    /// Who granted it.
    pub granted_by: Option<String>,
    /// When.
    pub granted_at: i64,
}

/// One stored version (its manifest is read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// Number (from 1).
    pub version: u64,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Who made it.
    pub created_by: Option<String>,
    /// The job whose attempt made it.
    pub job_id: Option<i64>,
    /// A line about it.
    pub message: Option<String>,
    /// When.
    pub created_at: i64,
    /// When it was deleted by the retention policy (its manifest is gone).
    pub deleted_at: Option<i64>,
}

/// A new version to commit.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// The study.
    pub study_id: i64,
    /// The version it must follow (compare-and-set).
    pub after: u64,
    /// The whole manifest.
    pub manifest: &'a Manifest,
    /// Who.
    pub created_by: Option<&'a str>,
    /// The job whose attempt made it.
    pub job_id: Option<i64>,
    /// A line about it.
    pub message: Option<&'a str>,
    /// Now.
    pub now: i64,
}

/// What committing a version did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// It is the new current version.
    Done {
        /// Its number.
        version: u64,
        /// The study's stored bytes after it.
        stored_bytes: u64,
    },
    /// Another version came first: merge again on top of it.
    Moved {
        /// The current version now.
        current: u64,
    },
    /// A quota would be exceeded (the error says which and by how much).
    Quota(ValidationError),
    /// The study is gone.
    Gone,
}

/// Which studies a listing may return before authorization filters them.
#[derive(Debug, Clone, Default)]
pub struct StudyFilter {
    /// `None`: every study (admins). `Some(user)`: open ones, those of
    /// `projects`, and those `user` holds a grant on.
    pub user: Option<String>,
    /// With `user`: projects whose organisation studies the user may see.
    pub projects: Vec<String>,
    /// Only this category.
    pub category: Option<Category>,
}

/// Studies, their grants, versions and quotas.
#[async_trait]
pub trait StudyStore: Send + Sync {
    /// Stores a new study with an admin grant for its owner; returns its
    /// id (`Conflict` on `name` when the name is taken).
    async fn insert_study(&self, s: &StudyRecord) -> Result<i64>;
    /// One study by name.
    async fn study(&self, name: &str) -> Result<Option<StudyRecord>>;
    /// Studies matching a filter, by name.
    async fn studies(&self, f: &StudyFilter) -> Result<Vec<StudyRecord>>;
    /// Deletes a study with its grants, versions and objects' rows; false
    /// when unknown.
    async fn delete_study(&self, id: i64) -> Result<bool>;
    /// The grants of a study, by user.
    async fn study_grants(&self, id: i64) -> Result<Vec<GrantRecord>>;
    /// One user's grant.
    async fn study_grant(&self, id: i64, user: &str) -> Result<Option<Permission>>;
    /// Grants (or changes) a user's permission.
    async fn put_study_grant(&self, id: i64, g: &GrantRecord) -> Result<()>;
    /// Revokes a user's grant; false when there was none.
    async fn revoke_study_grant(&self, id: i64, user: &str) -> Result<bool>;
    /// The versions of a study, oldest first.
    async fn study_versions(&self, id: i64) -> Result<Vec<VersionRecord>>;
    /// One version's manifest (version 0 is the empty manifest).
    async fn study_manifest(&self, id: i64, version: u64) -> Result<Option<Manifest>>;
    /// Commits a version if the study's current version is still
    /// `v.after`, checking the study's quota and its project's (every
    /// version kept counts) in the same transaction.
    async fn commit_study_version(&self, v: &NewVersion<'_>) -> Result<Committed>;
    /// The versions of study `name` that unfinished jobs read.
    async fn study_versions_in_use(&self, name: &str) -> Result<std::collections::BTreeSet<u64>>;
    /// Marks versions deleted (their rows stay, their manifests go) and
    /// forgets the objects no remaining version refers to; returns those
    /// objects' SHA-256 (to delete from object storage).
    async fn prune_study_versions(
        &self,
        id: i64,
        versions: &[u64],
        now: i64,
    ) -> Result<Vec<String>>;
    /// Bytes stored by every study of a project.
    async fn project_study_bytes(&self, project: &str) -> Result<u64>;
    /// A project's quota for its studies.
    async fn project_study_quota(&self, project: &str) -> Result<Option<u64>>;
    /// Sets (or, with `None`, removes) a project's quota for its studies.
    async fn set_project_study_quota(
        &self,
        project: &str,
        quota: Option<u64>,
        by: &str,
        now: i64,
    ) -> Result<()>;
}
