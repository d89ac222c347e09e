-- Login attempts, counted atomically (issue 19: the throttle counted
-- failures after checking the password, so parallel attempts all got
-- through the check). One row per key (user and source address): the
-- start of its current window and the attempts reserved in it. A login
-- reserves an attempt with one INSERT ... ON CONFLICT DO UPDATE ...
-- RETURNING before the password is checked; a successful one deletes
-- the row. `login_failures` is no longer written; it is kept so that a
-- server of the previous version still starts during a rolling upgrade.
CREATE TABLE login_attempts (
    key TEXT NOT NULL PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL
);
CREATE INDEX login_attempts_window ON login_attempts (window_start);
