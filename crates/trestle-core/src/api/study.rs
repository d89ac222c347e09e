//! Wire types of studies: what users send to create, change and grant,
//! and how studies, versions and grants are shown.

use crate::study::manifest::Change;
use crate::study::{Category, Permission};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/studies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateStudy {
    /// Unique name.
    pub name: String,
    /// `personal`, `organization` or `open`.
    pub category: String,
    /// The project charged (default: the creator's default project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// A line about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The study's quota in bytes, every version kept counting (none: only
    /// the project's applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
}

/// A study as a user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyView {
    /// Name.
    pub name: String,
    /// Category.
    pub category: Category,
    /// The project charged.
    pub project: String,
    /// Who created it.
    pub owner: String,
    /// A line about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The current version (0: empty, never changed).
    pub version: u64,
    /// Files in the current version (absent for write-only users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Bytes of the current version (absent for write-only users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes stored for every version kept (what the quota counts).
    pub stored_bytes: u64,
    /// The study's quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// What the asking user may do, as one permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<Permission>,
    /// Created at (ms).
    pub created_at: i64,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyFile {
    /// Relative path.
    pub path: String,
    /// Size.
    pub size: u64,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// `GET /api/v1/studies/{name}/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyListing {
    /// The version listed.
    pub version: u64,
    /// Its files (under the asked prefix).
    pub files: Vec<StudyFile>,
}

/// `POST /api/v1/studies/{name}/versions`: changes against a base
/// version, applied by the merge rule (`trestle_core::study::merge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// The version the changes were made against (default: the current
    /// one, i.e. no conflict check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
    /// The changes; every `put`'s content must be uploaded already.
    pub changes: Vec<Change>,
    /// A line about the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionView {
    /// Number (from 1).
    pub version: u64,
    /// Files.
    pub files: u64,
    /// Bytes.
    pub bytes: u64,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The job whose attempt made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// A line about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When (ms).
    pub created_at: i64,
    /// When the retention policy deleted it (its files are gone; jobs
    /// that read it still name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

/// `POST /api/v1/studies/{name}/prune`: delete versions replaced more
/// than `keep` ago (`30d`, `12h`) that no unfinished job reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// The retention period.
    pub keep: String,
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneView {
    /// The versions deleted.
    pub versions: Vec<u64>,
    /// The objects removed from storage.
    pub objects: u64,
    /// The study's stored bytes after.
    pub stored_bytes: u64,
}

/// `PUT /api/v1/studies/{name}/grants/{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// `admin`, `read-write`, `read-only` or `write-only`.
    pub permission: String,
}

/// One user's grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// The user.
    pub user: String,
    /// The permission.
    pub permission: Permission,
    /// Who granted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// When (ms).
    pub granted_at: i64,
}

/// An uploaded object (`PUT /api/v1/studies/{name}/objects/{sha256}`, or
/// the completion of its parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectView {
    /// SHA-256, verified by the server.
    pub sha256: String,
    /// Size.
    pub size: u64,
}

/// The parts of a multipart upload received so far (to resume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsView {
    /// The object's SHA-256.
    pub sha256: String,
    /// Part numbers (from 0) with their sizes.
    pub parts: Vec<(u32, u64)>,
}

/// `POST /api/v1/studies/{name}/parts/{sha256}/complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteParts {
    /// How many parts make the object (numbered 0..count).
    pub count: u32,
    /// Its total size.
    pub size: u64,
}

/// The header carrying a body's SHA-256 (uploads: what the client
/// computed, checked by the server; downloads: what the manifest says,
/// checked by the client).
pub const SHA256_HEADER: &str = "x-trestle-sha256";
/// The header carrying the version a download was read from.
pub const VERSION_HEADER: &str = "x-trestle-study-version";
