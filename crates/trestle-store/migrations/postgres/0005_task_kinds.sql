-- Task kinds: every job row is one kind of task (`batch` today; `session`
-- for workspaces). The lease query takes only the kinds a worker runs.
ALTER TABLE jobs ADD COLUMN task_kind TEXT NOT NULL DEFAULT 'batch';
