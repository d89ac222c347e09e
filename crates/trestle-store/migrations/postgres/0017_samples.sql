-- Resource sampling, alarms and efficiency (issue 15). An attempt's CPU
-- time and peak memory as its worker reported them at its end; samples of
-- running attempts' process trees (percentages stored in tenths of a
-- percent), raw (resolution 0) for a day, then one per minute
-- (resolution 60000) for 30 days; and each alarm rule's state per attempt.
ALTER TABLE attempts ADD COLUMN cpu_ms BIGINT;
ALTER TABLE attempts ADD COLUMN max_rss_kib BIGINT;
CREATE TABLE task_samples (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    resolution_ms BIGINT NOT NULL,
    at BIGINT NOT NULL,
    cpu_pm BIGINT NOT NULL,
    rss_kib BIGINT NOT NULL,
    mem_pm BIGINT NOT NULL,
    disk_bytes BIGINT,
    disk_pm BIGINT,
    PRIMARY KEY (job_id, attempt, resolution_ms, at)
);
CREATE INDEX task_samples_age ON task_samples (resolution_ms, at);
CREATE TABLE attempt_alarms (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    breach_since BIGINT,
    changed_at BIGINT NOT NULL,
    value_pm BIGINT,
    PRIMARY KEY (job_id, attempt, rule)
);
CREATE INDEX attempt_alarms_state ON attempt_alarms (state);
