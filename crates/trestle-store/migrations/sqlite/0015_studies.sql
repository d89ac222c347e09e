-- Studies (issue 14): research data sets owned by a project. Files are
-- content-addressed objects under `studies/{id}/` in object storage;
-- every change is a new row of `study_versions` holding the whole
-- manifest (paths, sizes, SHA-256) as JSON; `study_objects` are the
-- distinct objects the kept versions refer to (what quotas count).
CREATE TABLE studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL,
    project TEXT NOT NULL,
    org TEXT,
    owner TEXT NOT NULL,
    description TEXT,
    quota_bytes INTEGER,
    version INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX studies_project ON studies (project);
CREATE TABLE study_grants (
    study_id INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    permission TEXT NOT NULL,
    granted_by TEXT,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (study_id, username)
);
CREATE INDEX study_grants_user ON study_grants (username);
CREATE TABLE study_versions (
    study_id INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created_by TEXT,
    job_id INTEGER,
    message TEXT,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER,
    PRIMARY KEY (study_id, version)
);
CREATE TABLE study_objects (
    study_id INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (study_id, sha256)
);
CREATE TABLE study_project_quotas (
    project TEXT NOT NULL PRIMARY KEY,
    quota_bytes INTEGER NOT NULL,
    set_by TEXT,
    set_at INTEGER NOT NULL
);
