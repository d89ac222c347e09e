//! The server's typed, validated settings (parsed by the binary from
//! `trestle.toml`, flags and `TRESTLE_*` variables).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use trestle_core::Capacity;

/// Settings for one server process.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Database URL (`sqlite://...` or `postgres://...`).
    pub database_url: String,
    /// Object storage URL or directory.
    pub objects_url: String,
    /// How long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// How often expired leases are reaped.
    pub reap_interval: Duration,
    /// Workers silent for this long are forgotten (their leases handed back).
    pub worker_timeout: Duration,
    /// The local compute environment, if enabled.
    pub local: Option<LocalEnvConfig>,
    /// Security and audit settings.
    pub security: crate::security::SecurityConfig,
    /// Queue settings (`[queues.NAME]`): disabled queues, drop folders.
    pub queues: Vec<crate::workflows::QueueConfig>,
    /// Compute environments declared in the config file
    /// (`[compute_environments.NAME]`), stored at start.
    pub compute_envs: Vec<trestle_core::compute::ComputeEnvSpec>,
    /// Queue priorities and CE lists declared in the config file, stored
    /// at start.
    pub queue_specs: Vec<trestle_core::compute::QueueSpec>,
    /// Lease period of the cluster-wide loops' leader leases.
    pub leader_lease: Duration,
    /// URLs launched workers use to reach the servers (empty: this
    /// server's own address).
    pub advertise_urls: Vec<String>,
    /// The `trestle` binary launched workers run (default: this process's).
    pub worker_program: Option<PathBuf>,
    /// Scratch root of local workers.
    pub scratch_dir: PathBuf,
    /// Object storage options (`object_store` keys such as
    /// `aws_endpoint`, `aws_access_key_id`), over the environment's.
    pub objects_options: Vec<(String, String)>,
    /// How often the autoscaler looks (it also wakes on every submission).
    pub autoscale_interval: Duration,
}

/// The `local` compute environment: worker processes on this host.
#[derive(Debug, Clone)]
pub struct LocalEnvConfig {
    /// Upper bound on CPUs across its workers.
    pub max_vcpus: u32,
    /// Shape of one worker.
    pub shape: Capacity,
    /// Workers exit after this long without work.
    pub idle_exit: Duration,
    /// Scratch root for its workers.
    pub work_dir: PathBuf,
    /// The program to run as `PROGRAM worker ...` (normally this binary).
    pub program: PathBuf,
    /// Jobs a worker may lease beyond its free capacity.
    pub prefetch: u32,
}

impl ServerConfig {
    /// Defaults for an embedded single-machine setup under `data_dir`.
    pub fn embedded(data_dir: &std::path::Path) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: format!("sqlite://{}", data_dir.join("trestle.db").display()),
            objects_url: data_dir.join("objects").display().to_string(),
            lease: Duration::from_secs(30),
            reap_interval: Duration::from_secs(1),
            worker_timeout: Duration::from_secs(120),
            local: None,
            security: Default::default(),
            queues: Vec::new(),
            compute_envs: Vec::new(),
            queue_specs: Vec::new(),
            leader_lease: Duration::from_secs(10),
            advertise_urls: Vec::new(),
            worker_program: None,
            scratch_dir: data_dir.join("scratch"),
            objects_options: Vec::new(),
            autoscale_interval: Duration::from_millis(500),
        }
    }
}
