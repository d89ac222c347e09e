//! Running one job process: spawn it in its own process group, read stdout
//! and stderr concurrently into one log stream, enforce the timeout, obey
//! stop requests, and kill the whole group when it is over.

use crate::check::Matcher;
use crate::state::{StopReason, StopRx};
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::unix::pipe;
use tokio::time::Instant;
use trestle_core::Command;
use trestle_core::batch::outcome::ProcessEnd;

/// Exit code reported when the command cannot be started (as shells do).
pub const SPAWN_FAILURE_EXIT: i32 = 127;
/// How long to keep reading output after the process exited (descendants
/// that left the process group may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);
/// Size of each pipe read.
const READ_BUF: usize = 32 * 1024;
/// Environment variables of the worker that jobs must not see: its
/// credential (see [`crate::credential`]), the client configuration of
/// whoever started it, and cloud credentials it may hold for its server's
/// object storage (`trestle up` with S3).
const HIDDEN_ENV: &[&str] = &[
    "TRESTLE_TOKEN",
    "TRESTLE_TOKEN_FILE",
    "TRESTLE_TOKEN_FD",
    "TRESTLE_CLIENT_CONFIG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
    "XDG_RUNTIME_DIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "SSH_AUTH_SOCK",
];

/// Where a process's output and start go.
pub trait OutputSink: Send {
    /// The process has been spawned.
    fn started(&mut self) -> impl Future<Output = ()> + Send;
    /// A chunk of combined output (or a notice from the worker).
    fn log(&mut self, text: String) -> impl Future<Output = ()> + Send;
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The command.
    pub command: Command,
    /// Working directory (must exist).
    pub cwd: PathBuf,
    /// Variables added to the worker's environment.
    pub env: Vec<(String, String)>,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Text whose presence in the output decides success.
    pub success_string: Option<String>,
    /// Largest log chunk in bytes.
    pub max_chunk: usize,
    /// Output is passed on at least this often.
    pub flush_interval: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Also append stdout (and stderr, unless `stderr_file` is set) to this
    /// file (`#SBATCH --output`).
    pub stdout_file: Option<PathBuf>,
    /// Also append stderr to this file (`#SBATCH --error`).
    pub stderr_file: Option<PathBuf>,
    /// Account, sandbox, cgroup and limits the process starts with.
    pub isolation: crate::isolation::ExecIsolation,
    /// Told the process group once the process is spawned (resource
    /// sampling).
    pub tracker: Option<crate::sampling::Tracker>,
}

/// How the process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessResult {
    /// Exit code when it exited normally (127 when it could not start).
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// It was killed for running past the timeout.
    pub timed_out: bool,
    /// It was stopped on request (or never started because of one).
    pub stopped: Option<StopReason>,
    /// Whether the success string was seen, when there is one.
    pub success_found: Option<bool>,
    /// Why it could not be started.
    pub spawn_error: Option<String>,
    /// CPU time and peak memory of the process and the descendants it
    /// waited for, when the kernel could tell.
    pub usage: Option<crate::sampling::ProcUsage>,
}

impl ProcessResult {
    /// The outcome in the terms of `trestle_core::batch::outcome`.
    pub fn end(&self) -> ProcessEnd {
        ProcessEnd {
            exit_code: self.exit_code,
            timed_out: self.timed_out,
            cancelled: self.stopped == Some(StopReason::Cancel),
            released: self.stopped == Some(StopReason::Release),
            success_string_found: self.success_found,
        }
    }

    /// A short explanation for the job, when the end needs one.
    pub fn message(&self, timeout: Option<Duration>) -> Option<String> {
        if let Some(e) = &self.spawn_error {
            return Some(e.clone());
        }
        match self.stopped {
            Some(StopReason::Cancel) => return Some("cancelled while running".into()),
            Some(StopReason::Release) => {
                return Some("the worker shut down; the job was handed back".into());
            }
            Some(StopReason::Stale) | None => {}
        }
        if self.timed_out {
            let secs = timeout.map_or(0, |t| t.as_secs());
            return Some(format!("killed after the timeout of {secs}s"));
        }
        self.signal.map(|s| {
            format!(
                "killed by signal {s} ({}, exit status {})",
                signal_name(s),
                128 + s
            )
        })
    }
}

