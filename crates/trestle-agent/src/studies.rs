//! Studies attached to a job: staged into its scratch from a content
//! cache on this host, and, for a read-write attach of a succeeded
//! attempt, the changes sent back as one new version.
//!
//! The cache (`<work_dir>/study-cache/`) is keyed by SHA-256: a file is
//! fetched from the server once per host, checked against its hash, and
//! kept mode 0444, owned by the worker's account. A read-only attach links
//! the cached files into the scratch (directories 0555), so a second job,
//! or the thousand children of an array, fetch nothing again; a job can
//! reach only files of studies it was given, because only those are
//! linked into its scratch. A read-write attach gets private copies. After
//! the job, a read-only attach whose files changed (possible only for a
//! task running as root) fails the attempt and the changed cache entries
//! are dropped, so no other job reads them.

use crate::error::AgentError;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use trestle_client::{Client, hash_file};
use trestle_core::api::AttemptRef;
use trestle_core::api::study::{CommitRequest, StudyFile};
use trestle_core::paths::normalize_relative;
use trestle_core::study::attach::{AttachMode, StudyAttach};
use trestle_core::study::manifest::Change;

/// One staged attach.
#[derive(Debug)]
pub struct Staged {
    /// The attach.
    pub attach: StudyAttach,
    /// Where it is.
    pub dir: PathBuf,
    /// The version it read.
    pub version: u64,
    /// Its files: path in the study, entry, and (read-only) the size and
    /// modification time as staged.
    pub files: Vec<(StudyFile, PathBuf, (u64, i64))>,
    /// How many files came from the host's cache.
    pub cached: usize,
}

fn stage_err(name: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::Stage(format!("study `{name}`: {e}"))
}

fn cache_path(cache: &Path, sha: &str) -> PathBuf {
    cache.join(&sha[..2.min(sha.len())]).join(sha)
}

/// The path of a file inside the attach: its study path without the
/// attach's sub-directory.
fn inside(a: &StudyAttach, path: &str) -> Option<String> {
    match &a.subdir {
        None => Some(path.to_string()),
        Some(d) if path == d => path.rsplit('/').next().map(str::to_string),
        Some(d) => path.strip_prefix(&format!("{d}/")).map(str::to_string),
    }
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// Stages every attach of a job into `scratch`.
pub async fn stage(
    client: &Client,
    job_id: i64,
    scratch: &Path,
    cache: &Path,
    attaches: &[StudyAttach],
) -> Result<Vec<Staged>, AgentError> {
    // Only the worker's account may look into the cache: a task reaches
    // cached files only through the links in its own scratch.
    tokio::fs::create_dir_all(cache)
        .await
        .map_err(|e| AgentError::io("cannot create the study cache", cache, e))?;
    let _ = std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o700));
    let mut out = Vec::with_capacity(attaches.len());
    for a in attaches {
        let listing = client
            .job_study_files(job_id, &a.study)
            .await
            .map_err(|e| stage_err(&a.study, e))?;
        let mount = normalize_relative("path", &a.mount()).map_err(|e| stage_err(&a.study, e))?;
        let dir = scratch.join(mount);
        // Before staging: the scratch space must take what is not cached.
        let missing: u64 = listing
            .files
            .iter()
            .filter(|f| a.mode == AttachMode::Rw || !cache_path(cache, &f.sha256).exists())
            .map(|f| f.size)
            .sum();
        if let Some(free) = free_bytes(scratch)
            && missing > free
        {
            return Err(stage_err(
                &a.study,
                format!(
                    "version {} needs {missing} bytes of scratch space here and only {free} are free",
                    listing.version
                ),
            ));
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| AgentError::io("cannot create the study directory", &dir, e))?;
        let mut files = Vec::with_capacity(listing.files.len());
        let mut cached = 0;
        for f in listing.files {
            let Some(rel) = inside(a, &f.path) else {
                continue;
            };
            let rel = normalize_relative("path", &rel).map_err(|e| stage_err(&a.study, e))?;
            let dest = dir.join(&rel);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| AgentError::io("cannot create", parent, e))?;
            }
            let entry = cache_path(cache, &f.sha256);
            if entry.exists() {
                cached += 1;
            } else {
                if let Some(parent) = entry.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| AgentError::io("cannot create the study cache", parent, e))?;
                }
                client
                    .job_study_object(job_id, &a.study, &f.sha256, &entry)
                    .await
                    .map_err(|e| stage_err(&a.study, e))?;
                let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o444));
            }
            match a.mode {
                AttachMode::Ro => {
                    if std::fs::hard_link(&entry, &dest).is_err() {
                        std::fs::copy(&entry, &dest)
                            .map_err(|e| AgentError::io("cannot stage", &dest, e))?;
                        let _ =
                            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o444));
                    }
                }
                AttachMode::Rw => {
                    std::fs::copy(&entry, &dest)
                        .map_err(|e| AgentError::io("cannot stage", &dest, e))?;
                    let _ = std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644));
                }
            }
            let meta =
                std::fs::metadata(&dest).map_err(|e| AgentError::io("cannot stat", &dest, e))?;
            files.push((f, dest, (meta.len(), meta.mtime())));
        }
        if a.mode == AttachMode::Ro {
            set_dirs(&dir, 0o555);
        }
        out.push(Staged {
            attach: a.clone(),
            dir,
            version: listing.version,
            files,
            cached,
        });
    }
    Ok(out)
}

