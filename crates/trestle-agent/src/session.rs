//! The worker's registration with the server: its id, registering again
//! when the server has forgotten it (404), and deregistering.

use crate::backoff::Backoff;
use crate::error::AgentError;
use crate::report::UpdatesApi;
use std::future::Future;
use std::sync::RwLock;
use trestle_client::{Client, ClientError};
use trestle_core::api::{
    LeaseRequest, LeaseResponse, UpdatesRequest, UpdatesResponse, WorkerRegistration,
};

/// The answer's code that tells a worker to drain and exit.
pub const UPGRADE_REQUIRED: &str = "upgrade-required";

/// A registered worker.
#[derive(Debug)]
pub struct Session {
    client: Client,
    registration: WorkerRegistration,
    id: RwLock<String>,
    /// Held while registering, so concurrent 404s register only once.
    registering: tokio::sync::Mutex<()>,
}

impl Session {
    /// A session that has not registered yet.
    pub fn new(client: Client, registration: WorkerRegistration) -> Session {
        Session {
            client,
            registration,
            id: RwLock::new(String::new()),
            registering: tokio::sync::Mutex::new(()),
        }
    }

    /// The current worker id (empty before registration).
    pub fn id(&self) -> String {
        self.id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_id(&self, id: String) {
        *self.id.write().unwrap_or_else(|p| p.into_inner()) = id;
    }

    /// Registers, retrying for as long as the server cannot be reached.
    pub async fn register(&self) -> Result<(), AgentError> {
        let mut backoff = Backoff::default();
        let mut failures = 0u32;
        loop {
            match self.client.register_worker(&self.registration).await {
                Ok(view) => {
                    tracing::info!(worker = %view.id, server = %self.client.current_base(), "registered");
                    self.set_id(view.id);
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    if failures == 0 {
                        tracing::warn!(error = %e, "cannot register yet; retrying");
                    }
                    failures += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) if e.code() == Some(UPGRADE_REQUIRED) => {
                    return Err(AgentError::UpgradeRequired(e.to_string()));
                }
                Err(e) if matches!(e.status(), Some(401 | 403)) => {
                    return Err(AgentError::Rejected(e));
                }
                Err(e) => return Err(AgentError::Client(e)),
            }
        }
    }

    /// Registers again unless another task already replaced `stale_id`.
    async fn reregister(&self, stale_id: &str) -> Result<(), ClientError> {
        let _guard = self.registering.lock().await;
        if self.id() != stale_id {
            return Ok(());
        }
        tracing::warn!(worker = %stale_id, "the server does not know this worker; registering again");
        let view = self.client.register_worker(&self.registration).await?;
        tracing::info!(worker = %view.id, "registered again");
        self.set_id(view.id);
        Ok(())
    }

    /// Calls `f` with the worker id; on 404 registers again and calls it
    /// once more with the new id.
    async fn with_id<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let id = self.id();
        match f(id.clone()).await {
            Err(e) if e.status() == Some(404) => {
                self.reregister(&id).await?;
                f(self.id()).await
            }
            other => other,
        }
    }

    /// Leases jobs (see [`Client::lease`]).
    pub async fn lease(&self, request: &LeaseRequest) -> Result<LeaseResponse, ClientError> {
        self.with_id(|id| async move { self.client.lease(&id, request).await })
            .await
    }

    /// Deregisters; an unknown worker is fine.
    pub async fn deregister(&self) -> Result<(), ClientError> {
        match self.client.deregister_worker(&self.id()).await {
            Err(e) if e.status() == Some(404) => Ok(()),
            other => other,
        }
    }
}

impl UpdatesApi for Session {
    async fn post(&self, request: &UpdatesRequest) -> Result<UpdatesResponse, ClientError> {
        self.with_id(|id| async move { self.client.updates(&id, request).await })
            .await
    }
}
