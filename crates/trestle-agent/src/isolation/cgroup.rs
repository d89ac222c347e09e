//! Resource limits with cgroups, v1 (`/sys/fs/cgroup/<controller>/`, as on
//! RHEL 8) or v2 (one unified hierarchy).
//!
//! The worker makes one cgroup of its own per controller,
//! `trestle-<pid>`, below the one it runs in, and a pool of task cgroups
//! below that: a task takes a free one, its limits are written into it
//! (memory, process count, CPUs), the task joins it between fork and exec,
//! and when the task is over (its processes gone) it goes back to the
//! pool. So a task costs a few small writes, never a mkdir or rmdir.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The cgroup versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The worker's cgroups: where task cgroups are made.
#[derive(Debug)]
pub struct Cgroups {
    version: Version,
    /// v1: the worker's directory under each controller it can use
    /// (memory, pids, cpuset); v2: one entry, the parent of task cgroups.
    bases: Vec<(Controller, PathBuf)>,
    free: Mutex<Vec<String>>,
    next: AtomicU64,
}

/// A controller the worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// Memory limit and OOM kills.
    Memory,
    /// Process count.
    Pids,
    /// CPUs.
    Cpuset,
    /// v2: all of them in one directory.
    Unified,
}

/// Limits of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes (0: none).
    pub mem_bytes: u64,
    /// Most processes and threads (0: none).
    pub pids: u64,
    /// CPUs to run on (empty: any).
    pub cpus: Vec<usize>,
}

/// One task's cgroup (a directory per controller with v1), with the
/// descriptors its process writes itself into.
#[derive(Debug)]
pub struct TaskCgroup {
    name: String,
    dirs: Vec<(Controller, PathBuf)>,
    procs: Vec<OwnedFd>,
    oom_before: u64,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The worker's own cgroup path in the hierarchy of `controller` (v1) or
/// the unified one (`None`), from `/proc/self/cgroup`.
fn own_path(text: &str, controller: Option<&str>) -> Option<String> {
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            Some(c) => ctrls.split(',').any(|x| x == c),
            None => ctrls.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

/// Removes the empty cgroups of workers that are gone (killed without
/// their clean-up): `trestle-<pid>` below `parent` whose pid is not alive.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("trestle-"))
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        if let Ok(tasks) = std::fs::read_dir(&dir) {
            for t in tasks.flatten().filter(|t| t.path().is_dir()) {
                let _ = std::fs::remove_dir(t.path());
            }
        }
        // Fails (and stays) while a process is still in it.
        let _ = std::fs::remove_dir(&dir);
    }
}

