//! `/api/v1/tokens`: create (shown once), list, show, revoke. Users manage
//! their own tokens; admins also create tokens for others and short-lived
//! worker credentials.

use super::parse_body;
use crate::access::check;
use crate::audit::AuditResource;
use crate::auth::{Principal, hash_token, new_token, token_id};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::identity::authz::{Action, Resource, Scope};
use trestle_core::identity::{NewToken, TokenCreated, TokenKind, TokenView};
use trestle_core::parse::parse_duration;
use trestle_store::NewTokenRecord;

const DAY_SECS: u64 = 86_400;
/// Default lifetime of a user token.
const USER_TTL: u64 = 90 * DAY_SECS;
/// Longest lifetime of a user token.
const USER_MAX_TTL: u64 = 366 * DAY_SECS;
/// Default lifetime of a worker credential.
const WORKER_TTL: u64 = 3600;
/// Longest lifetime of a worker credential.
const WORKER_MAX_TTL: u64 = 30 * DAY_SECS;

/// Validates a token request and stores the token; returns the secret.
pub async fn issue(
    app: &AppState,
    user: &str,
    kind: TokenKind,
    req: NewToken,
    now: i64,
) -> ApiResult<TokenCreated> {
    let name = req.name.unwrap_or_else(|| match kind {
        TokenKind::User => "token".to_string(),
        TokenKind::Worker => "worker".to_string(),
    });
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "invalid-name",
            "name",
            "a token name is 1-200 printable characters",
        ));
    }
    let scope = match req.scope.as_deref() {
        None => Scope::Full,
        Some(s) => Scope::parse(s).ok_or_else(|| {
            ApiError::bad(
                "invalid-scope",
                "scope",
                format!("`{s}` is not a scope (full, read-only)"),
            )
        })?,
    };
    if kind == TokenKind::Worker && scope == Scope::ReadOnly {
        return Err(ApiError::bad(
            "invalid-scope",
            "scope",
            "worker credentials are always scoped to leasing and reporting",
        ));
    }
    let (default, max) = match kind {
        TokenKind::User => (USER_TTL, USER_MAX_TTL),
        TokenKind::Worker => (WORKER_TTL, WORKER_MAX_TTL),
    };
    let ttl = match req.ttl.as_deref() {
        None => default,
        Some(t) => parse_duration("ttl", t, false)?,
    };
    if ttl == 0 || ttl > max {
        return Err(ApiError::bad(
            "invalid-ttl",
            "ttl",
            format!(
                "a {} token lives between 1 second and {} days",
                kind.as_str(),
                max / DAY_SECS
            ),
        ));
    }
    let secret = new_token();
    let rec = NewTokenRecord {
        id: token_id(&secret),
        name,
        hash: hash_token(&secret),
        user: (kind == TokenKind::User).then(|| user.to_string()),
        kind,
        scope,
        expires_at: Some(now + (ttl as i64) * 1000),
    };
    app.store.create_token(&rec, now).await?;
    let info = app
        .store
        .token(&rec.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token `{}`", rec.id)))?;
    Ok(TokenCreated {
        token: secret,
        info,
    })
}

/// `POST /api/v1/tokens`.
pub async fn create(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<TokenCreated>)> {
    let req: NewToken = parse_body(&body)?;
    let me = p.user_name().unwrap_or_default().to_string();
    let (user, kind) = if req.worker {
        check(&p, Action::WorkerTokenCreate, Resource::None, "")?;
        if req.user.is_some() {
            return Err(ApiError::bad(
                "invalid-token-request",
                "user",
                "a worker credential acts as no user",
            ));
        }
        (me, TokenKind::Worker)
    } else {
        check(&p, Action::TokenCreate, Resource::None, "")?;
        match req.user.clone() {
            Some(u) if u != me => {
                check(
                    &p,
                    Action::UserUpdate,
                    Resource::User { name: &u },
                    &format!("user `{u}`"),
                )?;
                (u, TokenKind::User)
            }
            _ => (me, TokenKind::User),
        }
    };
    let created = issue(&app, &user, kind, req, crate::now_ms()).await?;
    let tag = AuditResource(format!("token:{}", created.info.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(created)))
}

/// `GET /api/v1/tokens?all=true&revoked=true`: the caller's tokens (admins:
/// everyone's with `all`).
pub async fn list(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    for k in q.keys() {
        if k != "all" && k != "revoked" {
            return Err(ApiError::bad(
                "unknown-parameter",
                k,
                format!("unknown query parameter `{k}` (all, revoked)"),
            ));
        }
    }
    let all = flag("all");
    if all {
        check(&p, Action::UserList, Resource::None, "")?;
    }
    let user = if all { None } else { p.user_name() };
    Ok(Json(app.store.list_tokens(user, flag("revoked")).await?))
}

async fn visible(app: &AppState, p: &Principal, id: &str, action: Action) -> ApiResult<TokenView> {
    let what = format!("token `{id}`");
    let t = app
        .store
        .token(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&what))?;
    check(
        p,
        action,
        Resource::Token {
            owner: t.user.as_deref(),
        },
        &what,
    )?;
    Ok(t)
}

/// `GET /api/v1/tokens/{id}`.
pub async fn show(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(visible(&app, &p, &id, Action::TokenRead).await?))
}

/// `DELETE /api/v1/tokens/{id}`: revokes it at once.
pub async fn revoke(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    visible(&app, &p, &id, Action::TokenRevoke).await?;
    app.store.revoke_token(&id, crate::now_ms()).await?;
    app.tokens.clear();
    let t = app
        .store
        .token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token `{id}`")))?;
    Ok(Json(t))
}
