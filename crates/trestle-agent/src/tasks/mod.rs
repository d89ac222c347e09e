//! Task kinds: what a worker does with each leased task. The lease, the
//! fencing, the heartbeats, the capacity accounting ([`crate::state`]) and
//! the reporter are shared by every kind; each kind has a module here that
//! runs its task on the shared process runtime ([`crate::process`]): batch
//! attempts in [`batch`], workspace sessions in [`session`]. A worker asks
//! only for the kinds in [`KINDS`], so a task of another kind is never
//! leased to it.

pub mod batch;
pub mod session;

use crate::state::StopRx;
use std::sync::Arc;
use trestle_core::api::Lease;
use trestle_core::task::TaskKind;

pub use batch::AttemptCtx;

/// The kinds of task this worker runs (sent with every lease request).
pub const KINDS: &[TaskKind] = &[TaskKind::Batch, TaskKind::Session];

/// Runs one leased task of its kind to its end and reports it.
pub async fn run(ctx: Arc<AttemptCtx>, lease: Lease, stop: StopRx) {
    match lease.spec.task {
        TaskKind::Batch => batch::run_attempt(ctx, lease, stop).await,
        TaskKind::Session => session::run(ctx, lease, stop).await,
    }
}
