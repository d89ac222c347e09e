-- Workflows: arrays and pipelines (group parents and their children),
-- dependencies, and the job event outbox.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'job';
ALTER TABLE jobs ADD COLUMN parent_id BIGINT;
ALTER TABLE jobs ADD COLUMN array_index BIGINT;
ALTER TABLE jobs ADD COLUMN deps_pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_created BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_active BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN group_parallel BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_parent ON jobs (parent_id, state) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_groups_active ON jobs (id) WHERE kind <> 'job' AND state = 'RUNNING';
CREATE INDEX jobs_pending ON jobs (id) WHERE state = 'PENDING';

CREATE TABLE job_deps (
    job_id BIGINT NOT NULL,
    dep_id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    resolved BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, dep_id, kind)
);
CREATE INDEX job_deps_open ON job_deps (dep_id) WHERE resolved = 0;

CREATE TABLE job_events (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    parent_id BIGINT,
    queue TEXT NOT NULL,
    owner TEXT,
    project TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code BIGINT,
    at BIGINT NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);
