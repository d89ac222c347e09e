//! The studies part of the OpenAPI document (merged by
//! [`crate::openapi::document`]).

/// Schemas and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    (
        "CreateStudy",
        &["name", "category", "project", "description", "quota_bytes"],
    ),
    (
        "StudyView",
        &[
            "name",
            "category",
            "project",
            "owner",
            "description",
            "version",
            "files",
            "bytes",
            "stored_bytes",
            "quota_bytes",
            "permission",
            "created_at",
        ],
    ),
    ("StudyListing", &["version", "files"]),
    ("CommitRequest", &["base_version", "changes", "message"]),
    (
        "VersionView",
        &[
            "version",
            "files",
            "bytes",
            "created_by",
            "job_id",
            "message",
            "created_at",
            "deleted_at",
        ],
    ),
    ("PruneRequest", &["keep"]),
    ("PruneView", &["versions", "objects", "stored_bytes"]),
    ("GrantRequest", &["permission"]),
    (
        "GrantView",
        &["user", "permission", "granted_by", "granted_at"],
    ),
    ("ObjectView", &["sha256", "size"]),
    ("PartsView", &["sha256", "parts"]),
    ("CompleteParts", &["count", "size"]),
    ("StudyQuota", &["quota"]),
];
