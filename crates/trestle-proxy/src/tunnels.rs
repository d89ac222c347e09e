//! The registry of live tunnels, one per worker (the newest wins), and the
//! streams opened over them.

use crate::error::ProxyError;
use crate::io::{Counters, Watched, read_line};
use crate::{ActivitySink, NoActivity};
use futures::StreamExt;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio_yamux::{Config, Control, Session, StreamHandle};
use trestle_core::api::tunnel::{
    DEAD_AFTER_SECS, KEEPALIVE_SECS, MAX_HEADER, STREAM_WINDOW, StreamAnswer, StreamOpen,
    UNKNOWN_WORKSPACE, decode_line, encode_line,
};

/// How often each side pings (yamux keepalive).
pub const KEEPALIVE: Duration = Duration::from_secs(KEEPALIVE_SECS);
/// A tunnel that has carried nothing (not even a ping) for this long is
/// dead: with pings every [`KEEPALIVE`], a dead peer is noticed within
/// 25 s.
pub const DEAD_AFTER: Duration = Duration::from_secs(DEAD_AFTER_SECS);
/// The longest wait for a stream to open and the worker to answer its
/// header.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The multiplexer's settings, the same on both ends.
pub fn yamux_config() -> Config {
    Config {
        keepalive_interval: KEEPALIVE,
        max_stream_window_size: STREAM_WINDOW,
        ..Config::default()
    }
}

struct Entry {
    generation: u64,
    control: Control,
    cancel: Arc<Notify>,
}

struct Inner {
    map: Mutex<HashMap<String, Entry>>,
    next: AtomicU64,
    shutdown: watch::Sender<bool>,
    activity: RwLock<Arc<dyn ActivitySink>>,
}

/// The live tunnels of this server's workers, by worker id. Cheap to
/// clone; clones share the registry.
#[derive(Clone)]
pub struct Tunnels {
    inner: Arc<Inner>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels::new()
    }
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnels")
            .field("connected", &self.workers())
            .finish()
    }
}

impl Tunnels {
    /// An empty registry that reports no activity.
    pub fn new() -> Tunnels {
        Tunnels {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                next: AtomicU64::new(1),
                shutdown: watch::channel(false).0,
                activity: RwLock::new(Arc::new(NoActivity)),
            }),
        }
    }

    /// Sends every forwarded request and relayed byte count to `sink` from
    /// now on (the workspaces' idle tracking).
    pub fn set_activity(&self, sink: Arc<dyn ActivitySink>) {
        *self
            .inner
            .activity
            .write()
            .unwrap_or_else(|p| p.into_inner()) = sink;
    }

    /// The activity sink.
    pub(crate) fn activity(&self) -> Arc<dyn ActivitySink> {
        self.inner
            .activity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while worker `worker_id` has a live tunnel to this server.
    pub fn connected(&self, worker_id: &str) -> bool {
        self.map().contains_key(worker_id)
    }

    /// The workers with a live tunnel, sorted.
    pub fn workers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map().keys().cloned().collect();
        v.sort();
        v
    }

    /// Runs worker `worker_id`'s tunnel over `io` (an upgraded connection)
    /// until it ends: the worker goes away, nothing arrives for
    /// [`DEAD_AFTER`], a newer tunnel of the same worker replaces it, or
    /// [`Tunnels::close_all`] is called. This side opens the streams; a
    /// stream the worker opens is refused.
    pub async fn accept<IO>(&self, worker_id: &str, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let io = Watched::new(io);
        let last = io.last_read();
        let mut session = Session::new_client(io, yamux_config());
        let generation = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(Notify::new());
        let old = self.map().insert(
            worker_id.to_string(),
            Entry {
                generation,
                control: session.control(),
                cancel: cancel.clone(),
            },
        );
        if let Some(old) = old {
            old.cancel.notify_one();
            tracing::info!(worker = %worker_id, "a new tunnel replaces the old one");
        } else {
            tracing::info!(worker = %worker_id, "tunnel connected");
        }
        let mut shutdown = self.inner.shutdown.subscribe();
        let mut tick = tokio::time::interval(KEEPALIVE);
        let why = loop {
            tokio::select! {
                item = session.next() => match item {
                    Some(Ok(stream)) => {
                        // Only the server opens streams.
                        drop(stream);
                    }
                    Some(Err(e)) => break format!("error: {e}"),
                    None => break "closed".to_string(),
                },
                _ = tick.tick() => {
                    if last.idle() > DEAD_AFTER {
                        break format!("nothing received for {} s", DEAD_AFTER.as_secs());
                    }
                }
                () = cancel.notified() => break "replaced".to_string(),
                r = shutdown.wait_for(|v| *v) => {
                    let _ = r;
                    break "server shutting down".to_string();
                }
            }
        };
        {
            let mut map = self.map();
            if map
                .get(worker_id)
                .is_some_and(|e| e.generation == generation)
            {
                map.remove(worker_id);
            }
        }
        tracing::info!(worker = %worker_id, reason = %why, "tunnel ended");
    }

    /// Ends every tunnel (on shutdown); workers reconnect to another server
    /// or to this one when it is back.
    pub fn close_all(&self) {
        let _ = self.inner.shutdown.send(true);
    }

    /// Opens a stream to worker `worker_id` for `open`, and waits for the
    /// worker's answer. Errors: no tunnel ([`ProxyError::NoTunnel`]: the
    /// caller answers 502), a workspace the worker does not host, an app
    /// that cannot be reached, or a timeout.
    pub async fn open(&self, worker_id: &str, open: &StreamOpen) -> Result<Stream, ProxyError> {
        let control = self.map().get(worker_id).map(|e| e.control.clone());
        let Some(mut control) = control else {
            return Err(ProxyError::NoTunnel(worker_id.to_string()));
        };
        let opened = tokio::time::timeout(OPEN_TIMEOUT, async {
            let mut s = control
                .open_stream()
                .await
                .map_err(|e| ProxyError::Tunnel(e.to_string()))?;
            s.write_all(&encode_line(open)).await?;
            s.flush().await?;
            let line = read_line(&mut s, MAX_HEADER).await?;
            let answer: StreamAnswer =
                decode_line(&line).map_err(|e| ProxyError::Tunnel(e.to_string()))?;
            Ok::<_, ProxyError>((s, answer))
        })
        .await
        .map_err(|_| ProxyError::Timeout)??;
        let (handle, answer) = opened;
        if !answer.ok {
            let message = answer.message.unwrap_or_default();
            return Err(if answer.code.as_deref() == Some(UNKNOWN_WORKSPACE) {
                ProxyError::UnknownWorkspace(open.workspace)
            } else {
                ProxyError::Unavailable(message)
            });
        }
        Ok(Stream {
            handle,
            workspace: open.workspace,
            counters: Counters::default(),
            meter: Meter {
                sink: self.activity(),
                up: 0,
                down: 0,
                reported: Instant::now(),
            },
        })
    }
}

