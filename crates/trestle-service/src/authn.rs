//! Authentication: who a bearer token, a browser session or a user name
//! is, as a [`Principal`] (cached briefly, see [`crate::principal::TokenCache`]).

use crate::error::{ServiceError, ServiceResult};
use crate::principal::{Principal, hash_token};
use crate::state::Service;
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{Scope, Subject, UserSubject};

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
