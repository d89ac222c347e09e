//! `/api/v1/tokens`: create (shown once), list, show, revoke. Users manage
//! their own tokens; admins also create tokens for others and short-lived
//! worker credentials.

use super::parse_body;
use crate::audit::AuditResource;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::identity::authz::{Action, Resource};
use trestle_core::identity::{NewToken, TokenCreated, TokenKind, TokenView};
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access::check;

use trestle_service::sessions::issue;

/// `POST /api/v1/tokens`.
pub async fn create(
    State(app): State<Service>,
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
    let created = issue(&app, &user, kind, req, trestle_service::now_ms()).await?;
    let tag = AuditResource(format!("token:{}", created.info.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(created)))
}

/// `GET /api/v1/tokens?all=true&revoked=true`: the caller's tokens (admins:
/// everyone's with `all`).
pub async fn list(
    State(app): State<Service>,
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

async fn visible(app: &Service, p: &Principal, id: &str, action: Action) -> ApiResult<TokenView> {
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
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(visible(&app, &p, &id, Action::TokenRead).await?))
}

/// `DELETE /api/v1/tokens/{id}`: revokes it at once.
pub async fn revoke(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenView>> {
    visible(&app, &p, &id, Action::TokenRevoke).await?;
    app.store
        .revoke_token(&id, trestle_service::now_ms())
        .await?;
    app.tokens.clear();
    let t = app
        .store
        .token(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("token `{id}`")))?;
    Ok(Json(t))
}
