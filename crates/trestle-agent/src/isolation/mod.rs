//! Isolation of tasks from their worker and from each other (issue 12).
//!
//! - [`user`]: on a worker that runs as root, each task runs as the Unix
//!   account the server mapped its owner to (the lease's `run_as`); a task
//!   without one is refused, never run as root. Its scratch is handed to
//!   that account, mode 0700.
//! - [`sandbox`]: bubblewrap with user, mount, PID and IPC namespaces
//!   (as the mapped account on a root worker, as the worker's own user
//!   otherwise).
//! - [`cgroup`]: memory, process-count and CPU limits per task (v1 or
//!   v2); where no cgroup can be used, rlimits instead, and the worker's
//!   status says so.
//!
//! Which of these a worker uses is its [`IsolationSetting`] (`--isolation`),
//! reported at registration ([`Isolation::describe`]).

pub mod cgroup;
pub mod sandbox;
pub mod user;

use crate::error::AgentError;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use trestle_core::api::Lease;

/// Default most processes and threads per task (`--task-pids-max`).
pub const DEFAULT_TASK_PIDS_MAX: u64 = 4096;

/// How isolated a worker's tasks are (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationSetting {
    /// Per-user when the worker runs as root; the sandbox wherever
    /// bubblewrap works; otherwise none.
    #[default]
    Auto,
    /// Tasks run as the worker, unconfined (a single-user machine).
    None,
    /// Per-user execution only (root only).
    User,
    /// The sandbox only, as the worker's own user.
    Sandbox,
}

impl IsolationSetting {
    /// Parses `auto`, `none`, `user` or `sandbox`.
    pub fn parse(s: &str) -> Option<IsolationSetting> {
        match s {
            "auto" => Some(IsolationSetting::Auto),
            "none" => Some(IsolationSetting::None),
            "user" => Some(IsolationSetting::User),
            "sandbox" => Some(IsolationSetting::Sandbox),
            _ => None,
        }
    }
}

/// The isolation a worker applies to every task it runs.
#[derive(Debug)]
pub struct Isolation {
    /// Tasks run as their owner's Unix account.
    per_user: bool,
    /// The sandbox, when tasks run in one.
    bwrap: Option<PathBuf>,
    /// Task cgroups, or why there are none.
    cgroups: Result<cgroup::Cgroups, String>,
    /// Hidden from sandboxed tasks.
    hide: Vec<PathBuf>,
    /// Most processes per task.
    pids_max: u64,
    /// CPUs handed to running tasks.
    cpus: Mutex<CpuPool>,
    /// Accounts looked up so far.
    accounts: Mutex<HashMap<String, user::Account>>,
    /// `--isolation none`: no limits either (CPUs are still pinned).
    off: bool,
    /// Whom tasks of owners with no Unix account run as (`auto` on a root
    /// worker: `nobody`, so that a root `trestle up` runs its users' jobs
    /// without any mapping, never as root); `None`: such tasks are refused.
    unmapped_as: Option<trestle_core::api::RunAs>,
}

/// The account `auto` runs tasks of unmapped owners as on a root worker.
pub const UNMAPPED_ACCOUNT: &str = "nobody";

/// What one task runs with (see [`Isolation::prepare`]); give it back with
/// [`Isolation::finish`].
#[derive(Debug, Default)]
pub struct TaskIsolation {
    /// What the process runtime applies between fork and exec.
    pub exec: ExecIsolation,
    cgroup: Option<cgroup::TaskCgroup>,
    cpus: Vec<usize>,
}

/// What the child applies to itself before it executes the task (plain
/// data: no allocation happens in the child).
#[derive(Debug, Clone, Default)]
pub struct ExecIsolation {
    /// A program and arguments the task's command is appended to (the
    /// sandbox); empty: the command runs directly.
    pub wrapper: Vec<OsString>,
    /// Run as this uid, gid and groups.
    pub account: Option<(u32, u32, Vec<u32>)>,
    /// Descriptors of `cgroup.procs` files to join.
    pub cgroup_fds: Vec<i32>,
    /// Resource limits (`RLIMIT_*`, value).
    pub rlimits: Vec<(i32, u64)>,
    /// CPUs to run on (empty: any).
    pub cpus: Vec<usize>,
    /// Start from an empty environment (plus [`KEPT_ENV`]) rather than
    /// the worker's.
    pub clean_env: bool,
    /// Variables added for the account (`USER`, `LOGNAME`).
    pub env: Vec<(String, String)>,
}

