//! Background loops. Each implements [`BackgroundLoop`]; the runner calls
//! `tick` on its interval (or sooner when woken) until shutdown, and logs
//! failures without stopping. Loops that must run once per cluster are
//! started with [`spawn_led`]: they tick only while this server holds their
//! leader lease (see [`crate::leader`]).

use crate::leader::Leadership;
use crate::state::Service;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// One periodic piece of server work.
#[async_trait]
pub trait BackgroundLoop: Send + Sync + 'static {
    /// Name, for logs.
    fn name(&self) -> &'static str;
    /// Time between ticks.
    fn interval(&self) -> Duration;
    /// A notifier that triggers an early tick, if any.
    fn wake(&self) -> Option<Arc<Notify>> {
        None
    }
    /// Shortest time between the starts of two ticks when woken early
    /// (bounds the work a stream of wake-ups causes).
    fn min_gap(&self) -> Duration {
        Duration::ZERO
    }
    /// One round of work.
    async fn tick(&self) -> crate::ServiceResult<()>;
}

/// Runs a loop until `shutdown` turns true.
pub fn spawn(
    l: Arc<dyn BackgroundLoop>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    run(l, None, shutdown)
}

/// Runs a loop that must run on one server of a cluster at a time: it
/// ticks only while this server holds the lease named after the loop.
pub fn spawn_led(
    l: Arc<dyn BackgroundLoop>,
    leadership: Arc<Leadership>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    leadership.register(l.name());
    run(l, Some(leadership), shutdown)
}

fn run(
    l: Arc<dyn BackgroundLoop>,
    leadership: Option<Arc<Leadership>>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let wake = l.wake().unwrap_or_default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let started = tokio::time::Instant::now();
            let leading = leadership.as_ref().is_none_or(|x| x.is_leader(l.name()));
            if !leading {
                // Not ours to run now.
            } else if let Err(e) = l.tick().await {
                tracing::warn!(target: "trestle::loops", name = l.name(), error = %e, "loop tick failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(l.interval()) => {}
                _ = wake.notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(started + l.min_gap()) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// Expires leases whose workers stopped heartbeating, and forgets workers
/// not seen for a long time.
pub struct Reaper {
    /// Shared state.
    pub app: Service,
    /// Tick interval.
    pub every: Duration,
    /// Forget workers silent for this long.
    pub worker_timeout: Duration,
}

#[async_trait]
impl BackgroundLoop for Reaper {
    fn name(&self) -> &'static str {
        "lease-reaper"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    async fn tick(&self) -> crate::ServiceResult<()> {
        let now = crate::now_ms();
        let lost = self.app.store.expire_leases(now).await?;
        if lost > 0 {
            tracing::info!(lost, "expired leases handed back to the queue");
            self.app.metrics.leases_expired(lost);
            self.app.wake();
        }
        let gone = self
            .app
            .store
            .reap_workers(now - self.worker_timeout.as_millis() as i64, now)
            .await?;
        if !gone.is_empty() {
            tracing::info!(?gone, "forgot silent workers");
            self.app.wake();
        }
        Ok(())
    }
}

/// Re-reads CEs and queues every second (every server runs it).
pub struct TopologyRefresh {
    /// Shared state.
    pub app: Service,
}

#[async_trait]
impl BackgroundLoop for TopologyRefresh {
    fn name(&self) -> &'static str {
        "compute-topology"
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn tick(&self) -> crate::ServiceResult<()> {
        self.app
            .compute
            .refresh(&*self.app.store)
            .await
            .map_err(Into::into)
    }
}
