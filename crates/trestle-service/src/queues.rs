//! Queue settings (`[queues.NAME]`: enabled, drop folders) and what the
//! handlers and loops need to know about queues and capacity.

use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;
use trestle_core::Capacity;

/// Default trigger suffix of drop folders.
pub const DEFAULT_TRIGGER_SUFFIX: &str = ".sh";

/// Settings of one queue (`[queues.NAME]` in `trestle.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Queue name.
    pub name: String,
    /// Jobs wait (PENDING, reason `queue-disabled`) while this is false.
    pub enabled: bool,
    /// A folder watched for job sub-folders, if any.
    pub drop_folder: Option<PathBuf>,
    /// Files with this suffix trigger a job (default `.sh`).
    pub trigger_suffix: String,
    /// The user a drop folder's jobs are submitted as (default
    /// [`DEFAULT_DROP_OWNER`]): they are charged, checked and owned like
    /// that user's own submissions.
    pub drop_owner: String,
    /// The project they are charged to (default: the owner's default).
    pub drop_project: Option<String>,
    /// Highest priority users without the admin role may give a job here
    /// (default [`trestle_core::batch::limits::DEFAULT_MAX_USER_PRIORITY`]).
    pub max_user_priority: i32,
    /// How much of each attempt's log is kept, in bytes (default
    /// [`trestle_core::batch::logs::DEFAULT_LOG_LIMIT_BYTES`]).
    pub log_limit: Option<u64>,
    /// Keep each attempt's whole output as an output file too (object
    /// storage), whatever the log limit cuts.
    pub full_log: bool,
    /// The longest a job without a time limit is assumed to run (escrow
    /// reservations); `None`: the site's `[costs] default_max_run_time`.
    pub max_run_secs: Option<u64>,
}

/// The user drop-folder jobs belong to unless `drop_owner` says otherwise
/// (the bootstrap admin of `trestle up`).
pub const DEFAULT_DROP_OWNER: &str = "admin";

impl QueueConfig {
    /// An enabled queue without a drop folder.
    pub fn new(name: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_string(),
            enabled: true,
            drop_folder: None,
            trigger_suffix: DEFAULT_TRIGGER_SUFFIX.to_string(),
            drop_owner: DEFAULT_DROP_OWNER.to_string(),
            drop_project: None,
            max_user_priority: trestle_core::batch::limits::DEFAULT_MAX_USER_PRIORITY,
            log_limit: None,
            full_log: false,
            max_run_secs: None,
        }
    }
}

/// What handlers and loops need to know about queues and capacity.
#[derive(Debug, Clone, Default)]
pub struct FlowConfig {
    /// Configured queues.
    pub queues: Vec<QueueConfig>,
    /// The local compute environment's worker shape and CPU limit.
    pub local: Option<(Capacity, u32)>,
    /// Woken when workflow work may be waiting (submissions, cancels).
    pub wake: Arc<Notify>,
    /// Which Unix account each user's tasks run as on root workers
    /// (`[isolation]`).
    pub isolation: trestle_core::identity::unix::UnixAccounts,
}

impl FlowConfig {
    /// Names of disabled queues.
    pub fn disabled(&self) -> Vec<String> {
        self.queues
            .iter()
            .filter(|q| !q.enabled)
            .map(|q| q.name.clone())
            .collect()
    }

    /// Highest priority users without the admin role may set in `queue`.
    pub fn max_user_priority(&self, queue: &str) -> i32 {
        self.queues
            .iter()
            .find(|q| q.name == queue)
            .map(|q| q.max_user_priority)
            .unwrap_or(trestle_core::batch::limits::DEFAULT_MAX_USER_PRIORITY)
    }

    /// The Unix account a leased task runs as on a root worker (`None`:
    /// its owner has no mapping, and a root worker refuses it).
    ///
    /// `attribute` is the Unix account the owner's identity provider gave
    /// them ([`crate::accounts::unix_attribute`]); it wins over the
    /// `[isolation]` tables.
    pub fn run_as(
        &self,
        spec: &trestle_core::JobSpec,
        attribute: Option<&trestle_core::identity::unix::UnixAttribute>,
    ) -> Option<trestle_core::api::RunAs> {
        let owner = spec.owner.as_deref()?;
        trestle_core::identity::unix::unix_account(
            owner,
            spec.project.as_deref(),
            attribute,
            &self.isolation,
        )
    }

    /// The longest `queue` assumes a job without a time limit runs, if it
    /// says.
    pub fn max_run_secs(&self, queue: &str) -> Option<u64> {
        self.queues
            .iter()
            .find(|q| q.name == queue)
            .and_then(|q| q.max_run_secs)
    }

    /// Whether `queue` keeps each attempt's whole output as a file.
    pub fn keeps_full_log(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q.name == queue && q.full_log)
    }

    /// The log limits of the configured queues.
    pub fn log_limits(&self) -> trestle_core::batch::logs::LogLimits {
        let mut l = trestle_core::batch::logs::LogLimits::default();
        for q in &self.queues {
            if let Some(n) = q.log_limit {
                l.queues.insert(q.name.clone(), n);
            }
        }
        l
    }

    /// Whether `queue` is disabled.
    pub fn is_disabled(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q.name == queue && !q.enabled)
    }
}
