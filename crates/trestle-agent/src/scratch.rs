//! Scratch directories: every attempt runs in a fresh, empty directory.
//!
//! Creating and deleting a directory for every job is costly on journaling
//! file systems (an inode allocated and freed under the parent directory's
//! lock): with short jobs it was a quarter of the worker's time. So a
//! directory an attempt leaves empty (the common case once its outputs are
//! uploaded and nothing else was written) goes back to a pool and is handed
//! to a later attempt, after checking again that it is still empty. A
//! directory with anything left in it is removed, never reused. With
//! `keep_scratch` every attempt gets its own `job-<id>-<attempt>` directory
//! that stays.

use crate::error::AgentError;
use crate::stage::{fresh_dir, remove_dir, scratch_dir};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most empty directories kept for reuse.
const MAX_POOLED: usize = 256;

/// Hands out scratch directories under one root.
#[derive(Debug)]
pub struct ScratchPool {
    root: PathBuf,
    keep: bool,
    free: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

/// Whether `dir` is a directory with nothing in it.
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

impl ScratchPool {
    /// A pool under `root` (which must exist). With `keep`, directories
    /// are named after their attempt and never removed or reused.
    pub fn new(root: &Path, keep: bool) -> ScratchPool {
        ScratchPool {
            root: root.to_path_buf(),
            keep,
            free: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        // Pushes and pops only: a poisoned lock is still consistent.
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty directory for one attempt.
    pub async fn acquire(&self, job_id: i64, attempt: u32) -> Result<PathBuf, AgentError> {
        if self.keep {
            let dir = scratch_dir(&self.root, job_id, attempt);
            fresh_dir(&dir).await?;
            return Ok(dir);
        }
        loop {
            let Some(dir) = self.free().pop() else {
                break;
            };
            if is_empty_dir(&dir) {
                return Ok(dir);
            }
            // Written to since it was given back (a process that escaped
            // its job's process group): never hand it out.
            if let Err(e) = remove_dir(&dir).await {
                tracing::warn!(error = %e, "cannot remove a used scratch directory");
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join(format!("slot-{}-{n}", std::process::id()));
        // Clears what a previous worker with the same pid may have left.
        fresh_dir(&dir).await?;
        Ok(dir)
    }

    /// Gives an attempt's directory back: pooled when empty, otherwise
    /// removed (kept as it is with `keep_scratch`). `known_empty`: the
    /// caller has just seen it empty (the output scan), no need to look.
    pub async fn release(&self, dir: PathBuf, known_empty: bool) {
        if self.keep {
            return;
        }
        if known_empty || is_empty_dir(&dir) {
            let mut free = self.free();
            if free.len() < MAX_POOLED {
                free.push(dir);
                return;
            }
        }
        if let Err(e) = remove_dir(&dir).await {
            tracing::warn!(error = %e, "cannot clean up");
        }
    }

    /// Removes every pooled directory (when the worker stops).
    pub fn clear(&self) {
        let dirs = std::mem::take(&mut *self.free());
        for dir in dirs {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_directories_are_reused_and_used_ones_are_not() {
        let root = tempfile::tempdir().unwrap();
        let pool = ScratchPool::new(root.path(), false);
        let a = pool.acquire(1, 1).await.unwrap();
        let b = pool.acquire(2, 1).await.unwrap();
        assert_ne!(a, b);
        assert!(is_empty_dir(&a) && is_empty_dir(&b));
        std::fs::write(b.join("out.txt"), "x").unwrap();
        pool.release(a.clone(), false).await;
        pool.release(b.clone(), false).await;
        assert!(!b.exists(), "a directory with files is removed");
        let c = pool.acquire(3, 1).await.unwrap();
        assert_eq!(c, a, "the empty one is reused");
        // Written to while pooled: removed, and a new one handed out.
        pool.release(c.clone(), true).await;
        std::fs::write(c.join("late"), "x").unwrap();
        let d = pool.acquire(4, 1).await.unwrap();
        assert_ne!(d, c);
        assert!(!c.exists());
        assert!(is_empty_dir(&d));
        pool.release(d.clone(), false).await;
        pool.clear();
        assert!(!d.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn kept_directories_are_named_after_the_attempt() {
        let root = tempfile::tempdir().unwrap();
        let pool = ScratchPool::new(root.path(), true);
        let a = pool.acquire(7, 2).await.unwrap();
        assert_eq!(a, root.path().join("job-7-2"));
        std::fs::write(a.join("f"), "x").unwrap();
        pool.release(a.clone(), false).await;
        assert!(a.join("f").exists());
    }
}
