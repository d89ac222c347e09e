//! Resource sampling of running tasks. Every few seconds (default 5 s) one
//! pass over `/proc` finds the processes of each running task (members of
//! its process group: the worker starts every task as a group leader),
//! and adds up their CPU time (user and system, with the descendants they
//! waited for) and resident memory. CPU percent is the CPU time used since
//! the previous pass over the wall time between them and the task's
//! allocated CPUs; memory percent is of its requested memory. The bytes
//! under the attempt's scratch directory are counted at most every 30 s,
//! as a percent of the scratch filesystem's size. The reporter sends the
//! samples with its next heartbeat.
//!
//! Also here: the CPU time and peak memory a task ends with, read from its
//! exited leader before it is reaped (`waitid` with `WNOWAIT` fills in
//! the resource usage of the process and the children it waited for).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trestle_core::Resources;
use trestle_core::api::AttemptKey;
use trestle_core::api::samples::TaskSample;

/// Default time between samples.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Shortest time between two counts of a scratch directory.
const DISK_EVERY: Duration = Duration::from_secs(30);
/// Samples kept for the reporter at most (the oldest go first while the
/// server is away).
const MAX_PENDING: usize = 20_000;

#[derive(Debug)]
struct Tracked {
    pgid: Option<i32>,
    scratch: PathBuf,
    cpus: u32,
    mem_mib: u64,
    /// CPU ticks and when, at the previous pass.
    last: Option<(u64, Instant)>,
    /// The last disk count: bytes, percent, when.
    disk: Option<(u64, Option<f64>, Instant)>,
    /// The last count has not been sent yet.
    disk_unsent: bool,
}

#[derive(Debug, Default)]
struct Inner {
    tracked: HashMap<AttemptKey, Tracked>,
    pending: Vec<TaskSample>,
}

/// The tasks being sampled and the samples waiting for the reporter.
#[derive(Debug, Default)]
pub struct Sampler {
    inner: Mutex<Inner>,
}

/// Lets a process, once spawned, tell the sampler its group.
#[derive(Debug, Clone)]
pub struct Tracker {
    attempts: std::sync::Arc<crate::state::Attempts>,
    key: AttemptKey,
}

impl Tracker {
    /// A tracker for `key` of the sampler in `attempts`.
    pub fn new(attempts: std::sync::Arc<crate::state::Attempts>, key: AttemptKey) -> Tracker {
        Tracker { attempts, key }
    }

    /// The task's process group has this id.
    pub fn spawned(&self, pgid: i32) {
        let mut inner = self.attempts.sampler.lock();
        if let Some(t) = inner.tracked.get_mut(&self.key) {
            t.pgid = Some(pgid);
        }
    }
}

