//! The `local` provider: worker processes on this host.

use crate::{ComputeError, Provider, ProviderWorker, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::process::{Child, Command};
use trestle_core::Capacity;

/// How to start one worker process: the program, fixed arguments, and
/// environment (the token travels in the environment, not in `argv`).
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program (normally the `trestle` binary itself).
    pub program: PathBuf,
    /// Arguments before the shape flags (normally `["worker", ...]`).
    pub args: Vec<String>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
}

/// Worker processes on this host, started with `--cpus`/`--mem-mib`/`--gpus`
/// appended to the configured command.
pub struct LocalProvider {
    cmd: WorkerCommand,
    children: Mutex<HashMap<String, (Child, Capacity)>>,
}

impl LocalProvider {
    /// A provider that starts workers with `cmd`.
    pub fn new(cmd: WorkerCommand) -> LocalProvider {
        LocalProvider {
            cmd,
            children: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Child, Capacity)>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks every worker to stop (SIGTERM: they hand their jobs back) and
    /// waits up to `grace` for them, then kills what is left.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
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
        for (_, (child, _)) in self.lock().iter_mut() {
            let _ = child.start_kill();
        }
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn launch(&self, shape: Capacity, count: u32) -> Result<Vec<ProviderWorker>> {
        let mut out = Vec::new();
        for _ in 0..count {
            let mut c = Command::new(&self.cmd.program);
            c.args(&self.cmd.args)
                .arg("--cpus")
                .arg(shape.cpus.to_string())
                .arg("--mem-mib")
                .arg(shape.mem_mib.to_string())
                .arg("--gpus")
                .arg(shape.gpus.to_string())
                .envs(self.cmd.env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .kill_on_drop(false);
            let child = c.spawn().map_err(|e| {
                ComputeError::Launch(format!("{}: {e}", self.cmd.program.display()))
            })?;
            let id = child
                .id()
                .map(|p| p.to_string())
                .ok_or_else(|| ComputeError::Launch("worker exited at once".into()))?;
            self.lock().insert(id.clone(), (child, shape));
            out.push(ProviderWorker { id, shape });
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<ProviderWorker>> {
        let mut map = self.lock();
        map.retain(|_, (child, _)| matches!(child.try_wait(), Ok(None)));
        let mut v: Vec<ProviderWorker> = map
            .iter()
            .map(|(id, (_, shape))| ProviderWorker {
                id: id.clone(),
                shape: *shape,
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        let map = self.lock();
        let Some((child, _)) = map.get(id) else {
            return Err(ComputeError::Other(format!("no local worker `{id}`")));
        };
        if let Some(pid) = child.id() {
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

    #[tokio::test]
    async fn local_provider_conforms() {
        // A stand-in worker: a shell that exits on SIGTERM.
        let p = LocalProvider::new(WorkerCommand {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                "trap 'exit 0' TERM; while :; do sleep 0.05; done".into(),
                "worker".into(),
            ],
            env: vec![],
        });
        let shape = Capacity {
            cpus: 1,
            mem_mib: 128,
            gpus: 0,
        };
        crate::conformance(&p, shape, std::time::Duration::from_secs(5)).await;
        p.shutdown(std::time::Duration::from_secs(1)).await;
    }
}
