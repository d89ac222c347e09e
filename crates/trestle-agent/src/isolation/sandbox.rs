//! The unprivileged sandbox: bubblewrap (`bwrap`) with user, mount, PID
//! and IPC namespaces. What it does and does not protect against is in
//! `docs/security.md`.
//!
//! The task sees the host's file system read-only, with a private `/tmp`,
//! `/var/tmp`, `/dev/shm` and `/run`; the worker's work directory (every
//! other task's scratch), its parent (the server's data directory under
//! `trestle up`), the worker's home and any configured path are hidden
//! behind empty file systems; only its own scratch (and its `--chdir`
//! directory) is writable. Its own PID namespace shows only its processes,
//! so it can neither see nor signal the worker or other tasks. The network
//! is shared with the host (loopback included).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where `bwrap` is, if it runs here (tried once: it needs unprivileged
/// user namespaces, which some hosts turn off).
pub fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let bwrap = std::env::split_paths(&path)
        .map(|d| d.join("bwrap"))
        .find(|p| p.is_file())?;
    let ok = std::process::Command::new(&bwrap)
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "/bin/true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(bwrap)
}

/// What one sandboxed task may see and write.
#[derive(Debug, Clone)]
pub struct SandboxSpec<'a> {
    /// Hidden behind empty file systems (other tasks' scratch, the data
    /// directory, the worker's home).
    pub hide: &'a [PathBuf],
    /// Writable: the task's scratch (and its `--chdir` directory).
    pub writable: &'a [PathBuf],
    /// Its working directory.
    pub cwd: &'a Path,
}

/// The `bwrap` command line that runs a task (the task's program and
/// arguments follow it).
pub fn bwrap_args(s: &SandboxSpec<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/tmp",
        "--tmpfs",
        "/dev/shm",
        "--tmpfs",
        "/run",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    for h in s.hide {
        if h.is_dir() && h != Path::new("/") {
            a.push("--tmpfs".into());
            a.push(h.into());
        }
    }
    for w in s.writable {
        a.push("--bind".into());
        a.push(w.into());
        a.push(w.into());
    }
    a.push("--chdir".into());
    a.push(s.cwd.into());
    a.push("--".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_before_it_binds_the_scratch_back() {
        let root = tempfile::tempdir().unwrap();
        let slot = root.path().join("slot-1");
        std::fs::create_dir(&slot).unwrap();
        let hide = vec![root.path().to_path_buf(), PathBuf::from("/")];
        let writable = vec![slot.clone()];
        let args = bwrap_args(&SandboxSpec {
            hide: &hide,
            writable: &writable,
            cwd: &slot,
        });
        let pos = |x: &Path| args.iter().position(|a| Path::new(a) == x).unwrap();
        assert!(pos(root.path()) < pos(&slot), "{args:?}");
        assert_eq!(args.last().unwrap(), "--");
        assert_eq!(
            args.iter().filter(|a| *a == "--tmpfs").count(),
            5,
            "the four private directories and the work root, never /: {args:?}"
        );
    }
}
