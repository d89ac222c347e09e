CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT UNIQUE,
    name TEXT NOT NULL,
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    cpus INTEGER NOT NULL,
    mem_mib INTEGER NOT NULL,
    gpus INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    attempts_used INTEGER NOT NULL DEFAULT 0,
    interruptions INTEGER NOT NULL DEFAULT 0,
    attempt_seq INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_worker TEXT,
    lease_expires_at INTEGER,
    exit_code INTEGER,
    reason TEXT,
    submitted_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX jobs_runnable ON jobs (priority DESC, id) WHERE state = 'RUNNABLE';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE lease_token IS NOT NULL;
CREATE INDEX jobs_state_queue ON jobs (state, queue);

CREATE TABLE attempts (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    exit_code INTEGER,
    message TEXT,
    leased_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE log_chunks (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    cpus INTEGER NOT NULL,
    mem_mib INTEGER NOT NULL,
    gpus INTEGER NOT NULL,
    compute_env TEXT,
    version TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER,
    revoked_at INTEGER
);