impl Sampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section is a few assignments: a poisoned lock is
        // still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts sampling an attempt whose scratch directory is `scratch`
    /// (its processes are found once [`Tracker::spawned`] names them).
    pub fn track(&self, key: AttemptKey, scratch: &Path, resources: &Resources) {
        self.lock().tracked.insert(
            key,
            Tracked {
                pgid: None,
                scratch: scratch.to_path_buf(),
                cpus: resources.cpus.max(1),
                mem_mib: resources.mem_mib,
                last: None,
                disk: None,
                disk_unsent: false,
            },
        );
    }

    /// Stops sampling an attempt.
    pub fn untrack(&self, key: AttemptKey) {
        self.lock().tracked.remove(&key);
    }

    /// Takes the samples waiting to be sent.
    pub fn take(&self) -> Vec<TaskSample> {
        std::mem::take(&mut self.lock().pending)
    }

    /// One pass: samples every tracked task with a process group.
    pub fn sample(&self) {
        let groups: Vec<(AttemptKey, i32)> = self
            .lock()
            .tracked
            .iter()
            .filter_map(|(k, t)| t.pgid.map(|g| (*k, g)))
            .collect();
        if groups.is_empty() {
            return;
        }
        let usage = scan_proc(&groups.iter().map(|(_, g)| *g).collect::<Vec<_>>());
        let now = Instant::now();
        let time = trestle_core::clock::now_ms();
        // Scratch directories due for a count, counted without the lock.
        let due: Vec<(AttemptKey, PathBuf)> = {
            let inner = self.lock();
            groups
                .iter()
                .filter_map(|(k, _)| inner.tracked.get(k).map(|t| (k, t)))
                .filter(|(_, t)| t.disk.is_none_or(|(_, _, at)| now - at >= DISK_EVERY))
                .map(|(k, t)| (*k, t.scratch.clone()))
                .collect()
        };
        let counted: Vec<(AttemptKey, u64, Option<f64>)> = due
            .into_iter()
            .map(|(k, dir)| {
                let bytes = dir_bytes(&dir);
                let pct = fs_size(&dir)
                    .filter(|s| *s > 0)
                    .map(|s| 100.0 * bytes as f64 / s as f64);
                (k, bytes, pct)
            })
            .collect();
        let mut inner = self.lock();
        for (k, bytes, pct) in counted {
            if let Some(t) = inner.tracked.get_mut(&k) {
                t.disk = Some((bytes, pct, now));
                t.disk_unsent = true;
            }
        }
        let mut out = Vec::new();
        for (key, pgid) in &groups {
            let Some(t) = inner.tracked.get_mut(key) else {
                continue;
            };
            let Some(&(ticks, rss_kib)) = usage.get(pgid) else {
                continue;
            };
            let prev = t.last.replace((ticks, now));
            let Some((prev_ticks, prev_at)) = prev else {
                continue;
            };
            let wall = (now - prev_at).as_secs_f64();
            if wall <= 0.0 {
                continue;
            }
            let used = ticks.saturating_sub(prev_ticks) as f64 / clock_ticks();
            let cpu_pct = 100.0 * used / wall / f64::from(t.cpus);
            let mem_pct = if t.mem_mib > 0 {
                100.0 * rss_kib as f64 / (t.mem_mib as f64 * 1024.0)
            } else {
                0.0
            };
            // A count goes out once; later samples carry none.
            let disk = t
                .disk
                .filter(|_| std::mem::take(&mut t.disk_unsent))
                .map(|(b, p, _)| (b, p));
            out.push(TaskSample {
                job_id: key.job_id,
                attempt: key.attempt,
                time,
                cpu_pct: round1(cpu_pct),
                rss_kib,
                mem_pct: round1(mem_pct),
                disk_bytes: disk.map(|(b, _)| b),
                disk_pct: disk.and_then(|(_, p)| p).map(round1),
            });
        }
        inner.pending.extend(out);
        let len = inner.pending.len();
        if len > MAX_PENDING {
            inner.pending.drain(..len - MAX_PENDING);
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_kib() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 / 1024 } else { 4 }
}

/// The fields of `/proc/PID/stat` after the command name: process group,
/// CPU ticks (utime + stime + cutime + cstime) and resident pages.
fn parse_stat(text: &str) -> Option<(i32, u64, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let pgrp = f.get(2)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<i64>().ok()?.max(0) as u64;
    }
    let rss = f.get(21)?.parse::<i64>().ok()?.max(0) as u64;
    Some((pgrp, ticks, rss))
}

/// CPU ticks and resident KiB per process group of `groups`, from one
/// pass over `/proc`.
fn scan_proc(groups: &[i32]) -> HashMap<i32, (u64, u64)> {
    let mut out: HashMap<i32, (u64, u64)> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    let page = page_kib();
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        let Some((pgrp, ticks, rss)) = parse_stat(&text) else {
            continue;
        };
        if groups.contains(&pgrp) {
            let v = out.entry(pgrp).or_default();
            v.0 += ticks;
            v.1 += rss * page;
        }
    }
    out
}

/// Bytes used by the files under `dir` (allocated blocks; links are not
/// followed).
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// Size of the filesystem holding `dir` (bytes).
fn fs_size(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; `c` is a valid path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| s.f_blocks as u64 * s.f_frsize as u64)
}