/// How often a busy stream tells the [`ActivitySink`] what it carried.
pub const ACTIVITY_EVERY: Duration = Duration::from_secs(1);

/// Bytes not yet reported to the activity sink.
struct Meter {
    sink: Arc<dyn ActivitySink>,
    up: u64,
    down: u64,
    reported: Instant,
}

impl Meter {
    fn add(&mut self, workspace: i64, up: usize, down: usize) {
        self.up += up as u64;
        self.down += down as u64;
        if self.reported.elapsed() >= ACTIVITY_EVERY {
            self.flush(workspace);
        }
    }

    fn flush(&mut self, workspace: i64) {
        if self.up > 0 || self.down > 0 {
            self.sink.bytes(workspace, self.up, self.down);
        }
        self.up = 0;
        self.down = 0;
        self.reported = Instant::now();
    }
}

/// One open stream to a workspace, after its header was accepted: raw
/// bytes both ways. Counts what it carries, and tells the tunnels'
/// [`ActivitySink`] at most every [`ACTIVITY_EVERY`] while it carries
/// bytes, and when it is dropped.
pub struct Stream {
    handle: StreamHandle,
    workspace: i64,
    counters: Counters,
    meter: Meter,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("workspace", &self.workspace)
            .field("inbound", &self.counters.inbound())
            .field("outbound", &self.counters.outbound())
            .finish()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.meter.flush(self.workspace);
    }
}

impl Stream {
    /// The workspace it belongs to.
    pub fn workspace(&self) -> i64 {
        self.workspace
    }

    /// Bytes received from the worker and sent to it so far (shared
    /// counters that outlive the stream).
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.handle).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.add_in(n);
            let ws = self.workspace;
            self.meter.add(ws, 0, n);
        }
        r
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.handle).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            self.counters.add_out(*n);
            let ws = self.workspace;
            self.meter.add(ws, *n, 0);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.handle).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.handle).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_tunnel_is_dropped_within_25_seconds() {
        let tunnels = Tunnels::new();
        // The peer holds the connection open but never answers a ping.
        let (io, _peer) = tokio::io::duplex(1 << 20);
        let t = tunnels.clone();
        let start = tokio::time::Instant::now();
        let task = tokio::spawn(async move { t.accept("w-1", io).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(tunnels.connected("w-1"));
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the tunnel ends")
            .unwrap();
        let took = start.elapsed();
        assert!(
            took >= DEAD_AFTER && took <= DEAD_AFTER + KEEPALIVE,
            "dropped after {took:?}"
        );
        assert!(!tunnels.connected("w-1"));
        assert!(matches!(
            tunnels
                .open(
                    "w-1",
                    &StreamOpen {
                        workspace: 1,
                        channel: trestle_core::api::tunnel::Channel::Http
                    }
                )
                .await,
            Err(ProxyError::NoTunnel(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_tunnel_replaces_the_older() {
        let tunnels = Tunnels::new();
        let (old, _p1) = tokio::io::duplex(1 << 16);
        let (new, _p2) = tokio::io::duplex(1 << 16);
        let t = tunnels.clone();
        let first = tokio::spawn(async move { t.accept("w-1", old).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let t = tunnels.clone();
        let _second = tokio::spawn(async move { t.accept("w-1", new).await });
        tokio::time::timeout(Duration::from_secs(1), first)
            .await
            .expect("the older tunnel ends at once")
            .unwrap();
        assert!(tunnels.connected("w-1"), "the newer one stays");
        assert_eq!(tunnels.workers(), vec!["w-1".to_string()]);
        tunnels.close_all();
    }
}
