//! Which Unix account a task runs as on a worker that runs as root
//! (issue 12): the one decision, [`unix_account`], pure.
//!
//! Sources, first match wins:
//! 1. the user's own Unix attribute ([`UnixAttribute`]: `unix_name`/`uid`
//!    from the identity provider, OIDC or LDAP; the identity work plugs it
//!    in by passing it to [`unix_account`]);
//! 2. the server's table (`[isolation] users = { alice = "alice" }`);
//! 3. the service account of the job's project
//!    (`[isolation] projects = { genomics = "svc-genomics" }`).
//!
//! No match: no account. A worker that runs as root then refuses the task
//! ("no Unix account for user X") rather than run it as root. Root itself
//! (name `root`, uid 0) is never an answer, whatever the sources say.

use crate::api::RunAs;
use crate::error::{Result, ValidationError};
use std::collections::BTreeMap;

/// The server's mapping of users and projects to Unix accounts
/// (`[isolation]` in `trestle.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixAccounts {
    /// Trestle user name -> Unix user name.
    pub users: BTreeMap<String, String>,
    /// Project name -> the Unix service account its members' jobs run as
    /// when they have no account of their own.
    pub projects: BTreeMap<String, String>,
}

/// A user's Unix identity as an identity provider states it (the hook for
/// the identity issue's `unix_name`/`uid` attributes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixAttribute {
    /// The Unix user name.
    pub name: Option<String>,
    /// The numeric uid.
    pub uid: Option<u32>,
    /// The primary gid.
    pub gid: Option<u32>,
}

/// Checks a Unix user name as `useradd` accepts it by default: 1-32 of
/// lower-case letters, digits, `_`, `-` (and `.`), not starting with `-`;
/// and not `root`.
pub fn validate_unix_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if !ok {
        return Err(ValidationError::new(
            "invalid-unix-name",
            field,
            format!(
                "`{}` is not a Unix user name (1-32 lower-case letters, digits, `_`, `-` or `.`)",
                name.escape_debug()
            ),
        ));
    }
    if name == "root" {
        return Err(ValidationError::new(
            "invalid-unix-name",
            field,
            "tasks never run as root",
        ));
    }
    Ok(())
}

impl UnixAccounts {
    /// Checks every name of the table (see [`validate_unix_name`]).
    pub fn validate(&self) -> Result<()> {
        for (user, account) in &self.users {
            validate_unix_name(&format!("isolation.users.{user}"), account)?;
        }
        for (project, account) in &self.projects {
            validate_unix_name(&format!("isolation.projects.{project}"), account)?;
        }
        Ok(())
    }

    /// Whether the table maps anyone.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.projects.is_empty()
    }
}

/// The Unix account a task of `owner` (charged to `project`) runs as, from
/// the user's identity `attribute` if the identity provider gave one, else
/// the server's `accounts` table; `None` when nothing maps the user (the
/// task must then not run on a root worker). Never root.
pub fn unix_account(
    owner: &str,
    project: Option<&str>,
    attribute: Option<&UnixAttribute>,
    accounts: &UnixAccounts,
) -> Option<RunAs> {
    let usable = |name: &str| validate_unix_name("", name).is_ok();
    if let Some(a) = attribute
        && a.uid != Some(0)
        && let Some(name) = a.name.as_deref().filter(|n| usable(n))
    {
        return Some(RunAs {
            user: name.to_string(),
            uid: a.uid,
            gid: a.gid,
        });
    }
    let account = accounts
        .users
        .get(owner)
        .or_else(|| project.and_then(|p| accounts.projects.get(p)))?;
    usable(account).then(|| RunAs {
        user: account.clone(),
        uid: None,
        gid: None,
    })
}

/// The warning an admin sees when an installation of more than one user
/// runs tasks without isolation: `workers` are the isolation modes the
/// workers reported (`None`: a worker from before issue 12). `None` when
/// there is nothing to warn about.
pub fn isolation_warning(users: usize, workers: &[Option<&str>]) -> Option<String> {
    if users < 2 {
        return None;
    }
    let bare = workers
        .iter()
        .filter(|m| m.is_none_or(|m| m == "none"))
        .count();
    (bare > 0).then(|| {
        format!(
            "{bare} of {} workers run tasks without isolation, and this installation has {users} users: \
             their tasks can read each other's files and the worker's. Run workers as root with \
             [isolation] accounts, or where bubblewrap works (see docs/security.md).",
            workers.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> UnixAccounts {
        UnixAccounts {
            users: [("alice".to_string(), "alice".to_string())].into(),
            projects: [("genomics".to_string(), "svc-gen".to_string())].into(),
        }
    }

    #[test]
    fn the_attribute_then_the_table_then_the_project_account() {
        let t = table();
        let attr = UnixAttribute {
            name: Some("asmith".into()),
            uid: Some(1234),
            gid: Some(100),
        };
        let a = unix_account("alice", Some("genomics"), Some(&attr), &t).unwrap();
        assert_eq!(
            (a.user.as_str(), a.uid, a.gid),
            ("asmith", Some(1234), Some(100))
        );
        let a = unix_account("alice", Some("genomics"), None, &t).unwrap();
        assert_eq!((a.user.as_str(), a.uid), ("alice", None));
        let b = unix_account("bob", Some("genomics"), None, &t).unwrap();
        assert_eq!(b.user, "svc-gen");
        assert_eq!(unix_account("bob", Some("other"), None, &t), None);
        assert_eq!(unix_account("bob", None, None, &t), None);
    }

    #[test]
    fn warns_only_for_several_users_and_bare_workers() {
        assert_eq!(isolation_warning(1, &[Some("none")]), None);
        assert_eq!(isolation_warning(3, &[Some("sandbox"), Some("user")]), None);
        let w = isolation_warning(3, &[Some("sandbox"), Some("none"), None]).unwrap();
        assert!(w.starts_with("2 of 3 workers"), "{w}");
        assert_eq!(isolation_warning(3, &[]), None);
    }

    #[test]
    fn never_root() {
        let mut t = table();
        t.users.insert("eve".into(), "root".into());
        assert_eq!(unix_account("eve", None, None, &t), None);
        assert!(t.validate().is_err());
        let root = UnixAttribute {
            name: Some("toor".into()),
            uid: Some(0),
            gid: Some(0),
        };
        // A uid-0 attribute is ignored: the table decides.
        assert_eq!(
            unix_account("alice", None, Some(&root), &table())
                .unwrap()
                .user,
            "alice"
        );
        assert!(table().validate().is_ok());
        assert!(validate_unix_name("f", "-x").is_err());
        assert!(validate_unix_name("f", "Alice").is_err());
        assert!(validate_unix_name("f", "a;b").is_err());
        assert!(validate_unix_name("f", "svc-gen_1").is_ok());
    }
}
