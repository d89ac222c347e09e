//! The workspace sessions this worker hosts, by workspace id: what the
//! tunnel needs to reach each (the app's socket, the home and the
//! environment a shell gets, the Unix account) and the activity of
//! attached shells and port forwards.

use crate::tunnel::{Activity, SessionTarget, TunnelTargets};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

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
    /// Shells and forwards (recorded by the tunnel).
    pub activity: Arc<Activity>,
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

/// The tunnel reaches the sessions hosted here.
impl TunnelTargets for Hosted {
    fn target(&self, workspace: i64) -> Option<SessionTarget> {
        self.get(workspace).map(|s| SessionTarget {
            socket: s.socket.clone(),
            cwd: s.home.clone(),
            env: s.env.clone(),
            activity: s.activity.clone(),
            run_as: s.run_as,
        })
    }
}
