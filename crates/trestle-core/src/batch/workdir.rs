//! Where an `#SBATCH` job runs: in its submit directory (or `--chdir`) when
//! the worker shares that file system, as under Slurm, otherwise in a
//! scratch directory of its own. Pure: the worker gathers the facts (its
//! host, the paths its compute environment shares, who tasks run as, who
//! owns the directory) and acts on the answer.
//!
//! The rule (docs/slurm.md):
//! - The directory is `--chdir` (made absolute against the submit
//!   directory) or else the submit directory. Jobs from `trestle submit`
//!   have none: they always run in scratch.
//! - The worker sees it when it runs on the submit host, or when the
//!   directory lies under a path its compute environment declares shared
//!   (`shared_paths = ["/home", "/scratch"]`).
//! - Seen, the job runs there if its task runs as the job owner's Unix
//!   account (per-user execution: the file system's permissions decide),
//!   or if the directory belongs to the account tasks run as anyway (the
//!   job gains nothing its script could not do), or if it lies under a
//!   directory an admin allowed (`allowed_dirs`, `{user}` standing for the
//!   owner's name). Any other directory is refused with the reason:
//!   `--chdir=/home/other` never writes where the worker happens to be
//!   able to.
//! - Not seen: an explicit `--chdir` is refused (it names a directory the
//!   job cannot have); the submit directory alone means scratch, and the
//!   job's output files come back as job outputs.

/// What the worker knows when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The job's directory (absolute), if it has one.
    pub dir: Option<&'a str>,
    /// True when the directory came from `--chdir`.
    pub explicit: bool,
    /// The host `sbatch` ran on.
    pub submit_host: Option<&'a str>,
    /// This worker's host.
    pub worker_host: &'a str,
    /// Paths this worker shares with the submit hosts.
    pub shared_paths: &'a [String],
    /// Tasks run as the job owner's own Unix account.
    pub per_user: bool,
    /// The directory (or its nearest existing parent) belongs to the
    /// account the task runs as.
    pub owned_by_task_account: bool,
    /// Directories an admin allowed, `{user}` already expanded.
    pub allowed: &'a [String],
}

/// Where the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A scratch directory of its own; `note` says why, when the job
    /// asked for its submit directory.
    Scratch {
        /// A line for the job's log.
        note: Option<String>,
    },
    /// In this directory, as under Slurm.
    InPlace(String),
    /// Not at all: the reason, for the job's log and its failure.
    Refused(String),
}

/// True if `path` is `dir` or lies below it (by components, so that
/// `/home/al` does not contain `/home/alice`).
pub fn under(path: &str, dir: &str) -> bool {
    let d = dir.trim_end_matches('/');
    if d.is_empty() {
        return path.starts_with('/');
    }
    path == d
        || path
            .strip_prefix(d)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `{user}` in an allowed directory, for one owner.
pub fn expand_allowed(templates: &[String], owner: &str) -> Vec<String> {
    templates
        .iter()
        .map(|t| t.replace("{user}", owner))
        .collect()
}

/// Decides where the job runs (see the module's rule).
pub fn decide(f: &Facts<'_>) -> Placement {
    let Some(dir) = f.dir else {
        return Placement::Scratch { note: None };
    };
    if !dir.starts_with('/') || dir.split('/').any(|c| c == "..") {
        return Placement::Refused(format!("`{dir}` is not an absolute directory without `..`"));
    }
    let same_host = f.submit_host.is_some_and(|h| h == f.worker_host);
    let shared = f.shared_paths.iter().find(|p| under(dir, p));
    if !same_host && shared.is_none() {
        let shares = if f.shared_paths.is_empty() {
            "none".to_string()
        } else {
            f.shared_paths.join(", ")
        };
        let why = format!(
            "`{dir}` is not visible on {} (it was submitted on {}; paths shared here: {shares})",
            f.worker_host,
            f.submit_host.unwrap_or("an unknown host")
        );
        return if f.explicit {
            Placement::Refused(format!("--chdir: {why}"))
        } else {
            Placement::Scratch {
                note: Some(format!(
                    "{why}: the job runs in a scratch directory, and its output files are job outputs (`trestle outputs`)"
                )),
            }
        };
    }
    if f.per_user || f.owned_by_task_account || f.allowed.iter().any(|a| under(dir, a)) {
        return Placement::InPlace(dir.to_string());
    }
    let allowed = if f.allowed.is_empty() {
        "none are configured".to_string()
    } else {
        f.allowed.join(", ")
    };
    Placement::Refused(format!(
        "`{dir}` belongs to another account, and tasks on this worker do not run as yours; a job runs in place only in directories of the account tasks run as, or under an allowed directory ([sbatch] allowed_dirs: {allowed})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(dir: Option<&'a str>, host: &'a str) -> Facts<'a> {
        Facts {
            dir,
            explicit: false,
            submit_host: Some("login1"),
            worker_host: host,
            shared_paths: &[],
            per_user: false,
            owned_by_task_account: false,
            allowed: &[],
        }
    }

    #[test]
    fn paths_are_compared_by_component() {
        assert!(under("/home/alice/run", "/home/alice"));
        assert!(under("/home/alice", "/home/alice/"));
        assert!(!under("/home/alicex", "/home/alice"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn where_jobs_run() {
        // No directory: scratch, silently.
        assert_eq!(
            decide(&facts(None, "login1")),
            Placement::Scratch { note: None }
        );
        // Same host, the task account's own directory: in place.
        let mut f = facts(Some("/home/ada/proj"), "login1");
        f.owned_by_task_account = true;
        assert_eq!(decide(&f), Placement::InPlace("/home/ada/proj".into()));
        // Same host, someone else's directory, no per-user execution.
        f.owned_by_task_account = false;
        let Placement::Refused(why) = decide(&f) else {
            panic!("refused")
        };
        assert!(why.contains("belongs to another account"), "{why}");
        // ... unless an admin allowed it, or tasks run as the owner.
        let allowed = expand_allowed(&["/scratch/{user}".into(), "/home/{user}".into()], "ada");
        f.allowed = &allowed;
        assert_eq!(decide(&f), Placement::InPlace("/home/ada/proj".into()));
        let mut other = facts(Some("/home/bob/x"), "login1");
        other.allowed = &allowed;
        assert!(matches!(decide(&other), Placement::Refused(_)));
        other.per_user = true;
        assert_eq!(decide(&other), Placement::InPlace("/home/bob/x".into()));
        // Another host: shared paths make it visible.
        let shared = vec!["/home".to_string()];
        let mut node = facts(Some("/home/ada/proj"), "node7");
        node.per_user = true;
        let Placement::Scratch { note: Some(n) } = decide(&node) else {
            panic!("scratch with a note")
        };
        assert!(n.contains("not visible on node7"), "{n}");
        node.explicit = true;
        assert!(matches!(decide(&node), Placement::Refused(w) if w.starts_with("--chdir")));
        node.shared_paths = &shared;
        assert_eq!(decide(&node), Placement::InPlace("/home/ada/proj".into()));
        // Relative or `..` directories are refused.
        assert!(matches!(
            decide(&facts(Some("/home/ada/../bob"), "login1")),
            Placement::Refused(_)
        ));
    }
}
