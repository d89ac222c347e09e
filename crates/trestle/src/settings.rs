//! Settings: the server's `trestle.toml` (every key documented with its
//! default in `docs/configuration.md`), `TRESTLE_*` environment overrides
//! and flags, validated into a typed [`ServerConfig`]; and the client's
//! small config file (server URL and token) that `trestle up` writes.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use trestle_core::Capacity;
use trestle_core::parse::{parse_duration, parse_memory_mib};
use trestle_server::config::{LocalEnvConfig, ServerConfig};

mod alarms;
mod compute;
mod costs;
mod identity;
mod ldap;
mod notify;
mod oidc;
mod queues;
mod security;

/// `trestle.toml` as written (every key optional).
/// `[isolation]` in `trestle.toml`:
///
/// ```toml
/// [isolation]
/// users = { alice = "alice", bob = "bsmith" }   # Trestle user -> Unix user
/// projects = { genomics = "svc-genomics" }      # service account per project
/// ```
///
/// A worker that runs as root runs each task as its owner's account (the
/// user's own first, then the project's) and refuses tasks of users with
/// none: it never runs a task as root.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolationFile {
    /// Trestle user name -> Unix user name.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, String>,
    /// Project name -> Unix service account.
    #[serde(default)]
    pub projects: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Data directory (default `./trestle-data`).
    pub data_dir: Option<PathBuf>,
    /// Database URL (default `sqlite://<data_dir>/trestle.db`).
    pub database: Option<String>,
    /// Object storage: a directory or `s3://bucket/prefix` (default `<data_dir>/objects`).
    pub objects: Option<String>,
    /// Lease duration (default `30s`).
    pub lease: Option<String>,
    /// Forget workers silent for this long (default `2m`).
    pub worker_timeout: Option<String>,
    /// The local compute environment.
    #[serde(default)]
    pub local: LocalFile,
    /// Trusted proxies, sessions, login throttling.
    #[serde(default)]
    pub security: security::SecurityFile,
    /// Audit retention, the unused-credential policy, saved queries.
    #[serde(default)]
    pub audit: security::AuditFile,
    /// `[queues.NAME]`: disabled queues, drop folders, priorities and
    /// compute environments.
    #[serde(default)]
    pub queues: std::collections::BTreeMap<String, queues::QueueFile>,
    /// `[compute_environments.NAME]`.
    #[serde(default)]
    pub compute_environments:
        std::collections::BTreeMap<String, trestle_core::compute::ComputeEnvRequest>,
    /// Lease period of the cluster-wide loops (default `10s`).
    pub leader_lease: Option<String>,
    /// URLs launched workers use to reach the servers (default: this
    /// server's address).
    pub advertise_urls: Option<Vec<String>>,
    /// `[isolation]`: the Unix account of each user's tasks on workers
    /// that run as root.
    #[serde(default)]
    pub isolation: IsolationFile,
    /// `[s3]`: options for `s3://` object storage.
    #[serde(default)]
    pub s3: compute::S3File,
    /// `[identity]`: mapping rules for users from identity providers.
    #[serde(default)]
    pub identity: identity::IdentityFile,
    /// `[storage]`: upload limits.
    #[serde(default)]
    pub storage: StorageFile,
    /// `[ldap]`: a directory users sign in against.
    pub ldap: Option<ldap::LdapFile>,
    /// `[[oidc]]`: OpenID Connect providers.
    #[serde(default)]
    pub oidc: Vec<oidc::OidcFile>,
    /// `[notify]`: the secrets keyring and the notification outbox.
    #[serde(default)]
    pub notify: notify::NotifyFile,
    /// `[workspaces]`: how workspaces are reached and limited.
    #[serde(default)]
    pub workspaces: WorkspacesFile,
    /// `[costs]`: the unit, weights, prices, meter and budget intervals.
    #[serde(default)]
    pub costs: costs::CostsFile,
    /// `[alarms]`: resource alarm rules.
    #[serde(default)]
    pub alarms: alarms::AlarmsFile,
}

/// `[workspaces]` in `trestle.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspacesFile {
    /// Each workspace at its own origin, e.g.
    /// `https://ws-{id}.trestle.example.org` (a wildcard DNS name pointing
    /// at the servers); unset: path mode, `/ws/{id}/` under the server's
    /// origin (for a laptop).
    pub origin: Option<String>,
    /// Running workspaces per user, whatever the configuration (default 4).
    pub max_running_per_user: Option<u32>,
}

/// `[storage]` in `trestle.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// Largest uploaded file (default `1G`).
    pub upload_file_limit: Option<String>,
    /// Most bytes of uploads per project (default `100G`).
    pub project_quota: Option<String>,
}

