//! The workspace proxy's HTTP edge: who is asking (the portal session or
//! an API token in path mode; the workspace origin's own cookie in origin
//! mode), the service's decision ([`trestle_service::workspace_access`]),
//! then [`trestle_proxy::forward_http`] over the hosting worker's tunnel.
//! These routes are outside the table of operations (they are not the
//! REST API): each proxied request is decided, but not audited one by one;
//! shells, forwards and assists are API operations and are audited.
//!
//! - Path mode: `/ws/{id}/...` under the server's own origin.
//! - Origin mode (`[workspaces] origin`): requests whose `Host` is a
//!   workspace's origin never reach the API or the portal; `/ws-open/{id}`
//!   on the server's origin hands the browser a one-time ticket there.

use crate::auth::cookie;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use trestle_core::api::ErrorBody;
use trestle_core::error::ValidationError;
use trestle_proxy::{Route, Tunnels, forward_http};
use trestle_service::authn::{by_session, by_token};
use trestle_service::principal::SESSION_COOKIE;
use trestle_service::workspace_access::{self as access, ProxyTarget, WS_COOKIE};
use trestle_service::{ErrorKind, Principal, Service, ServiceError};

fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ValidationError {
            code: code.into(),
            message,
            field: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

fn error(e: &ServiceError) -> Response {
    let status = match e.kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Forbidden => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, &e.code, e.message.clone())
}

fn bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn wants_html(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// The credentials a request carries (owned: the request's body is not
/// `Sync`, so no borrow of it may cross an await).
struct Creds {
    session: Option<String>,
    ws_cookie: Option<String>,
    bearer: Option<String>,
    ip: String,
}

fn creds(req: &Request) -> Creds {
    Creds {
        session: cookie(req.headers(), SESSION_COOKIE).map(str::to_string),
        ws_cookie: cookie(req.headers(), WS_COOKIE).map(str::to_string),
        bearer: bearer(req),
        ip: client_ip(req),
    }
}

/// The caller in path mode: the portal session, else an API token.
async fn path_principal(app: &Service, c: &Creds) -> Result<Principal, ServiceError> {
    if let Some(s) = &c.session {
        return by_session(app, s).await.map(|(p, _)| p);
    }
    match &c.bearer {
        Some(t) => by_token(app, t, &c.ip).await,
        None => Err(ServiceError::unauthenticated(
            "sign in to reach a workspace",
        )),
    }
}

fn route(t: &ProxyTarget, cookie_name: &str, proto: &str) -> Route {
    let add_headers = t
        .secret_header
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    Route {
        worker_id: t.worker.clone(),
        workspace: t.workspace,
        strip_prefix: t
            .strip_prefix
            .as_ref()
            .map(|p| p.trim_end_matches('/').to_string()),
        add_headers,
        session_cookie: cookie_name.to_string(),
        forwarded_proto: proto.to_string(),
    }
}

async fn forward(
    app: &Service,
    tunnels: &Tunnels,
    t: &ProxyTarget,
    mut req: Request,
    cookie_name: &str,
    proto: &str,
) -> Response {
    let prefix = trestle_core::workspace::session::prefix(t.workspace);
    let rel = req
        .uri()
        .path()
        .strip_prefix(&prefix)
        .unwrap_or("")
        .to_string();
    access::request_seen(app, t.workspace, t.activity, req.method().as_str(), &rel);
    // Both of Trestle's cookies go, whichever the route strips itself.
    trestle_proxy::headers::strip_credentials(req.headers_mut(), SESSION_COOKIE);
    forward_http(tunnels, &route(t, cookie_name, proto), req).await
}

/// `/ws/{id}` and `/ws/{id}/...` in path mode.
pub async fn path_mode(
    State(app): State<Service>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request,
) -> Response {
    let Some(tunnels) = req.extensions().get::<Tunnels>().cloned() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not-found",
            "this server does not proxy workspaces".into(),
        );
    };
    let id = params
        .iter()
        .find(|(k, _)| k == "id")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let Some(id) = id.filter(|i| *i > 0) else {
        return error(&ServiceError::not_found("workspace"));
    };
    if req.uri().path() == format!("/ws/{id}") {
        return Redirect::permanent(&format!("/ws/{id}/")).into_response();
    }
    let c = creds(&req);
    let p = match path_principal(&app, &c).await {
        Ok(p) => p,
        Err(_) if wants_html(&req) => {
            let next = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish();
            return Redirect::to(&format!("/ui/login?{q}")).into_response();
        }
        Err(e) => return error(&e),
    };
    let t = match access::target(&app, &p, id).await {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    let proto = if app
        .security
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        "https"
    } else {
        "http"
    };
    forward(&app, &tunnels, &t, req, WS_COOKIE, proto).await
}

