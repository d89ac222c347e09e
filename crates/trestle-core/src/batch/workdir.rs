//! Where an `#SBATCH` job runs: in its submit directory (or `--chdir`) when
//! the worker shares that file system, as under Slurm, otherwise in a
//! scratch directory of its own. Pure: the worker gathers the facts (the
//! paths it shares, whether tasks are sandboxed, who owns the directory
//! after resolving symbolic links) and acts on the answer.
//!
//! The rule (docs/slurm.md):
//! - The directory is `--chdir` (made absolute against the submit
//!   directory) or else the submit directory. Jobs from `trestle submit`
//!   have none: they always run in scratch.
//! - The worker sees it only when it lies under a path the worker shares
//!   with the submit hosts (`--shared-path /home,/scratch`; `trestle up`'s
//!   local workers share `/`). The submit host a client names is not
//!   trusted for this.
//! - Seen, the job runs there if the directory lies under one an admin
//!   allowed (`--allowed-dir`, `{user}` standing for the owner's name), or,
//!   outside the sandbox, if it belongs to the Unix account the task runs
//!   as (the owner's own with per-user execution, the worker's otherwise:
//!   the job can do nothing there its script could not do by itself). Any
//!   other directory is refused with the reason: `--chdir=/home/other`
//!   never writes where the worker happens to be able to.
//! - Output files (`--output`, `--error`) follow the same rule: under the
//!   working directory, an allowed directory, or one of the task's account.
//! - Not seen: an explicit `--chdir` is refused (it names a directory the
//!   job cannot have); the submit directory alone means scratch, and the
//!   job's output files come back as job outputs.

/// What the worker knows when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The job's directory, absolute and with symbolic links resolved (as
    /// far as it exists), if it has one.
    pub dir: Option<&'a str>,
    /// True when the directory came from `--chdir`.
    pub explicit: bool,
    /// This worker's host (for messages).
    pub worker_host: &'a str,
    /// Paths this worker shares with the hosts jobs are submitted on
    /// (`trestle up`'s local workers: `/`).
    pub shared_paths: &'a [String],
    /// Tasks run inside the sandbox, which hides the worker's own files.
    pub sandboxed: bool,
    /// The directory (or its nearest existing parent) belongs to the Unix
    /// account the task runs as: the owner's own with per-user execution,
    /// the worker's otherwise.
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

/// `{user}` in an allowed directory, for one owner; templates that need a
/// user are dropped for a job without one (rather than allowing their
/// parent to everyone).
pub fn expand_allowed(templates: &[String], owner: &str) -> Vec<String> {
    templates
        .iter()
        .filter(|t| !owner.is_empty() || !t.contains("{user}"))
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
    if !f.shared_paths.iter().any(|p| under(dir, p)) {
        let shares = if f.shared_paths.is_empty() {
            "none".to_string()
        } else {
            f.shared_paths.join(", ")
        };
        let why = format!(
            "`{dir}` is not on a file system {} shares with the submit hosts (shared here: {shares})",
            f.worker_host
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
    if f.allowed.iter().any(|a| under(dir, a)) {
        return Placement::InPlace(dir.to_string());
    }
    if f.sandboxed {
        return Placement::Refused(format!(
            "`{dir}`: tasks on this worker run in a sandbox, which only opens directories an admin allowed (trestle worker --allowed-dir)"
        ));
    }
    if f.owned_by_task_account {
        return Placement::InPlace(dir.to_string());
    }
    let allowed = if f.allowed.is_empty() {
        "none are configured".to_string()
    } else {
        f.allowed.join(", ")
    };
    Placement::Refused(format!(
        "`{dir}` belongs to another account than the one the task runs as; a job runs in place only in directories of that account, or under an allowed directory (trestle worker --allowed-dir: {allowed})"
    ))
}

/// Whether an output file (`--output`/`--error`, absolute) may be written:
/// under the job's working directory, under an allowed directory, or (not
/// sandboxed) in a directory of the account the task runs as.
pub fn output_allowed(
    path: &str,
    cwd: &str,
    allowed: &[String],
    sandboxed: bool,
    owned_by_task_account: bool,
) -> bool {
    if path.split('/').any(|c| c == "..") {
        return false;
    }
    under(path, cwd)
        || allowed.iter().any(|a| under(path, a))
        || (!sandboxed && owned_by_task_account)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[String] = &[];

    fn facts<'a>(dir: Option<&'a str>, shared: &'a [String]) -> Facts<'a> {
        Facts {
            dir,
            explicit: false,
            worker_host: "node7",
            shared_paths: shared,
            sandboxed: false,
            owned_by_task_account: false,
            allowed: ALL,
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
        let root = vec!["/".to_string()];
        let home = vec!["/home".to_string()];
        assert_eq!(
            decide(&facts(None, &root)),
            Placement::Scratch { note: None }
        );
        // Shared, the task account's own directory: in place.
        let mut f = facts(Some("/home/ada/proj"), &root);
        f.owned_by_task_account = true;
        assert_eq!(decide(&f), Placement::InPlace("/home/ada/proj".into()));
        // ... but not in a sandbox, which hides the worker's own files.
        f.sandboxed = true;
        assert!(matches!(decide(&f), Placement::Refused(w) if w.contains("sandbox")));
        // Someone else's directory is refused ...
        let mut other = facts(Some("/home/bob/x"), &root);
        let Placement::Refused(why) = decide(&other) else {
            panic!("refused")
        };
        assert!(why.contains("belongs to another account"), "{why}");
        // ... unless an admin allowed it.
        let allowed = expand_allowed(&["/scratch/{user}".into(), "/home/{user}".into()], "bob");
        other.allowed = &allowed;
        assert_eq!(decide(&other), Placement::InPlace("/home/bob/x".into()));
        // No owner: `{user}` templates allow nothing.
        assert!(expand_allowed(&["/scratch/{user}".into()], "").is_empty());
        // Not shared: scratch with a note, or refused for --chdir.
        let mut node = facts(Some("/data/ada"), &home);
        node.owned_by_task_account = true;
        let Placement::Scratch { note: Some(n) } = decide(&node) else {
            panic!("scratch with a note")
        };
        assert!(n.contains("not on a file system node7 shares"), "{n}");
        node.explicit = true;
        assert!(matches!(decide(&node), Placement::Refused(w) if w.starts_with("--chdir")));
        // Relative or `..` directories are refused.
        assert!(matches!(
            decide(&facts(Some("/home/ada/../bob"), &root)),
            Placement::Refused(_)
        ));
        // Output files.
        assert!(output_allowed("/w/x.out", "/w", &[], true, false));
        assert!(!output_allowed("/etc/x.sh", "/w", &[], true, true));
        assert!(!output_allowed("/etc/x.sh", "/w", &[], false, false));
        assert!(output_allowed("/home/ada/x", "/w", &[], false, true));
        assert!(!output_allowed("/w/../etc/x", "/w", &[], false, false));
    }
}