/// The sampling loop: a pass every `every`, for as long as the worker
/// runs (the returned guard stops it when dropped).
pub fn spawn(attempts: std::sync::Arc<crate::state::Attempts>, every: Duration) -> LoopGuard {
    let every = every.max(Duration::from_millis(100));
    LoopGuard(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let a = attempts.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || a.sampler.sample()).await {
                tracing::warn!(error = %e, "a resource sampling pass failed");
            }
        }
    }))
}

/// Stops the sampling loop when dropped.
#[derive(Debug)]
pub struct LoopGuard(tokio::task::JoinHandle<()>);

impl Drop for LoopGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// CPU time and peak memory of an exited process and the descendants it
/// waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcUsage {
    /// User plus system CPU time (ms).
    pub cpu_ms: i64,
    /// Peak resident memory of the largest of them (KiB).
    pub max_rss_kib: i64,
}

/// A file descriptor that becomes readable when child `pid` exits (a
/// process file descriptor); `None` when the kernel offers none.
pub fn exit_fd(pid: i32) -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned to us and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd` and closed only
    // when it is dropped, so the descriptor stays the same open file.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE).ok()
    }
}

/// Waits until child `pid` (whose [`exit_fd`] is `fd`) has exited,
/// without reaping it (the caller then waits for it as usual), and reads
/// its resource usage. Cancel-safe.
pub async fn exit_usage(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    pid: i32,
) -> Option<ProcUsage> {
    let _ready = fd.readable().await.ok()?;
    waitid_usage(pid)
}

fn waitid_usage(pid: i32) -> Option<ProcUsage> {
    // SAFETY: waitid with WNOWAIT leaves the child waitable; the kernel
    // fills the zeroed siginfo and rusage (the raw call takes a fifth
    // argument the libc wrapper does not expose).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            libc::P_PID,
            pid,
            &mut info as *mut libc::siginfo_t,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            &mut ru as *mut libc::rusage,
        )
    };
    // SAFETY: reading the pid field of the siginfo the kernel filled in.
    if rc != 0 || unsafe { info.si_pid() } != pid {
        return None;
    }
    let ms = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
    Some(ProcUsage {
        cpu_ms: ms(ru.ru_utime) + ms(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_parsed_after_the_name() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 7 3 20 0 1 0 12345 1000000 2560 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4242, 210, 2560)));
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn a_busy_group_is_seen_with_its_cpu_and_memory() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        let a = std::sync::Arc::new(crate::state::Attempts::new(trestle_core::Capacity {
            cpus: 1,
            mem_mib: 1024,
            gpus: 0,
        }));
        let key = AttemptKey {
            job_id: 1,
            attempt: 1,
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![1u8; 64 * 1024]).unwrap();
        a.sampler.track(
            key,
            dir.path(),
            &Resources {
                cpus: 1,
                mem_mib: 64,
                gpus: 0,
            },
        );
        Tracker::new(a.clone(), key).spawned(pgid);
        a.sampler.sample();
        std::thread::sleep(Duration::from_millis(600));
        a.sampler.sample();
        let _ = child.kill();
        let _ = child.wait();
        let s = a.sampler.take();
        assert_eq!(s.len(), 1, "{s:?}");
        // A busy loop on a shared machine: well above idle, if not 100 %.
        assert!(s[0].cpu_pct > 10.0, "{s:?}");
        assert!(s[0].rss_kib > 0);
        // The disk count of the first pass goes with the first sample.
        assert!(s[0].disk_bytes.unwrap() >= 64 * 1024, "{s:?}");
        a.sampler.untrack(key);
        a.sampler.sample();
        assert!(a.sampler.take().is_empty());
        assert!(dir_bytes(dir.path()) >= 64 * 1024);
    }

    #[tokio::test]
    async fn exit_usage_reads_an_exited_child_before_it_is_reaped() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap() as i32;
        let fd = exit_fd(pid).unwrap();
        let u = exit_usage(&fd, pid).await.unwrap();
        assert!(u.cpu_ms > 0, "{u:?}");
        assert!(u.max_rss_kib > 0);
        assert!(child.wait().await.unwrap().success());
    }
}