/// The worker's variables an isolated task still gets.
pub const KEPT_ENV: &[&str] = &[
    "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "LC_ALL", "LC_CTYPE",
];

/// Whether every directory above `dir` lets other accounts through
/// (`o+x`).
fn others_can_reach(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

impl Isolation {
    /// The isolation `setting` asks for on this host, for a worker whose
    /// scratch root is `work_dir`. Errors: a mode this host cannot give
    /// (`user` when not root, `sandbox` without a working bubblewrap).
    pub fn new(
        setting: IsolationSetting,
        work_dir: &Path,
        pids_max: u64,
        use_cgroups: bool,
    ) -> Result<Isolation, AgentError> {
        let root = user::is_root();
        let (per_user, want_sandbox) = match setting {
            IsolationSetting::None => (false, false),
            IsolationSetting::User => (true, false),
            IsolationSetting::Sandbox => (false, true),
            // Tasks of other accounts must reach their scratch: under a
            // private directory (a 0700 home, mktemp -d) they cannot, and
            // `auto` runs them unisolated, saying why, rather than failing
            // every job.
            IsolationSetting::Auto if root && !others_can_reach(work_dir) => {
                tracing::warn!(
                    dir = %work_dir.display(),
                    "task isolation is off: tasks of other Unix accounts cannot reach this scratch \
                     directory (a parent is not searchable by others); put the data or scratch \
                     directory elsewhere (e.g. under /var/lib) or pass --isolation"
                );
                (false, false)
            }
            IsolationSetting::Auto => (root, true),
        };
        if per_user && !root {
            return Err(AgentError::Config(
                "--isolation user needs a worker that runs as root".into(),
            ));
        }
        let bwrap = if want_sandbox {
            sandbox::find_bwrap()
        } else {
            None
        };
        if setting == IsolationSetting::Sandbox && bwrap.is_none() {
            return Err(AgentError::Config(
                "--isolation sandbox needs bubblewrap (`bwrap`, Debian package bubblewrap) with user namespaces".into(),
            ));
        }
        let cgroups = if use_cgroups && setting != IsolationSetting::None {
            cgroup::Cgroups::create(Path::new("/sys/fs/cgroup"))
        } else {
            Err("not asked for".into())
        };
        if per_user {
            // Every user may reach its own slot, none may list the others.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(work_dir, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| AgentError::io("cannot restrict the work directory", work_dir, e))?;
        }
        let mut hide = vec![work_dir.to_path_buf()];
        if let Some(parent) = work_dir.parent().filter(|p| p.parent().is_some()) {
            hide.push(parent.to_path_buf());
        }
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
            && home.parent().is_some()
        {
            hide.push(home);
        }
        Ok(Isolation {
            per_user,
            bwrap,
            cgroups,
            hide,
            pids_max,
            cpus: Mutex::new(CpuPool::of_this_process()),
            accounts: Mutex::default(),
            off: setting == IsolationSetting::None,
            unmapped_as: (setting == IsolationSetting::Auto && per_user).then(|| {
                trestle_core::api::RunAs {
                    user: UNMAPPED_ACCOUNT.to_string(),
                    uid: None,
                    gid: None,
                }
            }),
        })
    }

    /// The mode, as the worker reports it: `user+sandbox`, `user`,
    /// `sandbox` or `none`.
    pub fn mode(&self) -> &'static str {
        match (self.per_user, self.bwrap.is_some()) {
            (true, true) => "user+sandbox",
            (true, false) => "user",
            (false, true) => "sandbox",
            (false, false) => "none",
        }
    }

    /// How limits are enforced: `cgroup v1 (memory, pids, cpuset)`,
    /// `rlimits (no cgroup: why)`, or `none`.
    pub fn limits(&self) -> String {
        if self.off {
            return "none".into();
        }
        match &self.cgroups {
            Ok(c) => c.describe(),
            Err(why) => format!("rlimits (no cgroup: {why})"),
        }
    }

    /// True when tasks run as their owner's Unix account.
    pub fn runs_as_owner(&self) -> bool {
        self.per_user
    }

    /// True when tasks run inside the bubblewrap sandbox.
    pub fn sandboxed(&self) -> bool {
        self.bwrap.is_some()
    }

    /// The uid this lease's task will run as: its owner's account with
    /// per-user execution, this worker's own otherwise; the reason when
    /// the owner has no account here.
    pub fn task_uid(&self, lease: &Lease) -> Result<u32, String> {
        if !self.per_user {
            // SAFETY: geteuid(2) has no preconditions and cannot fail.
            return Ok(unsafe { libc::geteuid() });
        }
        let owner = lease.spec.owner.as_deref().unwrap_or("(unknown)");
        let run_as = lease
            .run_as
            .as_ref()
            .or(self.unmapped_as.as_ref())
            .ok_or_else(|| format!("no Unix account for user {owner}"))?;
        Ok(self.account(run_as)?.uid)
    }

    /// Sets a task up: its account (refused without one on a root
    /// worker), its scratch handed over, its sandbox, cgroup and CPUs.
    /// The error is the reason the task cannot run, for its job.
    pub fn prepare(
        &self,
        lease: &Lease,
        scratch: &Path,
        cwd: &Path,
    ) -> Result<TaskIsolation, String> {
        let mut exec = ExecIsolation {
            clean_env: self.per_user || self.bwrap.is_some(),
            ..Default::default()
        };
        if self.per_user {
            let owner = lease.spec.owner.as_deref().unwrap_or("(unknown)");
            let Some(run_as) = lease.run_as.as_ref().or(self.unmapped_as.as_ref()) else {
                return Err(format!(
                    "no Unix account for user {owner}: this worker runs as root and runs no task as root \
                     (map the user in the server's [isolation] users, or its project in [isolation] projects)"
                ));
            };
            let account = self
                .account(run_as)
                .map_err(|e| format!("cannot run as user {owner}: {e}"))?;
            user::hand_over(scratch, &account).map_err(|e| e.to_string())?;
            exec.env = vec![
                ("USER".into(), account.name.clone()),
                ("LOGNAME".into(), account.name.clone()),
            ];
            exec.account = Some((account.uid, account.gid, account.groups.clone()));
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o700));
        }
        if let Some(bwrap) = &self.bwrap {
            let mut writable = vec![scratch.to_path_buf()];
            if !cwd.starts_with(scratch) {
                writable.push(cwd.to_path_buf());
            }
            exec.wrapper = vec![bwrap.clone().into()];
            exec.wrapper
                .extend(sandbox::bwrap_args(&sandbox::SandboxSpec {
                    hide: &self.hide,
                    writable: &writable,
                    cwd,
                }));
        }
        let res = &lease.spec.resources;
        let cpus = self
            .cpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(res.cpus as usize);
        exec.cpus = cpus.clone();
        let mut task = TaskIsolation {
            exec,
            cgroup: None,
            cpus,
        };
        let mem_bytes = res.mem_mib.saturating_mul(1024 * 1024);
        match &self.cgroups {
            Ok(c) => {
                let limits = cgroup::Limits {
                    mem_bytes,
                    pids: self.pids_max,
                    cpus: task.cpus.clone(),
                };
                match c.acquire(&limits) {
                    Ok(cg) => {
                        task.exec.cgroup_fds = cg.join_fds();
                        task.cgroup = Some(cg);
                    }
                    Err(e) => {
                        self.give_back_cpus(&task.cpus);
                        return Err(format!("cannot set up the task's cgroup: {e}"));
                    }
                }
            }
            Err(_) if self.off => {}
            Err(_) => {
                // RLIMIT_NPROC counts every process of the uid (with a
                // shared uid, the worker's threads too). RLIMIT_DATA
                // counts private writable memory (heap and anonymous
                // maps), not code or shared libraries as RLIMIT_AS would.
                task.exec
                    .rlimits
                    .push((libc::RLIMIT_NPROC as i32, self.pids_max));
                if mem_bytes > 0 {
                    task.exec
                        .rlimits
                        .push((libc::RLIMIT_DATA as i32, mem_bytes));
                }
            }
        }
        Ok(task)
    }

    /// Takes a scratch directory back from the account of an earlier task
    /// before anything is staged into it (per-user execution): the worker
    /// then writes only into a directory no task's user owns.
    pub fn reclaim(&self, scratch: &Path) -> Result<(), AgentError> {
        if !self.per_user {
            return Ok(());
        }
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::lchown(scratch, Some(0), Some(0))
            .and_then(|()| {
                std::fs::set_permissions(scratch, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| AgentError::io("cannot take back the scratch directory", scratch, e))
    }

    /// A task is over (its process group is gone): its cgroup and CPUs go
    /// back to the pools. True when the kernel killed it for its memory.
    pub async fn finish(&self, task: TaskIsolation) -> bool {
        self.give_back_cpus(&task.cpus);
        let Some(cg) = task.cgroup else {
            return false;
        };
        let oom = cg.oom_killed();
        if let Ok(c) = &self.cgroups {
            c.release(cg).await;
        }
        oom
    }

    /// Removes the worker's cgroups (when it stops).
    pub fn clear(&self) {
        if let Ok(c) = &self.cgroups {
            c.clear();
        }
    }

    fn give_back_cpus(&self, cpus: &[usize]) {
        self.cpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .give_back(cpus);
    }

    fn account(&self, run_as: &trestle_core::api::RunAs) -> Result<user::Account, String> {
        let mut cache = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = cache.get(&run_as.user)
            && run_as.uid.is_none_or(|u| u == a.uid)
            && run_as.gid.is_none_or(|g| g == a.gid)
        {
            return Ok(a.clone());
        }
        let a = user::resolve(run_as)?;
        cache.insert(run_as.user.clone(), a.clone());
        Ok(a)
    }
}

/// The CPUs of this worker and which running tasks hold them.
#[derive(Debug, Default)]
struct CpuPool {
    free: Vec<usize>,
}

impl CpuPool {
    /// The CPUs this process may run on.
    fn of_this_process() -> CpuPool {
        // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid for its size.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        let free = if rc == 0 {
            // SAFETY: CPU_ISSET reads within the set for indices below
            // CPU_SETSIZE.
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .collect()
        } else {
            Vec::new()
        };
        CpuPool { free }
    }

    /// `n` free CPUs, or none (the task may then run on any) when fewer
    /// are free.
    fn take(&mut self, n: usize) -> Vec<usize> {
        if n == 0 || n > self.free.len() {
            return Vec::new();
        }
        let mut cpus = self.free.split_off(self.free.len() - n);
        cpus.sort_unstable();
        cpus
    }

    fn give_back(&mut self, cpus: &[usize]) {
        self.free.extend_from_slice(cpus);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }
}

