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
    imported_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    PRIMARY KEY (name, version)
);
CREATE TABLE workspace_configs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    updated_by TEXT,
    updated_at BIGINT NOT NULL
);
CREATE TABLE workspaces (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    project TEXT,
    config TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    shared BIGINT NOT NULL DEFAULT 0,
    job_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    running_since BIGINT,
    deadline BIGINT,
    extended_secs BIGINT NOT NULL DEFAULT 0,
    secret TEXT,
    ready_job BIGINT,
    home_key TEXT,
    home_bytes BIGINT,
    home_saved_at BIGINT,
    home_saved_job BIGINT,
    save_error TEXT,
    save_error_job BIGINT,
    last_request BIGINT,
    last_app BIGINT,
    app_busy BIGINT NOT NULL DEFAULT 0,
    last_attached BIGINT,
    attached BIGINT NOT NULL DEFAULT 0,
    assist_by TEXT,
    assist_until BIGINT
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
    workspace_id BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX workspace_grants_expiry ON workspace_grants (expires_at);
