//! Staging: a fresh scratch directory per attempt, filled with the job's
//! input files. Paths from the server are validated again here.

use crate::backoff::{Backoff, retry};
use crate::error::AgentError;
use std::path::{Path, PathBuf};
use trestle_client::Client;
use trestle_core::paths::normalize_relative;

/// Tries per request while the server is unreachable.
const STAGE_TRIES: u32 = 6;

/// `<work_dir>/job-<id>-<attempt>`.
pub fn scratch_dir(work_dir: &Path, job_id: i64, attempt: u32) -> PathBuf {
    work_dir.join(format!("job-{job_id}-{attempt}"))
}

/// Removes what a previous run may have left at `dir` and creates it empty
/// (one trip to the blocking pool).
pub async fn fresh_dir(dir: &Path) -> Result<(), AgentError> {
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || fresh_dir_blocking(&owned))
        .await
        .map_err(|e| AgentError::Stage(format!("preparing the scratch directory failed: {e}")))?
}

fn fresh_dir_blocking(dir: &Path) -> Result<(), AgentError> {
    let create_err = |e| AgentError::io("cannot create the scratch directory", dir, e);
    match std::fs::create_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let old = std::fs::symlink_metadata(dir).map_err(create_err)?;
            let removed = if old.is_dir() {
                std::fs::remove_dir_all(dir)
            } else {
                std::fs::remove_file(dir)
            };
            removed.map_err(|e| AgentError::io("cannot clear the scratch directory", dir, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(create_err(e)),
    }
    std::fs::create_dir_all(dir).map_err(create_err)
}

/// Removes a scratch directory (missing is fine).
pub async fn remove_dir(dir: &Path) -> Result<(), AgentError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::io(
            "cannot remove the scratch directory",
            dir,
            e,
        )),
    }
}

/// Where an input file given by the server goes: `scratch/<path>` after
/// checking that `path` is a clean relative path (no `..`, not absolute).
pub fn input_dest(scratch: &Path, path: &str) -> Result<(String, PathBuf), AgentError> {
    let rel = normalize_relative("inputs", path).map_err(|e| {
        AgentError::Stage(format!("the server sent a bad input path: {}", e.message))
    })?;
    let dest = scratch.join(&rel);
    Ok((rel, dest))
}

/// The job's working directory: the scratch directory or a checked
/// relative directory inside it, created if missing.
pub async fn work_dir(scratch: &Path, workdir: Option<&str>) -> Result<PathBuf, AgentError> {
    let Some(w) = workdir else {
        return Ok(scratch.to_path_buf());
    };
    let rel = normalize_relative("workdir", w)
        .map_err(|e| AgentError::Stage(format!("bad working directory: {}", e.message)))?;
    let dir = scratch.join(rel);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| AgentError::io("cannot create the working directory", &dir, e))?;
    Ok(dir)
}

/// Downloads every input file of `job_id` into `scratch`; returns how many.
pub async fn stage_inputs(
    client: &Client,
    job_id: i64,
    scratch: &Path,
) -> Result<usize, AgentError> {
    let list = retry(STAGE_TRIES, Backoff::default(), || {
        client.list_inputs(job_id)
    })
    .await
    .map_err(|e| AgentError::Stage(format!("cannot list the input files: {e}")))?;
    // Validate everything before downloading anything.
    let files = list
        .files
        .iter()
        .map(|f| input_dest(scratch, &f.path))
        .collect::<Result<Vec<_>, _>>()?;
    for (rel, dest) in &files {
        retry(STAGE_TRIES, Backoff::default(), || {
            client.download_input(job_id, rel, dest)
        })
        .await
        .map_err(|e| AgentError::Stage(format!("{rel}: {e}")))?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_paths_are_confined() {
        let s = Path::new("/scratch/job-1-1");
        let (rel, dest) = input_dest(s, "a/./b//c.txt").unwrap();
        assert_eq!(rel, "a/b/c.txt");
        assert_eq!(dest, Path::new("/scratch/job-1-1/a/b/c.txt"));
        for bad in [
            "../escape",
            "/etc/passwd",
            "a/../../b",
            "",
            ".",
            "a\\b",
            "x\ny",
        ] {
            let err = input_dest(s, bad).unwrap_err();
            assert!(
                matches!(&err, AgentError::Stage(m) if m.contains("bad input path")),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(
            scratch_dir(Path::new("/w"), 12, 3),
            Path::new("/w/job-12-3")
        );
    }

    #[tokio::test]
    async fn fresh_dir_replaces_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let dir = scratch_dir(root.path(), 5, 1);
        fresh_dir(&dir).await.unwrap();
        std::fs::create_dir_all(dir.join("old/sub")).unwrap();
        std::fs::write(dir.join("old/sub/f"), "x").unwrap();
        fresh_dir(&dir).await.unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        remove_dir(&dir).await.unwrap();
        std::fs::write(&dir, "a file in the way").unwrap();
        fresh_dir(&dir).await.unwrap();
        assert!(dir.is_dir());
        remove_dir(&dir).await.unwrap();
        remove_dir(&dir).await.unwrap();
        assert!(!dir.exists());
        // Missing parents are created.
        fresh_dir(&root.path().join("a/b/job-1-1")).await.unwrap();
    }

    #[tokio::test]
    async fn work_dir_is_checked_and_created() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(work_dir(root.path(), None).await.unwrap(), root.path());
        let w = work_dir(root.path(), Some("a/b")).await.unwrap();
        assert!(w.is_dir());
        assert_eq!(w, root.path().join("a/b"));
        assert!(work_dir(root.path(), Some("../out")).await.is_err());
    }
}
