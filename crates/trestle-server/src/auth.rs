//! Bearer-token authentication. Tokens are random, shown once, and stored
//! only as SHA-256 hashes; lookups are cached briefly so the workers' hot
//! path does not read the database on every request.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// Lease, report, stage inputs and upload outputs only.
    Worker,
}

impl Role {
    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id (`internal` for the server's own local workers).
    pub token_id: String,
    /// Its role.
    pub role: Role,
}

/// A new random token with a recognisable prefix.
pub fn new_token() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    format!("trs_{}", hex::encode(b))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A short-lived cache of token lookups (hash -> principal).
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

const CACHE_TTL: Duration = Duration::from_secs(10);

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
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Middleware: authenticate the bearer token and attach the [`Principal`].
pub async fn authenticate(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(token) = bearer(&req) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <token>` header (run `trestle up` or set TRESTLE_TOKEN)",
        ));
    };
    let hash = hash_token(token);
    let principal = if app.internal_worker_hash.as_deref() == Some(hash.as_str()) {
        Principal {
            token_id: "internal".into(),
            role: Role::Worker,
        }
    } else if let Some(p) = app.tokens.get(&hash) {
        p
    } else {
        let rec = app.store.find_token(&hash, crate::now_ms()).await?;
        let Some(rec) = rec else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is unknown, expired or revoked",
            ));
        };
        let role = Role::parse(&rec.role).ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the token has no usable role",
            )
        })?;
        let p = Principal {
            token_id: rec.id,
            role,
        };
        app.tokens.put(hash, p.clone());
        p
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// Middleware for user-facing routes: worker credentials are refused.
pub async fn require_admin(req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<Principal>() {
        Some(p) if p.role == Role::Admin => Ok(next.run(req).await),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this credential may only lease and report jobs",
        )),
    }
}
