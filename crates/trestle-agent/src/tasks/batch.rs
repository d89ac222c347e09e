//! One attempt from lease to report: scratch directory, staging, waiting for
//! capacity, running, output upload, `finished`, cleanup.

use crate::config::WorkerConfig;
use crate::error::AgentError;
use crate::process::{OutputSink, ProcessSpec, run_process};
use crate::report::ReporterHandle;
use crate::scratch::ScratchPool;
use crate::stage::{stage_inputs, work_dir};
use crate::state::{Attempts, StopReason, StopRx};
use crate::upload::{Snapshot, UploadOutcome, upload_outputs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use trestle_client::Client;
use trestle_core::AttemptReason;
use trestle_core::api::{AttemptKey, AttemptRef, Lease, Update};
use trestle_core::batch::outcome::attempt_reason;
use trestle_core::batch::slurm::{RunContext, array_env, slurm_env};
use trestle_core::batch::workdir::{Facts, Placement};

/// What every attempt task shares.
#[derive(Debug)]
pub struct AttemptCtx {
    /// The server.
    pub client: Client,
    /// The worker's configuration.
    pub config: WorkerConfig,
    /// The attempts table.
    pub attempts: Arc<Attempts>,
    /// The worker's registration (its id, for session reports).
    pub session: Arc<crate::session::Session>,
    /// The workspace sessions this worker hosts (the tunnel's targets).
    pub hosted: Arc<super::session::Hosted>,
    /// Where updates go.
    pub reporter: ReporterHandle,
    /// Scratch directories.
    pub scratch: ScratchPool,
    /// How tasks are isolated.
    pub isolation: crate::isolation::Isolation,
}

/// How an attempt ends, for its `finished` update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// Why.
    pub reason: AttemptReason,
    /// Exit code, if the process exited.
    pub exit_code: Option<i32>,
    /// A note for the job.
    pub message: Option<String>,
}

impl Finish {
    pub(crate) fn worker_error(e: &AgentError) -> Finish {
        Finish {
            reason: AttemptReason::WorkerError,
            exit_code: None,
            message: Some(e.to_string()),
        }
    }

    /// The end of an attempt stopped before its command ran; `None` for a
    /// stale lease (nothing more may be reported).
    pub(crate) fn stopped(reason: StopReason) -> Option<Finish> {
        let (reason, message) = match reason {
            StopReason::Stale => return None,
            StopReason::Cancel => (AttemptReason::Cancelled, "cancelled before it started"),
            StopReason::Release => (
                AttemptReason::Released,
                "the worker shut down; the job was handed back",
            ),
        };
        Some(Finish {
            reason,
            exit_code: None,
            message: Some(message.to_string()),
        })
    }
}

pub use trestle_core::clock::now_ms;

/// Thread-count variables of the usual numeric libraries, set to the
/// job's CPUs (as Slurm sites do) unless the job sets them itself.
pub const THREAD_ENV: &[&str] = &[
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];

/// The variables a job gets on top of the worker's environment: `HOME`
/// (its scratch directory: never the home of whoever runs the worker) and
/// the thread counts of [`THREAD_ENV`], then its own `env` (which may
/// override them), then `TRESTLE_*` describing the attempt.
pub fn job_env(lease: &Lease, scratch: &Path) -> Vec<(String, String)> {
    let spec = &lease.spec;
    let cpus = spec.resources.cpus.max(1).to_string();
    let mut env: Vec<(String, String)> = vec![("HOME".to_string(), scratch.display().to_string())];
    env.extend(THREAD_ENV.iter().map(|k| (k.to_string(), cpus.clone())));
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend([
        ("TRESTLE_JOB_ID".to_string(), lease.job_id.to_string()),
        ("TRESTLE_ATTEMPT".to_string(), lease.attempt.to_string()),
        ("TRESTLE_CPUS".to_string(), spec.resources.cpus.to_string()),
        (
            "TRESTLE_MEM_MIB".to_string(),
            spec.resources.mem_mib.to_string(),
        ),
        ("TRESTLE_GPUS".to_string(), spec.resources.gpus.to_string()),
        ("TRESTLE_JOB_NAME".to_string(), spec.name.clone()),
        ("TRESTLE_QUEUE".to_string(), spec.queue.clone()),
        ("TRESTLE_SCRATCH".to_string(), scratch.display().to_string()),
    ]);
    let host = crate::config::host_name();
    let ctx = RunContext {
        job_id: lease.job_id,
        spec,
        node: &host,
    };
    env.extend(array_env(&ctx));
    env.extend(slurm_env(&ctx));
    env
}