/// Runs the process to its end. Never fails: problems become the result
/// (a spawn failure is exit code 127 with the reason in the log).
pub async fn run_process<S: OutputSink>(
    spec: &ProcessSpec,
    sink: &mut S,
    stop: &mut StopRx,
) -> ProcessResult {
    let mut result = ProcessResult::default();
    if let Some(reason) = *stop.borrow_and_update() {
        result.stopped = Some(reason);
        return result;
    }
    // Opened before the task runs: none of its processes can have put a
    // link where the worker writes.
    let mut files = match OutputFiles::open(spec).await {
        Ok(f) => f,
        Err(e) => {
            sink.log(format!("trestle: {e}\n")).await;
            OutputFiles::default()
        }
    };
    // The command (holding the pipes' write ends) is dropped right after
    // the spawn, so the reads see end-of-file once the job's processes exit.
    // CPUs without anything else to do between fork and exec: the child
    // inherits the spawning thread's affinity, so this thread takes the
    // task's CPUs for the spawn only (two syscalls, and std keeps its
    // posix_spawn).
    let pin = spec.isolation.account.is_none()
        && spec.isolation.cgroup_fds.is_empty()
        && spec.isolation.rlimits.is_empty();
    let cpus = crate::isolation::cpu_set(&spec.isolation.cpus).filter(|_| pin);
    let spawn = || {
        let _pinned = cpus
            .as_ref()
            .and_then(crate::isolation::ThreadAffinity::set);
        build_command(spec).and_then(|(mut c, merged)| Ok((c.spawn()?, merged)))
    };
    let spawned = match spawn() {
        // A remembered program path may be stale: look it up again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::program::forget(program(&spec.command));
            spawn()
        }
        other => other,
    };
    let (mut child, merged) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            let msg = format!(
                "trestle: cannot start `{}`: {}",
                program(&spec.command),
                describe_io(&e)
            );
            sink.log(format!("{msg}\n")).await;
            result.exit_code = Some(SPAWN_FAILURE_EXIT);
            result.spawn_error = Some(msg);
            return result;
        }
    };
    // process_group(0): the group id is the child's pid. Never signal
    // groups 0 or 1 (our own group, init).
    let pgid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 1);
    let mut guard = GroupGuard(pgid);
    if let (Some(t), Some(g)) = (&spec.tracker, pgid) {
        t.spawned(g);
    }
    let exit_fd = pgid.and_then(crate::sampling::exit_fd);

    sink.started().await;

    let mut stdout = match merged.map(|r| pipe::Receiver::from_owned_fd(r.into())) {
        Some(Ok(r)) => Some(OutPipe::Merged(r)),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot read a job's output");
            None
        }
        None => child.stdout.take().map(OutPipe::Stdout),
    };
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; READ_BUF];
    let mut err_buf = if stderr.is_some() {
        vec![0u8; READ_BUF]
    } else {
        Vec::new()
    };
    let mut chunker = Chunker::new(spec.max_chunk);
    let mut matcher = spec.success_string.as_deref().map(Matcher::new);
    let mut exited = false;
    let mut status: Option<ExitStatus> = None;
    let timeout_at = spec.timeout.map(|t| Instant::now() + t);
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    let mut stop_open = true;

    loop {
        if exited && stdout.is_none() && stderr.is_none() {
            break;
        }
        let flush_at = chunker.deadline(spec.flush_interval);
        let mut data: Option<&[u8]> = None;
        let mut from_stderr = false;
        tokio::select! {
            r = read_opt(&mut stdout, &mut out_buf) => match r {
                Ok(n) if n > 0 => data = Some(&out_buf[..n]),
                _ => stdout = None,
            },
            r = read_opt(&mut stderr, &mut err_buf) => match r {
                Ok(n) if n > 0 => {
                    data = Some(&err_buf[..n]);
                    from_stderr = true;
                }
                _ => stderr = None,
            },
            (st, usage) = wait_with_usage(&mut child, exit_fd.as_ref(), pgid), if !exited => {
                exited = true;
                result.usage = usage;
                match st {
                    Ok(s) => status = Some(s),
                    Err(e) => tracing::warn!(error = %e, "cannot wait for a job process"),
                }
                // What the job left behind ends with it. Only now: once the
                // group may be empty its id may be reused by another process.
                guard.kill_and_disarm();
                drain_until = Some(Instant::now() + DRAIN);
            }
            _ = sleep_until_opt(flush_at) => {
                if let Some(text) = chunker.flush(false) {
                    sink.log(text).await;
                }
            }
            _ = sleep_until_opt(timeout_at), if !exited && kill_at.is_none() => {
                result.timed_out = true;
                kill_at = Some(terminate(pgid, spec.kill_grace));
            }
            _ = sleep_until_opt(kill_at), if !exited => {
                signal_group(pgid, libc::SIGKILL);
                kill_at = None;
            }
            changed = stop.changed(), if stop_open && !exited && result.stopped.is_none() => {
                match changed {
                    Err(_) => stop_open = false,
                    Ok(()) => {
                        let reason = *stop.borrow_and_update();
                        if let Some(reason) = reason {
                            result.stopped = Some(reason);
                            if reason == StopReason::Stale {
                                signal_group(pgid, libc::SIGKILL);
                            } else if kill_at.is_none() {
                                kill_at = Some(terminate(pgid, spec.kill_grace));
                            }
                        }
                    }
                }
            }
            _ = sleep_until_opt(drain_until) => break,
        }
        if let Some(bytes) = data {
            files.write(bytes, from_stderr).await;
            if let Some(m) = matcher.as_mut() {
                m.feed(bytes);
            }
            for text in chunker.push(bytes) {
                sink.log(text).await;
            }
        }
    }
    if let Some(text) = chunker.flush(true) {
        sink.log(text).await;
    }
    // tokio's files write in the background: wait until every byte is
    // down before the outputs are collected.
    files.flush().await;
    if let Some(s) = status {
        use std::os::unix::process::ExitStatusExt;
        result.exit_code = s.code();
        result.signal = s.signal();
    }
    if stop_open && result.stopped.is_none() && result.signal.is_some_and(is_termination) {
        result.stopped = stop_soon(stop).await;
    }
    result.success_found = matcher.map(|m| m.found());
    if result.stopped != Some(StopReason::Stale)
        && let Some(msg) = result.message(spec.timeout)
    {
        let nl = if chunker.ends_line() { "" } else { "\n" };
        sink.log(format!("{nl}trestle: {msg}\n")).await;
    }
    result
}

