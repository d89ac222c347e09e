//! Login and logout: the API's password login (same throttling, same
//! session cookie), as a form.

use super::{Form, Nav, Viewer, error_page, html_response, page};
use crate::audit::{AuditSlot, ClientIp};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;

/// Only local paths are followed after a login.
fn safe_next(next: &str) -> &str {
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

/// `GET /ui/login`.
pub async fn form(Query(q): Query<HashMap<String, String>>) -> Response {
    let next = safe_next(q.get("next").map_or("/", String::as_str));
    html_response(
        StatusCode::OK,
        page(None, Nav::None, "Log in", login_form("", next, &[])),
    )
}

/// `POST /ui/login`: checks the password through the API's login.
pub async fn submit(
    State(app): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    Extension(slot): Extension<AuditSlot>,
    body: Bytes,
) -> Response {
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
        let json = serde_json::json!({ "user": user, "password": password });
        let res = crate::routes::login::login(
            State(app),
            Extension(ip),
            Extension(slot),
            Bytes::from(json.to_string()),
        )
        .await;
        match res {
            Ok(resp) if resp.status().is_success() => {
                let mut out = Redirect::to(next).into_response();
                if let Some(c) = resp.headers().get(header::SET_COOKIE) {
                    out.headers_mut().insert(header::SET_COOKIE, c.clone());
                }
                return out;
            }
            Ok(_) => errors.push((
                "",
                "Too many failed logins for this user from your address; wait a few minutes and try again.".into(),
            )),
            Err(e) if e.field.as_deref() == Some("user") => errors.push(("user", e.message)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                errors.push(("", "Wrong user name or password.".into()))
            }
            Err(e) => return error_page(None, &e),
        }
    }
    html_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        page(None, Nav::None, "Log in", login_form(user, next, &errors)),
    )
}

/// `POST /ui/logout`: ends the session.
pub async fn logout(
    State(app): State<AppState>,
    v: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = Form::parse(&body).check_csrf(&v) {
        return *r;
    }
    match crate::routes::login::logout(State(app), headers).await {
        Ok(resp) => {
            let mut out = Redirect::to("/ui/login").into_response();
            if let Some(c) = resp.headers().get(header::SET_COOKIE) {
                out.headers_mut().insert(header::SET_COOKIE, c.clone());
            }
            out
        }
        Err(e) => error_page(Some(&v), &e),
    }
}

/// Turns an API result into a page or the friendly error page.
pub fn or_error<T>(v: &Viewer, r: Result<T, ApiError>) -> Result<T, Box<Response>> {
    r.map_err(|e| Box::new(error_page(Some(v), &e)))
}
