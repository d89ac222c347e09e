//! API tokens: create (the secret is shown once), list, show, revoke.
//! Users manage their own tokens; admins also create tokens for others and
//! short-lived worker credentials. Minting itself is
//! [`crate::sessions::issue`], shared with password logins.

use crate::access::check;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::sessions::issue;
use crate::state::Service;
use std::collections::HashMap;
use trestle_core::api::identity::{NewToken, TokenCreated, TokenView};
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{Action, Resource};

/// Creates a token for the caller, for another user (admins), or a worker
/// credential (`worker`, acting as no user).
pub async fn create(app: &Service, p: &Principal, req: NewToken) -> ServiceResult<TokenCreated> {
    let me = p.user_name().unwrap_or_default().to_string();
    let (user, kind) = if req.worker {
        check(p, Action::WorkerTokenCreate, Resource::None, "")?;
        if req.user.is_some() {
            return Err(ServiceError::bad(
                "invalid-token-request",
                "user",
                "a worker credential acts as no user",
            ));
        }
        (me, TokenKind::Worker)
    } else {
        check(p, Action::TokenCreate, Resource::None, "")?;
        match req.user.clone() {
            Some(u) if u != me => {
                check(
                    p,
                    Action::UserUpdate,
                    Resource::User { name: &u },
                    &format!("user `{u}`"),
                )?;
                (u, TokenKind::User)
            }
            _ => (me, TokenKind::User),
        }
    };
    issue(app, &user, kind, req, crate::now_ms()).await
}

/// The caller's tokens, or everyone's with `all=true` (admins); revoked
/// ones too with `revoked=true`.
pub async fn list(
    app: &Service,
    p: &Principal,
    q: &HashMap<String, String>,
) -> ServiceResult<Vec<TokenView>> {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    for k in q.keys() {
        if k != "all" && k != "revoked" {
            return Err(ServiceError::bad(
                "unknown-parameter",
                k,
                format!("unknown query parameter `{k}` (all, revoked)"),
            ));
        }
    }
    let all = flag("all");
    if all {
        check(p, Action::UserList, Resource::None, "")?;
    }
    let user = if all { None } else { p.user_name() };
    Ok(app.store.list_tokens(user, flag("revoked")).await?)
}

/// Token `id`, if the caller may do `action` on it (others: a 404).
async fn visible(
    app: &Service,
    p: &Principal,
    id: &str,
    action: Action,
) -> ServiceResult<TokenView> {
    let what = format!("token `{id}`");
    let t = app
        .store
        .token(id)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
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

/// One token (never its secret).
pub async fn show(app: &Service, p: &Principal, id: &str) -> ServiceResult<TokenView> {
    visible(app, p, id, Action::TokenRead).await
}

/// Revokes a token at once (on this server; others within the cache's
/// lifetime) and returns it as it is now.
pub async fn revoke(app: &Service, p: &Principal, id: &str) -> ServiceResult<TokenView> {
    visible(app, p, id, Action::TokenRevoke).await?;
    app.store.revoke_token(id, crate::now_ms()).await?;
    app.tokens.clear();
    app.store
        .token(id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("token `{id}`")))
}
