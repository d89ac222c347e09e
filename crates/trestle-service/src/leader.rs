//! Leader leases: with several servers over one database, each
//! cluster-wide background loop (lease reaper, dependency resolver,
//! autoscaler, audit retention, ...) runs on the one server that holds the
//! loop's lease in the `leader_leases` table. Every server tries to take or
//! renew the leases of its loops every fifth of the lease period; a holder
//! that stops renewing (it died, or lost the database) loses the lease when
//! it runs out, and another server takes it at its next try. A holder
//! stops acting as leader a quarter period before its lease runs out, so
//! two servers never run a loop at once while their clocks agree (on
//! PostgreSQL expiry is judged by the database's clock).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use trestle_store::Store;

/// Holder of this server's leader leases.
pub struct Leadership {
    store: Arc<dyn Store>,
    holder: String,
    ttl: Duration,
    names: Mutex<BTreeSet<String>>,
    held: Mutex<HashMap<String, Instant>>,
}

impl Leadership {
    /// Leadership for this server, with leases lasting `ttl`.
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Leadership {
        let mut b = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        Leadership {
            store,
            holder: format!("{host}:{}:{}", std::process::id(), hex::encode(b)),
            ttl,
            names: Mutex::default(),
            held: Mutex::default(),
        }
    }

    /// This server's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease period.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Adds a loop whose lease this server competes for.
    pub fn register(&self, name: &str) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    /// True while this server leads `name`.
    pub fn is_leader(&self, name: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .is_some_and(|until| Instant::now() < *until)
    }

    /// Takes or renews every registered lease once.
    pub async fn renew(&self) {
        let names: Vec<String> = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let ttl_ms = self.ttl.as_millis() as i64;
        for name in names {
            let asked = Instant::now();
            let result = self
                .store
                .try_lead(&name, &self.holder, ttl_ms, crate::now_ms())
                .await;
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(true) => {
                    if !held.contains_key(&name) {
                        tracing::info!(target: "trestle::leader", loop_name = %name, holder = %self.holder, "leading");
                    }
                    held.insert(name, asked + self.ttl - self.ttl / 4);
                }
                Ok(false) => {
                    if held.remove(&name).is_some() {
                        tracing::warn!(target: "trestle::leader", loop_name = %name, "lost the lead to another server");
                    }
                }
                // Keep what we have until it runs out: the database may be
                // back before then.
                Err(e) => {
                    tracing::warn!(target: "trestle::leader", loop_name = %name, error = %e, "cannot renew the leader lease")
                }
            }
        }
    }

    /// Renews the leases every fifth of the period until `shutdown`, then
    /// gives them up so another server takes over at once.
    pub fn spawn(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let every = (self.ttl / 5).max(Duration::from_millis(100));
            loop {
                self.renew().await;
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => break,
                }
            }
            self.resign().await;
        })
    }

    /// Gives up every lease this server holds.
    pub async fn resign(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if let Err(e) = self.store.resign(&self.holder).await {
            tracing::warn!(target: "trestle::leader", error = %e, "cannot give up the leader leases");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_server_leads_and_the_other_takes_over_when_it_resigns() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store: Arc<dyn Store> = Arc::new(trestle_store::SqlStore::connect(&url).await.unwrap());
        let a = Leadership::new(store.clone(), Duration::from_secs(30));
        let b = Leadership::new(store.clone(), Duration::from_secs(30));
        assert_ne!(a.holder(), b.holder());
        for l in [&a, &b] {
            l.register("reaper");
            l.register("autoscaler");
        }
        a.renew().await;
        b.renew().await;
        assert!(a.is_leader("reaper") && a.is_leader("autoscaler"));
        assert!(!b.is_leader("reaper") && !b.is_leader("autoscaler"));
        assert!(!a.is_leader("unregistered"));
        a.resign().await;
        assert!(!a.is_leader("reaper"));
        b.renew().await;
        assert!(b.is_leader("reaper") && b.is_leader("autoscaler"));
        a.renew().await;
        assert!(!a.is_leader("reaper"), "b holds it until it runs out");
    }
}