/// In the child between fork and exec: joins the cgroups, sets limits and
/// CPUs, then becomes the account. No allocation.
pub fn apply_in_child(e: &ExecIsolation, cpuset: Option<&libc::cpu_set_t>) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    cgroup::join(&e.cgroup_fds)?;
    for (resource, value) in &e.rlimits {
        let lim = libc::rlimit {
            rlim_cur: *value,
            rlim_max: *value,
        };
        // SAFETY: a valid rlimit for a resource number libc defines.
        check(unsafe { libc::setrlimit(*resource as _, &lim) })?;
    }
    if let Some(set) = cpuset {
        // SAFETY: `set` is a valid cpu_set_t.
        check(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) })?;
    }
    if let Some((uid, gid, groups)) = &e.account {
        // SAFETY: plain credential syscalls; `groups` outlives the call.
        unsafe {
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(*gid))?;
            check(libc::setuid(*uid))?;
        }
    }
    Ok(())
}

/// The calling thread's CPU affinity, changed until this is dropped.
pub struct ThreadAffinity(libc::cpu_set_t);

impl ThreadAffinity {
    /// Runs the calling thread on `set` until the guard is dropped; `None`
    /// (nothing changed) when the affinity cannot be read or set.
    pub fn set(set: &libc::cpu_set_t) -> Option<ThreadAffinity> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: a zeroed cpu_set_t is valid; both calls get valid
        // pointers of `size` bytes; pid 0 is the calling thread.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut old) != 0
                || libc::sched_setaffinity(0, size, set) != 0
            {
                return None;
            }
            Some(ThreadAffinity(old))
        }
    }
}

impl Drop for ThreadAffinity {
    fn drop(&mut self) {
        // SAFETY: restores the mask read in `set`, for the calling thread
        // (the guard never leaves the thread's stack frame).
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0);
        }
    }
}

/// The affinity mask of `cpus` (`None` when empty).
pub fn cpu_set(cpus: &[usize]) -> Option<libc::cpu_set_t> {
    if cpus.is_empty() {
        return None;
    }
    // SAFETY: a zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `c` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_handed_out_without_overlap() {
        let mut p = CpuPool {
            free: vec![3, 2, 1, 0],
        };
        let a = p.take(2);
        let b = p.take(2);
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 2);
        assert!(a.iter().all(|c| !b.contains(c)));
        assert!(p.take(1).is_empty(), "none left: any CPU");
        p.give_back(&a);
        assert_eq!(p.take(2), a);
    }

    #[test]
    fn settings() {
        assert_eq!(
            IsolationSetting::parse("auto"),
            Some(IsolationSetting::Auto)
        );
        assert_eq!(
            IsolationSetting::parse("sandbox"),
            Some(IsolationSetting::Sandbox)
        );
        assert_eq!(IsolationSetting::parse("root"), None);
    }
}
