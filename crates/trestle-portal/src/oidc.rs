//! Sign-in with an OpenID provider in the browser: the login page's
//! "Sign in with ..." buttons, `/ui/login/oidc/{name}` (to the provider)
//! and its callback `/ui/login/oidc/{name}/callback`, over
//! [`trestle_service::oidc_login`].
//!
//! The pending login is kept in the database (any server may take the
//! callback) and bound to the browser that began it by a short-lived
//! cookie holding its state (`SameSite=Lax`, so that it comes back with
//! the provider's top-level redirect): a callback whose state is not the
//! browser's own is refused, so another site cannot sign a browser in to
//! an account of its choosing. The session opened at the callback is new;
//! a session the browser held before is ended.

use super::{Nav, html_response, page};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use trestle_service::Service;
use trestle_service::audit::{AuditSlot, ClientIp, OverHttps};
use trestle_service::oidc_login::{self, Callback};
use trestle_service::principal::{SESSION_COOKIE, cookie_value, same_secret};
use trestle_service::sessions::{self, LoginOutcome, session_cookie};
use trestle_store::oidc::LoginFlow;

/// The cookie binding a pending login to its browser.
const STATE_COOKIE: &str = "trestle_oidc_state";

fn state_cookie(value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{STATE_COOKIE}={value}; Path=/ui/login/oidc; Max-Age={max_age}; HttpOnly;{} SameSite=Lax",
        if secure { " Secure;" } else { "" }
    )
}

/// The login page's buttons, one per provider (nothing without any).
pub fn buttons(app: &Service, next: &str) -> Markup {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    html! {
        @if !app.oidc.all().is_empty() {
            div class="card narrow sso" {
                @for p in app.oidc.all() {
                    a class="button sso-button" href={ "/ui/login/oidc/" (p.settings.name) "?" (q) } {
                        (p.settings.display)
                    }
                }
            }
        }
    }
}

fn refusal(message: &str) -> Response {
    html_response(
        StatusCode::UNAUTHORIZED,
        page(
            None,
            Nav::None,
            "Sign-in refused",
            html! {
                div class="card narrow" {
                    div class="error" role="alert" { p { (message) } }
                    p { a href="/ui/login" { "Back to the login page" } }
                }
            },
        ),
    )
}

/// `GET /ui/login/oidc/{name}`: begins a sign-in and sends the browser to
/// the provider.
pub async fn start(
    State(app): State<Service>,
    Extension(ip): Extension<ClientIp>,
    Extension(https): Extension<OverHttps>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let next = super::login::safe_next(q.get("next").map_or("/", String::as_str));
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let origin = format!("{}://{host}", if https.0 { "https" } else { "http" });
    match oidc_login::begin_portal(&app, &name, &origin, next, ip.0).await {
        Ok(s) => {
            let mut out = Redirect::to(&s.authorization_url).into_response();
            let max_age = oidc_login::PENDING_TTL_MS / 1000;
            if let Ok(c) = HeaderValue::from_str(&state_cookie(&s.state, max_age, https.0)) {
                out.headers_mut().insert(header::SET_COOKIE, c);
            }
            out
        }
        Err(e) => super::error_page(None, &e),
    }
}

/// `GET /ui/login/oidc/{name}/callback`: finishes the sign-in, opens a new
/// session, and goes on to the page asked for.
pub async fn callback(
    State(app): State<Service>,
    Extension(ip): Extension<ClientIp>,
    Extension(https): Extension<OverHttps>,
    Extension(slot): Extension<AuditSlot>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(err) = q.get("error") {
        let why = q.get("error_description").map_or("", String::as_str);
        return refusal(&format!(
            "The identity provider did not sign you in ({err}{}{why}).",
            if why.is_empty() { "" } else { ": " }
        ));
    }
    let cookies = || {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let bound = cookie_value(cookies(), STATE_COOKIE);
    if state.is_empty() || !bound.is_some_and(|b| same_secret(b, &state)) {
        return refusal(
            "This sign-in was not begun in this browser, or it was already used: another site may be trying to sign you in to an account of its choosing. Start again from the login page.",
        );
    }
    let cb = Callback {
        state,
        code: q.get("code").cloned().unwrap_or_default(),
        code_verifier: None,
        iss: q.get("iss").cloned(),
    };
    let old = cookie_value(cookies(), SESSION_COOKIE).map(str::to_string);
    match oidc_login::finish(&app, &name, LoginFlow::Portal, cb, None, ip.0, &slot).await {
        Ok((LoginOutcome::Session { secret, ttl, .. }, next)) => {
            // The session is new at every sign-in; an older one of this
            // browser ends.
            if let Err(e) = sessions::logout(&app, old.as_deref()).await {
                tracing::warn!(error = %e, "could not end the previous session");
            }
            let next = super::login::safe_next(next.as_deref().unwrap_or("/")).to_string();
            // A page, not a redirect: the session cookie is SameSite=Strict,
            // and a browser sends it on a navigation this site begins, not
            // on the end of a redirect chain another site began.
            let mut out = html_response(
                StatusCode::OK,
                page(
                    None,
                    Nav::None,
                    "Signed in",
                    html! {
                        div class="card narrow" {
                            p { "You are signed in. " a id="continue" href=(next) { "Continue" } }
                        }
                    },
                ),
            );
            let h = out.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("0; url={next}")) {
                h.insert("refresh", v);
            }
            if let Ok(c) = HeaderValue::from_str(&session_cookie(&secret, ttl, https.0)) {
                h.append(header::SET_COOKIE, c);
            }
            if let Ok(c) = HeaderValue::from_str(&state_cookie("", 0, https.0)) {
                h.append(header::SET_COOKIE, c);
            }
            out
        }
        Ok((LoginOutcome::Token { .. }, _)) => refusal("This sign-in asked for a token."),
        Err(e)
            if e.kind == trestle_service::ErrorKind::Unauthenticated
                || e.kind == trestle_service::ErrorKind::Forbidden =>
        {
            refusal(&e.message)
        }
        Err(e) => super::error_page(None, &e),
    }
}
