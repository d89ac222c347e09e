//! One stream the server opened: read its header, answer, connect.

use super::io::{Touching, read_line};
use super::{TunnelTargets, shell};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_yamux::StreamHandle;
use trestle_core::api::tunnel::{
    BAD_HEADER, COPY_BUF, Channel, MAX_HEADER, StreamAnswer, StreamOpen, UNAVAILABLE,
    UNKNOWN_WORKSPACE, decode_line, encode_line,
};

/// The longest wait for a stream's header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for the app's socket or a port to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the one-line answer.
pub(super) async fn answer<W: AsyncWrite + Unpin>(
    w: &mut W,
    a: &StreamAnswer,
) -> std::io::Result<()> {
    w.write_all(&encode_line(a)).await?;
    w.flush().await
}

/// Serves one stream to its end.
pub(super) async fn handle(mut s: StreamHandle, targets: Arc<dyn TunnelTargets>) {
    let line = match tokio::time::timeout(HEADER_TIMEOUT, read_line(&mut s, MAX_HEADER)).await {
        Ok(Ok(l)) => l,
        _ => return,
    };
    let open: StreamOpen = match decode_line(&line) {
        Ok(o) => o,
        Err(e) => {
            let _ = answer(&mut s, &StreamAnswer::refused(BAD_HEADER, e.to_string())).await;
            return;
        }
    };
    let Some(target) = targets.target(open.workspace) else {
        let _ = answer(
            &mut s,
            &StreamAnswer::refused(
                UNKNOWN_WORKSPACE,
                format!("workspace {} is not running here", open.workspace),
            ),
        )
        .await;
        return;
    };
    let ws = open.workspace;
    match open.channel {
        Channel::Http => {
            let app = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::UnixStream::connect(&target.socket),
            )
            .await;
            match app {
                Ok(Ok(app)) => splice(s, app).await,
                Ok(Err(e)) => refuse(s, ws, format!("the app's socket: {e}")).await,
                Err(_) => refuse(s, ws, "the app's socket does not accept".into()).await,
            }
        }
        Channel::Tcp { port } => {
            let conn = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await;
            match conn {
                Ok(Ok(conn)) => {
                    let _ = conn.set_nodelay(true);
                    let _guard = target.activity.attach();
                    let conn = Touching {
                        io: conn,
                        activity: target.activity.clone(),
                    };
                    splice(s, conn).await;
                }
                Ok(Err(e)) => refuse(s, ws, format!("port {port}: {e}")).await,
                Err(_) => refuse(s, ws, format!("port {port} does not accept")).await,
            }
        }
        Channel::Shell {
            cols,
            rows,
            command,
        } => shell::run(s, &target, cols, rows, command).await,
    }
}

async fn refuse(mut s: StreamHandle, workspace: i64, why: String) {
    tracing::debug!(workspace, reason = %why, "a tunnel stream cannot be connected");
    let _ = answer(&mut s, &StreamAnswer::refused(UNAVAILABLE, why)).await;
}

/// Answers ok and copies both ways until both directions end.
async fn splice<IO: AsyncRead + AsyncWrite + Unpin>(mut s: StreamHandle, mut io: IO) {
    if answer(&mut s, &StreamAnswer::ok()).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut s, &mut io, COPY_BUF, COPY_BUF).await;
}
