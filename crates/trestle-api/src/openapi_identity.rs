//! The identity and audit part of the OpenAPI document: operations and
//! the properties of their schemas (merged by [`crate::openapi::document`]).

/// Schema names and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    ("LoginRequest", &["user", "password", "token"]),
    ("LoginResponse", &["user", "csrf_token", "token"]),
    ("WhoAmI", &["user", "token_id", "kind", "scope", "projects"]),
    (
        "UserView",
        &[
            "name",
            "role",
            "org",
            "default_project",
            "disabled",
            "has_password",
            "created_at",
            "last_seen_at",
            "attributes",
        ],
    ),
    (
        "NewUser",
        &["name", "role", "org", "default_project", "password"],
    ),
    (
        "UserUpdate",
        &[
            "role",
            "disabled",
            "org",
            "default_project",
            "password",
            "current_password",
        ],
    ),
    (
        "TokenView",
        &[
            "id",
            "name",
            "user",
            "kind",
            "scope",
            "created_at",
            "expires_at",
            "last_used_at",
            "last_used_ip",
            "revoked_at",
        ],
    ),
    ("NewToken", &["name", "scope", "ttl", "user", "worker"]),
    ("TokenCreated", &["token", "info"]),
    (
        "IndexView",
        &["name", "description", "created_at", "projects"],
    ),
    ("NewIndex", &["name", "description"]),
    (
        "ProjectView",
        &[
            "name",
            "index",
            "org",
            "description",
            "created_at",
            "members",
        ],
    ),
    ("NewProject", &["name", "index", "org", "description"]),
    ("MemberRequest", &["user", "role"]),
    ("AuditAnswer", &["records", "groups", "tokens"]),
    ("NamedQuery", &["name", "description", "params", "filter"]),
    (
        "UnusedReport",
        &["period_secs", "tokens", "users", "disabled"],
    ),
    ("DisableUnused", &["period"]),
    (
        "DirectorySync",
        &["source", "remapped", "changed", "deprovisioned"],
    ),
];
