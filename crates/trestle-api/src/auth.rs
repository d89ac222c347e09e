//! Authentication at the API edge: a bearer token or a session cookie
//! (with a CSRF token for every state-changing request) becomes the
//! request's [`Principal`], asked of the service layer.

use crate::audit::{AuditSlot, ClientIp};
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use trestle_service::authn::{by_session, by_token};
use trestle_service::principal::{CSRF_FIELD, SESSION_COOKIE, cookie_value, same_secret};
use trestle_service::{Principal, Service};

/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

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
    cookie_value(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        name,
    )
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
    State(app): State<Service>,
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
        let (p, csrf) = by_session(&app, &secret).await?;
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            req = check_csrf(req, &csrf).await?;
        }
        p
    } else {
        return Err(ApiError::unauthorized(
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
    }
}