/// Waits for the child; with a process file descriptor, reads its
/// resource usage first, while it is exited but not yet reaped.
async fn wait_with_usage(
    child: &mut tokio::process::Child,
    fd: Option<&tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    pid: Option<i32>,
) -> (
    std::io::Result<ExitStatus>,
    Option<crate::sampling::ProcUsage>,
) {
    let usage = match (fd, pid) {
        (Some(fd), Some(pid)) => crate::sampling::exit_usage(fd, pid).await,
        _ => None,
    };
    (child.wait().await, usage)
}

/// Where stdout (and, merged, stderr) is read from.
enum OutPipe {
    /// The child's own stdout pipe (stderr has its own).
    Stdout(tokio::process::ChildStdout),
    /// One pipe for both.
    Merged(pipe::Receiver),
}

impl AsyncRead for OutPipe {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            OutPipe::Stdout(p) => std::pin::Pin::new(p).poll_read(cx, buf),
            OutPipe::Merged(p) => std::pin::Pin::new(p).poll_read(cx, buf),
        }
    }
}

/// The files output is copied to (`#SBATCH --output/--error`).
#[derive(Default)]
struct OutputFiles {
    out: Option<tokio::fs::File>,
    err: Option<tokio::fs::File>,
}

impl OutputFiles {
    async fn open(spec: &ProcessSpec) -> Result<OutputFiles, String> {
        /// Opens (never through a symbolic link) and, for a task that runs
        /// as another account, hands the file to it.
        async fn open_one(
            cwd: &std::path::Path,
            p: &PathBuf,
            owner: Option<(u32, u32)>,
        ) -> Result<tokio::fs::File, String> {
            let path = cwd.join(p);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    format!("cannot create {}: {}", parent.display(), describe_io(&e))
                })?;
            }
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .await
                .map_err(|e| format!("cannot open {}: {}", path.display(), describe_io(&e)))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(|e| {
                    format!("cannot hand over {}: {}", path.display(), describe_io(&e))
                })?;
            }
            Ok(file)
        }
        let owner = spec.isolation.account.as_ref().map(|(u, g, _)| (*u, *g));
        let mut f = OutputFiles::default();
        if let Some(p) = &spec.stdout_file {
            f.out = Some(open_one(&spec.cwd, p, owner).await?);
        }
        if let Some(p) = &spec.stderr_file {
            f.err = Some(open_one(&spec.cwd, p, owner).await?);
        }
        Ok(f)
    }

    async fn flush(&mut self) {
        use tokio::io::AsyncWriteExt;
        for f in [self.out.as_mut(), self.err.as_mut()].into_iter().flatten() {
            if let Err(e) = f.flush().await {
                tracing::warn!(error = %e, "cannot write a job's output file");
            }
        }
    }

    async fn write(&mut self, bytes: &[u8], stderr: bool) {
        use tokio::io::AsyncWriteExt;
        let target = if stderr && self.err.is_some() {
            self.err.as_mut()
        } else {
            self.out.as_mut()
        };
        if let Some(f) = target
            && let Err(e) = f.write_all(bytes).await
        {
            tracing::warn!(error = %e, "cannot write a job's output file");
        }
    }
}

