//! The pieces `bench/proxy.sh` measures, as separate processes so the
//! server's memory is its own:
//!
//! - `proxy_bench server PORT`: a server holding [`Tunnels`] with the
//!   tunnel route and a proxy route `/ws/1/...` (what `trestle server`
//!   runs, without the database);
//! - `proxy_bench worker SERVER_URL SOCKET [TCP_PORT]`: the agent's tunnel
//!   client plus a small app on the Unix socket `SOCKET` (and on
//!   `127.0.0.1:TCP_PORT` for peers that cannot reach a Unix socket):
//!   `/small` answers `ok`, `/big?n=BYTES` streams that many bytes, `/ws`
//!   echoes WebSocket messages.
//!
//! Each prints `ready` on stdout once it serves.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::{self, protocol::Role};
use trestle_agent::tunnel::{Activity, SessionTarget, TargetRegistry};
use trestle_core::api::tunnel::TUNNEL_PROTOCOL;
use trestle_proxy::{Route, Tunnels, forward_http};

const WORKER: &str = "w-bench";

async fn big(Query(q): Query<HashMap<String, usize>>) -> Response {
    let n = q.get("n").copied().unwrap_or(0);
    let chunk = bytes::Bytes::from(vec![b'x'; 256 * 1024]);
    let stream = futures::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let take = left.min(chunk.len());
                (Ok::<_, std::io::Error>(chunk.slice(..take)), left - take)
            })
        }
    });
    Response::builder()
        .header(header::CONTENT_LENGTH, n)
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

async fn ws_echo(mut req: Request) -> Response {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let io = hyper_util::rt::TokioIo::new(up);
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() || ws.send(m).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            "sec-websocket-accept",
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
        )
        .body(Body::empty())
        .unwrap_or_default()
}

fn app() -> Router {
    Router::new()
        .route("/small", get(|| async { "ok" }))
        .route("/ws/1/small", get(|| async { "ok" }))
        .route("/big", get(big))
        .route("/ws/1/big", get(big))
        .route("/ws", get(ws_echo))
        .route("/ws/1/ws", get(ws_echo))
}

async fn tunnel_route(
    Path(id): Path<String>,
    tunnels: axum::Extension<Tunnels>,
    req: Request,
) -> Response {
    let on = hyper::upgrade::on(req);
    let t = tunnels.0.clone();
    tokio::spawn(async move {
        if let Ok(io) = on.await {
            t.accept(&id, hyper_util::rt::TokioIo::new(io)).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, TUNNEL_PROTOCOL)
        .body(Body::empty())
        .unwrap_or_default()
}

async fn proxy_route(t: axum::Extension<Tunnels>, req: Request) -> Response {
    let route = Route {
        worker_id: WORKER.into(),
        workspace: 1,
        strip_prefix: None,
        add_headers: vec![],
        session_cookie: "trestle_session".into(),
        forwarded_proto: String::new(),
    };
    forward_http(&t.0, &route, req).await
}

async fn server(port: u16) {
    let tunnels = Tunnels::new();
    let router = Router::new()
        .route("/api/v1/workers/{id}/tunnel", get(tunnel_route))
        .route("/ws/1/{*rest}", any(proxy_route))
        .layer(axum::Extension(tunnels));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("ready");
    axum::serve(listener, router).await.expect("serve");
}

async fn worker(server: String, socket: String, tcp: Option<u16>) {
    let _ = std::fs::remove_file(&socket);
    let unix = tokio::net::UnixListener::bind(&socket).expect("bind the socket");
    tokio::spawn(async move { axum::serve(unix, app()).await });
    if let Some(port) = tcp {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        tokio::spawn(async move { axum::serve(l, app()).await });
    }
    let registry = Arc::new(TargetRegistry::new());
    registry.insert(
        1,
        SessionTarget {
            socket: socket.into(),
            cwd: std::env::temp_dir(),
            env: vec![],
            activity: Arc::new(Activity::new()),
            run_as: None,
        },
    );
    let client = trestle_client::Client::new(vec![server], None).expect("client");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let _tasks =
        trestle_agent::tunnel::spawn(&client, Arc::new(|| WORKER.to_string()), registry, rx);
    println!("ready");
    std::future::pending::<()>().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["server", port] => server(port.parse().expect("a port")).await,
        ["worker", url, socket] => worker(url.to_string(), socket.to_string(), None).await,
        ["worker", url, socket, port] => {
            worker(
                url.to_string(),
                socket.to_string(),
                Some(port.parse().expect("a port")),
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: proxy_bench server PORT | proxy_bench worker SERVER_URL SOCKET [TCP_PORT]"
            );
            std::process::exit(2);
        }
    }
}