/// Where an `#SBATCH` job runs ([`trestle_core::batch::workdir::decide`]
/// over what this worker knows).
fn placement(ctx: &AttemptCtx, lease: &Lease) -> Placement {
    let spec = &lease.spec;
    let Some(sl) = &spec.flow.slurm else {
        return Placement::Scratch { note: None };
    };
    let Some(asked) = sl.chdir.as_deref().or(sl.submit_dir.as_deref()) else {
        return Placement::Scratch { note: None };
    };
    let uid = match ctx.isolation.task_uid(lease) {
        Ok(u) => u,
        Err(why) => return Placement::Refused(why),
    };
    // Decide on the real path: a symbolic link inside an allowed
    // directory must not lead out of it.
    let (real, owner) = match resolve(asked) {
        Ok(r) => r,
        Err(why) => return Placement::Refused(why),
    };
    let owner_name = spec.owner.as_deref().unwrap_or("");
    let allowed =
        trestle_core::batch::workdir::expand_allowed(&ctx.config.allowed_dirs, owner_name);
    let host = crate::config::host_name();
    trestle_core::batch::workdir::decide(&Facts {
        dir: Some(&real),
        explicit: sl.chdir.is_some(),
        worker_host: &host,
        shared_paths: &ctx.config.shared_paths,
        sandboxed: ctx.isolation.sandboxed(),
        owned_by_task_account: owner == Some(uid),
        allowed: &allowed,
    })
}

/// `path` with symbolic links resolved as far as it exists (the rest
/// appended; `..` refused), and the owner of its nearest existing part.
fn resolve(path: &str) -> Result<(String, Option<u32>), String> {
    use std::os::unix::fs::MetadataExt;
    let p = Path::new(path);
    if !p.is_absolute() || path.split('/').any(|c| c == "..") {
        return Err(format!("`{path}` is not an absolute path without `..`"));
    }
    let mut existing = p;
    let mut rest = Vec::new();
    while std::fs::metadata(existing).is_err() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Err(format!("no part of `{path}` exists")),
        }
    }
    let mut real = std::fs::canonicalize(existing)
        .map_err(|e| format!("cannot resolve `{}`: {e}", existing.display()))?;
    let owner = std::fs::metadata(&real).ok().map(|m| m.uid());
    for name in rest.iter().rev() {
        real.push(name);
    }
    Ok((real.display().to_string(), owner))
}

/// Checks the job's output files against the placement rule: under the
/// working directory, an allowed directory, or (outside the sandbox) a
/// directory of the account the task runs as.
fn check_outputs(
    ctx: &AttemptCtx,
    lease: &Lease,
    cwd: &Path,
    files: &[&Option<PathBuf>],
) -> Result<(), String> {
    if files.iter().all(|f| f.is_none()) {
        return Ok(());
    }
    let uid = ctx.isolation.task_uid(lease)?;
    let owner_name = lease.spec.owner.as_deref().unwrap_or("");
    let allowed =
        trestle_core::batch::workdir::expand_allowed(&ctx.config.allowed_dirs, owner_name);
    let cwd_real = resolve(&cwd.display().to_string())?.0;
    for f in files.iter().copied().flatten() {
        let abs = cwd.join(f);
        let (real, _) = resolve(&abs.display().to_string())?;
        let dir_owner = match Path::new(&real).parent() {
            Some(d) => resolve(&d.display().to_string())?.1,
            None => None,
        };
        if !trestle_core::batch::workdir::output_allowed(
            &real,
            &cwd_real,
            &allowed,
            ctx.isolation.sandboxed(),
            dir_owner == Some(uid),
        ) {
            return Err(format!(
                "output file `{}` is outside the job's directory and not in a directory of the account the task runs as",
                f.display()
            ));
        }
    }
    Ok(())
}

