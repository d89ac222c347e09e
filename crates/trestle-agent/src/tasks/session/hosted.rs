//! The workspace sessions this worker hosts, by workspace id: what the
//! tunnel needs to reach each (the app's socket, the home and the
//! environment a shell gets, the Unix account) and the activity of
//! attached shells and port forwards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

/// Bytes through attached shells and forwards.
#[derive(Debug, Default)]
pub struct Attached {
    last: AtomicI64,
    open: AtomicU32,
}

impl Attached {
    /// Something passed at `now` (ms).
    pub fn touch(&self, now: i64) {
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    /// A shell or forward opened.
    pub fn opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    /// A shell or forward closed.
    pub fn closed(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The last byte's time and how many are open.
    pub fn get(&self) -> (Option<i64>, u32) {
        let last = self.last.load(Ordering::Relaxed);
        (
            (last > 0).then_some(last),
            self.open.load(Ordering::Relaxed),
        )
    }
}

/// One hosted session.
#[derive(Debug)]
pub struct HostedSession {
    /// The workspace.
    pub workspace: i64,
    /// The app's Unix socket.
    pub socket: PathBuf,
    /// The workspace's home (a shell starts there).
    pub home: PathBuf,
    /// The environment a shell gets (without the per-launch secret).
    pub env: Vec<(String, String)>,
    /// The Unix account (uid, gid) tasks run as, under per-user execution.
    pub run_as: Option<(u32, u32)>,
    /// The header that carries the per-launch secret to the app.
    pub secret_header: Option<(String, String)>,
    /// Shells and forwards.
    pub activity: Attached,
}

/// Every hosted session.
#[derive(Debug, Default)]
pub struct Hosted {
    map: RwLock<HashMap<i64, Arc<HostedSession>>>,
}

impl Hosted {
    /// Adds (or replaces) a session.
    pub fn insert(&self, s: Arc<HostedSession>) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(s.workspace, s);
    }

    /// Forgets workspace `id`'s session.
    pub fn remove(&self, id: i64) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Workspace `id`'s session, if hosted here.
    pub fn get(&self, id: i64) -> Option<Arc<HostedSession>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}