/// The command with its environment, directory and pipes. Unless stderr
/// goes to a file of its own, stdout and stderr share one pipe (the log is
/// one stream anyway, and it keeps their interleaving): its read end is
/// returned with the command.
fn build_command(
    spec: &ProcessSpec,
) -> std::io::Result<(tokio::process::Command, Option<std::io::PipeReader>)> {
    let iso = &spec.isolation;
    let mut cmd = match &spec.command {
        // In the sandbox: bwrap and its arguments, then the command.
        Command::Argv(argv) if !iso.wrapper.is_empty() => {
            let Some(prog) = argv.first() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the command is empty",
                ));
            };
            let path = job_path(spec);
            let found = path.and_then(|p| crate::program::resolve(prog, &p));
            // The sandbox sees the same programs: one that is not there
            // fails here as it would without the sandbox (exit 127).
            let Some(full) = found.or_else(|| {
                let p = spec.cwd.join(prog);
                (prog.contains('/') && p.is_file()).then_some(p)
            }) else {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            };
            let mut c = tokio::process::Command::new(&iso.wrapper[0]);
            c.args(&iso.wrapper[1..]).arg(full);
            c.args(&argv[1..]);
            c
        }
        Command::Shell(script) if !iso.wrapper.is_empty() => {
            let mut c = tokio::process::Command::new(&iso.wrapper[0]);
            c.args(&iso.wrapper[1..])
                .arg("/bin/sh")
                .arg("-c")
                .arg(script);
            c
        }
        Command::Argv(argv) => {
            let Some((prog, args)) = argv.split_first() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the command is empty",
                ));
            };
            let path = job_path(spec);
            let found = path.and_then(|p| crate::program::resolve(prog, &p));
            let mut c = match found {
                Some(full) => {
                    let mut c = tokio::process::Command::new(full);
                    c.arg0(prog);
                    c
                }
                None => tokio::process::Command::new(prog),
            };
            c.args(args);
            c
        }
        Command::Shell(script) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(script);
            c
        }
    };
    if iso.clean_env {
        cmd.env_clear();
        for name in crate::isolation::KEPT_ENV {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
    } else {
        for name in HIDDEN_ENV {
            cmd.env_remove(name);
        }
    }
    // Only what must happen between fork and exec makes the child fork
    // (std otherwise uses the cheaper posix_spawn); CPUs alone are pinned
    // right after the spawn (see `run_process`).
    if !(iso.account.is_none() && iso.cgroup_fds.is_empty() && iso.rlimits.is_empty()) {
        let exec = iso.clone();
        let cpuset = crate::isolation::cpu_set(&exec.cpus);
        // SAFETY: the closure only makes syscalls on data prepared here
        // (no allocation, no locks) between fork and exec.
        unsafe {
            cmd.pre_exec(move || crate::isolation::apply_in_child(&exec, cpuset.as_ref()));
        }
    }
    cmd.envs(iso.env.iter().map(|(k, v)| (k, v)))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if spec.stderr_file.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        return Ok((cmd, None));
    }
    let (reader, writer) = std::io::pipe()?;
    cmd.stdout(writer.try_clone()?).stderr(writer);
    Ok((cmd, Some(reader)))
}

/// The job's own PATH if it sets one, else the worker's.
fn job_path(spec: &ProcessSpec) -> Option<OsString> {
    spec.env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| OsString::from(v))
        .or_else(|| std::env::var_os("PATH"))
}

fn program(command: &Command) -> &str {
    match command {
        Command::Argv(v) => v.first().map_or("", String::as_str),
        Command::Shell(_) => "/bin/sh",
    }
}

/// An IO error as shells print it ("No such file or directory"), without
/// Rust's " (os error 2)" suffix.
fn describe_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => "signal",
    }
}