/// Writes an inline batch script into the scratch directory, executable.
async fn write_script(
    scratch: &Path,
    script: &trestle_core::batch::workflow::InlineScript,
) -> Result<(), AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.join(&script.name);
    tokio::fs::write(&path, &script.text)
        .await
        .map_err(|e| AgentError::io("cannot write the batch script", &path, e))?;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(|e| AgentError::io("cannot make the batch script executable", &path, e))
}

/// The files a job's output is written to besides its log: `#SBATCH
/// --output/--error`, or the full log when its queue keeps one.
fn output_files(lease: &Lease) -> (Option<PathBuf>, Option<PathBuf>) {
    let host = crate::config::host_name();
    let ctx = RunContext {
        job_id: lease.job_id,
        spec: &lease.spec,
        node: &host,
    };
    match trestle_core::batch::slurm::output_files(&ctx) {
        Some((out, err)) => (Some(out.into()), err.map(PathBuf::from)),
        // The queue keeps the whole output, which its log may cut.
        None if lease.full_log => (Some(trestle_core::api::FULL_LOG_FILE.into()), None),
        None => (None, None),
    }
}

/// Sends an attempt's start and output as updates.
pub(crate) struct Sink<'a> {
    pub(crate) reporter: &'a ReporterHandle,
    pub(crate) at: &'a AttemptRef,
    pub(crate) seq: u32,
}

impl OutputSink for Sink<'_> {
    async fn started(&mut self) {
        let update = Update::Started {
            at: self.at.clone(),
            time: now_ms(),
        };
        self.reporter.send(update).await;
    }

    async fn log(&mut self, data: String) {
        self.seq += 1;
        let update = Update::Log {
            at: self.at.clone(),
            seq: self.seq,
            data,
        };
        self.reporter.send(update).await;
    }
}

/// Removes the attempt from the table when the task ends in any way
/// (including a panic), giving its capacity back.
pub(crate) struct SlotGuard<'a> {
    pub(crate) attempts: &'a Attempts,
    pub(crate) key: AttemptKey,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.attempts.remove(self.key);
    }
}

/// Runs one leased attempt to its end and reports it. The attempt must be
/// in the table already (`stop` is its stop receiver).
pub async fn run_attempt(ctx: Arc<AttemptCtx>, lease: Lease, stop: StopRx) {
    let key = AttemptKey {
        job_id: lease.job_id,
        attempt: lease.attempt,
    };
    let slot = SlotGuard {
        attempts: &ctx.attempts,
        key,
    };
    let at = AttemptRef {
        job_id: lease.job_id,
        attempt: lease.attempt,
        token: lease.token.clone(),
    };
    let mut sink = Sink {
        reporter: &ctx.reporter,
        at: &at,
        seq: 0,
    };
    let scratch = match ctx.scratch.acquire(lease.job_id, lease.attempt).await {
        Ok(dir) => match ctx.isolation.reclaim(&dir) {
            Ok(()) => Ok(dir),
            Err(e) => Err(Finish::worker_error(&e)),
        },
        Err(e) => Err(Finish::worker_error(&e)),
    };
    let mut left_empty = false;
    let mut usage = None;
    let finish = match &scratch {
        Ok(dir) => {
            execute(
                &ctx,
                &lease,
                dir,
                &mut sink,
                stop,
                &mut left_empty,
                &mut usage,
            )
            .await
        }
        Err(f) => Some(f.clone()),
    };
    if let Some(f) = finish {
        tracing::debug!(
            job = lease.job_id,
            attempt = lease.attempt,
            reason = f.reason.as_str(),
            "attempt ended"
        );
        let update = Update::Finished {
            at: at.clone(),
            reason: f.reason,
            exit_code: f.exit_code,
            time: now_ms(),
            message: f.message,
            cpu_ms: usage.map(|u| u.cpu_ms),
            max_rss_kib: usage.map(|u| u.max_rss_kib),
        };
        ctx.reporter.send(update).await;
    } else {
        tracing::info!(
            job = lease.job_id,
            attempt = lease.attempt,
            "attempt dropped: lease lost"
        );
    }
    drop(slot);
    if let Ok(dir) = scratch {
        ctx.scratch.release(dir, left_empty).await;
    }
}

