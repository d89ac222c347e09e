-- Pending OpenID Connect sign-ins (issue 11): one row per login begun at
-- a provider and not yet finished, keyed by the hash of its `state`, so
-- that the callback may reach any of the servers sharing the database.
-- A callback takes its row with one DELETE ... RETURNING: a state (and
-- with it the nonce) is used once. `flow` is `portal` (`pkce` holds the
-- PKCE verifier the server made) or `cli` (`pkce` holds the S256
-- challenge the CLI sent; the verifier never leaves the CLI until it
-- finishes the login). Rows past `expires_at` are deleted as new logins
-- begin.
CREATE TABLE oidc_logins (
    state_hash TEXT NOT NULL PRIMARY KEY,
    provider TEXT NOT NULL,
    flow TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    next_path TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);
