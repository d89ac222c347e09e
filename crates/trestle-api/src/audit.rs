//! The audit middleware: works out the client address (after trusted
//! proxies), lets authentication fill in the principal, and hands a record
//! of every request to the service's audit writer. The server puts it
//! around the API and the portal alike.

use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use trestle_core::audit::{AuditRecord, classify, client_ip};
use trestle_service::Service;
pub use trestle_service::audit::{AuditResource, AuditSlot, ClientIp, OverHttps};

/// Middleware around `/api/v1`: works out the client address, lets
/// authentication fill in the principal, and records the request.
pub async fn record(State(app): State<Service>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let at = trestle_service::now_ms();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ip = client_ip(peer, xff.as_deref(), &app.security.trusted_proxies);
    let https = app.security.over_https(
        peer,
        req.headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok()),
    );
    let method = req.method().to_string();
    // Inside the nested `/api/v1` router the URI is stripped of its prefix;
    // record the path as the client sent it.
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let user_agent = req
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    let slot = AuditSlot::default();
    req.extensions_mut().insert(ClientIp(ip));
    req.extensions_mut().insert(OverHttps(https));
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    let (user, token) = slot.take();
    // The operation's own audit action (set by [`tag`] once routed); what
    // no operation matched is classified from its path.
    let (action, resource) = slot.operation().unwrap_or_else(|| classify(&method, &path));
    let resource = resp
        .extensions()
        .get::<AuditResource>()
        .map(|r| r.0.clone())
        .or(resource);
    app.audit.record(AuditRecord {
        id: 0,
        at,
        user,
        token,
        source_ip: ip.to_string(),
        method,
        path: path.chars().take(1024).collect(),
        action,
        resource,
        status: resp.status().as_u16(),
        latency_us: start.elapsed().as_micros() as i64,
        user_agent,
        count: 1,
    });
    resp
}