/// Ends a leased task of a kind this worker does not run, as a worker
/// error (it is never run as a batch job).
pub async fn refuse(ctx: &AttemptCtx, lease: &Lease, kind: trestle_core::task::TaskKind) {
    let key = AttemptKey {
        job_id: lease.job_id,
        attempt: lease.attempt,
    };
    let _slot = SlotGuard {
        attempts: &ctx.attempts,
        key,
    };
    tracing::warn!(
        job = lease.job_id,
        kind = kind.as_str(),
        "refusing a task of a kind this worker does not run"
    );
    ctx.reporter
        .send(Update::Finished {
            at: AttemptRef {
                job_id: lease.job_id,
                attempt: lease.attempt,
                token: lease.token.clone(),
            },
            reason: AttemptReason::WorkerError,
            exit_code: None,
            time: now_ms(),
            message: Some(format!("this worker does not run {} tasks", kind.as_str())),
            cpu_ms: None,
            max_rss_kib: None,
        })
        .await;
}

/// Resolves with the stop reason once one is set.
async fn stop_requested(stop: &mut StopRx) -> StopReason {
    loop {
        if let Some(reason) = *stop.borrow_and_update() {
            return reason;
        }
        if stop.changed().await.is_err() {
            return StopReason::Stale;
        }
    }
}

