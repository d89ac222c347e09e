//! The `local` provider: worker processes on this host.

use crate::{
    ComputeError, INSTANCE_ID_ENV, InstanceStatus, LaunchRequest, Provider, ProviderWorker, Result,
    WorkerCommand, now_ms,
};
use async_trait::async_trait;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::process::{Child, Command};

/// One process this provider started.
struct LocalChild {
    child: Child,
    worker: ProviderWorker,
}

/// The processes this provider started, and whether it is stopping. One
/// lock guards both, and a launch holds it from its check of `stopping`
/// until its process is recorded, so a launch either completes before a
/// shutdown looks (and is stopped by it) or is refused.
#[derive(Default)]
struct Children {
    map: HashMap<String, LocalChild>,
    stopping: bool,
}

/// Worker processes on this host, started with `--cpus`/`--mem-mib`/`--gpus`
/// appended to the configured command.
pub struct LocalProvider {
    cmd: WorkerCommand,
    children: Mutex<Children>,
    ended: Mutex<HashMap<String, crate::EndedWorker>>,
}

impl LocalProvider {
    /// A provider that starts workers with `cmd`.
    pub fn new(cmd: WorkerCommand) -> LocalProvider {
        LocalProvider {
            cmd,
            children: Mutex::default(),
            ended: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses every later launch ([`ComputeError::Stopping`]); workers
    /// already started keep running.
    pub fn stop_launching(&self) {
        self.lock().stopping = true;
    }

    /// True once [`LocalProvider::stop_launching`] or
    /// [`LocalProvider::shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    /// Refuses every later launch, asks every worker to stop (SIGTERM:
    /// they hand their jobs back) and waits up to `grace` for them, then
    /// kills what is left.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        let ids: Vec<String> = {
            let mut c = self.lock();
            c.stopping = true;
            c.map.keys().cloned().collect()
        };
        for id in &ids {
            let _ = self.terminate(id).await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if self.list().await.map(|l| l.is_empty()).unwrap_or(true) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        for c in self.lock().map.values_mut() {
            let _ = c.child.start_kill();
        }
    }
}

/// The variable the autoscaler passes a worker's credential in.
const TOKEN_ENV: &str = "TRESTLE_TOKEN";
/// The variable telling the worker which descriptor holds its credential.
const TOKEN_FD_ENV: &str = "TRESTLE_TOKEN_FD";
/// The descriptor a launched worker reads its credential from.
const TOKEN_FD: i32 = 3;

/// A pipe holding `token` (it fits the pipe's buffer, so nothing blocks),
/// its write end closed: the reader sees the token, then end-of-file.
fn token_pipe(token: &str) -> std::io::Result<std::io::PipeReader> {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe()?;
    writer.write_all(token.as_bytes())?;
    Ok(reader)
}

/// In the child before exec: makes `fd` available as `target`, without
/// close-on-exec.
fn inherit_as(fd: i32, target: i32) -> std::io::Result<()> {
    // SAFETY: plain descriptor syscalls on descriptors this process owns.
    let rc = unsafe {
        if fd == target {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn new_id() -> String {
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    format!("l-{}", hex::encode(b))
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn launch(&self, req: &LaunchRequest<'_>) -> Result<Vec<ProviderWorker>> {
        let mut out = Vec::new();
        for _ in 0..req.count {
            // Held until the process is recorded (spawning does not wait).
            let mut children = self.lock();
            if children.stopping {
                return if out.is_empty() {
                    Err(ComputeError::Stopping)
                } else {
                    Ok(out)
                };
            }
            let id = new_id();
            // The credential goes through a pipe on descriptor 3, never
            // through the environment (a process's starting environment
            // stays readable in /proc/PID/environ for its whole life).
            let (token, env): (Vec<_>, Vec<_>) = req
                .env
                .iter()
                .chain(self.cmd.env.iter())
                .partition(|(k, _)| k == TOKEN_ENV);
            let token_pipe = match token.first() {
                Some((_, t)) => Some(token_pipe(t).map_err(|e| {
                    ComputeError::Launch(format!("cannot pass the worker's credential: {e}"))
                })?),
                None => None,
            };
            let mut c = Command::new(&self.cmd.program);
            c.args(&self.cmd.args)
                .arg("--cpus")
                .arg(req.shape.cpus.to_string())
                .arg("--mem-mib")
                .arg(req.shape.mem_mib.to_string())
                .arg("--gpus")
                .arg(req.shape.gpus.to_string())
                .envs(env.into_iter().map(|(k, v)| (k, v)))
                .env_remove(TOKEN_ENV)
                .env(INSTANCE_ID_ENV, &id)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(false);
            // Local workers run on the server's host: they share its whole
            // file system with the users submitting there (the sbatch
            // placement rule then decides by ownership), unless the
            // environment says otherwise.
            if std::env::var_os("TRESTLE_SHARED_PATHS").is_none() {
                c.env("TRESTLE_SHARED_PATHS", "/");
            }
            if let Some(reader) = &token_pipe {
                use std::os::fd::AsRawFd;
                let fd = reader.as_raw_fd();
                c.env(TOKEN_FD_ENV, TOKEN_FD.to_string());
                // SAFETY: dup2 and fcntl are async-signal-safe; the closure
                // allocates nothing.
                unsafe {
                    c.pre_exec(move || inherit_as(fd, TOKEN_FD));
                }
            }
            let child = c.spawn().map_err(|e| {
                ComputeError::Launch(format!("{}: {e}", self.cmd.program.display()))
            })?;
            // The child has its copy; ours closes here.
            drop(token_pipe);
            let worker = ProviderWorker {
                id: id.clone(),
                shape_name: Some(req.shape_name.to_string()),
                shape: req.shape,
                status: InstanceStatus::Running,
                launched_at: Some(now_ms()),
            };
            children.map.insert(
                id,
                LocalChild {
                    child,
                    worker: worker.clone(),
                },
            );
            drop(children);
            out.push(worker);
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<ProviderWorker>> {
        let mut children = self.lock();
        let map = &mut children.map;
        let mut gone = Vec::new();
        map.retain(|id, c| match c.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                gone.push((id.clone(), status));
                false
            }
            Err(_) => false,
        });
        if !gone.is_empty() {
            use std::os::unix::process::ExitStatusExt;
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            if ended.len() > 1000 {
                ended.clear();
            }
            for (id, status) in gone {
                ended.insert(
                    id.clone(),
                    crate::EndedWorker {
                        ok: status.success(),
                        cancelled: status.signal() == Some(libc::SIGTERM),
                        what: format!("worker process {id} ended: {status}"),
                    },
                );
            }
        }
        let mut v: Vec<ProviderWorker> = map.values().map(|c| c.worker.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn describe(&self, id: &str) -> Result<Option<crate::EndedWorker>> {
        Ok(self
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned())
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        let children = self.lock();
        let Some(c) = children.map.get(id) else {
            return Err(ComputeError::NotFound(format!("no local worker `{id}`")));
        };
        if let Some(pid) = c.child.id() {
            // SAFETY: plain kill(2) on a child we started and still track.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_core::Capacity;

    #[tokio::test]
    async fn local_provider_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let p = LocalProvider::new(crate::stand_in_worker(dir.path()));
        let shape = Capacity {
            cpus: 1,
            mem_mib: 128,
            gpus: 0,
        };
        crate::conformance(&p, shape, dir.path(), std::time::Duration::from_secs(10)).await;
        p.shutdown(std::time::Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_stopping_provider_launches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = LocalProvider::new(crate::stand_in_worker(dir.path()));
        let req = LaunchRequest {
            shape_name: "s",
            shape: Capacity {
                cpus: 1,
                mem_mib: 128,
                gpus: 0,
            },
            count: 1,
            env: &[],
        };
        assert_eq!(p.launch(&req).await.unwrap().len(), 1);
        assert!(!p.is_stopping());
        p.shutdown(std::time::Duration::from_secs(5)).await;
        assert!(p.is_stopping());
        assert!(p.list().await.unwrap().is_empty(), "the worker was stopped");
        let err = p.launch(&req).await.unwrap_err();
        assert!(matches!(err, ComputeError::Stopping), "{err:?}");
        assert!(p.list().await.unwrap().is_empty(), "nothing was started");
        let q = LocalProvider::new(crate::stand_in_worker(dir.path()));
        q.stop_launching();
        assert!(matches!(q.launch(&req).await, Err(ComputeError::Stopping)));
        assert!(q.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_missing_program_is_a_launch_error() {
        let p = LocalProvider::new(WorkerCommand {
            program: "/nonexistent/trestle".into(),
            args: vec![],
            env: vec![],
        });
        let err = p
            .launch(&LaunchRequest {
                shape_name: "s",
                shape: Capacity {
                    cpus: 1,
                    mem_mib: 1,
                    gpus: 0,
                },
                count: 1,
                env: &[],
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ComputeError::Launch(_)), "{err:?}");
        assert!(p.list().await.unwrap().is_empty());
    }
}
