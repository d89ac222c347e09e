//! Per-user execution: the Unix account a task runs as, looked up on this
//! host, and handing its scratch directory to it.

use crate::error::AgentError;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use trestle_core::api::RunAs;

/// A Unix account of this host, resolved from a lease's [`RunAs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name.
    pub name: String,
    /// Uid (never 0).
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups (primary included).
    pub groups: Vec<u32>,
    /// Home directory from the password database.
    pub home: PathBuf,
}

/// Looks `run_as` up in the password database. Refuses root, an unknown
/// name, and a uid or gid that disagrees with what the server stated.
pub fn resolve(run_as: &RunAs) -> Result<Account, String> {
    let name = CString::new(run_as.user.as_str())
        .map_err(|_| format!("`{}` is not a Unix user name", run_as.user))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter for getpwnam_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use
    // of the strings `pw` points into.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        return Err(format!(
            "no Unix account `{}` on this worker's host",
            run_as.user
        ));
    }
    let (uid, gid) = (pw.pw_uid, pw.pw_gid);
    // SAFETY: getpwnam_r succeeded: pw_dir is a NUL-terminated string in buf.
    let home = unsafe { CStr::from_ptr(pw.pw_dir) }
        .to_string_lossy()
        .into_owned();
    if uid == 0 {
        return Err(format!(
            "`{}` is root: tasks never run as root",
            run_as.user
        ));
    }
    if run_as.uid.is_some_and(|u| u != uid) || run_as.gid.is_some_and(|g| g != gid) {
        return Err(format!(
            "the Unix account `{}` has uid {uid} and gid {gid} on this host, not what the server says ({:?}, {:?})",
            run_as.user, run_as.uid, run_as.gid
        ));
    }
    Ok(Account {
        name: run_as.user.clone(),
        uid,
        gid,
        groups: groups(&name, gid),
        home: PathBuf::from(home),
    })
}

/// The groups of `name` (with `gid`), from the group database.
fn groups(name: &CStr, gid: u32) -> Vec<u32> {
    let mut n: libc::c_int = 64;
    loop {
        let mut list = vec![0 as libc::gid_t; n as usize];
        let asked = n;
        // SAFETY: `list` has room for `n` gids; getgrouplist writes at
        // most that many and sets `n` to the number it has.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, list.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            list.truncate(n.max(0) as usize);
            return list;
        }
        if n <= asked {
            return vec![gid];
        }
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Gives `dir` and everything in it (staged inputs) to `account`, and
/// makes `dir` private to it (0700).
pub fn hand_over(dir: &Path, account: &Account) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    chown_tree(dir, account.uid, account.gid)
        .map_err(|e| AgentError::io("cannot hand the scratch directory to its user", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| AgentError::io("cannot make the scratch directory private", dir, e))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_accounts_are_refused() {
        let root = RunAs {
            user: "root".into(),
            uid: None,
            gid: None,
        };
        assert!(resolve(&root).unwrap_err().contains("never run as root"));
        let nobody = RunAs {
            user: "trestle-no-such-user-x".into(),
            uid: None,
            gid: None,
        };
        assert!(resolve(&nobody).unwrap_err().contains("no Unix account"));
    }

    #[test]
    fn an_account_resolves_and_a_wrong_uid_is_refused() {
        // `nobody` exists on Debian and most systems.
        let mut n = RunAs {
            user: "nobody".into(),
            uid: None,
            gid: None,
        };
        let a = resolve(&n).unwrap();
        assert_ne!(a.uid, 0);
        assert!(a.groups.contains(&a.gid));
        n.uid = Some(a.uid + 1);
        assert!(
            resolve(&n)
                .unwrap_err()
                .contains("not what the server says")
        );
    }
}
