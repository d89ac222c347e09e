//! Compute providers: the one small trait every place that can host
//! workers implements (launch workers of a shape, list them, terminate
//! them), and the `local` provider that runs worker processes on this host.

use async_trait::async_trait;
use trestle_core::Capacity;

mod local;

pub use local::{LocalProvider, WorkerCommand};

/// Errors from a provider.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The provider could not start a worker.
    #[error("cannot launch a worker: {0}")]
    Launch(String),
    /// The provider has no capacity of this shape right now.
    #[error("no capacity: {0}")]
    Capacity(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Result alias for providers.
pub type Result<T> = std::result::Result<T, ComputeError>;

/// A worker as its provider sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderWorker {
    /// The provider's id for it (a pid, a Slurm job id, a pod name).
    pub id: String,
    /// Its shape.
    pub shape: Capacity,
}

/// A place that can run worker processes.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Provider name (`local`, `slurm`, ...).
    fn name(&self) -> &str;
    /// Starts `count` workers of `shape`.
    async fn launch(&self, shape: Capacity, count: u32) -> Result<Vec<ProviderWorker>>;
    /// Workers that are starting or running (exited ones are forgotten).
    async fn list(&self) -> Result<Vec<ProviderWorker>>;
    /// Stops a worker gracefully (it hands its jobs back).
    async fn terminate(&self, id: &str) -> Result<()>;
}

/// The conformance suite every provider passes: launch, list, terminate.
/// `settle` is how long a launched worker may take to appear or vanish.
pub async fn conformance(p: &dyn Provider, shape: Capacity, settle: std::time::Duration) {
    let before = p.list().await.expect("list").len();
    let launched = p.launch(shape, 2).await.expect("launch");
    assert_eq!(launched.len(), 2, "launch returns what it started");
    assert!(launched.iter().all(|w| w.shape == shape));
    let listed = p.list().await.expect("list");
    assert_eq!(listed.len(), before + 2, "launched workers are listed");
    for w in &launched {
        assert!(listed.iter().any(|l| l.id == w.id));
    }
    for w in &launched {
        p.terminate(&w.id).await.expect("terminate");
    }
    let deadline = std::time::Instant::now() + settle;
    loop {
        let n = p.list().await.expect("list").len();
        if n == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "terminated workers still listed after {settle:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(p.terminate("no-such-worker").await.is_err());
}
