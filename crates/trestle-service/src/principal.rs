//! Who is calling: bearer tokens (user tokens and worker credentials) and
//! browser sessions. Tokens are random, shown once, and stored only as
//! SHA-256 hashes; lookups are cached briefly so the workers' hot path does
//! not read the database on every request. Whether the caller may do what
//! it asks is decided by `trestle_core::identity::authz` (see
//! [`crate::access`]); the HTTP edges read the credential from the request
//! and ask here who it belongs to.

use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{Role, Scope, Subject, UserSubject};

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
    format!("trs_{}", hex::encode(b))
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
    fn get(&self, hash: &str) -> Option<Principal> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, p: Principal) {
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

/// Builds a user's principal from the store.
pub async fn user_principal(
    app: &Service,
    name: &str,
    scope: Scope,
    token_id: String,
) -> ServiceResult<Option<Principal>> {
    let Some(u) = app.store.user(name).await? else {
        return Ok(None);
    };
    if u.disabled_at.is_some() {
        return Ok(None);
    }
    Ok(Some(Principal {
        subject: Subject::User(UserSubject {
            memberships: app.store.memberships(name).await?,
            name: u.name,
            role: u.role,
            org: u.org,
            scope,
        }),
        token_id,
        default_project: u.default_project,
    }))
}

/// The principal of a bearer token (`ip` is recorded as the token's last
/// use); an unknown, expired or revoked token is `Unauthenticated`.
pub async fn by_token(app: &Service, token: &str, ip: &str) -> ServiceResult<Principal> {
    let hash = hash_token(token);
    if app.internal_worker_hash.as_deref() == Some(hash.as_str()) {
        return Ok(Principal {
            subject: Subject::Worker {
                token_id: "internal".into(),
            },
            token_id: "internal".into(),
            default_project: None,
        });
    }
    if let Some(p) = app.tokens.get(&hash) {
        return Ok(p);
    }
    let now = crate::now_ms();
    let gone = || {
        ServiceError::unauthenticated(
            "the token is unknown, expired or revoked, or its user is disabled",
        )
    };
    let rec = app
        .store
        .find_token(&hash, now, ip)
        .await?
        .ok_or_else(gone)?;
    let p = match (rec.kind, rec.user) {
        (TokenKind::Worker, _) => Principal {
            subject: Subject::Worker {
                token_id: rec.id.clone(),
            },
            token_id: rec.id,
            default_project: None,
        },
        (TokenKind::User, Some(name)) => user_principal(app, &name, rec.scope, rec.id)
            .await?
            .ok_or_else(gone)?,
        (TokenKind::User, None) => return Err(gone()),
    };
    app.tokens.put(hash, p.clone());
    Ok(p)
}

/// The principal of a browser session and the session's CSRF token; an
/// unknown or expired session is `Unauthenticated`.
pub async fn by_session(app: &Service, secret: &str) -> ServiceResult<(Principal, String)> {
    let expired =
        || ServiceError::unauthenticated("the session has expired or ended; log in again");
    let s = app
        .store
        .find_session(&hash_token(secret), crate::now_ms())
        .await?
        .ok_or_else(expired)?;
    let p = user_principal(app, &s.user, Scope::Full, "session".into())
        .await?
        .ok_or_else(expired)?;
    Ok((p, s.csrf))
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
