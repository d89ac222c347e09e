//! Drop folders: a queue can watch a directory (`drop_folder` in its
//! `[queues.NAME]` settings). When a file with the trigger suffix (default
//! `.sh`) lands in a job sub-folder (`DROP/case1/run.sh`), the sub-folder
//! is uploaded as the job's inputs and the trigger file becomes its
//! command; the job's key is derived from the folder (`drop:QUEUE:case1`).
//! When the job ends, its output files are written back into the same
//! sub-folder. Files the write-back creates never trigger anything, and a
//! second trigger in a folder that already has a job is recorded as a
//! FAILED job with reason `duplicate-trigger`, never run.

use crate::authn::user_principal;
use crate::leader::Leadership;
use crate::principal::Principal;
use crate::state::Service;
use crate::workflows::QueueConfig;
use bytes::Bytes;
use futures::StreamExt;
use notify::{RecursiveMode, Watcher};
use rand::RngCore;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use trestle_core::batch::spec::{CommandRequest, JobRequest};
use trestle_core::identity::authz::Scope;
use trestle_store::blobs::{output_prefix, upload_prefix};

/// A trigger must be unchanged this long before its folder is taken.
const SETTLE: Duration = Duration::from_millis(300);
/// How often pending triggers and running jobs are looked at.
const TICK: Duration = Duration::from_millis(200);
/// How often the whole folder is rescanned (a backstop for events the
/// watcher misses, such as files created in a brand-new sub-folder before
/// the watch on it was in place).
const RESCAN: Duration = Duration::from_secs(2);
/// The marker written into a folder once its outputs were written back
/// (the job id and state, then the files written).
const DONE_MARKER: &str = ".trestle-done";

/// The job key of a drop-folder sub-folder.
pub fn job_key(queue: &str, folder: &str) -> String {
    format!("drop:{queue}:{folder}")
}

/// `(sub-folder, trigger file name)` when `path` is a trigger directly
/// inside a job sub-folder of `root`.
pub fn trigger_of(root: &Path, path: &Path, suffix: &str) -> Option<(String, String)> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [folder, file]
            if file.ends_with(suffix)
                && file.len() > suffix.len()
                && !folder.starts_with('.')
                && !file.starts_with('.') =>
        {
            Some((folder.to_string(), file.to_string()))
        }
        _ => None,
    }
}

/// The leader lease of a queue's drop-folder watcher.
pub fn lease_name(queue: &str) -> String {
    format!("drop-folder:{queue}")
}

/// Watches one queue's drop folder until shutdown. Every server that
/// declares the folder watches it, but only the holder of the folder's
/// leader lease ([`lease_name`]) submits its jobs and writes outputs back;
/// a server that takes the lease over rescans the folder at once.
pub fn spawn(
    app: Service,
    queue: QueueConfig,
    leadership: Arc<Leadership>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let lease = lease_name(&queue.name);
    leadership.register(&lease);
    let root = queue.drop_folder.clone()?;
    if let Err(e) = std::fs::create_dir_all(&root) {
        tracing::error!(folder = %root.display(), error = %e, "cannot create the drop folder");
        return None;
    }
    let root = root.canonicalize().unwrap_or(root);
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch drop folders");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&root, RecursiveMode::Recursive) {
        tracing::error!(folder = %root.display(), error = %e, "cannot watch the drop folder");
        return None;
    }
    tracing::info!(queue = %queue.name, folder = %root.display(), "watching drop folder");
    Some(tokio::spawn(async move {
        let _watcher = watcher;
        let mut d = Dropper {
            app,
            queue,
            root,
            pending: HashMap::new(),
            written: HashSet::new(),
            handled: HashSet::new(),
            running: HashMap::new(),
        };
        let mut tick = tokio::time::interval(TICK);
        let mut rescan = tokio::time::interval(RESCAN);
        let mut leading = false;
        loop {
            tokio::select! {
                Some(p) = rx.recv() => d.seen(p),
                _ = tick.tick() => {
                    let now_leading = leadership.is_leader(&lease);
                    if now_leading && !leading {
                        // Taken over (or first start): catch up on the folder.
                        d.handled.clear();
                        d.scan(true);
                    }
                    leading = now_leading;
                    if leading {
                        d.step().await;
                    }
                }
                _ = rescan.tick() => d.scan(false),
                _ = shutdown.changed() => return,
            }
        }
    }))
}

struct Dropper {
    app: Service,
    queue: QueueConfig,
    root: PathBuf,
    /// Trigger files seen and not yet taken: (size, last change).
    pending: HashMap<PathBuf, (u64, Instant)>,
    /// Files written back by us (never triggers).
    written: HashSet<PathBuf>,
    /// Triggers already taken (or refused) by this process.
    handled: HashSet<PathBuf>,
    /// Jobs whose outputs go back into a folder.
    running: HashMap<i64, PathBuf>,
}

