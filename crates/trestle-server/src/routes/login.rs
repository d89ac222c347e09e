//! `/api/v1/login`, `/api/v1/logout` and `/api/v1/whoami`: password logins
//! for the browser (a Secure, HttpOnly, SameSite=Strict session cookie and
//! a CSRF token) or for the CLI (an API token), throttled per user and
//! source address.

use super::parse_body;
use super::tokens::issue;
use crate::audit::{AuditSlot, ClientIp};
use crate::auth::{Principal, SESSION_COOKIE, cookie, hash_token};
use crate::error::{ApiError, ApiResult};
use crate::security::{random_hex, verify_password};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use trestle_core::identity::{LoginRequest, LoginResponse, TokenKind, WhoAmI, validate_name};
use trestle_store::SessionRecord;

/// `POST /api/v1/login` (no credentials needed).
pub async fn login(
    State(app): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Extension(slot): Extension<AuditSlot>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: LoginRequest = parse_body(&body)?;
    validate_name("user", &req.user)?;
    let now = crate::now_ms();
    let window = app.security.login_window.as_millis() as i64;
    let key = format!("{}|{}", req.user, ip.0);
    if app.store.login_failures(&key, now - window).await? >= app.security.login_max_failures {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            format!(
                "too many failed logins for `{}` from {}; try again in {} minutes",
                req.user,
                ip.0,
                window / 60_000
            ),
        )
        .into_response();
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(app.security.login_window.as_secs()),
        );
        return Ok(resp);
    }
    let user = app
        .store
        .user(&req.user)
        .await?
        .filter(|u| u.disabled_at.is_none());
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = verify_password(req.password, hash).await;
    let Some(user) = user.filter(|_| ok) else {
        app.store
            .record_login_failure(&key, now, now - 4 * window)
            .await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credentials",
            "wrong user name or password",
        ));
    };
    app.store.clear_login_failures(&key).await?;
    if let Some(t) = req.token {
        if t.worker || t.user.as_deref().is_some_and(|u| u != user.name) {
            return Err(ApiError::bad(
                "invalid-token-request",
                "token",
                "a login issues a token for the user who logs in",
            ));
        }
        let created = issue(&app, &user.name, TokenKind::User, t, now).await?;
        slot.set(Some(&user.name), &created.info.id);
        let body = LoginResponse {
            user: user.view(),
            csrf_token: None,
            token: Some(created),
        };
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let secret = random_hex(32);
    let csrf = random_hex(16);
    let ttl = app.security.session_ttl;
    app.store
        .create_session(
            &hash_token(&secret),
            &SessionRecord {
                user: user.name.clone(),
                csrf: csrf.clone(),
                expires_at: now + ttl.as_millis() as i64,
            },
            &ip.0.to_string(),
            now,
        )
        .await?;
    slot.set(Some(&user.name), "session");
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        ttl.as_secs()
    );
    let mut resp = Json(LoginResponse {
        user: user.view(),
        csrf_token: Some(csrf),
        token: None,
    })
    .into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad cookie")
        })?,
    );
    Ok(resp)
}

/// `POST /api/v1/logout`: ends the browser session (if any).
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        app.store.delete_session(&hash_token(secret)).await?;
        app.tokens.clear();
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "trestle_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
        ),
    );
    Ok(resp)
}

/// `GET /api/v1/whoami`.
pub async fn whoami(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<WhoAmI>> {
    let (user, kind, scope, projects) = match p.user() {
        Some(u) => (
            app.store.user(&u.name).await?.map(|r| r.view()),
            TokenKind::User,
            u.scope,
            u.memberships.clone(),
        ),
        None => (
            None,
            TokenKind::Worker,
            trestle_core::identity::authz::Scope::Full,
            Vec::new(),
        ),
    };
    Ok(Json(WhoAmI {
        user,
        token_id: p.token_id.clone(),
        kind,
        scope,
        projects,
    }))
}