/// Sends `sig` to every process of the group.
fn signal_group(pgid: Option<i32>, sig: libc::c_int) {
    if let Some(pgid) = pgid {
        // SAFETY: kill(2) has no memory-safety preconditions; `pgid > 1`
        // so this never targets our own group or every process.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// SIGTERM now (SIGKILL at once without grace); returns when to SIGKILL.
fn terminate(pgid: Option<i32>, grace: Duration) -> Instant {
    if grace.is_zero() {
        signal_group(pgid, libc::SIGKILL);
    } else {
        signal_group(pgid, libc::SIGTERM);
    }
    Instant::now() + grace
}

/// Kills the process group when the run ends in any way (including the
/// future being dropped), so no job process outlives its attempt.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    /// SIGKILLs the group now and never again.
    fn kill_and_disarm(&mut self) {
        signal_group(self.0.take(), libc::SIGKILL);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill_and_disarm();
    }
}

/// How long a job killed by a termination signal waits for the worker's
/// own stop request (see [`stop_soon`]).
const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// Signals that end a process on purpose (as opposed to crashes).
fn is_termination(signal: i32) -> bool {
    matches!(
        signal,
        libc::SIGTERM | libc::SIGKILL | libc::SIGINT | libc::SIGHUP
    )
}

/// A job killed by a termination signal just as the worker is told to stop
/// (Slurm signals every process of a pilot it cancels, times out or
/// preempts) was interrupted, not failed: waits up to [`SIGNAL_GRACE`] for
/// the worker's stop request and returns it.
async fn stop_soon(stop: &mut StopRx) -> Option<StopReason> {
    let wait = async {
        loop {
            if let Some(r) = *stop.borrow_and_update() {
                return Some(r);
            }
            if stop.changed().await.is_err() {
                return None;
            }
        }
    };
    tokio::time::timeout(SIGNAL_GRACE, wait)
        .await
        .ok()
        .flatten()
}

async fn read_opt<R: AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Cuts combined output into log chunks of at most `max` bytes, never in
/// the middle of a UTF-8 sequence when it can be avoided.
#[derive(Debug)]
pub struct Chunker {
    buf: Vec<u8>,
    max: usize,
    /// When the oldest unsent byte arrived.
    since: Option<Instant>,
    /// Last byte passed on.
    last: Option<u8>,
}

impl Chunker {
    /// A chunker for chunks of at most `max` bytes (at least 4).
    pub fn new(max: usize) -> Chunker {
        Chunker {
            buf: Vec::new(),
            max: max.max(4),
            since: None,
            last: None,
        }
    }

    /// Adds output; returns the full chunks that are ready.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        if data.is_empty() {
            return Vec::new();
        }
        if self.buf.is_empty() {
            self.since = Some(Instant::now());
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() >= self.max {
            let cut = complete_prefix(&self.buf, self.max);
            out.push(self.take(cut));
        }
        out
    }

    /// Everything buffered; with `last == false` an unfinished UTF-8
    /// sequence at the end stays for the next chunk.
    pub fn flush(&mut self, last: bool) -> Option<String> {
        let cut = if last {
            self.buf.len()
        } else {
            complete_prefix(&self.buf, self.buf.len())
        };
        if cut == 0 {
            // Only an unfinished sequence is buffered: wait for the rest
            // (until the next deadline, not in a busy loop).
            if !self.buf.is_empty() {
                self.since = Some(Instant::now());
            }
            return None;
        }
        Some(self.take(cut))
    }

    /// When the buffered output is due.
    pub fn deadline(&self, interval: Duration) -> Option<Instant> {
        self.since.map(|s| s + interval)
    }

    /// Whether the output passed on so far ends a line (or is empty).
    pub fn ends_line(&self) -> bool {
        matches!(self.last, None | Some(b'\n'))
    }

    fn take(&mut self, cut: usize) -> String {
        let text = String::from_utf8_lossy(&self.buf[..cut]).into_owned();
        self.last = self.buf[..cut].last().copied().or(self.last);
        self.buf.drain(..cut);
        self.since = if self.buf.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        text
    }
}

/// The largest `cut <= limit` such that `buf[..cut]` does not end inside a
/// UTF-8 sequence that continues after it (bytes that are not UTF-8 are cut
/// where asked). Only 0 when `buf[..limit]` is the start of one unfinished
/// sequence, which cannot happen for `limit >= 4` unless `buf` ends there.
pub fn complete_prefix(buf: &[u8], limit: usize) -> usize {
    let limit = limit.min(buf.len());
    let lowest = limit.saturating_sub(4);
    let mut i = limit;
    while i > lowest {
        i -= 1;
        let b = buf[i];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let width = match b {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if i + width > limit { i } else { limit };
    }
    limit
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