impl Dropper {
    fn seen(&mut self, path: PathBuf) {
        if path.parent() == Some(self.root.as_path()) && path.is_dir() {
            // A new job sub-folder: its files may predate the watch on it.
            self.scan_folder(&path, false);
            return;
        }
        if self.written.contains(&path)
            || self.handled.contains(&path)
            || trigger_of(&self.root, &path, &self.queue.trigger_suffix).is_none()
        {
            return;
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.pending.insert(path, (size, Instant::now()));
    }

    /// Looks for triggers in every sub-folder. At start (`settled`) they
    /// are taken at once: triggers without a job run, ended jobs whose
    /// outputs were not written back yet are written back.
    fn scan(&mut self, settled: bool) {
        let Ok(dirs) = std::fs::read_dir(&self.root) else {
            return;
        };
        for d in dirs.flatten() {
            self.scan_folder(&d.path(), settled);
        }
    }

    fn scan_folder(&mut self, dir: &Path, settled: bool) {
        let Ok(files) = std::fs::read_dir(dir) else {
            return;
        };
        for f in files.flatten() {
            let path = f.path();
            if self.handled.contains(&path)
                || self.written.contains(&path)
                || self.pending.contains_key(&path)
                || trigger_of(&self.root, &path, &self.queue.trigger_suffix).is_none()
            {
                continue;
            }
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let since = if settled {
                Instant::now()
                    .checked_sub(SETTLE)
                    .unwrap_or_else(Instant::now)
            } else {
                Instant::now()
            };
            self.pending.insert(path, (size, since));
        }
    }

    async fn step(&mut self) {
        let now = Instant::now();
        let mut ready = Vec::new();
        self.pending.retain(|path, (size, since)| {
            let current = std::fs::metadata(path).map(|m| m.len());
            match current {
                Err(_) => false,
                Ok(s) if s != *size => {
                    *size = s;
                    *since = now;
                    true
                }
                Ok(_) if now.duration_since(*since) >= SETTLE => {
                    ready.push(path.clone());
                    false
                }
                Ok(_) => true,
            }
        });
        for path in ready {
            self.handled.insert(path.clone());
            if let Err(e) = self.take(&path).await {
                tracing::warn!(trigger = %path.display(), error = %e, "drop-folder trigger failed");
            }
        }
        let ids: Vec<i64> = self.running.keys().copied().collect();
        for id in ids {
            match self.app.store.job(id).await {
                Ok(Some(j)) if j.state.is_terminal() => {
                    if let Some(folder) = self.running.remove(&id)
                        && let Err(e) = self.write_back(&j, &folder).await
                    {
                        tracing::warn!(job = id, error = %e, "cannot write outputs back");
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.running.remove(&id);
                }
                Err(e) => tracing::warn!(job = id, error = %e, "cannot read a drop-folder job"),
            }
        }
    }

    /// Submits the job of a trigger, or records a duplicate trigger.
    async fn take(&mut self, trigger: &Path) -> Result<(), String> {
        let Some((folder, file)) = trigger_of(&self.root, trigger, &self.queue.trigger_suffix)
        else {
            return Ok(());
        };
        let key = job_key(&self.queue.name, &folder);
        let dir = self.root.join(&folder);
        let now = crate::now_ms();
        if let Some(id) = self
            .app
            .store
            .job_id_by_key(&self.queue.drop_owner, &key)
            .await
            .map_err(|e| e.to_string())?
        {
            let job = self.app.store.job(id).await.map_err(|e| e.to_string())?;
            let Some(job) = job else {
                return Ok(());
            };
            let marker = std::fs::read_to_string(dir.join(DONE_MARKER)).unwrap_or_default();
            if marker.lines().skip(1).any(|l| l == file) {
                // Written back by the job's outputs: never a trigger.
                return Ok(());
            }
            if job.name == format!("{folder}/{file}") {
                // The same trigger (seen again at start or touched):
                // write back if that has not happened yet.
                if job.state.is_terminal() && !dir.join(DONE_MARKER).exists() {
                    self.write_back(&job, &dir).await?;
                } else if !job.state.is_terminal() {
                    self.running.insert(id, dir);
                }
                return Ok(());
            }
            let spec = JobRequest {
                name: Some(format!("{folder}/{file}")),
                queue: Some(self.queue.name.clone()),
                key: Some(format!("{key}:{file}:duplicate")),
                command: Some(CommandRequest::Script(format!("./{file}"))),
                ..JobRequest::default()
            }
            .validate()
            .map_err(|e| e.message)?;
            let reason = format!(
                "duplicate-trigger: folder `{folder}` already has job {id} (`{}`); `{file}` was not run",
                job.name
            );
            match self.app.store.record_rejected(&spec, &reason, now).await {
                Ok(rid) => tracing::warn!(job = rid, %reason, "drop folder"),
                Err(trestle_store::StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
            return Ok(());
        }
        let owner = self.owner().await?;
        let upload = self.upload(&dir).await?;
        self.app
            .store
            .create_upload(&upload, &self.queue.drop_owner, now)
            .await
            .map_err(|e| e.to_string())?;
        let q = trestle_core::batch::sbatch::sh_quote(&format!("./{file}"));
        let spec = JobRequest {
            name: Some(format!("{folder}/{file}")),
            queue: Some(self.queue.name.clone()),
            key: Some(key),
            command: Some(CommandRequest::Script(format!("chmod +x {q} && exec {q}"))),
            inputs: Some(upload),
            ..JobRequest::default()
        }
        .validate()
        .map_err(|e| e.message)?;
        let mut spec = spec;
        spec.project = self.queue.drop_project.clone();
        match crate::jobs::submit(&self.app, &owner, vec![spec], false).await {
            Ok(ids) => {
                tracing::info!(job = ids[0], folder = %folder, owner = %self.queue.drop_owner, "drop folder: job submitted");
                self.running.insert(ids[0], dir);
                Ok(())
            }
            // Another server took it first.
            Err(e) if e.kind == crate::ErrorKind::Conflict => Ok(()),
            Err(e) => Err(e.message),
        }
    }

    /// The principal the folder's jobs are submitted as.
    async fn owner(&self) -> Result<Principal, String> {
        let name = &self.queue.drop_owner;
        user_principal(
            &self.app,
            name,
            Scope::Full,
            format!("drop-folder:{}", self.queue.name),
        )
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| {
            format!(
                "queues.{}.drop_owner: user `{name}` does not exist or is disabled",
                self.queue.name
            )
        })
    }

    /// Uploads every regular file of `dir` as a new upload.
    async fn upload(&self, dir: &Path) -> Result<String, String> {
        let mut b = [0u8; 12];
        rand::rng().fill_bytes(&mut b);
        let id = format!("u{}", hex::encode(b));
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            for e in entries.flatten() {
                let Ok(ty) = e.file_type() else { continue };
                let p = e.path();
                if ty.is_dir() {
                    stack.push(p);
                    continue;
                }
                if !ty.is_file() || e.file_name() == DONE_MARKER {
                    continue;
                }
                let Some(rel) = p
                    .strip_prefix(dir)
                    .ok()
                    .and_then(|r| r.to_str())
                    .map(str::to_string)
                else {
                    continue;
                };
                let file = tokio::fs::File::open(&p)
                    .await
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                let body = futures::stream::unfold(file, |mut f| async move {
                    use tokio::io::AsyncReadExt;
                    let mut buf = vec![0u8; 64 * 1024];
                    match f.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), f))
                        }
                        Err(e) => Some((Err(e), f)),
                    }
                })
                .boxed();
                self.app
                    .blobs
                    .put_stream(&upload_prefix(&id), &rel, body)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(id)
    }

    /// Writes the outputs of the job's last attempt into its folder.
    async fn write_back(
        &mut self,
        job: &trestle_core::api::JobView,
        dir: &Path,
    ) -> Result<(), String> {
        let mut names = Vec::new();
        if let Some(attempt) = job.attempts.last().map(|a| a.attempt) {
            let prefix = output_prefix(job.id, attempt);
            let files = self
                .app
                .blobs
                .list(&prefix)
                .await
                .map_err(|e| e.to_string())?;
            for f in files {
                let Ok(rel) = trestle_core::paths::normalize_relative("output", &f.path) else {
                    continue;
                };
                let dest = dir.join(&rel);
                names.push(rel.clone());
                self.written.insert(dest.clone());
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                let (_, mut stream) = self
                    .app
                    .blobs
                    .get_stream(&prefix, &rel)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut data = Vec::new();
                while let Some(chunk) = stream.next().await {
                    data.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
                }
                tokio::fs::write(&dest, data)
                    .await
                    .map_err(|e| format!("{}: {e}", dest.display()))?;
            }
        }
        let marker = dir.join(DONE_MARKER);
        self.written.insert(marker.clone());
        // The marker: the job, then every file written back (one a line),
        // so that none of them is ever taken for a trigger.
        let mut text = format!("{} {}\n", job.id, job.state);
        for n in &names {
            text.push_str(n);
            text.push('\n');
        }
        tokio::fs::write(&marker, text)
            .await
            .map_err(|e| format!("{}: {e}", marker.display()))?;
        tracing::info!(job = job.id, folder = %dir.display(), "drop folder: outputs written back");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_direct_children_of_job_folders() {
        let root = Path::new("/drop");
        assert_eq!(
            trigger_of(root, Path::new("/drop/case1/run.sh"), ".sh"),
            Some(("case1".into(), "run.sh".into()))
        );
        assert_eq!(trigger_of(root, Path::new("/drop/run.sh"), ".sh"), None);
        assert_eq!(
            trigger_of(root, Path::new("/drop/case1/sub/run.sh"), ".sh"),
            None
        );
        assert_eq!(
            trigger_of(root, Path::new("/drop/case1/data.csv"), ".sh"),
            None
        );
        assert_eq!(trigger_of(root, Path::new("/drop/case1/.sh"), ".sh"), None);
        assert_eq!(
            trigger_of(root, Path::new("/drop/.tmp/run.sh"), ".sh"),
            None
        );
        assert_eq!(
            trigger_of(root, Path::new("/other/case1/run.sh"), ".sh"),
            None
        );
        assert_eq!(
            trigger_of(root, Path::new("/drop/c/go.job"), ".job"),
            Some(("c".into(), "go.job".into()))
        );
        assert_eq!(job_key("q", "case1"), "drop:q:case1");
    }
}