impl Cgroups {
    /// The worker's cgroups under `root` (normally `/sys/fs/cgroup`), or
    /// why there are none (no writable hierarchy, no controller).
    pub fn create(root: &Path) -> Result<Cgroups, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let name = format!("trestle-{}", std::process::id());
        if root.join("cgroup.controllers").exists() {
            return Self::create_v2(root, &own, &name);
        }
        let mut bases = Vec::new();
        let mut why = Vec::new();
        for (ctrl, dir) in [
            (Controller::Memory, "memory"),
            (Controller::Pids, "pids"),
            (Controller::Cpuset, "cpuset"),
        ] {
            let mount = root.join(dir);
            if !mount.join("cgroup.procs").exists() {
                why.push(format!("no {dir} controller"));
                continue;
            }
            let rel = own_path(&own, Some(dir)).unwrap_or_else(|| "/".into());
            let parent = mount.join(rel.trim_start_matches('/'));
            remove_stale(&parent);
            let base = parent.join(&name);
            match std::fs::create_dir_all(&base) {
                Ok(()) => {
                    if ctrl == Controller::Cpuset {
                        // A v1 cpuset takes no task before it has CPUs and
                        // memory nodes: copy the parent's.
                        let parent = base.parent().unwrap_or(&mount);
                        for f in ["cpuset.cpus", "cpuset.mems"] {
                            let v = read_trim(&parent.join(f)).unwrap_or_default();
                            let _ = write(&base.join(f), &v);
                        }
                    }
                    bases.push((ctrl, base));
                }
                Err(e) => why.push(format!("cannot create {}: {e}", base.display())),
            }
        }
        if !bases.iter().any(|(c, _)| *c == Controller::Memory) {
            for (_, b) in &bases {
                let _ = std::fs::remove_dir(b);
            }
            return Err(why.join("; "));
        }
        Ok(Cgroups {
            version: Version::V1,
            bases,
            free: Mutex::default(),
            next: AtomicU64::new(0),
        })
    }

    fn create_v2(root: &Path, own: &str, name: &str) -> Result<Cgroups, String> {
        let rel = own_path(own, None).unwrap_or_else(|| "/".into());
        let mine = root.join(rel.trim_start_matches('/'));
        // No process may sit in a cgroup whose children get controllers:
        // the worker moves into a leaf of its own first.
        let leaf = mine.join(format!("{name}-worker"));
        std::fs::create_dir_all(&leaf)
            .and_then(|()| write(&leaf.join("cgroup.procs"), "0"))
            .map_err(|e| format!("cannot create {}: {e}", leaf.display()))?;
        let wanted: Vec<String> = read_trim(&mine.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .filter(|c| ["memory", "pids", "cpuset"].contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if !wanted.iter().any(|c| c == "+memory") {
            return Err("the memory controller is not delegated".into());
        }
        let enable = |dir: &Path| write(&dir.join("cgroup.subtree_control"), &wanted.join(" "));
        remove_stale(&mine);
        let base = mine.join(name);
        enable(&mine)
            .and_then(|()| std::fs::create_dir_all(&base))
            .and_then(|()| enable(&base))
            .map_err(|e| format!("cannot enable controllers under {}: {e}", mine.display()))?;
        Ok(Cgroups {
            version: Version::V2,
            bases: vec![(Controller::Unified, base)],
            free: Mutex::default(),
            next: AtomicU64::new(0),
        })
    }

    /// "cgroup v1 (memory, pids, cpuset)" and the like.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self
            .bases
            .iter()
            .map(|(c, _)| match c {
                Controller::Memory => "memory",
                Controller::Pids => "pids",
                Controller::Cpuset => "cpuset",
                Controller::Unified => "memory, pids, cpuset",
            })
            .collect();
        let v = match self.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
        };
        format!("cgroup {v} ({})", names.join(", "))
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A task cgroup with `limits` written into it, ready to join.
    pub fn acquire(&self, limits: &Limits) -> std::io::Result<TaskCgroup> {
        let pooled = self.free().pop();
        if let Some(name) = pooled {
            match self.open(name.clone(), limits) {
                Ok(cg) => return Ok(cg),
                Err(e) => {
                    // A limit below what a pooled cgroup still holds (page
                    // cache, v1) cannot be written: use a fresh one.
                    tracing::debug!(cgroup = %name, error = %e, "not reusing a task cgroup");
                    for (_, base) in &self.bases {
                        let _ = std::fs::remove_dir(base.join(&name));
                    }
                }
            }
        }
        let name = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.open(name, limits)
    }

    /// The task cgroup `name` (made when missing) with `limits` written.
    fn open(&self, name: String, limits: &Limits) -> std::io::Result<TaskCgroup> {
        let mut dirs = Vec::new();
        for (ctrl, base) in &self.bases {
            let dir = base.join(&name);
            if !dir.exists() {
                std::fs::create_dir(&dir)?;
                if *ctrl == Controller::Cpuset {
                    let mems = read_trim(&base.join("cpuset.mems")).unwrap_or_default();
                    write(&dir.join("cpuset.mems"), &mems)?;
                }
                if *ctrl == Controller::Memory {
                    // No swap for tasks: past its limit a task is killed.
                    let _ = write(&dir.join("memory.swappiness"), "0");
                }
                if *ctrl == Controller::Unified {
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
            }
            dirs.push((*ctrl, dir));
        }
        let mut cg = TaskCgroup {
            name,
            dirs,
            procs: Vec::new(),
            oom_before: 0,
        };
        cg.set(self.version, limits, &self.bases)?;
        cg.oom_before = cg.oom_kills();
        for (_, dir) in &cg.dirs {
            let f = File::options().write(true).open(dir.join("cgroup.procs"))?;
            cg.procs.push(f.into());
        }
        Ok(cg)
    }

    /// Takes a task cgroup back once its task is over: emptied (anything
    /// left is killed) and pooled, or left alone if it will not empty.
    pub async fn release(&self, cg: TaskCgroup) {
        let TaskCgroup {
            name, dirs, procs, ..
        } = cg;
        drop(procs);
        for _ in 0..50 {
            let mut busy = false;
            for (_, dir) in &dirs {
                let pids = read_trim(&dir.join("cgroup.procs")).unwrap_or_default();
                for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    busy = true;
                    // SAFETY: kill(2) on a process of this task's cgroup.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
            if !busy {
                self.free().push(name);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::warn!(cgroup = %name, "a task's cgroup does not empty; not reusing it");
    }

    /// Removes every cgroup the worker made (when it stops).
    pub fn clear(&self) {
        let names = std::mem::take(&mut *self.free());
        for (_, base) in &self.bases {
            for n in &names {
                let _ = std::fs::remove_dir(base.join(n));
            }
            let _ = std::fs::remove_dir(base);
        }
    }
}

impl TaskCgroup {
    fn set(
        &mut self,
        version: Version,
        l: &Limits,
        bases: &[(Controller, PathBuf)],
    ) -> std::io::Result<()> {
        let max = |n: u64| {
            if n == 0 {
                "max".to_string()
            } else {
                n.to_string()
            }
        };
        let cpus = if l.cpus.is_empty() {
            bases
                .iter()
                .find(|(c, _)| matches!(c, Controller::Cpuset | Controller::Unified))
                .and_then(|(_, b)| {
                    read_trim(&b.join("cpuset.cpus.effective"))
                        .or_else(|| read_trim(&b.join("cpuset.cpus")))
                })
                .unwrap_or_default()
        } else {
            l.cpus
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        for (ctrl, dir) in &self.dirs {
            match (version, ctrl) {
                (Version::V1, Controller::Memory) => {
                    let v = if l.mem_bytes == 0 {
                        "-1".to_string()
                    } else {
                        l.mem_bytes.to_string()
                    };
                    write(&dir.join("memory.limit_in_bytes"), &v)?;
                }
                (Version::V1, Controller::Pids) => write(&dir.join("pids.max"), &max(l.pids))?,
                (Version::V1, Controller::Cpuset) => {
                    if !cpus.is_empty() {
                        write(&dir.join("cpuset.cpus"), &cpus)?;
                    }
                }
                _ => {
                    write(&dir.join("memory.max"), &max(l.mem_bytes))?;
                    let _ = write(&dir.join("pids.max"), &max(l.pids));
                    if !cpus.is_empty() {
                        let _ = write(&dir.join("cpuset.cpus"), &cpus);
                    }
                }
            }
        }
        Ok(())
    }

    /// The kernel's count of OOM kills in this cgroup.
    fn oom_kills(&self) -> u64 {
        let Some((ctrl, dir)) = self
            .dirs
            .iter()
            .find(|(c, _)| matches!(c, Controller::Memory | Controller::Unified))
        else {
            return 0;
        };
        let file = if *ctrl == Controller::Memory {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the kernel killed a process of this task for its memory.
    pub fn oom_killed(&self) -> bool {
        self.oom_kills() > self.oom_before
    }

    /// The descriptors the child writes "0" into (between fork and exec)
    /// to join this cgroup.
    pub fn join_fds(&self) -> Vec<i32> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

/// Writes this process into the cgroups behind `fds`. For the child
/// between fork and exec: no allocation.
pub fn join(fds: &[i32]) -> std::io::Result<()> {
    for fd in fds {
        let mut f = std::mem::ManuallyDrop::new(
            // SAFETY: the descriptor stays open (owned by the TaskCgroup);
            // ManuallyDrop never closes it.
            unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(*fd) },
        );
        f.write_all(b"0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths() {
        let text = "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x\n3:cpuset,cpu:/c\n0::/u\n";
        assert_eq!(
            own_path(text, Some("memory")).as_deref(),
            Some("/process_api/x")
        );
        assert_eq!(own_path(text, Some("cpu")).as_deref(), Some("/c"));
        assert_eq!(own_path(text, None).as_deref(), Some("/u"));
        assert_eq!(own_path(text, Some("blkio")), None);
    }
}
