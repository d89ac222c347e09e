-- Notifications (issue 16).
--
-- notify_events: events of every domain but jobs, written by
-- `sql::notify::record` in the transaction of the change they report (job
-- events stay in job_events, written on the batch hot path as before).
-- notify_cursors: how far the delivery loop has routed each log
-- (`job` over job_events, `event` over notify_events); advanced in the
-- transaction that stores what it routed, so nothing is lost or doubled.
-- notify_targets: `config` is JSON in the clear, `secret` the encrypted
-- JSON of the URL, signing secret and SMTP password, `key_id` the key it
-- is sealed under. notify_items: one event waiting for one target (and
-- user), until it is part of a delivery. notify_deliveries: one message
-- (one event, or a digest), its stable id the `webhook-id`.
CREATE TABLE notify_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    title TEXT NOT NULL,
    owner TEXT,
    project TEXT,
    link TEXT,
    detail TEXT,
    at INTEGER NOT NULL
);
CREATE TABLE notify_cursors (
    source TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE notify_targets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    owner TEXT,
    config TEXT NOT NULL,
    secret TEXT NOT NULL,
    key_id TEXT NOT NULL,
    last_formed_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE notify_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    events TEXT NOT NULL,
    project TEXT,
    targets TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE notify_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name TEXT NOT NULL,
    events TEXT NOT NULL,
    target TEXT,
    job_id INTEGER,
    mode TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX notify_subscriptions_user ON notify_subscriptions (user_name);
CREATE TABLE notify_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id INTEGER NOT NULL,
    user_name TEXT,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    delivery_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX notify_items_waiting ON notify_items (target_id, id) WHERE delivery_id IS NULL;
CREATE INDEX notify_items_delivery ON notify_items (delivery_id, id);
CREATE TABLE notify_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    target_id INTEGER NOT NULL,
    user_name TEXT,
    kind TEXT NOT NULL,
    events INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX notify_deliveries_pending ON notify_deliveries (target_id, seq) WHERE state = 'pending';
CREATE INDEX notify_deliveries_state ON notify_deliveries (state, seq);
-- An address an admin set for a user's notifications, over the one their
-- identity provider gives (UserAttributes.email).
CREATE TABLE notify_addresses (
    user_name TEXT NOT NULL PRIMARY KEY,
    email TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL
);
-- Routing starts at the events written from now on: the job history of
-- an upgraded database is not sent to anyone.
INSERT INTO notify_cursors (source, position) SELECT 'job', COALESCE(MAX(id), 0) FROM job_events;
INSERT INTO notify_cursors (source, position) VALUES ('event', 0);
