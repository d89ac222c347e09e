//! Who is calling: bearer tokens (user tokens and worker credentials) and
//! browser sessions. Tokens are random, shown once, and stored only as
//! SHA-256 hashes; lookups are cached briefly so the workers' hot path does
//! not read the database on every request. Whether the caller may do what
//! it asks is decided by `trestle_core::identity::authz` (see
//! [`crate::access`]); the HTTP edges read the credential from the request
//! and ask here who it belongs to.

use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trestle_core::identity::authz::{Role, Subject, UserSubject};

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "trestle_session";
/// The form field carrying a session's CSRF token (form posts).
pub const CSRF_FIELD: &str = "csrf_token";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is, as authorization sees it.
    pub subject: Subject,
    /// The credential: a token id, `session`, or `internal` (the server's
    /// own local workers).
    pub token_id: String,
    /// The user's default project.
    pub default_project: Option<String>,
}

impl Principal {
    /// The user, unless this is a worker credential.
    pub fn user(&self) -> Option<&UserSubject> {
        match &self.subject {
            Subject::User(u) => Some(u),
            Subject::Worker { .. } => None,
        }
    }

    /// The user's name, if any.
    pub fn user_name(&self) -> Option<&str> {
        self.user().map(|u| u.name.as_str())
    }

    /// True for admins (whatever the token's scope).
    pub fn is_admin(&self) -> bool {
        self.user().is_some_and(|u| u.role == Role::Admin)
    }
}

/// A new random token with a recognisable prefix.
pub fn new_token() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    format!("{}{}", trestle_core::identity::TOKEN_PREFIX, hex::encode(b))
}

/// The stored form of a token (and of a session secret).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The public id of a token, derived from its hash.
pub fn token_id(token: &str) -> String {
    format!("tok-{}", &hash_token(token)[..12])
}

/// A short-lived cache of credential lookups (hash -> principal). Cleared
/// whenever identity data changes on this server; other servers see a
/// change within [`CACHE_TTL`].
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

/// How long a cached lookup is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

impl TokenCache {
    /// A lookup cached less than [`CACHE_TTL`] ago.
    pub fn get(&self, hash: &str) -> Option<Principal> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    /// Caches a lookup.
    pub fn put(&self, hash: String, p: Principal) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(hash, (p, Instant::now()));
    }

    /// Forgets every cached lookup (after a revocation, a role change...).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Which credential registered each worker (filled as workers register or
/// are first seen; a binding never changes).
#[derive(Debug, Default)]
pub struct WorkerOwners(Mutex<HashMap<String, String>>);

impl WorkerOwners {
    /// The credential that registered `worker`, if known here.
    pub fn get(&self, worker: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(worker)
            .cloned()
    }

    /// Remembers a binding.
    pub fn put(&self, worker: &str, token: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(worker.to_string(), token.to_string());
    }
}

/// The value of cookie `name` in `Cookie` header values.
pub fn cookie_value<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_secrets_and_ids() {
        let h = ["a=1; trestle_session=abc"];
        assert_eq!(cookie_value(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(h, "b"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(token_id("trs_x").starts_with("tok-"));
    }
}