/// Sets the mode of `dir` and every directory under it.
fn set_dirs(dir: &Path, mode: u32) {
    let mut stack = vec![dir.to_path_buf()];
    let mut all = Vec::new();
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        all.push(d);
    }
    for d in all.iter().rev() {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode));
    }
}

/// The environment announcing the attaches.
pub fn env(staged: &[Staged]) -> Vec<(String, String)> {
    staged
        .iter()
        .map(|s| (s.attach.env_name(), s.dir.display().to_string()))
        .collect()
}

/// After the job: makes read-only directories removable again and checks
/// that no read-only file changed (a changed one is dropped from the
/// cache); the error names what changed.
pub fn release(staged: &[Staged], cache: &Path) -> Result<(), String> {
    let mut changed = Vec::new();
    for s in staged.iter().filter(|s| s.attach.mode == AttachMode::Ro) {
        set_dirs(&s.dir, 0o755);
        for (f, dest, (size, mtime)) in &s.files {
            let same =
                std::fs::metadata(dest).is_ok_and(|m| m.len() == *size && m.mtime() == *mtime);
            if !same {
                let _ = std::fs::remove_file(cache_path(cache, &f.sha256));
                changed.push(format!("{}:{}", s.attach.study, f.path));
            }
        }
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the job changed files of read-only studies ({}); the studies are unchanged",
            changed.join(", ")
        ))
    }
}

/// Every regular file under `dir`, relative to it.
fn walk(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => {
                    if let Ok(rel) = p.strip_prefix(dir) {
                        out.push((rel.to_string_lossy().replace('\\', "/"), p.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Sends a succeeded attempt's changes to its read-write attaches, one
/// version each; returns a line per attach for the job's log.
pub async fn commit(
    client: &Client,
    at: &AttemptRef,
    staged: &[Staged],
) -> Result<Vec<String>, AgentError> {
    let mut lines = Vec::new();
    for s in staged.iter().filter(|s| s.attach.mode == AttachMode::Rw) {
        let name = &s.attach.study;
        let before: BTreeMap<String, &StudyFile> = s
            .files
            .iter()
            .filter_map(|(f, _, _)| inside(&s.attach, &f.path).map(|rel| (rel, f)))
            .collect();
        let full = |rel: &str| match &s.attach.subdir {
            Some(d) => format!("{d}/{rel}"),
            None => rel.to_string(),
        };
        let mut changes = Vec::new();
        let now = walk(&s.dir);
        for (rel, path) in &now {
            let (sha, size) = hash_file(path).await?;
            if before.get(rel).is_some_and(|f| f.sha256 == sha) {
                continue;
            }
            client
                .job_study_put_object(at, name, &sha, path)
                .await
                .map_err(|e| AgentError::Upload(format!("study `{name}`: {e}")))?;
            changes.push(Change::Put {
                path: full(rel),
                size,
                sha256: sha,
            });
        }
        for rel in before.keys() {
            if !now.iter().any(|(r, _)| r == rel) {
                changes.push(Change::Delete { path: full(rel) });
            }
        }
        if changes.is_empty() {
            lines.push(format!(
                "study `{name}`: no changes, still version {}",
                s.version
            ));
            continue;
        }
        let n = changes.len();
        let req = CommitRequest {
            base_version: Some(s.version),
            changes,
            message: None,
        };
        let v = client
            .job_study_commit(at, name, &req)
            .await
            .map_err(|e| AgentError::Upload(format!("study `{name}`: {e}")))?;
        lines.push(format!(
            "study `{name}`: {n} changes from version {} made version {}",
            s.version, v.version
        ));
    }
    Ok(lines)
}
