//! Output detection and upload: a snapshot of the scratch directory taken
//! after staging; after the run, every new or changed regular file
//! (recursively, symlinks skipped) is uploaded.

use crate::backoff::{Backoff, retry};
use crate::error::AgentError;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use trestle_client::Client;
use trestle_core::api::Lease;
use trestle_core::paths::normalize_relative;

/// Uploads running at the same time for one attempt.
const PARALLEL_UPLOADS: usize = 4;
/// Tries per file while the server is unreachable.
const UPLOAD_TRIES: u32 = 8;

/// Size and modification time of every regular file under a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    files: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

/// A file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to the scratch directory, `/`-separated.
    pub rel: String,
    /// Absolute path.
    pub path: PathBuf,
    /// Size when found.
    pub size: u64,
}

/// The result of comparing a directory with its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// New or modified files, sorted by path.
    pub files: Vec<OutputFile>,
    /// Files that cannot be uploaded (names the API cannot carry), with why.
    pub skipped: Vec<String>,
}

impl Snapshot {
    /// The snapshot of an empty directory.
    pub fn empty() -> Snapshot {
        Snapshot::default()
    }

    /// Records every regular file under `root` (blocking IO).
    pub fn take(root: &Path) -> std::io::Result<Snapshot> {
        let mut files = HashMap::new();
        walk(root, Path::new(""), &mut |rel, meta| {
            files.insert(rel.to_path_buf(), (meta.len(), meta.modified().ok()));
        })?;
        Ok(Snapshot { files })
    }

    /// Number of files recorded.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file was recorded.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// New or changed regular files under `root` compared with this
    /// snapshot (blocking IO).
    pub fn changes(&self, root: &Path) -> std::io::Result<Changes> {
        let mut changes = Changes::default();
        walk(root, Path::new(""), &mut |rel, meta| {
            let now = (meta.len(), meta.modified().ok());
            if self.files.get(rel) == Some(&now) {
                return;
            }
            let Some(text) = rel.to_str() else {
                changes
                    .skipped
                    .push(format!("{}: the name is not UTF-8", rel.display()));
                return;
            };
            match normalize_relative("output", text) {
                Ok(clean) => changes.files.push(OutputFile {
                    rel: clean,
                    path: root.join(rel),
                    size: meta.len(),
                }),
                Err(e) => changes.skipped.push(e.message),
            }
        })?;
        changes.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        changes.skipped.sort();
        Ok(changes)
    }
}

/// Calls `found` for every regular file below `dir` (not following
/// symlinks; other special files skipped).
fn walk(
    root: &Path,
    rel: &Path,
    found: &mut dyn FnMut(&Path, &std::fs::Metadata),
) -> std::io::Result<()> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let child = rel.join(entry.file_name());
        if kind.is_dir() {
            walk(root, &child, found)?;
        } else if kind.is_file() {
            // The file may vanish between listing and stat: skip it.
            if let Ok(meta) = entry.metadata() {
                found(&child, &meta);
            }
        }
    }
    Ok(())
}

/// True when `dir` has no entries (one directory read; the common case of a
/// job that writes nothing costs no walk).
pub fn dir_is_empty(dir: &Path) -> std::io::Result<bool> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

/// What uploading an attempt's outputs came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Every changed file was uploaded.
    Done {
        /// Files uploaded.
        uploaded: usize,
        /// Files that could not be uploaded, with why.
        skipped: Vec<String>,
        /// The scratch directory was empty.
        empty: bool,
    },
    /// The server answered 409: the lease is no longer ours.
    Stale,
}

/// Finds the files the attempt created or changed under `scratch` and
/// uploads them with the lease token.
pub async fn upload_outputs(
    client: &Client,
    lease: &Lease,
    scratch: &Path,
    before: &Snapshot,
) -> Result<UploadOutcome, AgentError> {
    let io_err = |e| AgentError::io("cannot read the scratch directory", scratch, e);
    if dir_is_empty(scratch).map_err(io_err)? {
        return Ok(UploadOutcome::Done {
            uploaded: 0,
            skipped: Vec::new(),
            empty: true,
        });
    }
    let root = scratch.to_path_buf();
    let before = before.clone();
    let changes = tokio::task::spawn_blocking(move || before.changes(&root))
        .await
        .map_err(|e| AgentError::Upload(format!("scanning outputs failed: {e}")))?
        .map_err(io_err)?;
    let uploaded = changes.files.len();
    let mut results = futures::stream::iter(changes.files)
        .map(|file| async move {
            let result = retry(UPLOAD_TRIES, Backoff::default(), || {
                client.upload_output(
                    lease.job_id,
                    lease.attempt,
                    &lease.token,
                    &file.rel,
                    &file.path,
                )
            })
            .await;
            (file, result)
        })
        .buffer_unordered(PARALLEL_UPLOADS);
    let mut skipped = changes.skipped;
    while let Some((file, result)) = results.next().await {
        match result {
            Ok(()) => {}
            Err(e) if e.status() == Some(409) => return Ok(UploadOutcome::Stale),
            // Larger than the server takes: the job's other outputs count.
            Err(e) if e.status() == Some(413) => skipped.push(format!("{}: {e}", file.rel)),
            Err(e) => {
                return Err(AgentError::Upload(format!("{}: {e}", file.rel)));
            }
        }
    }
    skipped.sort();
    Ok(UploadOutcome::Done {
        uploaded,
        skipped,
        empty: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    fn rels(c: &Changes) -> Vec<&str> {
        c.files.iter().map(|f| f.rel.as_str()).collect()
    }

    #[test]
    fn finds_new_and_modified_files_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("input.txt"), "in").unwrap();
        fs::write(root.join("touched.txt"), "v1").unwrap();
        fs::create_dir_all(root.join("data/deep")).unwrap();
        fs::write(root.join("data/deep/kept.bin"), "k").unwrap();
        let snap = Snapshot::take(root).unwrap();
        assert_eq!(snap.len(), 3);

        // Same size, newer mtime: still a change.
        std::thread::sleep(Duration::from_millis(20));
        fs::write(root.join("touched.txt"), "v2").unwrap();
        fs::write(root.join("data/deep/new.out"), "n").unwrap();
        fs::create_dir_all(root.join("results")).unwrap();
        fs::write(root.join("results/r.csv"), "1,2").unwrap();
        fs::create_dir_all(root.join("empty-dir")).unwrap();

        let c = snap.changes(root).unwrap();
        assert_eq!(
            rels(&c),
            ["data/deep/new.out", "results/r.csv", "touched.txt"]
        );
        assert_eq!(c.files[1].path, root.join("results/r.csv"));
        assert_eq!(c.files[1].size, 3);
        assert!(c.skipped.is_empty());
    }

    #[test]
    fn skips_symlinks_and_special_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        let snap = Snapshot::empty();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("dirlink")).unwrap();
        fs::write(root.join("back\\slash"), "x").unwrap();
        fs::write(root.join("ok"), "x").unwrap();
        let c = snap.changes(root).unwrap();
        assert_eq!(rels(&c), ["ok"]);
        assert_eq!(c.skipped.len(), 1);
        assert!(c.skipped[0].contains("backslash"), "{:?}", c.skipped);
    }

    #[test]
    fn empty_directory_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert!(dir_is_empty(dir.path()).unwrap());
        assert!(Snapshot::take(dir.path()).unwrap().is_empty());
        fs::create_dir(dir.path().join("d")).unwrap();
        assert!(!dir_is_empty(dir.path()).unwrap());
        assert!(
            Snapshot::empty()
                .changes(dir.path())
                .unwrap()
                .files
                .is_empty()
        );
    }
}
