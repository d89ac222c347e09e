//! Compute environments and queues as this server sees them: a cache of
//! what the database holds (refreshed every second and after every change
//! made here, so all servers converge), the queues each CE's workers may
//! lease from, and the providers that launch the CEs' workers.
//!
//! Routing: a queue lists CEs in order of preference; a queue that lists
//! none (or is not declared at all) is served by every CE. A worker
//! launched by a CE leases only from the queues that CE serves; a worker
//! started by hand (no CE) leases from every queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use trestle_compute::{LocalProvider, Provider, SlurmConfig, SlurmProvider, WorkerCommand};
use trestle_core::compute::scale::QueueRoute;
use trestle_core::compute::{ComputeEnvSpec, ProviderKind};
use trestle_store::{ComputeEnvRecord, QueueRecord, Store};

/// How launched workers are started, where the CE does not say.
#[derive(Debug, Clone)]
pub struct LaunchDefaults {
    /// URLs launched workers use to reach the servers.
    pub server_urls: Vec<String>,
    /// The `trestle` binary (this one, normally).
    pub program: PathBuf,
    /// Scratch root of local workers.
    pub scratch_dir: PathBuf,
}

/// What the database says, plus what follows from it.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// CEs, by name.
    pub envs: Vec<ComputeEnvRecord>,
    /// Declared queues, by name.
    pub queues: Vec<QueueRecord>,
    /// Per CE: the queues its workers must not lease from (`,a,b,`).
    exclude: HashMap<String, String>,
}

impl Topology {
    /// Builds the derived routing from the records.
    pub fn new(envs: Vec<ComputeEnvRecord>, queues: Vec<QueueRecord>) -> Topology {
        let mut exclude = HashMap::new();
        for e in &envs {
            let mut s = String::from(",");
            for q in &queues {
                let listed = &q.spec.compute_environments;
                if !listed.is_empty() && !listed.contains(&e.spec.name) {
                    s.push_str(&q.spec.name);
                    s.push(',');
                }
            }
            exclude.insert(e.spec.name.clone(), s);
        }
        Topology {
            envs,
            queues,
            exclude,
        }
    }

    /// The queues a worker of `env` must not lease from.
    pub fn exclusions(&self, env: Option<&str>) -> &str {
        env.and_then(|e| self.exclude.get(e))
            .map(String::as_str)
            .unwrap_or(",")
    }

    /// A CE by name.
    pub fn env(&self, name: &str) -> Option<&ComputeEnvRecord> {
        self.envs.iter().find(|e| e.spec.name == name)
    }

    /// The route of `queue`: its declared CEs, or every CE by name.
    pub fn route(&self, queue: &str) -> QueueRoute {
        match self.queues.iter().find(|q| q.spec.name == queue) {
            Some(q) if !q.spec.compute_environments.is_empty() => QueueRoute {
                name: queue.to_string(),
                priority: q.spec.priority,
                envs: q.spec.compute_environments.clone(),
            },
            other => QueueRoute {
                name: queue.to_string(),
                priority: other.map(|q| q.spec.priority).unwrap_or(0),
                envs: self.envs.iter().map(|e| e.spec.name.clone()).collect(),
            },
        }
    }
}

/// One provider built for one CE's settings.
struct Built {
    spec: ComputeEnvSpec,
    provider: Arc<dyn Provider>,
}

/// The local providers this server built, and whether it is shutting
/// down (one lock: a provider built while the shutdown begins is either
/// seen by it or built already refusing launches).
#[derive(Default)]
struct Locals {
    providers: Vec<Arc<LocalProvider>>,
    stopping: bool,
}

/// The compute side of the server's state.
pub struct Compute {
    topology: RwLock<Arc<Topology>>,
    worker_envs: Mutex<HashMap<String, Option<String>>>,
    providers: Mutex<HashMap<String, Built>>,
    locals: Mutex<Locals>,
    /// Launch defaults.
    pub defaults: LaunchDefaults,
    /// This server's leader leases.
    pub leadership: Arc<crate::leader::Leadership>,
}

impl Compute {
    /// Empty until the first [`Compute::refresh`].
    pub fn new(defaults: LaunchDefaults, leadership: Arc<crate::leader::Leadership>) -> Compute {
        Compute {
            topology: RwLock::default(),
            worker_envs: Mutex::default(),
            providers: Mutex::default(),
            locals: Mutex::default(),
            defaults,
            leadership,
        }
    }

