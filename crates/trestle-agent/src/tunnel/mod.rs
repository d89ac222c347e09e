//! The worker's half of the workspace data plane: it dials out to every
//! server it knows (`GET /api/v1/workers/{id}/tunnel`, `Upgrade:
//! trestle-tunnel`), keeps each connection up (reconnecting with backoff;
//! the apps keep running), and serves the streams the servers open over
//! them (yamux, this end in the server role: it accepts, never opens).
//!
//! Each stream names a workspace; [`TunnelTargets`] (filled by the
//! `session` task kind) says where its app listens, and the stream becomes
//! a connection to the app's Unix socket, a PTY shell, or a TCP connection
//! to `127.0.0.1:port`.
//!
//! A TCP forward reaches the host's loopback unless the workspace has a
//! network namespace of its own: any port a process of this host listens
//! on. The server opens forwards only for the workspace's owner, who could
//! reach the same ports from a shell in the workspace anyway.

mod client;
mod io;
mod shell;
mod stream;

pub use client::{WorkerId, spawn};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

/// When a workspace's shells and forwards last carried bytes, and how many
/// are attached now (the traffic part of idle tracking; proxied HTTP is
/// counted on the server).
#[derive(Debug, Default)]
pub struct Activity {
    last_ms: AtomicI64,
    attached: AtomicU32,
}

impl Activity {
    /// No activity yet.
    pub fn new() -> Activity {
        Activity::default()
    }

    /// Records bytes carried now.
    pub fn touch(&self) {
        self.last_ms
            .store(trestle_core::clock::now_ms(), Ordering::Relaxed);
    }

    /// When bytes were last carried (ms since the epoch; 0 for never).
    pub fn last_ms(&self) -> i64 {
        self.last_ms.load(Ordering::Relaxed)
    }

    /// How many shells and forwards are attached.
    pub fn attached(&self) -> u32 {
        self.attached.load(Ordering::Relaxed)
    }

    /// When bytes were last carried (`None` for never) and how many are
    /// attached.
    pub fn get(&self) -> (Option<i64>, u32) {
        let last = self.last_ms();
        ((last > 0).then_some(last), self.attached())
    }

    /// Counts one attached shell or forward until the guard is dropped.
    pub fn attach(self: &Arc<Self>) -> Attached {
        self.attached.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Attached(self.clone())
    }
}

/// One attached shell or forward (see [`Activity::attach`]).
#[derive(Debug)]
pub struct Attached(Arc<Activity>);

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.touch();
        self.0.attached.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a workspace this worker hosts can be reached.
#[derive(Debug, Clone)]
pub struct SessionTarget {
    /// The app's Unix socket (HTTP streams connect here).
    pub socket: PathBuf,
    /// The workspace's home: shells start here.
    pub cwd: PathBuf,
    /// Variables a shell gets (on top of `PATH`, `LANG`, `TZ` and the
    /// like from the worker, `HOME` = `cwd` and `TERM`); `SHELL` here
    /// chooses the login shell.
    pub env: Vec<(String, String)>,
    /// Traffic of attached shells and forwards.
    pub activity: Arc<Activity>,
    /// The uid and gid the app runs as, when the worker runs tasks as their
    /// users: shells run as the same account.
    pub run_as: Option<(u32, u32)>,
}

/// Resolves a workspace to where it can be reached; implemented by the
/// session task kind ([`TargetRegistry`] is the ready-made one).
pub trait TunnelTargets: Send + Sync + 'static {
    /// The workspace's target, if this worker hosts it now.
    fn target(&self, workspace: i64) -> Option<SessionTarget>;
}

/// An in-memory [`TunnelTargets`]: the session task kind inserts a
/// workspace when its app is ready and removes it when it stops.
#[derive(Debug, Default)]
pub struct TargetRegistry {
    map: RwLock<HashMap<i64, SessionTarget>>,
}

impl TargetRegistry {
    /// An empty registry.
    pub fn new() -> TargetRegistry {
        TargetRegistry::default()
    }

    /// Makes `workspace` reachable at `target` (replacing what was there).
    pub fn insert(&self, workspace: i64, target: SessionTarget) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(workspace, target);
    }

    /// Makes `workspace` unreachable; returns what it was.
    pub fn remove(&self, workspace: i64) -> Option<SessionTarget> {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&workspace)
    }

    /// How many workspaces are reachable.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TunnelTargets for TargetRegistry {
    fn target(&self, workspace: i64) -> Option<SessionTarget> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&workspace)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_counts_attachments_and_time() {
        let a = Arc::new(Activity::new());
        assert_eq!((a.attached(), a.last_ms()), (0, 0));
        let g1 = a.attach();
        let g2 = a.attach();
        assert_eq!(a.attached(), 2);
        assert!(a.last_ms() > 0);
        drop(g1);
        drop(g2);
        assert_eq!(a.attached(), 0);
    }

    #[test]
    fn registry_inserts_and_removes() {
        let r = TargetRegistry::new();
        assert!(r.target(1).is_none() && r.is_empty());
        r.insert(
            1,
            SessionTarget {
                socket: "/tmp/s".into(),
                cwd: "/tmp".into(),
                env: vec![],
                activity: Arc::new(Activity::new()),
                run_as: None,
            },
        );
        assert_eq!(r.target(1).map(|t| t.socket), Some("/tmp/s".into()));
        assert_eq!(r.len(), 1);
        assert!(r.remove(1).is_some());
        assert!(r.target(1).is_none());
    }
}