/// Resolves once the lease is known to be stale.
async fn lease_lost(stop: &mut StopRx) {
    loop {
        if *stop.borrow_and_update() == Some(StopReason::Stale) {
            return;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

async fn execute(
    ctx: &AttemptCtx,
    lease: &Lease,
    scratch: &Path,
    sink: &mut Sink<'_>,
    mut stop: StopRx,
    left_empty: &mut bool,
    usage: &mut Option<crate::sampling::ProcUsage>,
) -> Option<Finish> {
    let spec = &lease.spec;
    let capacity = ctx.attempts.capacity();
    if !capacity.fits(&spec.resources) {
        let e = AgentError::Config(format!(
            "the job needs {} CPUs, {} MiB and {} GPUs; this worker has {} CPUs, {} MiB and {} GPUs",
            spec.resources.cpus,
            spec.resources.mem_mib,
            spec.resources.gpus,
            capacity.cpus,
            capacity.mem_mib,
            capacity.gpus
        ));
        return Some(Finish::worker_error(&e));
    }
    let upstream = if spec.flow.after.is_empty() {
        0
    } else {
        tokio::select! {
            r = crate::upstream::stage_upstream(&ctx.client, lease.job_id, scratch) => match r {
                Ok(n) => n,
                Err(e) => return Some(Finish::worker_error(&e)),
            },
            reason = stop_requested(&mut stop) => return Finish::stopped(reason),
        }
    };
    let staged = upstream
        + if spec.inputs.is_some() {
            tokio::select! {
                r = stage_inputs(&ctx.client, lease.job_id, scratch) => match r {
                    Ok(n) => n,
                    Err(e) => return Some(Finish::worker_error(&e)),
                },
                reason = stop_requested(&mut stop) => return Finish::stopped(reason),
            }
        } else {
            0
        };
    let cache = ctx.config.work_dir.join("study-cache");
    let studies = if spec.studies.is_empty() {
        Vec::new()
    } else {
        tokio::select! {
            r = crate::studies::stage(&ctx.client, lease.job_id, scratch, &cache, &spec.studies) => match r {
                Ok(s) => s,
                Err(e) => {
                    sink.log(format!("trestle: {e}\n")).await;
                    return Some(Finish::worker_error(&e));
                }
            },
            reason = stop_requested(&mut stop) => return Finish::stopped(reason),
        }
    };
    for s in &studies {
        sink.log(format!(
            "trestle: study `{}` version {} at {} ({}): {} files, {} from this host's cache\n",
            s.attach.study,
            s.version,
            s.dir.display(),
            if s.attach.mode == trestle_core::study::attach::AttachMode::Rw {
                "read-write"
            } else {
                "read-only"
            },
            s.files.len(),
            s.cached
        ))
        .await;
    }
    let mut staged = staged + studies.iter().map(|s| s.files.len()).sum::<usize>();
    // An `#SBATCH` script that travelled in the spec.
    if let Some(script) = spec.flow.slurm.as_ref().and_then(|s| s.script.as_ref()) {
        if let Err(e) = write_script(scratch, script).await {
            return Some(Finish::worker_error(&e));
        }
        staged += 1;
    }
    let cwd = match placement(ctx, lease) {
        Placement::Scratch { note } => {
            if let Some(n) = note {
                sink.log(format!("trestle: {n}\n")).await;
            }
            match work_dir(scratch, spec.workdir.as_deref()).await {
                Ok(d) => d,
                Err(e) => return Some(Finish::worker_error(&e)),
            }
        }
        // `#SBATCH`: the submit directory or `--chdir`, on a file system
        // the worker shares, as under Slurm.
        // With per-user execution the worker (root) does not create it:
        // the directory must exist, as under Slurm.
        Placement::InPlace(dir) if ctx.isolation.runs_as_owner() => {
            if !Path::new(&dir).is_dir() {
                let why = format!("the job's directory `{dir}` does not exist");
                sink.log(format!("trestle: {why}\n")).await;
                return Some(Finish {
                    reason: AttemptReason::WorkerError,
                    exit_code: None,
                    message: Some(why),
                });
            }
            PathBuf::from(dir)
        }
        Placement::InPlace(dir) => match tokio::fs::create_dir_all(&dir).await {
            Ok(()) => PathBuf::from(dir),
            Err(e) => {
                let e = AgentError::io("cannot use the job's directory", Path::new(&dir), e);
                return Some(Finish::worker_error(&e));
            }
        },
        Placement::Refused(why) => {
            sink.log(format!("trestle: {why}\n")).await;
            return Some(Finish {
                reason: AttemptReason::WorkerError,
                exit_code: None,
                message: Some(why),
            });
        }
    };
    let before = if staged == 0 {
        Snapshot::empty()
    } else {
        let root = scratch.to_path_buf();
        match tokio::task::spawn_blocking(move || Snapshot::take(&root)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let e = AgentError::io("cannot read the scratch directory", scratch, e);
                return Some(Finish::worker_error(&e));
            }
            Err(e) => return Some(Finish::worker_error(&AgentError::Stage(e.to_string()))),
        }
    };
    let (stdout_file, stderr_file) = output_files(lease);
    if let Err(why) = check_outputs(ctx, lease, &cwd, &[&stdout_file, &stderr_file]) {
        sink.log(format!("trestle: {why}\n")).await;
        return Some(Finish {
            reason: AttemptReason::WorkerError,
            exit_code: None,
            message: Some(why),
        });
    }
    let key = AttemptKey {
        job_id: lease.job_id,
        attempt: lease.attempt,
    };
    if let Err(reason) = ctx.attempts.admit(key, &mut stop).await {
        return Finish::stopped(reason);
    }
    let task = match ctx.isolation.prepare(lease, scratch, &cwd) {
        Ok(t) => t,
        Err(why) => {
            sink.log(format!("trestle: {why}\n")).await;
            return Some(Finish {
                reason: AttemptReason::WorkerError,
                exit_code: None,
                message: Some(why),
            });
        }
    };
    let timeout = (spec.timeout_secs > 0).then(|| Duration::from_secs(spec.timeout_secs));
    let process = ProcessSpec {
        command: spec.command.clone(),
        cwd,
        env: {
            let mut env = job_env(lease, scratch);
            env.extend(crate::studies::env(&studies));
            env
        },
        timeout,
        success_string: spec.success_string.clone(),
        max_chunk: ctx.config.max_log_chunk,
        flush_interval: ctx.config.log_flush,
        kill_grace: ctx.config.kill_grace,
        stdout_file,
        stderr_file,
        isolation: task.exec.clone(),
        tracker: Some(crate::sampling::Tracker::new(ctx.attempts.clone(), key)),
    };
    ctx.attempts.sampler.track(key, scratch, &spec.resources);
    let result = run_process(&process, sink, &mut stop).await;
    ctx.attempts.sampler.untrack(key);
    *usage = result.usage;
    let out_of_memory = ctx.isolation.finish(task).await;
    // The process is gone: the next attempt may start while this one
    // uploads and reports.
    ctx.attempts.release_capacity(key);
    let ro_check = crate::studies::release(&studies, &cache);
    match result.stopped {
        Some(StopReason::Stale) => return None,
        Some(_) => {
            // Cancelled or handed back: its outputs are of no use.
            return Some(Finish {
                reason: attempt_reason(&result.end()),
                exit_code: result.exit_code,
                message: result.message(timeout),
            });
        }
        None => {}
    }
    let uploaded = tokio::select! {
        r = upload_outputs(&ctx.client, lease, scratch, &before) => r,
        () = lease_lost(&mut stop) => return None,
    };
    match uploaded {
        Ok(UploadOutcome::Stale) => return None,
        Ok(UploadOutcome::Done { skipped, empty, .. }) => {
            *left_empty = empty;
            for s in skipped {
                sink.log(format!("trestle: output not uploaded: {s}\n"))
                    .await;
            }
        }
        Err(e) => {
            sink.log(format!("trestle: {e}\n")).await;
            return Some(Finish {
                exit_code: result.exit_code,
                ..Finish::worker_error(&e)
            });
        }
    }
    if let Err(msg) = ro_check {
        sink.log(format!("trestle: {msg}\n")).await;
        return Some(Finish {
            reason: AttemptReason::ExitCode,
            exit_code: result.exit_code,
            message: Some(msg),
        });
    }
    if attempt_reason(&result.end()) == AttemptReason::Success && !studies.is_empty() {
        let at = AttemptRef {
            job_id: lease.job_id,
            attempt: lease.attempt,
            token: lease.token.clone(),
        };
        match crate::studies::commit(&ctx.client, &at, &studies).await {
            Ok(lines) => {
                for l in lines {
                    sink.log(format!("trestle: {l}\n")).await;
                }
            }
            Err(e) => {
                sink.log(format!("trestle: {e}\n")).await;
                return Some(Finish {
                    exit_code: result.exit_code,
                    ..Finish::worker_error(&e)
                });
            }
        }
    }
    if out_of_memory && result.exit_code != Some(0) {
        let msg = format!(
            "killed for using more than its memory limit of {} MiB (out of memory)",
            spec.resources.mem_mib
        );
        sink.log(format!("trestle: {msg}\n")).await;
        return Some(Finish {
            reason: AttemptReason::OutOfMemory,
            exit_code: result.exit_code,
            message: Some(msg),
        });
    }
    Some(Finish {
        reason: attempt_reason(&result.end()),
        exit_code: result.exit_code,
        message: result.message(timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::lease;

    #[test]
    fn job_env_describes_the_attempt() {
        let mut l = lease(42, 2);
        l.attempt = 3;
        l.spec.env.insert("FOO".into(), "bar".into());
        l.spec.resources.mem_mib = 512;
        let env = job_env(&l, Path::new("/w/job-42-3"));
        let get = |k: &str| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("FOO"), Some("bar"));
        assert_eq!(get("TRESTLE_JOB_ID"), Some("42"));
        assert_eq!(get("TRESTLE_ATTEMPT"), Some("3"));
        assert_eq!(get("TRESTLE_CPUS"), Some("2"));
        assert_eq!(get("TRESTLE_MEM_MIB"), Some("512"));
        assert_eq!(get("TRESTLE_JOB_NAME"), Some("test-job"));
        assert_eq!(get("TRESTLE_QUEUE"), Some("default"));
        assert_eq!(get("TRESTLE_SCRATCH"), Some("/w/job-42-3"));
        assert_eq!(get("HOME"), Some("/w/job-42-3"), "its own home");
        assert_eq!(get("OMP_NUM_THREADS"), Some("2"));
        assert_eq!(get("OPENBLAS_NUM_THREADS"), Some("2"));
        // The job's own settings win (the last value of a name counts).
        l.spec.env.insert("OMP_NUM_THREADS".into(), "1".into());
        let env = job_env(&l, Path::new("/w"));
        let last = env.iter().rev().find(|(k, _)| k == "OMP_NUM_THREADS");
        assert_eq!(last.map(|(_, v)| v.as_str()), Some("1"));
    }

    #[test]
    fn array_children_and_sbatch_jobs_get_their_variables() {
        let mut l = lease(42, 1);
        l.spec.flow.array =
            Some(trestle_core::batch::array::ArraySpec::parse("a", "0-9:3").unwrap());
        l.spec.flow.array_task = Some(trestle_core::batch::array::ArrayTask {
            parent: 40,
            index: 6,
        });
        let env = job_env(&l, Path::new("/w"));
        let get = |env: &[(String, String)], k: &str| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get(&env, "TRESTLE_ARRAY_INDEX").as_deref(), Some("6"));
        assert_eq!(get(&env, "TRESTLE_ARRAY_JOB_ID").as_deref(), Some("40"));
        assert_eq!(
            get(&env, "SLURM_ARRAY_TASK_ID"),
            None,
            "only for sbatch jobs"
        );
        assert_eq!(output_files(&l), (None, None));
        l.spec.flow.slurm = Some(trestle_core::batch::workflow::SlurmSpec {
            output: Some("out-%A_%a.txt".into()),
            ntasks: 1,
            cpus_per_task: 1,
            ..Default::default()
        });
        let env = job_env(&l, Path::new("/w"));
        assert_eq!(get(&env, "SLURM_ARRAY_TASK_ID").as_deref(), Some("6"));
        assert_eq!(get(&env, "SLURM_ARRAY_TASK_COUNT").as_deref(), Some("4"));
        assert_eq!(get(&env, "SLURM_JOB_ID").as_deref(), Some("42"));
        assert_eq!(
            output_files(&l),
            (Some(PathBuf::from("out-40_6.txt")), None)
        );
    }

    #[test]
    fn stops_before_the_run() {
        assert_eq!(Finish::stopped(StopReason::Stale), None);
        assert_eq!(
            Finish::stopped(StopReason::Release).unwrap().reason,
            AttemptReason::Released
        );
        assert_eq!(
            Finish::stopped(StopReason::Cancel).unwrap().reason,
            AttemptReason::Cancelled
        );
    }
}
