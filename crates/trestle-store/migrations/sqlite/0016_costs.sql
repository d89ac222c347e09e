-- Costs (issue 15). `worker_history` keeps what each worker was and the
-- price of its shape when it registered, after the worker itself leaves;
-- the meter prices every ended attempt from it. `attempts.metered` marks
-- attempts the meter has recorded: a partial index holds only the ended,
-- unmetered ones, so the meter never scans history. A batch attempt's
-- usage record is the attempt row itself (its rate and charge);
-- `usage_records` hold the others (workspace sessions, worker overhead,
-- storage), keyed so a retried meter tick never counts twice;
-- `usage_daily` rolls them all up per UTC day.
CREATE TABLE worker_history (
    id TEXT NOT NULL PRIMARY KEY,
    compute_env TEXT,
    shape TEXT NOT NULL,
    size_cpus INTEGER NOT NULL,
    size_mem_mib INTEGER NOT NULL,
    size_gpus INTEGER NOT NULL,
    price_per_hour REAL NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    charged REAL NOT NULL DEFAULT 0,
    overhead_metered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX worker_history_unmetered ON worker_history (ended_at)
    WHERE overhead_metered = 0 AND ended_at IS NOT NULL;

ALTER TABLE attempts ADD COLUMN metered INTEGER NOT NULL DEFAULT 0;
-- A batch attempt's usage record is its own row: the rate in force and
-- the charge, set by the meter with `metered` (one row update per job).
ALTER TABLE attempts ADD COLUMN rate_per_hour REAL;
ALTER TABLE attempts ADD COLUMN charge REAL;
-- Attempts from before metering are not priced.
UPDATE attempts SET metered = 1;
CREATE INDEX attempts_unmetered ON attempts (job_id, attempt)
    WHERE metered = 0 AND ended_at IS NOT NULL;

CREATE TABLE usage_records (
    id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    job_id INTEGER,
    attempt INTEGER,
    parent_id INTEGER,
    workspace_id INTEGER,
    worker_id TEXT,
    compute_env TEXT NOT NULL,
    user_name TEXT NOT NULL,
    project TEXT NOT NULL,
    index_name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER NOT NULL,
    cpus INTEGER NOT NULL,
    mem_mib INTEGER NOT NULL,
    gpus INTEGER NOT NULL,
    rate_per_hour REAL NOT NULL,
    charge REAL NOT NULL,
    cpu_used_ms INTEGER,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX usage_records_job ON usage_records (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX usage_records_parent ON usage_records (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX usage_records_workspace ON usage_records (workspace_id) WHERE workspace_id IS NOT NULL;

CREATE TABLE usage_daily (
    day INTEGER NOT NULL,
    project TEXT NOT NULL,
    user_name TEXT NOT NULL,
    index_name TEXT NOT NULL,
    compute_env TEXT NOT NULL,
    kind TEXT NOT NULL,
    charge REAL NOT NULL,
    seconds REAL NOT NULL,
    core_seconds REAL NOT NULL,
    measured_core_seconds REAL NOT NULL,
    used_core_seconds REAL NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (day, project, user_name, index_name, compute_env, kind)
);

-- The same sums per single dimension (`project`, `user`, `index`, `env`,
-- `kind`) and day: the site-wide reports (the Costs page, `trestle
-- costs` without filters) read these few rows instead of every
-- combination.
CREATE TABLE usage_daily_dim (
    dim TEXT NOT NULL,
    day INTEGER NOT NULL,
    key TEXT NOT NULL,
    charge REAL NOT NULL,
    seconds REAL NOT NULL,
    core_seconds REAL NOT NULL,
    measured_core_seconds REAL NOT NULL,
    used_core_seconds REAL NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (dim, day, key)
);

-- One budget per project or index. `blocked_at`: when it last started
-- stopping spending (NULL while it does not).
CREATE TABLE budgets (
    scope_kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    spec TEXT NOT NULL,
    enforcement TEXT NOT NULL,
    blocked_at INTEGER,
    updated_by TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope_kind, scope)
);
-- Each threshold (or the forecast) once per period.
CREATE TABLE budget_marks (
    scope_kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    mark TEXT NOT NULL,
    spend REAL NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (scope_kind, scope, period_start, mark)
);
-- Jobs an admin let past their budget.
CREATE TABLE budget_overrides (
    job_id INTEGER NOT NULL PRIMARY KEY,
    by_user TEXT NOT NULL,
    at INTEGER NOT NULL
);
-- Escrow: what each admitted job of an escrow budget reserved (its
-- largest possible charge); counted against the budget until the job ends.
CREATE TABLE budget_reservations (
    job_id INTEGER NOT NULL PRIMARY KEY,
    scope_kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    amount REAL NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX budget_reservations_scope ON budget_reservations (scope_kind, scope);
