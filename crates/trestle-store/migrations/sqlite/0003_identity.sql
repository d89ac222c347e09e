-- Identity, projects and the audit trail (issue 5).

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    org TEXT,
    default_project TEXT,
    password_hash TEXT,
    disabled_at INTEGER,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER
);

CREATE TABLE indexes (
    name TEXT PRIMARY KEY,
    description TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE projects (
    name TEXT PRIMARY KEY,
    index_name TEXT NOT NULL REFERENCES indexes (name),
    org TEXT,
    description TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE project_members (
    project TEXT NOT NULL REFERENCES projects (name),
    user_name TEXT NOT NULL REFERENCES users (name),
    role TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (project, user_name)
);
CREATE INDEX project_members_user ON project_members (user_name);

-- Every installation starts with one funding source and one project.
INSERT INTO indexes (name, description, created_at) VALUES ('default', 'created at installation', 0);
INSERT INTO projects (name, index_name, description, created_at) VALUES ('default', 'default', 'created at installation', 0);

ALTER TABLE tokens ADD COLUMN user_name TEXT;
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
ALTER TABLE tokens ADD COLUMN last_used_ip TEXT;
CREATE INDEX tokens_user ON tokens (user_name);

-- Installations from before this migration: their admin tokens become
-- tokens of a bootstrap admin user, who owns the jobs submitted so far.
INSERT INTO users (name, role, default_project, created_at)
    SELECT 'admin', 'admin', 'default', 0 WHERE EXISTS (SELECT 1 FROM tokens WHERE role = 'admin');
INSERT INTO project_members (project, user_name, role, added_at)
    SELECT 'default', 'admin', 'manager', 0 WHERE EXISTS (SELECT 1 FROM users WHERE name = 'admin');
UPDATE tokens SET user_name = 'admin' WHERE role = 'admin';
UPDATE tokens SET kind = 'worker' WHERE role = 'worker';

ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN project TEXT;
UPDATE jobs SET owner = 'admin', project = 'default';
CREATE INDEX jobs_owner ON jobs (owner, id);
CREATE INDEX jobs_project ON jobs (project, id);

ALTER TABLE workers ADD COLUMN registered_by TEXT;

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    source_ip TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    user_name TEXT,
    token_id TEXT,
    source_ip TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT,
    status INTEGER NOT NULL,
    latency_us INTEGER NOT NULL,
    user_agent TEXT,
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_resource ON audit (resource, at);
CREATE INDEX audit_user ON audit (user_name, at);
