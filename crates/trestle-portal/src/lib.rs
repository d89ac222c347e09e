//! The web portal: server-rendered HTML (maud) under `/` and `/ui/...`,
//! one module per page. Every page calls the service layer
//! (`trestle-service`), with the same operations and authorization as the
//! API; the portal renders their answers as HTML and their errors as
//! friendly pages. It never calls the REST handlers.
//! Browser sessions are the API's (`POST /api/v1/login` semantics), and
//! every form post carries the session's CSRF token.

pub mod admin;
pub mod children;
pub mod costs;
pub mod dashboard;
pub mod jobs;
pub mod login;
pub mod oidc;
pub mod settings;
pub mod studies;
pub mod submit;
pub mod usage;
pub mod workspaces;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use trestle_core::JobState;
use trestle_service::principal::{CSRF_FIELD, SESSION_COOKIE, cookie_value, same_secret};
use trestle_service::{ErrorKind, Principal, Service, ServiceError};

/// The portal's stylesheet, embedded in the binary.
const CSS: &str = include_str!("assets/portal.css");
/// The portal's one JavaScript module (live logs, uploads), embedded.
const JS: &str = include_str!("assets/portal.js");

/// The portal's routes (merged into the server's router, which records
/// every request in the audit trail).
pub fn routes(samples: std::sync::Arc<dashboard::Samples>) -> Router<Service> {
    Router::new()
        .route("/", get(dashboard::page_handler))
        .route("/ui", get(dashboard::page_handler))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/login/oidc/{name}", get(oidc::start))
        .route("/ui/login/oidc/{name}/callback", get(oidc::callback))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/{id}", get(jobs::show))
        .route("/ui/jobs/{id}/cancel", post(jobs::cancel))
        .route("/ui/jobs/{id}/resubmit", post(jobs::resubmit))
        .route("/ui/submit", get(submit::form).post(submit::submit))
        .route("/ui/workspaces", get(workspaces::list))
        .route("/ui/workspaces/launch", post(workspaces::launch))
        .route("/ui/workspaces/{id}/{verb}", post(workspaces::act))
        .route("/ui/admin/workspaces", get(workspaces::admin))
        .route(
            "/ui/admin/workspace-types/{name}/{version}/{verb}",
            post(workspaces::decide),
        )
        .route("/ui/studies", get(studies::list))
        .route("/ui/studies/{name}", get(studies::show))
        .route(
            "/ui/studies/{name}/permissions",
            get(studies::permissions).post(studies::change_permission),
        )
        .route("/ui/costs", get(costs::page_handler))
        .route("/ui/workers", get(admin::workers))
        .route("/ui/audit", get(admin::audit))
        .route("/ui/settings/notifications", get(settings::form))
        .route("/ui/settings/notifications/{action}", post(settings::post))
        .route("/ui/static/portal.css", get(css))
        .route("/ui/static/portal.js", get(js))
        .route("/ui/{*rest}", get(missing))
        .layer(axum::Extension(samples))
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Any other portal address: a friendly 404 page.
async fn missing(v: Result<Viewer, Response>, uri: axum::http::Uri) -> Response {
    let e = ServiceError::not_found(format!("the page `{}`", uri.path()));
    error_page(v.as_ref().ok(), &e)
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

/// The signed-in user of a portal request, with the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who it is, exactly as the API's session authentication builds it.
    pub p: Principal,
    /// The session's CSRF token, echoed in every form.
    pub csrf: String,
}

impl Viewer {
    /// The user's name.
    pub fn name(&self) -> &str {
        self.p.user_name().unwrap_or("")
    }
}

impl FromRequestParts<Service> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Service) -> Result<Viewer, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            Redirect::to(&format!("/ui/login?{q}")).into_response()
        };
        let cookies = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(secret) = cookie_value(cookies, SESSION_COOKIE).map(str::to_string) else {
            return Err(to_login());
        };
        let (p, csrf) = match trestle_service::authn::by_session(app, &secret).await {
            Ok(found) => found,
            Err(e) if e.kind == ErrorKind::Unauthenticated => return Err(to_login()),
            Err(e) => return Err(error_page(None, &e)),
        };
        if let Some(slot) = parts.extensions.get::<trestle_service::audit::AuditSlot>() {
            slot.set(p.user_name(), "session");
        }
        Ok(Viewer { p, csrf })
    }
}

/// A URL-encoded form body as (name, value) pairs.
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses a body.
    pub fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A field's trimmed value, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Checks the CSRF field against the session's token.
    pub fn check_csrf(&self, v: &Viewer) -> Result<(), Box<Response>> {
        if same_secret(self.get(CSRF_FIELD), &v.csrf) {
            Ok(())
        } else {
            Err(Box::new(error_page(
                Some(v),
                &ServiceError::new(
                    ErrorKind::Forbidden,
                    "csrf",
                    "this form has expired (its security token does not match your session); go back, reload the page and try again",
                ),
            )))
        }
    }
}