fn size_bytes(field: &str, text: &str) -> Result<u64> {
    let mib =
        parse_memory_mib(field, text).map_err(|e| anyhow::anyhow!("{field}: {}", e.message))?;
    Ok(mib * 1024 * 1024)
}

/// `[local]` in `trestle.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalFile {
    /// Start workers on this host (default: on for `up`, off for `server`).
    pub enabled: Option<bool>,
    /// CPU limit across local workers (default: all cores).
    pub max_vcpus: Option<u32>,
    /// CPUs per worker (default: all cores).
    pub worker_cpus: Option<u32>,
    /// Memory per worker (default: the host's memory).
    pub worker_memory: Option<String>,
    /// Workers exit after this long without work (default `30s`).
    pub idle_exit: Option<String>,
    /// Jobs a worker leases beyond its free slots, at least (default: the
    /// worker's CPUs; grows for short jobs; 0 turns it off).
    pub prefetch: Option<u32>,
    /// Price per hour of one local worker, in the `[costs]` unit
    /// (default 0).
    pub price_per_hour: Option<f64>,
}

/// Values from flags, which win over the environment and the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data`.
    pub data: Option<PathBuf>,
    /// `--database`.
    pub database: Option<String>,
    /// `--objects`.
    pub objects: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn secs(field: &str, text: &str) -> Result<Duration> {
    Ok(Duration::from_secs(
        parse_duration(field, text, false)
            .map_err(|e| anyhow::anyhow!("{field}: {}", e.message))?,
    ))
}

/// Cores on this host.
pub fn host_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Memory of this host in MiB (from /proc/meminfo; 4 GiB when unknown).
pub fn host_mem_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(4096)
}

