//! The reporter: one task that owns the stream of updates and sends them to
//! the server in order, in batches of whatever accumulated while the
//! previous request was in flight (no delay when idle, bigger batches under
//! load), together with the heartbeats. Batches that cannot be delivered
//! are retried until the server answers; updates are never dropped unless
//! the server rejects them outright.

use crate::backoff::Backoff;
use crate::heartbeat::HeartbeatClock;
use crate::state::{Attempts, StopReason};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trestle_client::ClientError;
use trestle_core::api::{AttemptKey, Update, UpdatesRequest, UpdatesResponse};

/// Updates waiting for the reporter before senders have to wait (bounds
/// memory while the server is away; a job's output then waits in its pipe).
const QUEUE: usize = 4096;
/// Under load (the last batch carried more than one update), how long the
/// reporter lets updates gather before sending the next batch: many short
/// jobs then cost one request per few milliseconds, not one per job. A
/// lone update on an idle worker goes at once.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// Where batches go (the server, or a fake in tests).
pub trait UpdatesApi: Send + Sync + 'static {
    /// Sends one batch.
    fn post(
        &self,
        request: &UpdatesRequest,
    ) -> impl Future<Output = Result<UpdatesResponse, ClientError>> + Send;
}

/// Batch size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Updates per request.
    pub max_updates: usize,
    /// Log bytes per request (a single larger chunk still goes alone).
    pub max_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_updates: 5000,
            max_log_bytes: 1024 * 1024,
        }
    }
}

/// Queues updates for the reporter. Cheap to clone; the reporter ends once
/// every handle is dropped and the queue is delivered.
#[derive(Debug, Clone)]
pub struct ReporterHandle {
    tx: mpsc::Sender<Update>,
}

impl ReporterHandle {
    /// Queues one update (waits while the queue is full).
    pub async fn send(&self, update: Update) {
        if self.tx.send(update).await.is_err() {
            tracing::warn!("the reporter is gone; an update was lost");
        }
    }
}

/// Starts the reporter task. `fatal` receives the error if the server
/// rejects this worker's credentials.
pub fn spawn<A: UpdatesApi>(
    api: Arc<A>,
    attempts: Arc<Attempts>,
    fatal: watch::Sender<Option<ClientError>>,
    limits: Limits,
    backoff: Backoff,
) -> (ReporterHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let clock = HeartbeatClock::new(Instant::now(), attempts.lease_ms());
    let reporter = Reporter {
        api,
        attempts,
        rx,
        carry: None,
        closed: false,
        stale: HashSet::new(),
        clock,
        fatal,
        limits,
        backoff,
        busy: false,
    };
    (ReporterHandle { tx }, tokio::spawn(reporter.run()))
}

struct Reporter<A> {
    api: Arc<A>,
    attempts: Arc<Attempts>,
    rx: mpsc::Receiver<Update>,
    /// An update taken from the queue that did not fit the last batch.
    carry: Option<Update>,
    /// Every handle is gone.
    closed: bool,
    /// Attempts the server called stale: their updates are dropped.
    stale: HashSet<AttemptKey>,
    clock: HeartbeatClock,
    fatal: watch::Sender<Option<ClientError>>,
    limits: Limits,
    backoff: Backoff,
    /// The last batch carried more than one update.
    busy: bool,
}

fn key_of(u: &Update) -> AttemptKey {
    let at = u.attempt();
    AttemptKey {
        job_id: at.job_id,
        attempt: at.attempt,
    }
}

fn log_bytes(u: &Update) -> usize {
    match u {
        Update::Log { data, .. } => data.len(),
        _ => 0,
    }
}