/// The hidden CSRF field of every form.
pub fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(v.csrf); }
}

/// Which top-level page is current (for the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The dashboard.
    Home,
    /// Jobs list and job pages.
    Jobs,
    /// The submit form.
    Submit,
    /// Workspaces: catalogue and my workspaces.
    Workspaces,
    /// Workspace types, configurations and every workspace (admin).
    WorkspaceAdmin,
    /// Studies.
    Studies,
    /// Costs and budgets.
    Costs,
    /// Queues and workers (admin).
    Workers,
    /// Audit (admin).
    Audit,
    /// Settings (notifications).
    Settings,
    /// None (login, errors).
    None,
}

/// A full page: header with the user, role and projects, navigation, main.
pub fn page(v: Option<&Viewer>, nav: Nav, title: &str, main: Markup) -> Markup {
    let link = |href: &str, label: &str, me: Nav| {
        html! {
            @if nav == me { a href=(href) aria-current="page" { (label) } }
            @else { a href=(href) { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(v) = v { meta name="csrf-token" content=(v.csrf); }
                title { (title) " · Trestle" }
                link rel="stylesheet" href="/ui/static/portal.css";
                script type="module" src="/ui/static/portal.js" {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "Trestle" }
                    @if let Some(v) = v {
                        nav aria-label="Main" {
                            (link("/", "Dashboard", Nav::Home))
                            (link("/ui/jobs", "Jobs", Nav::Jobs))
                            (link("/ui/submit", "Submit", Nav::Submit))
                            (link("/ui/workspaces", "Workspaces", Nav::Workspaces))
                            (link("/ui/studies", "Studies", Nav::Studies))
                            (link("/ui/costs", "Costs", Nav::Costs))
                            @if v.p.is_admin() {
                                (link("/ui/admin/workspaces", "Workspace admin", Nav::WorkspaceAdmin))
                                (link("/ui/workers", "Queues & workers", Nav::Workers))
                                (link("/ui/audit", "Audit", Nav::Audit))
                            }
                            (link("/ui/settings/notifications", "Notifications", Nav::Settings))
                        }
                        div class="who" {
                            span class="user" { (v.name()) }
                            @if let Some(u) = v.p.user() {
                                " " span class="role" { (u.role.as_str()) }
                                @if !u.memberships.is_empty() {
                                    " " span class="projects" title="Your projects" {
                                        @for (i, m) in u.memberships.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            (m.project)
                                        }
                                    }
                                }
                            }
                            form method="post" action="/ui/logout" class="inline" {
                                (csrf_field(v))
                                button type="submit" class="link" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (main)
                }
            }
        }
    }
}

/// Renders markup as an HTML response.
pub fn html_response(status: StatusCode, m: Markup) -> Response {
    let mut r = (status, Html(m.into_string())).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Jobs for a listing with the API's query parameters (`state`, `queue`,
/// `limit`, ...), through the service.
pub async fn list_jobs(
    app: &Service,
    p: &Principal,
    q: &std::collections::HashMap<String, String>,
) -> Result<trestle_core::api::JobList, ServiceError> {
    let filter = trestle_service::jobs::filter_from_params(q)?;
    trestle_service::jobs::list(app, p, filter).await
}

/// The status and title of the page for a failed operation.
fn status_of(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "Not allowed"),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "Not signed in"),
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "Cannot do that"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "Cannot do that"),
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
        ErrorKind::TooMany => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable"),
        ErrorKind::Damaged | ErrorKind::Internal => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
        }
    }
}

/// A friendly HTML page for a failed operation.
pub fn error_page(v: Option<&Viewer>, e: &ServiceError) -> Response {
    let (status, title) = status_of(e.kind);
    let body = html! {
        div class="error" role="alert" {
            p { (e.message) }
            @if e.kind == ErrorKind::NotFound {
                p { "It may never have existed, or it belongs to someone else." }
            }
        }
        p { a href="/" { "Back to the dashboard" } }
    };
    html_response(status, page(v, Nav::None, title, body))
}

/// A state badge.
pub fn state_badge(s: JobState) -> Markup {
    html! { span class={ "badge s-" (s.as_str().to_lowercase()) } { (s.as_str()) } }
}

/// `2026-11-22 13:05:09 UTC` from milliseconds since the epoch.
pub fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `3m 12s` from milliseconds.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_well() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(duration(61_000), "1m 1s");
        assert_eq!(duration(7_260_000), "2h 1m");
        let f = Form::parse(b"a=1&b=x+y&c=%2F");
        assert_eq!(
            (f.get("a"), f.get("b"), f.get("c"), f.get("d")),
            ("1", "x y", "/", "")
        );
    }
}
