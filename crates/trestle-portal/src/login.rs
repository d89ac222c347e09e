//! Login and logout: the API's password login (same throttling, same
//! session cookie, same refusal of cross-site posts), as a form.

use super::{Form, Nav, Viewer, error_page, html_response, page};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use trestle_service::ErrorKind;
use trestle_service::Service;
use trestle_service::ServiceError;
use trestle_service::audit::{AuditSlot, ClientIp, OverHttps};
use trestle_service::principal::{SESSION_COOKIE, cookie_value};
use trestle_service::sessions::{self, LoginOutcome, end_session_cookie, session_cookie};

/// Only local paths are followed after a login.
pub(crate) fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

fn login_form(user: &str, next: &str, errors: &[(&str, String)]) -> Markup {
    let err = |f: &str| errors.iter().find(|(k, _)| *k == f).map(|(_, m)| m.clone());
    html! {
        form method="post" action="/ui/login" class="card narrow" novalidate {
            @if let Some(m) = err("") { div class="error" role="alert" { (m) } }
            input type="hidden" name="next" value=(next);
            div class="field" {
                label for="user" { "User name" }
                input id="user" name="user" type="text" autocomplete="username" value=(user)
                    required autofocus aria-invalid=[err("user").map(|_| "true")]
                    aria-describedby=[err("user").map(|_| "user-error")];
                @if let Some(m) = err("user") { p class="field-error" id="user-error" { (m) } }
            }
            div class="field" {
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password"
                    required aria-invalid=[err("password").map(|_| "true")]
                    aria-describedby=[err("password").map(|_| "password-error")];
                @if let Some(m) = err("password") { p class="field-error" id="password-error" { (m) } }
            }
            button type="submit" class="primary" { "Log in" }
        }
    }
}

/// `GET /ui/login`: the password form, and a "Sign in with ..." button
/// per OpenID provider.
pub async fn form(
    State(app): State<Service>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(q.get("next").map_or("/", String::as_str));
    let main = html! { (login_form("", next, &[])) (super::oidc::buttons(&app, next)) };
    html_response(StatusCode::OK, page(None, Nav::None, "Log in", main))
}

/// The page refusing a login form posted from another site.
fn cross_site_page(why: &str) -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        page(
            None,
            Nav::None,
            "Login refused",
            html! {
                div class="card narrow" {
                    div class="error" role="alert" {
                        p { "This login form was not sent from this server's own login page, so it was refused: another site may be trying to sign you in to an account of its choosing." }
                        p { (why) }
                    }
                    p { a href="/ui/login" { "Log in here" } " instead." }
                }
            },
        ),
    )
}

/// `POST /ui/login`: checks the password through the API's login. A form
/// posted from another site (by its `Origin`, or without one its
/// `Referer`) is refused with a 403 page and no session.
pub async fn submit(
    State(app): State<Service>,
    Extension(ip): Extension<ClientIp>,
    Extension(https): Extension<OverHttps>,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    if let Err(why) =
        app.security
            .check_origin(h(header::ORIGIN), h(header::REFERER), h(header::HOST))
    {
        return cross_site_page(&why);
    }
    let f = Form::parse(&body);
    let (user, password) = (f.get("user"), f.0.iter().find(|(k, _)| k == "password"));
    let password = password.map_or("", |(_, v)| v.as_str());
    let next = safe_next(f.get("next"));
    let mut errors = Vec::new();
    if user.is_empty() {
        errors.push(("user", "Enter your user name.".to_string()));
    }
    if password.is_empty() {
        errors.push(("password", "Enter your password.".to_string()));
    }
    if errors.is_empty() {
        let req = trestle_core::api::identity::LoginRequest {
            user: user.to_string(),
            password: password.to_string(),
            token: None,
        };
        match sessions::login(&app, req, ip.0, &slot).await {
            Ok(LoginOutcome::Session { secret, ttl, .. }) => {
                let mut out = Redirect::to(next).into_response();
                if let Ok(c) = HeaderValue::from_str(&session_cookie(&secret, ttl, https.0)) {
                    out.headers_mut().insert(header::SET_COOKIE, c);
                }
                return out;
            }
            Ok(LoginOutcome::Token { .. }) => {}
            Err(e) if e.kind == ErrorKind::TooMany => errors.push((
                "",
                "Too many failed logins for this user from your address; wait a few minutes and try again.".into(),
            )),
            Err(e) if e.field.as_deref() == Some("user") => errors.push(("user", e.message)),
            Err(e) if e.kind == ErrorKind::Unauthenticated => {
                errors.push(("", "Wrong user name or password.".into()))
            }
            Err(e) => return error_page(None, &e),
        }
    }
    html_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        page(
            None,
            Nav::None,
            "Log in",
            html! { (login_form(user, next, &errors)) (super::oidc::buttons(&app, next)) },
        ),
    )
}

/// `POST /ui/logout`: ends the session.
pub async fn logout(
    State(app): State<Service>,
    Extension(https): Extension<OverHttps>,
    v: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = Form::parse(&body).check_csrf(&v) {
        return *r;
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let secret = cookie_value(cookies, SESSION_COOKIE);
    match sessions::logout(&app, secret).await {
        Ok(()) => {
            let mut out = Redirect::to("/ui/login").into_response();
            out.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static(end_session_cookie(https.0)),
            );
            out
        }
        Err(e) => error_page(Some(&v), &e),
    }
}

/// Turns an API result into a page or the friendly error page.
pub fn or_error<T>(v: &Viewer, r: Result<T, ServiceError>) -> Result<T, Box<Response>> {
    r.map_err(|e| Box::new(error_page(Some(v), &e)))
}