    /// The current topology.
    pub fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads CEs and queues from the store.
    pub async fn refresh(&self, store: &dyn Store) -> trestle_store::Result<()> {
        let t = Topology::new(store.compute_envs().await?, store.queue_records().await?);
        *self.topology.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(t);
        Ok(())
    }

    /// Remembers the CE of a worker that registered here.
    pub fn remember_worker(&self, worker: &str, env: Option<String>) {
        let mut m = self.worker_envs.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(worker.to_string(), env);
    }

    /// The queues `worker` must not lease from.
    pub async fn exclusions_for(
        &self,
        store: &dyn Store,
        worker: &str,
    ) -> trestle_store::Result<String> {
        let known = self
            .worker_envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(worker)
            .cloned();
        let env = match known {
            Some(e) => e,
            None => {
                // Registered through another server: look it up once.
                let e = store.worker_compute_env(worker).await?.flatten();
                self.remember_worker(worker, e.clone());
                e
            }
        };
        Ok(self.topology().exclusions(env.as_deref()).to_string())
    }

    /// The provider for a CE's current settings (built on first use and
    /// again whenever the settings change).
    pub fn provider(&self, spec: &ComputeEnvSpec) -> Arc<dyn Provider> {
        let mut map = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(&spec.name)
            && b.spec == *spec
        {
            return b.provider.clone();
        }
        let provider = self.build(spec);
        map.insert(
            spec.name.clone(),
            Built {
                spec: spec.clone(),
                provider: provider.clone(),
            },
        );
        provider
    }

    fn worker_command(&self, spec: &ComputeEnvSpec) -> WorkerCommand {
        let d = &self.defaults;
        let mut args = vec![
            "worker".to_string(),
            "--server".into(),
            d.server_urls.join(","),
            "--compute-env".into(),
            spec.name.clone(),
            "--prefetch".into(),
            spec.prefetch.to_string(),
        ];
        // Without a floor to keep, workers end by themselves when idle (a
        // pilot's allocation ends with it); otherwise the autoscaler
        // retires the idle ones above min_vcpus.
        if spec.min_vcpus == 0 {
            args.push("--idle-exit".into());
            args.push(format!("{}s", spec.idle_timeout_secs.max(1)));
        }
        let work_dir = match (&spec.work_dir, spec.provider) {
            (Some(w), _) => Some(w.clone()),
            (None, ProviderKind::Local) => Some(d.scratch_dir.display().to_string()),
            (None, _) => None,
        };
        if let Some(w) = work_dir {
            args.push("--work-dir".into());
            args.push(w);
        }
        WorkerCommand {
            program: spec
                .program
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| d.program.clone()),
            args,
            env: vec![],
        }
    }

    fn build(&self, spec: &ComputeEnvSpec) -> Arc<dyn Provider> {
        let command = self.worker_command(spec);
        match (spec.provider, &spec.slurm) {
            (ProviderKind::Slurm, Some(s)) => Arc::new(SlurmProvider::new(SlurmConfig {
                env_name: spec.name.clone(),
                job_name: format!("trestle-{}", spec.name),
                command,
                shapes: spec
                    .shapes
                    .iter()
                    .map(|s| (s.name.clone(), s.capacity()))
                    .collect(),
                partition: s.partition.clone(),
                account: s.account.clone(),
                qos: s.qos.clone(),
                extra_args: s.extra_args.clone(),
                time_limit_secs: s.time_limit_secs,
                log_dir: s.log_dir.as_ref().map(PathBuf::from),
            })),
            _ => {
                let p = Arc::new(LocalProvider::new(command));
                let mut locals = self.locals.lock().unwrap_or_else(|p| p.into_inner());
                if locals.stopping {
                    p.stop_launching();
                }
                locals.providers.push(p.clone());
                p
            }
        }
    }

    /// Begins this server's shutdown: from now on the autoscaler plans
    /// and launches nothing, and every local provider (built already or
    /// later) refuses launches. Idempotent.
    pub fn begin_shutdown(&self) {
        let mut locals = self.locals.lock().unwrap_or_else(|p| p.into_inner());
        locals.stopping = true;
        for p in &locals.providers {
            p.stop_launching();
        }
    }

    /// True once [`Compute::begin_shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.locals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopping
    }

    /// Begins the shutdown ([`Compute::begin_shutdown`]), then stops every
    /// local worker this server started (they hand their jobs back
    /// first), including one whose launch raced the shutdown.
    pub async fn shutdown_local(&self, grace: Duration) {
        self.begin_shutdown();
        let locals: Vec<Arc<LocalProvider>> = self
            .locals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .providers
            .clone();
        futures::future::join_all(locals.iter().map(|l| l.shutdown(grace))).await;
    }
}

