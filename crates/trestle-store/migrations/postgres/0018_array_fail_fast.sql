-- Fail fast for arrays (issue 20): once this many children of an array
-- failed, the rest are cancelled; 0 means every child runs.
ALTER TABLE jobs ADD COLUMN group_max_failures BIGINT NOT NULL DEFAULT 0;
