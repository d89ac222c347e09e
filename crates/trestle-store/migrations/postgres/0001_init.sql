CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    key TEXT UNIQUE,
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    cpus BIGINT NOT NULL,
    mem_mib BIGINT NOT NULL,
    gpus BIGINT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    attempts_used BIGINT NOT NULL DEFAULT 0,
    interruptions BIGINT NOT NULL DEFAULT 0,
    attempt_seq BIGINT NOT NULL DEFAULT 0,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_worker TEXT,
    lease_expires_at BIGINT,
    exit_code BIGINT,
    reason TEXT,
    submitted_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX jobs_runnable ON jobs (priority DESC, id) WHERE state = 'RUNNABLE';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE lease_token IS NOT NULL;
CREATE INDEX jobs_state_queue ON jobs (state, queue);

CREATE TABLE attempts (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    worker_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code BIGINT,
    message TEXT,
    leased_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE log_chunks (
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    cpus BIGINT NOT NULL,
    mem_mib BIGINT NOT NULL,
    gpus BIGINT NOT NULL,
    compute_env TEXT,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
