-- Workspaces (issue 13): type versions (imported not approved; admins
-- approve or revoke each), configurations (an admin's preset of one type
-- version, stored as JSON), and workspaces: one user's launch of a
-- configuration, its lifecycle, its current session task (a job of kind
-- `session`), its saved home and its activity.
CREATE TABLE workspace_types (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    spec TEXT NOT NULL,
    approval TEXT NOT NULL,
    imported_by TEXT,
    imported_at INTEGER NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    PRIMARY KEY (name, version)
);
CREATE TABLE workspace_configs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_by TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    project TEXT,
    config TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    shared INTEGER NOT NULL DEFAULT 0,
    job_id INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    running_since INTEGER,
    deadline INTEGER,
    extended_secs INTEGER NOT NULL DEFAULT 0,
    secret TEXT,
    ready_job INTEGER,
    home_key TEXT,
    home_bytes INTEGER,
    home_saved_at INTEGER,
    home_saved_job INTEGER,
    save_error TEXT,
    save_error_job INTEGER,
    last_request INTEGER,
    last_app INTEGER,
    app_busy INTEGER NOT NULL DEFAULT 0,
    last_attached INTEGER,
    attached INTEGER NOT NULL DEFAULT 0,
    assist_by TEXT,
    assist_until INTEGER
);
CREATE INDEX workspaces_owner ON workspaces (owner, id);
CREATE INDEX workspaces_state ON workspaces (state);
CREATE UNIQUE INDEX workspaces_job ON workspaces (job_id) WHERE job_id IS NOT NULL;
-- Per-workspace origins: a one-time ticket minted on the portal's origin
-- (kind 'ticket', a minute) is redeemed on the workspace's own origin for
-- a cookie of that origin only (kind 'cookie'); both stored hashed, and
-- good for that workspace and user only, never for the API.
CREATE TABLE workspace_grants (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    workspace_id INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX workspace_grants_expiry ON workspace_grants (expires_at);
