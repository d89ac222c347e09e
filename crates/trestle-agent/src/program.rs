//! Finding a job's program on `PATH`, once per worker per (name, `PATH`).
//!
//! Spawning a bare name makes the C library try `execve` in every `PATH`
//! directory until one works; with a long `PATH` that is a handful of
//! failed calls for every job. The worker looks the name up itself the
//! first time and spawns the full path from then on (with the bare name as
//! `argv[0]`, as the shell would pass it). An entry whose file has gone is
//! forgotten when the spawn fails, and the spawn is tried again.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Most names remembered (the cache is cleared when full).
const MAX_ENTRIES: usize = 1024;

type Key = (String, OsString);

fn cache() -> &'static Mutex<HashMap<Key, PathBuf>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, PathBuf>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<Key, PathBuf>> {
    // Inserts and removals only: a poisoned map is still consistent.
    cache().lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `path` is a regular file someone may execute.
fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first executable `dir/program` along `path`; `None` when the name
/// is not a bare name, is not found, or `path` has an entry that is not
/// absolute (it would be relative to the job's directory: left to the
/// system's own search).
pub fn search(program: &str, path: &OsStr) -> Option<PathBuf> {
    if program.is_empty() || program.contains('/') {
        return None;
    }
    let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    if dirs.iter().any(|d| !d.is_absolute()) {
        return None;
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|candidate| executable(candidate))
}

/// [`search`], remembered.
pub fn resolve(program: &str, path: &OsStr) -> Option<PathBuf> {
    let key = (program.to_string(), path.to_os_string());
    if let Some(found) = lock().get(&key) {
        return Some(found.clone());
    }
    let found = search(program, path)?;
    let mut map = lock();
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, found.clone());
    Some(found)
}

/// Forgets what was remembered for `program` (its file may have moved).
pub fn forget(program: &str) {
    lock().retain(|(name, _), _| name != program);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn finds_the_first_executable_along_the_path() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        make(a.path(), "tool", 0o644); // not executable: skipped
        let want = make(b.path(), "tool", 0o755);
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(search("tool", &path), Some(want.clone()));
        assert_eq!(search("missing", &path), None);
        assert_eq!(search("./tool", &path), None, "not a bare name");
        let relative = std::env::join_paths([Path::new("bin"), b.path()]).unwrap();
        assert_eq!(search("tool", &relative), None, "relative entries: no");
        // Remembered until forgotten.
        assert_eq!(resolve("tool", &path), Some(want.clone()));
        std::fs::remove_file(&want).unwrap();
        assert_eq!(resolve("tool", &path), Some(want));
        forget("tool");
        assert_eq!(resolve("tool", &path), None);
    }
}
