//! Raw relays for shells and port forwards: an upgraded client connection
//! (`Upgrade: trestle-shell` / `trestle-tcp`) joined to a stream of the
//! workspace's tunnel. The server does not read what they carry: shell
//! frames are decoded by the worker and the CLI only.

use crate::error::ProxyError;
use crate::tunnels::{Stream, Tunnels};
use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use trestle_core::api::tunnel::{COPY_BUF, StreamOpen};

/// Opens a stream to worker `worker_id` for `open` and copies bytes between
/// it and `client_io` until both directions end. Returns the bytes sent to
/// the workspace and received from it.
pub async fn relay<IO>(
    tunnels: &Tunnels,
    worker_id: &str,
    open: StreamOpen,
    client_io: IO,
) -> Result<(u64, u64), ProxyError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let stream = tunnels.open(worker_id, &open).await?;
    Ok(relay_stream(stream, client_io).await)
}

/// Copies between an opened stream and `client_io` (see [`relay`]);
/// returns the bytes sent to the workspace and received from it.
pub async fn relay_stream<IO>(mut stream: Stream, mut client_io: IO) -> (u64, u64)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    tokio::io::copy_bidirectional_with_sizes(&mut client_io, &mut stream, COPY_BUF, COPY_BUF)
        .await
        .unwrap_or_else(|_| {
            let c = stream.counters();
            (c.outbound(), c.inbound())
        })
}

/// Answers an upgrade request for a shell or port forward: checks that it
/// asks for `protocol` (400 otherwise), opens the stream first (so a
/// workspace that cannot be reached is a 502 and no upgrade), then answers
/// 101 and relays in a task of its own.
pub async fn upgrade_relay(
    tunnels: &Tunnels,
    worker_id: &str,
    open: StreamOpen,
    protocol: &str,
    mut req: Request<Body>,
) -> Response<Body> {
    let asked = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(protocol));
    if !asked {
        return ProxyError::BadRequest(format!(
            "this endpoint needs `Connection: upgrade` and `Upgrade: {protocol}`"
        ))
        .into_response();
    }
    let stream = match tunnels.open(worker_id, &open).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on.await {
            Ok(up) => {
                relay_stream(stream, TokioIo::new(up)).await;
            }
            Err(e) => tracing::debug!(error = %e, "the client did not complete the upgrade"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(protocol) {
        resp.headers_mut().insert(header::UPGRADE, v);
    }
    resp
}
