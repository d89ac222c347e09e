-- Scale-out: compute environments and queues (declared in trestle.toml or
-- through the admin API), what happened to each CE, leader leases of the
-- cluster-wide background loops, and the provider's id of each worker.
CREATE TABLE compute_envs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'VALID',
    status_reason TEXT,
    status_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    priority BIGINT NOT NULL,
    spec TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE compute_env_events (
    id BIGSERIAL PRIMARY KEY,
    env TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX compute_env_events_env ON compute_env_events (env, id);

CREATE TABLE leader_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);

ALTER TABLE workers ADD COLUMN instance TEXT;
