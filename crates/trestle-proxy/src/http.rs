//! The HTTP and WebSocket reverse proxy: one request over a fresh stream
//! of the workspace's tunnel, bodies streamed both ways, upgrades relayed.

use crate::error::ProxyError;
use crate::headers::{
    app_path, is_upgrade, set_forwarded, strip_credentials, strip_hop_by_hop,
    strip_session_set_cookie,
};
use crate::tunnels::Tunnels;
use axum::body::Body;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use trestle_core::api::tunnel::{COPY_BUF, Channel, StreamOpen};

/// Where a request goes and what the proxy adds to it. The caller (the
/// workspace route) has already decided that the requester may reach the
/// workspace.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// The worker that hosts the workspace.
    pub worker_id: String,
    /// The workspace.
    pub workspace: i64,
    /// A path prefix to remove before the app sees the path (`/ws/7`), for
    /// apps that cannot be told their base URL. `None` forwards the path
    /// unchanged: apps that take a base URL (JupyterLab's `base_url`) are
    /// started with the prefix and see the full path, so the links they
    /// write are right without rewriting.
    pub strip_prefix: Option<String>,
    /// Headers set on every forwarded request, replacing any the client
    /// sent (`Authorization: token <per-launch secret>` for Jupyter).
    pub add_headers: Vec<(HeaderName, HeaderValue)>,
    /// The portal's session cookie name, stripped from every request and
    /// from the app's `Set-Cookie`s.
    pub session_cookie: String,
    /// `X-Forwarded-Proto` (`http` when empty).
    pub forwarded_proto: String,
}

/// Forwards `req` to the route's workspace and returns the app's answer,
/// streaming both bodies. Trestle's credentials (the session cookie, an
/// `Authorization` carrying a Trestle token, the CSRF header) and
/// hop-by-hop headers are removed; `X-Forwarded-*` are set. A request
/// that asks to upgrade (WebSocket) is upgraded on both sides and relayed.
///
/// Errors become JSON answers in the API's shape: 502 when the worker has
/// no tunnel here or the app cannot be reached, 504 on a timeout.
pub async fn forward_http(tunnels: &Tunnels, route: &Route, req: Request<Body>) -> Response<Body> {
    match forward(tunnels, route, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn forward(
    tunnels: &Tunnels,
    route: &Route,
    mut req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let sink = tunnels.activity();
    sink.request(route.workspace, req.method(), req.uri().path());
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let client_ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let path = app_path(&pq, route.strip_prefix.as_deref());
    *req.uri_mut() = path
        .parse()
        .map_err(|_| ProxyError::BadRequest("the path cannot be forwarded".into()))?;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    strip_credentials(headers, &route.session_cookie);
    let proto = if route.forwarded_proto.is_empty() {
        "http"
    } else {
        &route.forwarded_proto
    };
    let stripped = route
        .strip_prefix
        .as_deref()
        .filter(|_| path != pq)
        .map(|p| p.trim_end_matches('/'));
    set_forwarded(headers, client_ip, proto, stripped);
    if !headers.contains_key(http::header::HOST) {
        headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    }
    for (k, v) in &route.add_headers {
        headers.insert(k.clone(), v.clone());
    }

    let stream = tunnels
        .open(
            &route.worker_id,
            &StreamOpen {
                workspace: route.workspace,
                channel: Channel::Http,
            },
        )
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, Body>(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Unavailable(e.to_string()))?;
    let workspace = route.workspace;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(workspace, error = %e, "proxied connection ended with an error");
        }
    });
    let mut resp = sender
        .send_request(req)
        .await
        .map_err(|e| ProxyError::Unavailable(e.to_string()))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ProxyError::Unavailable(
                "the app switched protocols without being asked to".into(),
            ));
        };
        let app_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, app) = match tokio::join!(client_upgrade, app_upgrade) {
                (Ok(c), Ok(a)) => (c, a),
                (c, a) => {
                    tracing::debug!(
                        workspace,
                        client = c.is_ok(),
                        app = a.is_ok(),
                        "an upgrade did not complete"
                    );
                    return;
                }
            };
            let (mut client, mut app) = (TokioIo::new(client), TokioIo::new(app));
            let _ =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut app, COPY_BUF, COPY_BUF)
                    .await;
        });
        let (mut parts, _) = resp.into_parts();
        strip_session_set_cookie(&mut parts.headers, &route.session_cookie);
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    strip_session_set_cookie(&mut parts.headers, &route.session_cookie);
    Ok(Response::from_parts(parts, Body::new(body)))
}
