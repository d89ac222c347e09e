//! The audit trail: the HTTP edges record every request (time, principal,
//! source address, method, path, action, resource, status, latency, user
//! agent) into a channel; one background writer batches the records into
//! the store, so a request never waits for the audit write.
//!
//! The workers' hot path (`worker.lease` and `worker.updates` that
//! succeed) is aggregated: identical successful requests within one flush
//! interval become one row with a `count`. Those requests run thousands of
//! times a minute and say nothing new each time; writing one row each
//! would double the queue's writes. Failures on those paths, and every
//! other request, are recorded one row each.

use crate::principal::Principal;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use trestle_core::audit::AuditRecord;
use trestle_store::Store;

/// The client's address (after trusted-proxy handling), for handlers.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Whether the request reached the servers over HTTPS (see
/// [`crate::security::SecurityConfig::over_https`]), for handlers that set
/// cookies.
#[derive(Debug, Clone, Copy)]
pub struct OverHttps(pub bool);

/// What a request created (`job:12`), set by its handler as a response
/// extension, for requests whose path does not name it.
#[derive(Debug, Clone)]
pub struct AuditResource(pub String);

/// Where the request's handling tells the audit middleware who the caller
/// is (authentication) and which operation it was (routing).
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<SlotData>>);

#[derive(Debug, Default)]
struct SlotData {
    user: Option<String>,
    token: Option<String>,
    operation: Option<(String, Option<String>)>,
}

impl AuditSlot {
    /// Records the principal.
    pub fn set(&self, user: Option<&str>, token: &str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.user = user.map(str::to_string);
        g.token = Some(token.to_string());
    }

    /// Records the operation's audit action and resource.
    pub fn set_operation(&self, action: String, resource: Option<String>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).operation = Some((action, resource));
    }

    /// The operation recorded, if the request was routed to one.
    pub fn operation(&self) -> Option<(String, Option<String>)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .operation
            .clone()
    }

    /// Takes the principal recorded (for the audit middleware).
    pub fn take(&self) -> (Option<String>, Option<String>) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (g.user.take(), g.token.take())
    }
}

/// How many records the channel holds before new ones are dropped (and
/// counted) rather than slowing requests down.
const CHANNEL: usize = 65_536;
/// Write at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Write when this many records are waiting.
const BATCH: usize = 512;

enum Msg {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// The sending side of the audit writer; cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl AuditWriter {
    /// Starts the writer task over `store`.
    pub fn start(store: Arc<dyn Store>) -> (AuditWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = tokio::spawn(write_loop(store, rx));
        (
            AuditWriter {
                tx,
                dropped: Arc::default(),
            },
            handle,
        )
    }

    /// Queues a record without waiting.
    pub fn record(&self, r: AuditRecord) {
        if self.tx.try_send(Msg::Record(Box::new(r))).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit channel full: records dropped");
            }
        }
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything queued so far; returns when it is stored.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn is_aggregated(r: &AuditRecord) -> bool {
    (200..300).contains(&r.status) && matches!(r.action.as_str(), "worker.lease" | "worker.updates")
}

type AggKey = (Option<String>, Option<String>, String, String, String, u16);

#[derive(Default)]
struct Pending {
    rows: Vec<AuditRecord>,
    agg: HashMap<AggKey, AuditRecord>,
}

impl Pending {
    fn add(&mut self, r: AuditRecord) {
        if !is_aggregated(&r) {
            self.rows.push(r);
            return;
        }
        let key = (
            r.user.clone(),
            r.token.clone(),
            r.source_ip.clone(),
            r.path.clone(),
            r.method.clone(),
            r.status,
        );
        match self.agg.get_mut(&key) {
            Some(a) => {
                a.count += r.count;
                a.latency_us = a.latency_us.max(r.latency_us);
            }
            None => {
                self.agg.insert(key, r);
            }
        }
    }

    fn len(&self) -> usize {
        self.rows.len() + self.agg.len()
    }

    fn drain(&mut self) -> Vec<AuditRecord> {
        let mut out = std::mem::take(&mut self.rows);
        out.extend(self.agg.drain().map(|(_, r)| r));
        out.sort_by_key(|r| r.at);
        out
    }
}

async fn write(store: &dyn Store, p: &mut Pending) {
    if p.len() == 0 {
        return;
    }
    let rows = p.drain();
    // A failed write is retried once; the store being down for longer
    // loses the batch (and says so), rather than growing without bound.
    for attempt in 0..2 {
        match store.append_audit(&rows).await {
            Ok(()) => return,
            Err(e) if attempt == 0 => {
                tracing::warn!(error = %e, "audit write failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => tracing::error!(error = %e, lost = rows.len(), "audit records lost"),
        }
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>) {
    let mut pending = Pending::default();
    let mut last = Instant::now();
    loop {
        let msg = tokio::time::timeout(FLUSH_EVERY, rx.recv()).await;
        match msg {
            Ok(Some(Msg::Record(r))) => pending.add(*r),
            Ok(Some(Msg::Flush(done))) => {
                while let Ok(m) = rx.try_recv() {
                    if let Msg::Record(r) = m {
                        pending.add(*r);
                    }
                }
                write(&*store, &mut pending).await;
                last = Instant::now();
                let _ = done.send(());
                continue;
            }
            Ok(None) => {
                write(&*store, &mut pending).await;
                return;
            }
            Err(_) => {}
        }
        if pending.len() >= BATCH || last.elapsed() >= FLUSH_EVERY {
            write(&*store, &mut pending).await;
            last = Instant::now();
        }
    }
}

/// A record of something the server did outside a request's own action:
/// on behalf of `by` (a principal that asked for it), or on its own
/// (`None`: the unused-credential policy).
pub fn internal_record(by: Option<&Principal>, action: &str, resource: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: crate::now_ms(),
        user: by.and_then(|p| p.user_name().map(str::to_string)),
        token: Some(by.map_or_else(|| "policy".to_string(), |p| p.token_id.clone())),
        source_ip: "-".into(),
        method: "-".into(),
        path: "-".into(),
        action: action.into(),
        resource: Some(resource.into()),
        status: 200,
        latency_us: 0,
        user_agent: None,
        count: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: &str, status: u16, at: i64) -> AuditRecord {
        AuditRecord {
            id: 0,
            at,
            user: None,
            token: Some("internal".into()),
            source_ip: "127.0.0.1".into(),
            method: "POST".into(),
            path: format!(
                "/api/v1/workers/w-1/{}",
                action.trim_start_matches("worker.")
            ),
            action: action.into(),
            resource: Some("worker:w-1".into()),
            status,
            latency_us: at,
            user_agent: None,
            count: 1,
        }
    }

    #[test]
    fn hot_path_successes_are_aggregated_failures_are_not() {
        let mut p = Pending::default();
        for i in 0..10 {
            p.add(rec("worker.updates", 200, i));
        }
        p.add(rec("worker.lease", 200, 3));
        p.add(rec("worker.updates", 404, 5));
        p.add(rec("worker.updates", 404, 6));
        p.add(rec("job.cancel", 200, 7));
        let rows = p.drain();
        assert_eq!(rows.len(), 5);
        let updates = rows
            .iter()
            .find(|r| r.action == "worker.updates" && r.status == 200)
            .unwrap();
        assert_eq!((updates.count, updates.at, updates.latency_us), (10, 0, 9));
        assert_eq!(rows.iter().filter(|r| r.status == 404).count(), 2);
        assert_eq!(rows.iter().map(|r| r.count).sum::<u32>(), 14);
        assert_eq!(p.len(), 0);
    }
}
