//! Shared state of the server's handlers and loops.

use crate::audit::AuditWriter;
use crate::metrics::Metrics;
use crate::principal::TokenCache;
use crate::principal::WorkerOwners;
use crate::security::SecurityConfig;
use crate::versions::WorkerVersions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use trestle_store::{Blobs, Store};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct Service {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Object storage.
    pub blobs: Blobs,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Woken when jobs become runnable (long-polling leases wait on it).
    pub work: Arc<Notify>,
    /// Woken when demand may have grown (the autoscaler waits on it).
    pub demand: Arc<Notify>,
    /// Lease duration.
    pub lease: Duration,
    /// Hash of the token the server gives its own local workers.
    pub internal_worker_hash: Option<String>,
    /// Token lookup cache.
    pub tokens: Arc<TokenCache>,
    /// Which credential registered each worker.
    pub worker_owners: Arc<WorkerOwners>,
    /// What this server decided about each worker's version.
    pub versions: Arc<WorkerVersions>,
    /// The audit trail's writer.
    pub audit: AuditWriter,
    /// Security and audit settings.
    pub security: Arc<SecurityConfig>,
    /// Sign-in through identity providers: mapping rules, deprovisioning.
    pub identity: Arc<crate::external::IdentitySettings>,
    /// Users' Unix accounts from their identity providers, cached.
    pub accounts: Arc<crate::accounts::AccountCache>,
    /// OpenID Connect providers (`[[oidc]]`), discovered at start-up.
    pub oidc: Arc<crate::oidc::OidcProviders>,
    /// How much users may upload.
    pub uploads: crate::files::UploadLimits,
    /// Queues and capacity, for workflows.
    pub flow: Arc<crate::queues::FlowConfig>,
    /// Compute environments, queue routing, providers, leader leases.
    pub compute: Arc<crate::compute::Compute>,
    /// Notifications: the secrets keyring, the senders, the outbox's
    /// settings and wake-up.
    pub notify: Arc<crate::notify::NotifyState>,
    /// How workspaces are reached and limited.
    pub workspaces: Arc<crate::workspaces::WorkspaceSettings>,
    /// Workspaces recently reached through the proxy, and their activity.
    pub access: Arc<crate::workspace_access::AccessCache>,
    /// How the site charges; how often the meter and budgets run.
    pub costs: Arc<crate::metering::CostConfig>,
    /// Projects whose budgets stop spending, as submissions see them.
    pub costs_gate: Arc<crate::budgets::BudgetGate>,
    /// Resource alarm rules and the latest samples received.
    pub alarms: Arc<crate::alarms::Alarms>,
}

impl Service {
    /// Tells waiting workers and the autoscaler that there may be work.
    pub fn wake(&self) {
        self.work.notify_waiters();
        self.demand.notify_one();
    }
}
