//! Worker configuration and its defaults.

use crate::error::AgentError;
use std::path::PathBuf;
use std::time::Duration;
use trestle_core::Capacity;

/// Environment variable that keeps scratch directories after attempts
/// (any value but empty or `0`), for debugging.
pub const KEEP_SCRATCH_ENV: &str = "TRESTLE_KEEP_SCRATCH";
/// Default long-poll wait of a lease request.
pub const DEFAULT_POLL_WAIT_MS: u64 = 5000;
/// Default largest log chunk, in bytes.
pub const DEFAULT_MAX_LOG_CHUNK: usize = 64 * 1024;

/// How a worker runs. Build with [`WorkerConfig::new`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Server base URLs (`http://host:port`); tried in order on connection
    /// failures.
    pub servers: Vec<String>,
    /// Bearer token (admin or worker token).
    pub token: Option<String>,
    /// What the worker offers. Jobs are leased only while their resources fit
    /// into what running and queued jobs leave free.
    pub capacity: Capacity,
    /// Root of the per-attempt scratch directories
    /// (`<work_dir>/job-<id>-<attempt>`).
    pub work_dir: PathBuf,
    /// Exit (after deregistering) when nothing has been running or leased
    /// for this long.
    pub idle_exit: Option<Duration>,
    /// The compute environment that launched this worker, if any.
    pub compute_env: Option<String>,
    /// The id the launching provider knows this worker by (a Slurm job
    /// id), sent at registration so the autoscaler can match them.
    pub instance_id: Option<String>,
    /// Jobs leased beyond free capacity, waiting locally for a free slot
    /// (hides the lease round trip under heavy load of short jobs). The
    /// floor of a target that grows when jobs are short (see
    /// `lease::prefetch_target`); 0 turns prefetching off.
    pub prefetch: u32,
    /// Long-poll wait of lease requests, in milliseconds.
    pub poll_wait_ms: u64,
    /// Largest log chunk sent in one update, in bytes.
    pub max_log_chunk: usize,
    /// Keep scratch directories after attempts end.
    pub keep_scratch: bool,
    /// Output of a running job is sent at least this often.
    pub log_flush: Duration,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    pub kill_grace: Duration,
    /// On shutdown, how long to wait for jobs to stop and reports to be
    /// delivered before giving up on them.
    pub shutdown_grace: Duration,
    /// How tasks are isolated (`--isolation`, default `auto`).
    pub isolation: crate::isolation::IsolationSetting,
    /// Most processes and threads per task (a cgroup's `pids.max`, else
    /// `RLIMIT_NPROC`).
    pub task_pids_max: u64,
    /// Limit tasks with cgroups where the host allows (else rlimits).
    pub cgroups: bool,
    /// Keep a workspace tunnel to every server (default on; see
    /// [`crate::tunnel`]).
    pub tunnel: bool,
    /// Time between resource samples of running tasks (default 5 s).
    pub sample_interval: Duration,
    /// Paths this worker shares with the hosts jobs are submitted on
    /// (`/home`, `/scratch`): `#SBATCH` jobs from there run in place (see
    /// [`trestle_core::batch::workdir`]).
    pub shared_paths: Vec<String>,
    /// Directories (`{user}`: the job owner) where `#SBATCH` jobs may run
    /// in place although tasks do not run as their owner.
    pub allowed_dirs: Vec<String>,
}

impl WorkerConfig {
    /// A configuration with defaults: the host's CPUs and memory, a scratch
    /// root in the system temporary directory unique to this process, no idle
    /// exit, no prefetch, 5 s lease long-polls, 64 KiB log chunks, scratch
    /// directories removed (the binary sets `keep_scratch` from
    /// [`KEEP_SCRATCH_ENV`]; a library reads no settings of its own).
    pub fn new(servers: Vec<String>, token: Option<String>) -> WorkerConfig {
        WorkerConfig {
            servers,
            token,
            capacity: detect_capacity(),
            work_dir: std::env::temp_dir().join(format!("trestle-worker-{}", std::process::id())),
            idle_exit: None,
            compute_env: None,
            instance_id: None,
            prefetch: 0,
            poll_wait_ms: DEFAULT_POLL_WAIT_MS,
            max_log_chunk: DEFAULT_MAX_LOG_CHUNK,
            keep_scratch: false,
            log_flush: Duration::from_millis(250),
            kill_grace: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            isolation: crate::isolation::IsolationSetting::Auto,
            task_pids_max: crate::isolation::DEFAULT_TASK_PIDS_MAX,
            cgroups: true,
            tunnel: true,
            sample_interval: crate::sampling::DEFAULT_SAMPLE_INTERVAL,
            shared_paths: Vec::new(),
            allowed_dirs: Vec::new(),
        }
    }

    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), AgentError> {
        if self.servers.is_empty() {
            return Err(AgentError::Config("no server URL given".into()));
        }
        if self.capacity.cpus == 0 {
            return Err(AgentError::Config(
                "capacity must include at least one CPU".into(),
            ));
        }
        if self.max_log_chunk < 16 {
            return Err(AgentError::Config(format!(
                "max_log_chunk must be at least 16 bytes, got {}",
                self.max_log_chunk
            )));
        }
        if self.work_dir.as_os_str().is_empty() {
            return Err(AgentError::Config("work_dir is empty".into()));
        }
        Ok(())
    }
}

/// The host's capacity: available CPUs, total memory from `/proc/meminfo`
/// (1024 MiB per CPU when unknown), no GPUs.
pub fn detect_capacity() -> Capacity {
    let cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let mem_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_mib(&text))
        .unwrap_or(u64::from(cpus) * 1024);
    Capacity {
        cpus,
        mem_mib,
        gpus: 0,
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in MiB.
fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The host name, for registration.
pub fn host_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(read_host_name).clone()
}

/// The host name, read from the system (see [`host_name`], which reads it
/// once per process: every attempt's environment carries it).
fn read_host_name() -> String {
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            return name.to_string();
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes
    // at most that many and we only read up to the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    "localhost".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = WorkerConfig::new(vec!["http://127.0.0.1:8080".into()], None);
        c.validate().unwrap();
        assert!(c.capacity.cpus >= 1);
        assert!(c.capacity.mem_mib >= 1);
        assert_eq!(c.prefetch, 0);
        assert_eq!(c.poll_wait_ms, 5000);
        assert!(
            c.work_dir
                .ends_with(format!("trestle-worker-{}", std::process::id()))
        );
    }

    #[test]
    fn rejects_unusable_configs() {
        let mut c = WorkerConfig::new(vec![], None);
        assert!(c.validate().is_err());
        c.servers = vec!["http://x".into()];
        c.capacity.cpus = 0;
        assert!(c.validate().is_err());
        c.capacity.cpus = 1;
        c.max_log_chunk = 3;
        assert!(c.validate().is_err());
    }

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       16314532 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_mib(text), Some(15932));
        assert_eq!(mem_total_mib("nothing"), None);
    }

    #[test]
    fn has_a_host_name() {
        assert!(!host_name().is_empty());
    }
}