/// `/ws-open/{id}` on the server's origin (origin mode): checks the
/// caller and sends the browser to the workspace's origin with a ticket.
pub async fn open(State(app): State<Service>, Path(id): Path<String>, req: Request) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(&ServiceError::not_found("workspace"));
    };
    let c = creds(&req);
    let p = match path_principal(&app, &c).await {
        Ok(p) => p,
        Err(_) => {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &format!("/ws-open/{id}"))
                .finish();
            return Redirect::to(&format!("/ui/login?{q}")).into_response();
        }
    };
    match access::open(&app, &p, id).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => error(&e),
    }
}

/// Origin mode: a request whose `Host` is a workspace's origin is the
/// workspace's, whatever its path; everything else goes on to the API
/// and the portal.
pub async fn origin_gate(State(app): State<Service>, req: Request, next: Next) -> Response {
    let Some(origin) = app.workspaces.origin.clone() else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let Some(id) = host.as_deref().and_then(|h| origin.workspace_of(h)) else {
        return next.run(req).await;
    };
    let Some(tunnels) = req.extensions().get::<Tunnels>().cloned() else {
        return json_error(
            StatusCode::NOT_FOUND,
            "not-found",
            "this server does not proxy workspaces".into(),
        );
    };
    let prefix = trestle_core::workspace::session::prefix(id);
    if req.uri().path() == "/_trestle/ticket" {
        let ticket = req
            .uri()
            .query()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "t")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        return match access::redeem(&app, id, &ticket).await {
            Ok(secret) => {
                let secure = if origin.secure() { "; Secure" } else { "" };
                let c = format!(
                    "{WS_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                    access::COOKIE_MS / 1000
                );
                let mut r = Redirect::to(&prefix).into_response();
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            Err(e) => error(&e),
        };
    }
    let c = creds(&req);
    let p = match &c.ws_cookie {
        Some(s) => access::by_cookie(&app, id, s).await,
        None => match &c.bearer {
            Some(t) => by_token(&app, t, &c.ip).await,
            None => Err(ServiceError::unauthenticated(
                "open the workspace from the portal",
            )),
        },
    };
    let p = match p {
        Ok(p) => p,
        Err(_) if wants_html(&req) => {
            let base = app
                .workspaces
                .public_url
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/');
            return Redirect::to(&format!("{base}/ws-open/{id}")).into_response();
        }
        Err(e) => return error(&e),
    };
    let t = match access::target(&app, &p, id).await {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    if req.uri().path() == "/" {
        return Redirect::to(&prefix).into_response();
    }
    let proto = if origin.secure() { "https" } else { "http" };
    forward(&app, &tunnels, &t, req, WS_COOKIE, proto).await
}

/// The path-mode routes and `/ws-open/{id}` (origin mode's way in).
pub fn routes() -> axum::Router<Service> {
    use axum::routing::{any, get};
    axum::Router::new()
        .route("/ws/{id}", any(path_mode))
        .route("/ws/{id}/", any(path_mode))
        .route("/ws/{id}/{*rest}", any(path_mode))
        .route("/ws-open/{id}", get(open))
}

/// Counts a proxied connection's bytes as activity for apps without a
/// signal of their own (Jupyter's kernels are its signal; its open
/// WebSockets are not a person at work).
pub struct Activity(pub Service);

impl trestle_proxy::ActivitySink for Activity {
    fn request(&self, _workspace: i64, _method: &axum::http::Method, _path: &str) {}

    fn bytes(&self, workspace: i64, up: u64, _down: u64) {
        if up > 0 {
            access::bytes_seen(&self.0, workspace);
        }
    }
}
