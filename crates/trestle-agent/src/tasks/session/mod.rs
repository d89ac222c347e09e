//! The session task kind: hosts one workspace. It restores the home,
//! starts the app on a Unix socket inside the home's private session
//! directory with a per-launch secret, waits for the readiness check,
//! reports the secret, registers the session for the tunnel
//! ([`Hosted`]), reports the app's activity, and on a stop (the job's
//! cancel) or the worker's shutdown stops the app and saves the home.
//! An app that exits on its own, or never becomes ready within its start
//! timeout, ends the task (the workspace FAILED, its output in the log).

pub mod home;
mod hosted;
pub mod probe;

pub use hosted::{Hosted, HostedSession};

use super::batch::{AttemptCtx, Finish, Sink, SlotGuard, THREAD_ENV, now_ms};
use crate::error::AgentError;
use crate::process::{OutputSink, ProcessSpec, run_process};
use crate::state::{StopReason, StopRx};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use trestle_core::AttemptReason;
use trestle_core::api::workspace::{SessionEvent, SessionReport, SessionSpec};
use trestle_core::api::{AttemptKey, AttemptRef, Lease, Update};
use trestle_core::batch::outcome::attempt_reason;
use trestle_core::workspace::kind::{ActivitySource, AppKind};
use trestle_core::workspace::params::{Bindings, render};

/// How often the app's activity is read and reported.
const ACTIVITY_EVERY: Duration = Duration::from_secs(10);
/// How often readiness is checked while the app starts.
const READY_POLL: Duration = Duration::from_millis(100);

/// A Unix socket path is at most this long (`sun_path`).
const MAX_SOCKET_PATH: usize = 104;

/// A new per-launch secret: 32 random bytes, hex.
fn new_secret() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Runs one leased session to its end and reports it.
pub async fn run(ctx: Arc<AttemptCtx>, lease: Lease, stop: StopRx) {
    let Some(spec) = lease.spec.session.clone() else {
        return super::batch::refuse(&ctx, &lease, lease.spec.task).await;
    };
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
    let mut usage = None;
    let finish = match &scratch {
        Ok(dir) => host(&ctx, &lease, &spec, &at, dir, &mut sink, stop, &mut usage).await,
        Err(f) => Some(f.clone()),
    };
    if let Some(f) = finish {
        if let Some(m) = &f.message {
            sink.log(format!("trestle: {m}\n")).await;
        }
        ctx.reporter
            .send(Update::Finished {
                at: at.clone(),
                reason: f.reason,
                exit_code: f.exit_code,
                time: now_ms(),
                message: f.message,
                cpu_ms: usage.map(|u| u.cpu_ms),
                max_rss_kib: usage.map(|u| u.max_rss_kib),
            })
            .await;
    }
    drop(slot);
    if let Ok(dir) = scratch {
        // The home was saved (or is lost with the session): never reused.
        let _ = ctx.isolation.reclaim(&dir);
        let _ = tokio::fs::remove_dir_all(&dir).await;
        ctx.scratch.release(dir, false).await;
    }
}

/// Forwards the lease's stop to the process, and stops it when the app
/// is not ready in time. Resolves never; `ready` turns true once the
/// readiness check answered 200.
struct Supervisor<'a> {
    ctx: &'a AttemptCtx,
    spec: &'a SessionSpec,
    at: &'a AttemptRef,
    socket: PathBuf,
    home: PathBuf,
    secret: String,
    env: Vec<(String, String)>,
    run_as: Option<(u32, u32)>,
    to_process: watch::Sender<Option<StopReason>>,
}

/// What the supervisor saw.
#[derive(Default)]
struct Seen {
    ready: bool,
    start_timed_out: bool,
}