/// `http://ADDR` of this server as workers on this host reach it (an
/// unspecified listen address becomes the host name).
pub fn own_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".into());
        format!("http://{host}:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// The `local` compute environment: worker processes on this host.
#[derive(Debug, Clone)]
pub struct LocalEnvConfig {
    /// Upper bound on CPUs across its workers.
    pub max_vcpus: u32,
    /// Shape of one worker.
    pub shape: trestle_core::Capacity,
    /// Workers exit after this long without work.
    pub idle_exit: std::time::Duration,
    /// Scratch root for its workers.
    pub work_dir: std::path::PathBuf,
    /// The program to run as `PROGRAM worker ...` (normally this binary).
    pub program: std::path::PathBuf,
    /// Jobs a worker may lease beyond its free capacity.
    pub prefetch: u32,
    /// Price per hour of one worker.
    pub price_per_hour: f64,
}

/// The `[local]` environment of `trestle up` as a compute environment
/// named `local`.
pub fn local_env_spec(l: &LocalEnvConfig) -> ComputeEnvSpec {
    use trestle_core::compute::{AllocationStrategy, CapacityType, Shape};
    ComputeEnvSpec {
        name: "local".into(),
        provider: ProviderKind::Local,
        capacity_type: CapacityType::OnDemand,
        shapes: vec![Shape {
            name: "local".into(),
            vcpus: l.shape.cpus,
            mem_mib: l.shape.mem_mib,
            gpus: l.shape.gpus,
            price_per_hour: l.price_per_hour,
        }],
        min_vcpus: 0,
        max_vcpus: l.max_vcpus,
        allocation_strategy: AllocationStrategy::BestFit,
        idle_timeout_secs: l.idle_exit.as_secs().max(1),
        enabled: true,
        prefetch: l.prefetch,
        work_dir: Some(l.work_dir.display().to_string()),
        program: Some(l.program.display().to_string()),
        slurm: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_core::compute::{ComputeEnvRequest, QueueRequest};

    fn env(name: &str) -> ComputeEnvRecord {
        let req: ComputeEnvRequest = serde_json::from_value(serde_json::json!({
            "provider": "local", "shapes": [{"vcpus": 1, "memory": 64}], "max_vcpus": 2
        }))
        .unwrap();
        ComputeEnvRecord {
            spec: req.validate(name).unwrap(),
            source: "config".into(),
            status: "VALID".into(),
            status_reason: None,
            status_at: None,
            updated_at: 0,
        }
    }

    fn queue(name: &str, envs: &[&str]) -> QueueRecord {
        QueueRecord {
            spec: QueueRequest {
                priority: Some(3),
                compute_environments: Some(envs.iter().map(|e| e.to_string()).collect()),
                ..Default::default()
            }
            .validate(name)
            .unwrap(),
            source: "config".into(),
            updated_at: 0,
        }
    }

    #[test]
    fn routing() {
        let t = Topology::new(
            vec![env("cpu"), env("gpu"), env("spot")],
            vec![
                queue("gpu-q", &["gpu"]),
                queue("main", &["cpu", "spot"]),
                queue("any", &[]),
            ],
        );
        assert_eq!(t.exclusions(Some("cpu")), ",gpu-q,");
        assert_eq!(t.exclusions(Some("gpu")), ",main,");
        assert_eq!(t.exclusions(Some("spot")), ",gpu-q,");
        assert_eq!(t.exclusions(None), ",");
        assert_eq!(t.exclusions(Some("unknown")), ",");
        assert_eq!(t.route("main").envs, vec!["cpu", "spot"]);
        assert_eq!(t.route("main").priority, 3);
        assert_eq!(t.route("any").envs, vec!["cpu", "gpu", "spot"]);
        assert_eq!(t.route("undeclared").envs, vec!["cpu", "gpu", "spot"]);
        assert_eq!(t.route("undeclared").priority, 0);
    }
}