/// Loads and validates the server settings. `local_default` says whether the
/// local compute environment is on unless configured otherwise.
pub fn server_config(o: &Overrides, local_default: bool) -> Result<(ServerConfig, PathBuf)> {
    let path = o
        .config
        .clone()
        .or_else(|| env("TRESTLE_CONFIG_FILE").map(PathBuf::from))
        .or_else(|| {
            Path::new("trestle.toml")
                .exists()
                .then(|| "trestle.toml".into())
        });
    let file: FileConfig = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid config file {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let data_dir = o
        .data
        .clone()
        .or_else(|| env("TRESTLE_DATA").map(PathBuf::from))
        .or(file.data_dir)
        .unwrap_or_else(|| "trestle-data".into());
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    // Tasks of every user reach their scratch below it (`scratch/`), but
    // none may list it or read the server's files (created under umask
    // 077, see main).
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o711));
        for db in ["trestle.db", "trestle.db-wal", "trestle.db-shm"] {
            let p = data_dir.join(db);
            if p.exists() {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    let mut cfg = ServerConfig::embedded(&data_dir);
    let listen = o
        .listen
        .clone()
        .or_else(|| env("TRESTLE_LISTEN"))
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    cfg.listen = listen
        .parse::<SocketAddr>()
        .with_context(|| format!("listen: `{listen}` is not an address like 127.0.0.1:8080"))?;
    if let Some(db) = o
        .database
        .clone()
        .or_else(|| env("TRESTLE_DATABASE"))
        .or(file.database)
    {
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres:")
            || db.starts_with("postgresql:"))
        {
            bail!("database: `{db}` must start with sqlite:// or postgres://");
        }
        cfg.database_url = db;
    }
    if let Some(obj) = o
        .objects
        .clone()
        .or_else(|| env("TRESTLE_OBJECTS"))
        .or(file.objects)
    {
        cfg.objects_url = obj;
    }
    if let Some(l) = env("TRESTLE_LEASE").or(file.lease) {
        cfg.lease = secs("lease", &l)?;
        if cfg.lease < Duration::from_secs(2) {
            bail!("lease: must be at least 2s");
        }
    }
    if let Some(t) = file.worker_timeout {
        cfg.worker_timeout = secs("worker_timeout", &t)?;
    }
    cfg.security = security::security_config(file.security, file.audit)?;
    cfg.identity = identity::build(file.identity)?;
    cfg.isolation = trestle_core::identity::unix::UnixAccounts {
        users: file.isolation.users,
        projects: file.isolation.projects,
    };
    if let Err(e) = cfg.isolation.validate() {
        bail!(
            "{}: {}",
            e.field.as_deref().unwrap_or("isolation"),
            e.message
        );
    }
    cfg.oidc = oidc::build(file.oidc)?;
    if let Some(t) = &file.storage.upload_file_limit {
        cfg.uploads.file_bytes = size_bytes("storage.upload_file_limit", t)?;
    }
    if let Some(t) = &file.storage.project_quota {
        cfg.uploads.project_bytes = size_bytes("storage.project_quota", t)?;
    }
    if let Some(t) = file.workspaces.origin {
        cfg.workspaces.origin = Some(
            trestle_core::workspace::origin::OriginTemplate::parse("workspaces.origin", &t)
                .map_err(|e| anyhow::anyhow!("workspaces.origin: {}", e.message))?,
        );
    }
    if let Some(n) = file.workspaces.max_running_per_user {
        cfg.workspaces.max_running_per_user = n;
    }
    cfg.workspaces.public_url = cfg.security.public_url.clone();
    cfg.costs = costs::build(file.costs)?;
    let base = path
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let base = std::env::current_dir()
        .map(|d| d.join(&base))
        .unwrap_or(base);
    cfg.identity.ldap = ldap::build(file.ldap, &base)?;
    cfg.notify = notify::build(file.notify, &data_dir, &base, local_default, env)?;
    cfg.queues = queues::build(&file.queues, &base)?;
    let queue_alarms: std::collections::BTreeMap<String, alarms::RulesFile> = file
        .queues
        .iter()
        .filter_map(|(n, q)| q.alarms.clone().map(|a| (n.clone(), a)))
        .collect();
    cfg.alarms = alarms::build(&file.alarms, &queue_alarms)?;
    cfg.compute_envs = compute::envs(&file.compute_environments)?;
    let local_on = file.local.enabled.unwrap_or(local_default);
    cfg.queue_specs = compute::queues(&file.queues, &cfg.compute_envs, local_on)?;
    if let Some(l) = env("TRESTLE_LEADER_LEASE").or(file.leader_lease) {
        cfg.leader_lease = secs("leader_lease", &l)?;
        if cfg.leader_lease < Duration::from_secs(1) {
            bail!("leader_lease: must be at least 1s");
        }
    }
    if let Some(urls) = file.advertise_urls {
        for (i, u) in urls.iter().enumerate() {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("advertise_urls[{i}]: `{u}` must start with http:// or https://");
            }
        }
        cfg.advertise_urls = urls;
    }
    cfg.objects_options = file.s3.options(|v| env(v).is_some());
    if !cfg.objects_options.is_empty() && !cfg.objects_url.starts_with("s3://") {
        bail!("s3: S3 options are set but objects is not an s3:// URL");
    }
    let l = file.local;
    if l.enabled.unwrap_or(local_default) {
        let cpus = host_cpus();
        let shape = Capacity {
            cpus: l.worker_cpus.unwrap_or(cpus),
            mem_mib: match &l.worker_memory {
                Some(m) => parse_memory_mib("local.worker_memory", m)
                    .map_err(|e| anyhow::anyhow!("{}", e.message))?,
                None => host_mem_mib(),
            },
            gpus: 0,
        };
        if shape.cpus == 0 {
            bail!("local.worker_cpus: must be at least 1");
        }
        let max_vcpus = l.max_vcpus.unwrap_or(cpus);
        if max_vcpus < shape.cpus {
            bail!(
                "local.max_vcpus ({max_vcpus}) is smaller than local.worker_cpus ({})",
                shape.cpus
            );
        }
        cfg.local = Some(LocalEnvConfig {
            max_vcpus,
            shape,
            idle_exit: secs("local.idle_exit", l.idle_exit.as_deref().unwrap_or("30s"))?,
            work_dir: data_dir.join("scratch"),
            program: std::env::current_exe().context("cannot find the trestle binary")?,
            prefetch: l.prefetch.unwrap_or(shape.cpus),
            price_per_hour: match l.price_per_hour {
                Some(p) if !p.is_finite() || p < 0.0 => {
                    bail!("local.price_per_hour: a price is a number of at least 0")
                }
                p => p.unwrap_or(0.0),
            },
        });
    }
    Ok((cfg, data_dir))
}

/// What the CLI needs to reach a server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientFile {
    /// Server URL(s), comma-separated.
    pub url: Option<String>,
    /// API token.
    pub token: Option<String>,
}

/// Where the client config lives: `$TRESTLE_CLIENT_CONFIG`, else
/// `$XDG_CONFIG_HOME/trestle/client.toml`, else `~/.config/trestle/client.toml`.
pub fn client_config_path() -> Option<PathBuf> {
    if let Some(p) = env("TRESTLE_CLIENT_CONFIG") {
        return Some(p.into());
    }
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("trestle").join("client.toml"))
}

/// Reads the client config (empty when missing).
pub fn load_client_file() -> ClientFile {
    client_config_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default()
}

/// Writes the client config, readable only by its owner.
pub fn save_client_file(c: &ClientFile) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = client_config_path().context("cannot find a config directory (set HOME)")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = toml::to_string(c).context("cannot encode the client config")?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(path)
}