impl Supervisor<'_> {
    fn header(&self) -> Option<(String, String)> {
        self.spec.secret_header.as_ref().map(|h| {
            let b = Bindings {
                secret: &self.secret,
                ..Default::default()
            };
            (h.name.clone(), render(&h.value, &b))
        })
    }

    async fn report(&self, event: SessionEvent) {
        let worker = self.ctx.session.id();
        let r = SessionReport {
            at: self.at.clone(),
            event,
        };
        if let Err(e) = self.ctx.client.session_report(&worker, &r).await {
            tracing::warn!(job = self.at.job_id, error = %e, "cannot report on a workspace session");
        }
    }

    async fn run(&self, mut stop: StopRx, seen: &std::sync::Mutex<Seen>) {
        let forward = async {
            loop {
                let reason = *stop.borrow_and_update();
                if reason.is_some() {
                    let _ = self.to_process.send(reason);
                }
                if stop.changed().await.is_err() {
                    return std::future::pending::<()>().await;
                }
            }
        };
        let watch_app = async {
            let header = self.header();
            let h = header.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(self.spec.start_timeout_secs);
            if self.spec.app == AppKind::Http {
                let bindings = Bindings {
                    prefix: &self.spec.prefix,
                    secret: &self.secret,
                    ..Default::default()
                };
                let path = render(
                    self.spec.ready_path.as_deref().unwrap_or("{prefix}"),
                    &bindings,
                );
                loop {
                    if let Ok((200, _)) =
                        probe::get(&self.socket, &path, h, Duration::from_secs(2)).await
                    {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        lock(seen).start_timed_out = true;
                        let _ = self.to_process.send(Some(StopReason::Cancel));
                        return std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(READY_POLL).await;
                }
            }
            lock(seen).ready = true;
            let session = Arc::new(HostedSession {
                workspace: self.spec.workspace,
                socket: self.socket.clone(),
                home: self.home.clone(),
                env: self.env.clone(),
                run_as: self.run_as,
                activity: Default::default(),
            });
            self.ctx.hosted.insert(session.clone());
            self.report(SessionEvent::Ready {
                secret: self.secret.clone(),
            })
            .await;
            loop {
                tokio::time::sleep(ACTIVITY_EVERY).await;
                let app = match self.spec.activity {
                    ActivitySource::Jupyter => {
                        probe::jupyter_activity(&self.socket, &self.spec.prefix, h).await
                    }
                    ActivitySource::Traffic => None,
                };
                let (last_attached, attached) = session.activity.get();
                self.report(SessionEvent::Activity {
                    last_app: app.and_then(|a| a.last),
                    busy: app.is_some_and(|a| a.busy),
                    last_attached,
                    attached,
                })
                .await;
            }
        };
        tokio::join!(forward, watch_app);
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[allow(clippy::too_many_arguments)]
async fn host(
    ctx: &AttemptCtx,
    lease: &Lease,
    spec: &SessionSpec,
    at: &AttemptRef,
    home: &Path,
    sink: &mut Sink<'_>,
    mut stop: StopRx,
    usage: &mut Option<crate::sampling::ProcUsage>,
) -> Option<Finish> {
    let res = &lease.spec.resources;
    if !ctx.attempts.capacity().fits(res) {
        let e = AgentError::Config(format!(
            "the workspace needs {} CPUs and {} MiB; this worker has less",
            res.cpus, res.mem_mib
        ));
        return Some(Finish::worker_error(&e));
    }
    let key = AttemptKey {
        job_id: lease.job_id,
        attempt: lease.attempt,
    };
    if let Err(reason) = ctx.attempts.admit(key, &mut stop).await {
        return Finish::stopped(reason);
    }
    let run_dir = home.join(home::RUN_DIR);
    if let Err(e) = tokio::fs::create_dir_all(&run_dir).await {
        return Some(Finish::worker_error(&AgentError::io(
            "cannot create the session directory",
            &run_dir,
            e,
        )));
    }
    let socket = run_dir.join("app.sock");
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        let e = AgentError::Config(format!(
            "the app's socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter work directory",
            socket.display()
        ));
        return Some(Finish::worker_error(&e));
    }
    let task = match ctx.isolation.prepare(lease, home, home) {
        Ok(t) => t,
        Err(why) => {
            return Some(Finish {
                reason: AttemptReason::WorkerError,
                exit_code: None,
                message: Some(why),
            });
        }
    };
    let run_as = task.exec.account.as_ref().map(|(u, g, _)| (*u, *g));
    let worker = ctx.session.id();
    let archive = home.with_extension("home.tar");
    if spec.restore_home {
        let restored = async {
            ctx.client
                .restore_home(&worker, at, &archive)
                .await
                .map_err(|e| format!("cannot fetch the saved home: {e}"))?;
            home::restore(archive.clone(), home.to_path_buf(), run_as)
                .await
                .map_err(|e| format!("cannot restore the saved home: {e}"))
        }
        .await;
        let _ = tokio::fs::remove_file(&archive).await;
        if let Err(why) = restored {
            ctx.isolation.finish(task).await;
            return Some(Finish {
                reason: AttemptReason::WorkerError,
                exit_code: None,
                message: Some(why),
            });
        }
    }
    let secret = match new_secret() {
        Ok(s) => s,
        Err(e) => {
            ctx.isolation.finish(task).await;
            return Some(Finish::worker_error(&AgentError::io(
                "cannot read random bytes",
                Path::new("/dev/urandom"),
                e,
            )));
        }
    };
    let socket_s = socket.display().to_string();
    let home_s = home.display().to_string();
    let bindings = Bindings {
        socket: &socket_s,
        prefix: &spec.prefix,
        secret: &secret,
        home: &home_s,
        port: 0,
        params: Some(&spec.params),
    };
    let command = match &lease.spec.command {
        trestle_core::Command::Argv(a) if !a.is_empty() => {
            trestle_core::Command::Argv(a.iter().map(|x| render(x, &bindings)).collect())
        }
        // A terminal has no app: the session holds its place until stopped.
        _ => trestle_core::Command::Argv(vec!["sleep".into(), "infinity".into()]),
    };
    let cpus = res.cpus.max(1).to_string();
    let mut env: Vec<(String, String)> = vec![("HOME".into(), home_s.clone())];
    env.extend(THREAD_ENV.iter().map(|k| (k.to_string(), cpus.clone())));
    env.extend([
        ("TRESTLE_WS_ID".into(), spec.workspace.to_string()),
        ("TRESTLE_WS_SOCKET".into(), socket_s.clone()),
        ("TRESTLE_WS_PREFIX".into(), spec.prefix.clone()),
        ("TRESTLE_JOB_ID".into(), lease.job_id.to_string()),
    ]);
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| (k.clone(), render(v, &bindings))),
    );
    let shell_env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, v)| !v.contains(&secret) && k != "TRESTLE_JOB_ID")
        .cloned()
        .chain(task.exec.env.iter().cloned())
        .collect();
    let timeout =
        (lease.spec.timeout_secs > 0).then(|| Duration::from_secs(lease.spec.timeout_secs));
    let process = ProcessSpec {
        command,
        cwd: home.to_path_buf(),
        env,
        timeout,
        success_string: None,
        max_chunk: ctx.config.max_log_chunk,
        flush_interval: ctx.config.log_flush,
        kill_grace: ctx.config.kill_grace,
        stdout_file: None,
        stderr_file: None,
        isolation: task.exec.clone(),
        tracker: Some(crate::sampling::Tracker::new(ctx.attempts.clone(), key)),
    };
    ctx.attempts.sampler.track(key, home, res);
    let (to_process, mut process_stop) = watch::channel(None);
    let sup = Supervisor {
        ctx,
        spec,
        at,
        socket,
        home: home.to_path_buf(),
        secret,
        env: shell_env,
        run_as,
        to_process,
    };
    let seen = std::sync::Mutex::new(Seen::default());
    let result = {
        let proc_fut = run_process(&process, sink, &mut process_stop);
        tokio::pin!(proc_fut);
        tokio::select! {
            r = &mut proc_fut => r,
            () = sup.run(stop, &seen) => unreachable_end(),
        }
    };
    ctx.attempts.sampler.untrack(key);
    *usage = result.usage;
    ctx.hosted.remove(spec.workspace);
    let out_of_memory = ctx.isolation.finish(task).await;
    ctx.attempts.release_capacity(key);
    let (ready, start_timed_out) = {
        let s = lock(&seen);
        (s.ready, s.start_timed_out)
    };
    if start_timed_out {
        return Some(Finish {
            reason: AttemptReason::Timeout,
            exit_code: result.exit_code,
            message: Some(format!(
                "the app did not become ready within {} s",
                spec.start_timeout_secs
            )),
        });
    }
    match result.stopped {
        Some(StopReason::Stale) => None,
        Some(reason) => {
            // Stopped (or the worker shuts down): save the home.
            if ready || spec.restore_home {
                save_home(ctx, spec, at, home, &archive, run_as, sink).await;
            }
            Some(Finish {
                reason: if reason == StopReason::Release {
                    AttemptReason::Released
                } else {
                    AttemptReason::Cancelled
                },
                exit_code: result.exit_code,
                message: None,
            })
        }
        None if out_of_memory => Some(Finish {
            reason: AttemptReason::OutOfMemory,
            exit_code: result.exit_code,
            message: Some(format!(
                "the app used more than its memory limit of {} MiB",
                res.mem_mib
            )),
        }),
        None => Some(Finish {
            reason: attempt_reason(&result.end()),
            exit_code: result.exit_code,
            message: Some(match result.exit_code {
                Some(c) => format!("the app exited with code {c}"),
                None => "the app ended".to_string(),
            }),
        }),
    }
}

/// The supervisor never ends on its own.
fn unreachable_end() -> crate::process::ProcessResult {
    crate::process::ProcessResult::default()
}

async fn save_home(
    ctx: &AttemptCtx,
    spec: &SessionSpec,
    at: &AttemptRef,
    home: &Path,
    archive: &Path,
    run_as: Option<(u32, u32)>,
    sink: &mut Sink<'_>,
) {
    let limit = spec.home_limit_mib.saturating_mul(1024 * 1024);
    let worker = ctx.session.id();
    let saved = async {
        let size = home::save(home.to_path_buf(), archive.to_path_buf(), limit, run_as)
            .await
            .map_err(|e| e.to_string())?;
        ctx.client
            .save_home(&worker, at, archive)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<u64, String>(size)
    }
    .await;
    let _ = tokio::fs::remove_file(archive).await;
    match saved {
        Ok(size) => {
            sink.log(format!("trestle: home saved ({size} bytes)\n"))
                .await
        }
        Err(error) => {
            sink.log(format!("trestle: the home could not be saved: {error}\n"))
                .await;
            let r = SessionReport {
                at: at.clone(),
                event: SessionEvent::SaveFailed { error },
            };
            let _ = ctx.client.session_report(&worker, &r).await;
        }
    }
}
