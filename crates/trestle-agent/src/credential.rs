//! The worker's own credential, kept out of reach of its tasks.
//!
//! A task that runs as the worker's Unix user could read
//! `/proc/<worker>/environ`, which shows the environment the worker was
//! *started* with (unsetting a variable later does not change it). So the
//! worker, first thing, before any thread exists ([`take_credential`]):
//!
//! - reads its token from `TRESTLE_TOKEN`, a file named by
//!   `TRESTLE_TOKEN_FILE`, or an inherited descriptor named by
//!   `TRESTLE_TOKEN_FD` (what the local provider uses: a pipe, so the
//!   token is never in any environment or file);
//! - overwrites the token's bytes in its original environment block and
//!   removes the variables, so neither its environment nor
//!   `/proc/<worker>/environ` holds it, and no child inherits it;
//! - marks itself not dumpable (`PR_SET_DUMPABLE 0`): its `/proc/<pid>`
//!   files (`environ`, `mem`, `fd`, ...) become root's, and processes of
//!   its own uid can no longer read them or ptrace it.
//!
//! This is defence in depth: a task that runs as another user (see
//! `isolation::user`) or in a PID namespace (`isolation::sandbox`) cannot
//! see the worker's process at all.

use crate::error::AgentError;
use std::io::Read;

/// The variable holding the token itself.
pub const TOKEN_ENV: &str = "TRESTLE_TOKEN";
/// The variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "TRESTLE_TOKEN_FILE";
/// The variable naming an inherited file descriptor to read the token
/// from (to its end; it is closed afterwards).
pub const TOKEN_FD_ENV: &str = "TRESTLE_TOKEN_FD";

/// Variables that carry a credential of the worker, in the worker's
/// environment and in what it passes on.
pub const CREDENTIAL_ENV: &[&str] = &[TOKEN_ENV, TOKEN_FILE_ENV, TOKEN_FD_ENV];

/// Takes the worker's token out of its environment (see the module
/// documentation): returns it (from `TRESTLE_TOKEN`, else the file of
/// `TRESTLE_TOKEN_FILE`, else the descriptor of `TRESTLE_TOKEN_FD`), wipes
/// and removes the variables, and makes the process not dumpable.
///
/// # Safety
///
/// Must be called while the process has a single thread (it changes the
/// environment and writes into the environment block), before anything
/// else reads the environment concurrently.
pub unsafe fn take_credential() -> Result<Option<String>, AgentError> {
    let direct = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    let file = std::env::var_os(TOKEN_FILE_ENV);
    let fd = std::env::var(TOKEN_FD_ENV).ok();
    // SAFETY: single-threaded, as the caller promises.
    unsafe {
        wipe_environment_block(TOKEN_ENV);
        for name in CREDENTIAL_ENV {
            std::env::remove_var(name);
        }
    }
    make_undumpable();
    if direct.is_some() {
        return Ok(direct);
    }
    if let Some(path) = file {
        let path = std::path::PathBuf::from(path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| AgentError::io("cannot read the token file", &path, e))?;
        return Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()));
    }
    if let Some(fd) = fd {
        let fd: i32 = fd.trim().parse().ok().filter(|n| *n > 2).ok_or_else(|| {
            AgentError::Config(format!(
                "{TOKEN_FD_ENV} must be a descriptor above 2, got `{fd}`"
            ))
        })?;
        // SAFETY: the launcher passed this descriptor for us to read and
        // close; nothing else in the process uses it.
        let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut text = String::new();
        f.read_to_string(&mut text).map_err(|e| {
            AgentError::Config(format!("cannot read the token from descriptor {fd}: {e}"))
        })?;
        return Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty()));
    }
    Ok(None)
}

/// Makes this process not dumpable: processes of the same uid cannot
/// read its `/proc/<pid>` files or attach to it. Reset by `execve`, so
/// the tasks it starts are unaffected.
pub fn make_undumpable() {
    // SAFETY: prctl(PR_SET_DUMPABLE) has no memory-safety preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

unsafe extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrites with zeros the value of `name` where the environment block
/// holds it (the memory `/proc/self/environ` shows, as long as nothing has
/// replaced that entry since the process started).
///
/// # Safety
///
/// Single-threaded only: it walks and writes the process's `environ`.
unsafe fn wipe_environment_block(name: &str) {
    let prefix = format!("{name}=");
    // SAFETY: `environ` is the NUL-terminated array of NUL-terminated
    // strings libc keeps; no other thread touches it (caller's promise).
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let entry = *p;
            let bytes = std::ffi::CStr::from_ptr(entry).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                let value = entry.add(prefix.len());
                std::ptr::write_bytes(value, 0, bytes.len() - prefix.len());
            }
            p = p.add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_clears_the_value_in_place() {
        // A test binary is multi-threaded; this only touches a variable
        // of its own, which no other test reads.
        let name = "TRESTLE_TEST_WIPE_ME";
        // SAFETY: see above.
        unsafe {
            std::env::set_var(name, "secret-value");
            wipe_environment_block(name);
        }
        let v = std::env::var_os(name).unwrap_or_default();
        assert!(!v.to_string_lossy().contains("secret"), "{v:?}");
        // SAFETY: as above.
        unsafe { std::env::remove_var(name) };
    }
}
