//! One tunnel per server: connect, serve streams until the connection
//! ends, reconnect with backoff.

use super::TunnelTargets;
use super::io::Watched;
use crate::backoff::Backoff;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_yamux::{Config, Session};
use trestle_client::{Client, ClientError};
use trestle_core::api::tunnel::{DEAD_AFTER_SECS, KEEPALIVE_SECS, STREAM_WINDOW, TUNNEL_PROTOCOL};

/// The worker's current id (it changes when the worker registers again);
/// empty before the first registration.
pub type WorkerId = Arc<dyn Fn() -> String + Send + Sync>;

/// Longest pause between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Pause after the server refused the tunnel (403).
const REFUSED_PAUSE: Duration = Duration::from_secs(60);

/// The multiplexer's settings (the same as the server's).
fn yamux_config() -> Config {
    Config {
        keepalive_interval: Duration::from_secs(KEEPALIVE_SECS),
        max_stream_window_size: STREAM_WINDOW,
        ..Config::default()
    }
}

/// Starts one tunnel task per server URL in `client` (each keeps its own
/// connection; none fails over), serving `targets` until `stop` turns
/// true.
pub fn spawn(
    client: &Client,
    worker_id: WorkerId,
    targets: Arc<dyn TunnelTargets>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    client
        .bases()
        .iter()
        .cloned()
        .map(|base| {
            let client = client.clone();
            let (worker_id, targets, stop) = (worker_id.clone(), targets.clone(), stop.clone());
            tokio::spawn(async move { run(client, base, worker_id, targets, stop).await })
        })
        .collect()
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run(
    client: Client,
    base: url::Url,
    worker_id: WorkerId,
    targets: Arc<dyn TunnelTargets>,
    mut stop: watch::Receiver<bool>,
) {
    let server = base.as_str().trim_end_matches('/').to_string();
    let mut backoff = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let id = worker_id();
        let pause = if id.is_empty() {
            Duration::from_millis(200)
        } else {
            let segments = ["workers", id.as_str(), "tunnel"];
            let connect = client.upgrade(&base, &segments, TUNNEL_PROTOCOL);
            let result = tokio::select! {
                r = connect => r,
                () = stopped(&mut stop) => return,
            };
            match result {
                Ok(io) => {
                    if failures > 0 {
                        tracing::info!(%server, failures, "tunnel connected again");
                    } else {
                        tracing::info!(%server, worker = %id, "tunnel connected");
                    }
                    failures = 0;
                    backoff.reset();
                    let why = serve(io, &targets, &mut stop, || worker_id() != id).await;
                    if *stop.borrow() {
                        return;
                    }
                    tracing::warn!(%server, reason = %why, "tunnel ended; reconnecting");
                    backoff.next_delay()
                }
                Err(e) => {
                    failures += 1;
                    pause_after(&server, &e, failures, &mut backoff)
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// How long to wait after a failed connection attempt (logging the first
/// of a series).
fn pause_after(server: &str, e: &ClientError, failures: u32, backoff: &mut Backoff) -> Duration {
    match e.status() {
        Some(403) => {
            tracing::error!(%server, error = %e, "the server refuses this worker's tunnel");
            REFUSED_PAUSE
        }
        // The worker is registering again (or the server has not seen the
        // registration yet): the id will change.
        Some(404) => {
            if failures == 1 {
                tracing::warn!(%server, error = %e, "the server does not know this worker yet");
            }
            backoff.next_delay()
        }
        _ => {
            if failures == 1 {
                tracing::warn!(%server, error = %e, "cannot open the tunnel; retrying");
            }
            backoff.next_delay()
        }
    }
}

/// Serves the streams of one connection until it ends, or `stale` says
/// the worker registered again under another id; returns why.
async fn serve<IO>(
    io: IO,
    targets: &Arc<dyn TunnelTargets>,
    stop: &mut watch::Receiver<bool>,
    stale: impl Fn() -> bool,
) -> String
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = Watched::new(io);
    let last = io.last_read();
    let mut session = Session::new_server(io, yamux_config());
    let dead_after = Duration::from_secs(DEAD_AFTER_SECS);
    let mut tick = tokio::time::interval(Duration::from_secs(KEEPALIVE_SECS));
    loop {
        tokio::select! {
            item = session.next() => match item {
                Some(Ok(stream)) => {
                    let targets = targets.clone();
                    tokio::spawn(async move { super::stream::handle(stream, targets).await });
                }
                Some(Err(e)) => return format!("error: {e}"),
                None => return "closed by the server".into(),
            },
            _ = tick.tick() => {
                if last.idle() > dead_after {
                    return format!("nothing received for {DEAD_AFTER_SECS} s");
                }
                if stale() {
                    return "the worker registered again under another id".into();
                }
            }
            () = stopped(stop) => return "worker stopping".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::TargetRegistry;

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_given_up_within_25_seconds() {
        let (io, _peer) = tokio::io::duplex(1 << 20);
        let targets: Arc<dyn TunnelTargets> = Arc::new(TargetRegistry::new());
        let (_stop, mut rx) = watch::channel(false);
        let start = tokio::time::Instant::now();
        let why = serve(io, &targets, &mut rx, || false).await;
        let took = start.elapsed();
        assert!(why.contains("nothing received"), "{why}");
        let dead = Duration::from_secs(DEAD_AFTER_SECS);
        assert!(
            took >= dead && took <= dead + Duration::from_secs(KEEPALIVE_SECS),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_worker_id_ends_the_tunnel() {
        let (io, _peer) = tokio::io::duplex(1 << 20);
        let targets: Arc<dyn TunnelTargets> = Arc::new(TargetRegistry::new());
        let (_stop, mut rx) = watch::channel(false);
        let why = serve(io, &targets, &mut rx, || true).await;
        assert!(why.contains("another id"), "{why}");
    }
}
