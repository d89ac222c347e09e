-- Workflows: arrays and pipelines (group parents and their children),
-- dependencies, and the job event outbox.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'job';
ALTER TABLE jobs ADD COLUMN parent_id INTEGER;
ALTER TABLE jobs ADD COLUMN array_index INTEGER;
ALTER TABLE jobs ADD COLUMN deps_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_active INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_parallel INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_parent ON jobs (parent_id, state) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_groups_active ON jobs (id) WHERE kind <> 'job' AND state = 'RUNNING';
CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'PENDING';

CREATE TABLE job_deps (
    job_id INTEGER NOT NULL,
    dep_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, dep_id, kind)
);
CREATE INDEX job_deps_open ON job_deps (dep_id) WHERE resolved = 0;

CREATE TABLE job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    parent_id INTEGER,
    queue TEXT NOT NULL,
    owner TEXT,
    project TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    at INTEGER NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);
