//! `/api/v1/login`, `/api/v1/logout` and `/api/v1/whoami`, over
//! [`trestle_service::sessions`]: password logins for the browser (an
//! HttpOnly, SameSite=Strict session cookie and a CSRF token) or
//! for the CLI (an API token), throttled per user and source address. The
//! cookie is `Secure` when the request came over HTTPS.

use super::parse_body;
use crate::audit::{AuditSlot, ClientIp, OverHttps};
use crate::auth::cookie;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use trestle_core::api::identity::{LoginRequest, LoginResponse, WhoAmI};
use trestle_service::principal::SESSION_COOKIE;
use trestle_service::sessions::{self, LoginOutcome, end_session_cookie, session_cookie};
use trestle_service::{ErrorKind, Principal, Service};

/// `POST /api/v1/login` (no credentials needed).
///
/// A browser's cross-site post (an `Origin`, or without one a `Referer`,
/// naming another site) is refused with 403 `cross-site-login` before the
/// password is looked at: the body is read whatever its content type, so a
/// form on another site could otherwise sign the browser in.
pub async fn login(
    State(app): State<Service>,
    Extension(ip): Extension<ClientIp>,
    Extension(https): Extension<OverHttps>,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    if let Err(why) =
        app.security
            .check_origin(h(header::ORIGIN), h(header::REFERER), h(header::HOST))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site-login",
            format!("login refused: {why}"),
        ));
    }
    let req: LoginRequest = parse_body(&body)?;
    let outcome = match sessions::login(&app, req, ip.0, &slot).await {
        Ok(o) => o,
        Err(e) if e.kind == ErrorKind::TooMany => {
            let mut resp = ApiError::from(e).into_response();
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(app.security.login_window.as_secs()),
            );
            return Ok(resp);
        }
        Err(e) => return Err(e.into()),
    };
    match outcome {
        LoginOutcome::Token { user, created } => {
            let body = LoginResponse {
                user,
                csrf_token: None,
                token: Some(created),
            };
            Ok((StatusCode::OK, Json(body)).into_response())
        }
        LoginOutcome::Session {
            user,
            secret,
            csrf,
            ttl,
        } => {
            let mut resp = Json(LoginResponse {
                user,
                csrf_token: Some(csrf),
                token: None,
            })
            .into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&session_cookie(&secret, ttl, https.0)).map_err(|_| {
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad cookie")
                })?,
            );
            Ok(resp)
        }
    }
}

/// `POST /api/v1/logout`: ends the browser session (if any).
pub async fn logout(
    State(app): State<Service>,
    Extension(https): Extension<OverHttps>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    sessions::logout(&app, cookie(&headers, SESSION_COOKIE)).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(end_session_cookie(https.0)),
    );
    Ok(resp)
}

/// `GET /api/v1/whoami`.
pub async fn whoami(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<WhoAmI>> {
    Ok(Json(sessions::whoami(&app, &p).await?))
}
