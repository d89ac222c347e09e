-- Job keys are unique per owner: the unique column holds `owner/key`, so
-- another user's key neither blocks nor reveals yours.
UPDATE jobs SET key = COALESCE(owner, '') || '/' || key WHERE key IS NOT NULL;

-- Each attempt's log is kept up to its queue's limit: what is stored and
-- what was dropped.
ALTER TABLE attempts ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN log_dropped INTEGER NOT NULL DEFAULT 0;

-- What each upload holds, charged to a project's storage quota.
CREATE TABLE upload_usage (
    upload_id TEXT PRIMARY KEY NOT NULL,
    project TEXT NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX upload_usage_project ON upload_usage (project);
