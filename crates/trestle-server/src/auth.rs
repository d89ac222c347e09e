//! Authentication: bearer tokens (user tokens and worker credentials) and
//! browser sessions (an HttpOnly cookie plus a CSRF token for every
//! state-changing request). Tokens are random, shown once, and stored only
//! as SHA-256 hashes; lookups are cached briefly so the workers' hot path
//! does not read the database on every request. Whether the authenticated
//! principal may do what it asks is decided by `trestle_core::identity::authz`.

use crate::audit::{AuditSlot, ClientIp};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{Role, Scope, Subject, UserSubject};

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "trestle_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
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

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The value of a cookie.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

/// Builds a user's principal from the store.
pub async fn user_principal(
    app: &AppState,
    name: &str,
    scope: Scope,
    token_id: String,
) -> Result<Option<Principal>, ApiError> {
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

async fn by_token(app: &AppState, token: &str, ip: &str) -> Result<Principal, ApiError> {
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
    let gone = || unauthorized("the token is unknown, expired or revoked, or its user is disabled");
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

/// Compares secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Finds `field` in a URL-encoded form body.
fn form_field<'a>(body: &'a [u8], field: &str) -> Option<&'a str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == field)
        .map(|(_, v)| v)
}

/// Checks the CSRF token of a state-changing request made with a session
/// cookie: the `x-csrf-token` header, or the `csrf_token` field of a form
/// post. Returns the request (its body re-assembled when it was read).
async fn check_csrf(req: Request, expected: &str) -> Result<Request, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a state-changing request with a session cookie needs its CSRF token (header `x-csrf-token` or form field `csrf_token`)",
        )
    };
    if let Some(h) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return if same_secret(h, expected) {
            Ok(req)
        } else {
            Err(refused())
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "form too large"))?;
    match form_field(&bytes, CSRF_FIELD) {
        Some(t) if same_secret(t, expected) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(refused()),
    }
}

/// Middleware: authenticate a bearer token or a session cookie and attach
/// the [`Principal`] (and tell the audit trail who it is).
pub async fn authenticate(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let principal = if let Some(token) = bearer(&req) {
        by_token(&app, token, &ip).await?
    } else if let Some(secret) = cookie(req.headers(), SESSION_COOKIE).map(str::to_string) {
        let hash = hash_token(&secret);
        let now = crate::now_ms();
        let expired = || unauthorized("the session has expired or ended; log in again");
        let s = app
            .store
            .find_session(&hash, now)
            .await?
            .ok_or_else(expired)?;
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            req = check_csrf(req, &s.csrf).await?;
        }
        user_principal(&app, &s.user, Scope::Full, "session".into())
            .await?
            .ok_or_else(expired)?
    } else {
        return Err(unauthorized(
            "missing `Authorization: Bearer <token>` header (run `trestle login`, or set TRESTLE_TOKEN)",
        ));
    };
    if let Some(slot) = req.extensions().get::<AuditSlot>() {
        slot.set(principal.user_name(), &principal.token_id);
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// Middleware for user-facing routes: worker credentials are refused.
pub async fn require_user(req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<Principal>() {
        Some(p) if p.user().is_some() => Ok(next.run(req).await),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a worker credential may only register, lease, report, stage inputs and upload outputs",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_forms() {
        let mut h = axum::http::HeaderMap::new();
        h.append(header::COOKIE, "a=1; trestle_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(form_field(b"x=1&csrf_token=zz", CSRF_FIELD), Some("zz"));
        assert_eq!(form_field(b"x=1", CSRF_FIELD), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(token_id("trs_x").starts_with("tok-"));
    }
}