impl<A: UpdatesApi> Reporter<A> {
    async fn run(mut self) {
        loop {
            if self.carry.is_none() && !self.closed {
                tokio::select! {
                    biased;
                    next = self.rx.recv() => match next {
                        Some(u) => self.carry = Some(u),
                        None => self.closed = true,
                    },
                    _ = tokio::time::sleep_until(self.clock.deadline()) => {}
                }
            }
            if self.busy && self.carry.is_some() && !self.closed {
                tokio::time::sleep(LINGER).await;
            }
            let updates = self.drain();
            self.busy = updates.len() > 1;
            let now = Instant::now();
            let (heartbeat, samples) = if self.clock.is_due(now) {
                self.clock.sent(now, self.attempts.lease_ms());
                let attempts = &self.attempts;
                self.stale.retain(|k| attempts.contains(*k));
                (self.attempts.heartbeat_refs(), self.attempts.sampler.take())
            } else {
                (Vec::new(), Vec::new())
            };
            if updates.is_empty() && heartbeat.is_empty() && samples.is_empty() {
                if self.closed && self.carry.is_none() {
                    return;
                }
                continue;
            }
            self.deliver(UpdatesRequest {
                heartbeat,
                updates,
                samples,
            })
            .await;
        }
    }

    /// Takes queued updates, in order, up to the batch limits.
    fn drain(&mut self) -> Vec<Update> {
        let mut out = Vec::new();
        let mut bytes = 0;
        loop {
            let next = match self.carry.take() {
                Some(u) => u,
                None => match self.rx.try_recv() {
                    Ok(u) => u,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        self.closed = true;
                        break;
                    }
                },
            };
            if self.stale.contains(&key_of(&next)) {
                continue;
            }
            let size = log_bytes(&next);
            if !out.is_empty()
                && (out.len() >= self.limits.max_updates
                    || bytes + size > self.limits.max_log_bytes)
            {
                self.carry = Some(next);
                break;
            }
            bytes += size;
            out.push(next);
        }
        out
    }

    /// Sends a batch until the server has answered it.
    async fn deliver(&mut self, request: UpdatesRequest) {
        let mut pending = vec![request];
        let mut backoff = self.backoff.clone();
        let mut failures = 0u32;
        while let Some(req) = pending.pop() {
            loop {
                match self.api.post(&req).await {
                    Ok(resp) => {
                        if failures > 0 {
                            tracing::info!(failures, "updates delivered again");
                            failures = 0;
                        }
                        backoff.reset();
                        self.apply(resp);
                        break;
                    }
                    Err(e) if e.is_transient() => {
                        if failures == 0 {
                            tracing::warn!(error = %e, "cannot deliver updates; retrying");
                        } else {
                            tracing::debug!(error = %e, failures, "still cannot deliver updates");
                        }
                        failures += 1;
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    Err(e) if e.status() == Some(413) && req.updates.len() > 1 => {
                        let mut first = req.clone();
                        let second_half = first.updates.split_off(first.updates.len() / 2);
                        pending.push(UpdatesRequest {
                            heartbeat: Vec::new(),
                            updates: second_half,
                            samples: Vec::new(),
                        });
                        pending.push(first);
                        break;
                    }
                    Err(e) if matches!(e.status(), Some(401 | 403)) => {
                        tracing::error!(error = %e, "the server rejected this worker's updates");
                        self.fatal.send_replace(Some(e.clone()));
                        break;
                    }
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            updates = req.updates.len(),
                            "the server rejected a batch of updates; dropping it"
                        );
                        break;
                    }
                }
            }
        }
    }

    /// Stops the attempts the server says to stop.
    fn apply(&mut self, resp: UpdatesResponse) {
        for key in resp.stale {
            if self.attempts.stop(key, StopReason::Stale) {
                tracing::info!(
                    job = key.job_id,
                    attempt = key.attempt,
                    "lease lost; stopping"
                );
                self.stale.insert(key);
            }
        }
        for key in resp.cancel {
            if self.attempts.stop(key, StopReason::Cancel) {
                tracing::info!(
                    job = key.job_id,
                    attempt = key.attempt,
                    "cancelled; stopping"
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
