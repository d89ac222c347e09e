//! The server's typed, validated settings (parsed by the binary from
//! `trestle.toml`, flags and `TRESTLE_*` variables).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
pub use trestle_service::compute::LocalEnvConfig;

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
    pub security: trestle_service::security::SecurityConfig,
    /// Sign-in through identity providers (`[identity]`).
    pub identity: trestle_service::external::IdentitySettings,
    /// OpenID Connect providers (`[[oidc]]`), discovered at start.
    pub oidc: Vec<trestle_service::oidc::ProviderSettings>,
    /// Upload limits (`[storage]`).
    pub uploads: trestle_service::files::UploadLimits,
    /// Queue settings (`[queues.NAME]`): disabled queues, drop folders.
    pub queues: Vec<trestle_service::workflows::QueueConfig>,
    /// Which Unix account each user's tasks run as on workers that run
    /// as root (`[isolation]`).
    pub isolation: trestle_core::identity::unix::UnixAccounts,
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
    /// How workspaces are reached and limited (`[workspaces]`).
    pub workspaces: trestle_service::workspaces::WorkspaceSettings,
    /// Notifications (`[notify]`): the secrets keyring and the outbox.
    pub notify: NotifyConfig,
    /// Costs (`[costs]`): the unit, weights, prices; meter and budget
    /// intervals.
    pub costs: trestle_service::metering::CostConfig,
    /// Resource alarm rules (`[alarms]`, `[queues.NAME.alarms]`).
    pub alarms: trestle_service::alarms::AlarmSettings,
}

/// Notification settings of a server.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// The keyring file (`[notify] keyring`, `TRESTLE_NOTIFY_KEYRING_FILE`).
    pub keyring_file: Option<PathBuf>,
    /// The keyring itself (`TRESTLE_NOTIFY_KEYRING`: `ID BASE64;...`), over
    /// the file.
    pub keyring_text: Option<String>,
    /// Create the keyring file (mode 0600) when it is missing (`trestle up`).
    pub create_keyring: bool,
    /// The outbox's settings.
    pub settings: trestle_service::notify::NotifySettings,
    /// The senders' timeouts.
    pub sender: trestle_notify::SenderSettings,
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
            uploads: Default::default(),
            identity: Default::default(),
            oidc: Vec::new(),
            queues: Vec::new(),
            isolation: Default::default(),
            compute_envs: Vec::new(),
            queue_specs: Vec::new(),
            leader_lease: Duration::from_secs(10),
            advertise_urls: Vec::new(),
            worker_program: None,
            scratch_dir: data_dir.join("scratch"),
            objects_options: Vec::new(),
            autoscale_interval: Duration::from_millis(500),
            workspaces: Default::default(),
            costs: Default::default(),
            alarms: Default::default(),
            notify: NotifyConfig {
                keyring_file: Some(data_dir.join("keyring")),
                ..Default::default()
            },
        }
    }
}

/// Stores the CEs and queues the config file declares (and the `[local]`
/// environment), and forgets those an earlier config declared and this one
/// does not. Several servers starting at once store the same thing.
pub async fn seed_config(
    store: &dyn trestle_store::Store,
    cfg: &ServerConfig,
) -> Result<(), crate::ServerError> {
    use trestle_store::scale::SOURCE_CONFIG;
    let mut envs = cfg.compute_envs.clone();
    if let Some(l) = &cfg.local
        && !envs.iter().any(|e| e.name == "local")
    {
        envs.push(trestle_service::compute::local_env_spec(l));
    }
    let now = trestle_core::clock::now_ms();
    let current = store.compute_envs().await?;
    for e in &envs {
        // Unchanged settings keep their status; a racing server's insert
        // turns ours into an update on the second try.
        if current.iter().any(|c| c.spec == *e) {
            continue;
        }
        if store.put_compute_env(e, SOURCE_CONFIG, now).await.is_err() {
            store.put_compute_env(e, SOURCE_CONFIG, now).await?;
        }
    }
    let known: Vec<String> = store
        .compute_envs()
        .await?
        .into_iter()
        .map(|e| e.spec.name)
        .collect();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let queues = store.queue_records().await?;
    for q in &cfg.queue_specs {
        trestle_core::compute::check_queue_envs(q, &known).map_err(|e| {
            crate::ServerError::Config(format!(
                "queues.{}.{}: {}",
                q.name,
                e.field.unwrap_or_default(),
                e.message
            ))
        })?;
        if queues.iter().any(|c| c.spec == *q) {
            continue;
        }
        if store.put_queue(q, SOURCE_CONFIG, now).await.is_err() {
            store.put_queue(q, SOURCE_CONFIG, now).await?;
        }
    }
    let env_names: Vec<String> = envs.iter().map(|e| e.name.clone()).collect();
    let queue_names: Vec<String> = cfg.queue_specs.iter().map(|q| q.name.clone()).collect();
    store
        .prune_source(SOURCE_CONFIG, &env_names, &queue_names)
        .await?;
    Ok(())
}

/// The secrets keyring of a server: given in the environment, or a file
/// (created when `create_keyring` and missing); none when neither is set
/// or the file is missing (targets with secrets are then refused).
pub fn keyring(
    c: &NotifyConfig,
) -> Result<Option<trestle_service::notify::Keys>, crate::ServerError> {
    use trestle_notify::Keyring;
    use trestle_service::notify::Keys;
    let bad =
        |e: trestle_notify::SecretError| crate::ServerError::Config(format!("notify.keyring: {e}"));
    if let Some(text) = &c.keyring_text {
        return Ok(Some(Keys::fixed(Keyring::parse(text).map_err(bad)?)));
    }
    let Some(path) = &c.keyring_file else {
        return Ok(None);
    };
    if c.create_keyring {
        Keyring::load_or_create(path, trestle_core::clock::now_ms()).map_err(bad)?;
    } else if !path.exists() {
        tracing::warn!(path = %path.display(), "no secrets keyring: notification targets with secrets cannot be made");
        return Ok(None);
    }
    Ok(Some(Keys::from_file(path.clone()).map_err(bad)?))
}
