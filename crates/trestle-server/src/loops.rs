//! Background loops. Each implements [`BackgroundLoop`]; the runner calls
//! `tick` on its interval (or sooner when woken) until shutdown, and logs
//! failures without stopping.

use crate::state::AppState;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use trestle_compute::Provider;
use trestle_core::Capacity;
use trestle_core::autoscale::{LocalSnapshot, workers_to_launch};

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
    /// One round of work.
    async fn tick(&self) -> Result<(), String>;
}

/// Runs a loop until `shutdown` turns true.
pub fn spawn(
    l: Arc<dyn BackgroundLoop>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let wake = l.wake().unwrap_or_default();
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(e) = l.tick().await {
                tracing::warn!(target: "trestle::loops", name = l.name(), error = %e, "loop tick failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(l.interval()) => {}
                _ = wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// Expires leases whose workers stopped heartbeating, and forgets workers
/// not seen for a long time.
pub struct Reaper {
    /// Shared state.
    pub app: AppState,
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
    async fn tick(&self) -> Result<(), String> {
        let now = crate::now_ms();
        let lost = self
            .app
            .store
            .expire_leases(now)
            .await
            .map_err(|e| e.to_string())?;
        if lost > 0 {
            tracing::info!(lost, "expired leases handed back to the queue");
            self.app.metrics.leases_expired(lost);
            self.app.wake();
        }
        let gone = self
            .app
            .store
            .reap_workers(now - self.worker_timeout.as_millis() as i64, now)
            .await
            .map_err(|e| e.to_string())?;
        if !gone.is_empty() {
            tracing::info!(?gone, "forgot silent workers");
            self.app.wake();
        }
        Ok(())
    }
}

/// Starts local worker processes when runnable jobs outnumber spare
/// capacity (the decision is [`workers_to_launch`], a pure function).
pub struct LocalScaler {
    /// Shared state.
    pub app: AppState,
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// Shape of one worker.
    pub shape: Capacity,
    /// CPU limit of the environment.
    pub max_vcpus: u32,
}

#[async_trait]
impl BackgroundLoop for LocalScaler {
    fn name(&self) -> &'static str {
        "local-autoscaler"
    }
    fn interval(&self) -> Duration {
        Duration::from_millis(250)
    }
    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.app.demand.clone())
    }
    async fn tick(&self) -> Result<(), String> {
        let demand = self
            .app
            .store
            .runnable_demand(self.shape.cpus, self.max_vcpus.saturating_add(1))
            .await
            .map_err(|e| e.to_string())?;
        let live = self.provider.list().await.map_err(|e| e.to_string())?;
        let total: u64 = live.iter().map(|w| u64::from(w.shape.cpus)).sum();
        let snapshot = LocalSnapshot {
            runnable_cpus: demand.cpus,
            spare_cpus: total.saturating_sub(demand.leased_cpus),
            total_worker_cpus: total,
            max_vcpus: u64::from(self.max_vcpus),
            shape_cpus: u64::from(self.shape.cpus),
        };
        let n = workers_to_launch(&snapshot);
        if n > 0 {
            tracing::info!(n, runnable_cpus = demand.cpus, "launching local workers");
            self.provider
                .launch(&trestle_compute::LaunchRequest {
                    shape_name: "local",
                    shape: self.shape,
                    count: n as u32,
                    env: &[],
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
