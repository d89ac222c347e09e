-- Users from identity providers (OIDC, LDAP): where each user comes from,
-- the provider's id of them, the attributes kept (JSON: email, Unix
-- account, groups, where each came from), and which provider's mapping
-- rules made a membership (NULL: added by hand, never touched by rules).
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE users ADD COLUMN subject TEXT;
ALTER TABLE users ADD COLUMN attributes TEXT;
CREATE UNIQUE INDEX users_source_subject ON users (source, subject) WHERE subject IS NOT NULL;
ALTER TABLE project_members ADD COLUMN managed_by TEXT;
