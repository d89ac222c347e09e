//! Workers' versions against this server's (the policy is
//! [`trestle_core::compat::worker_compat`]): a worker that must drain is
//! refused registration and leases with `409 upgrade-required`; its reports
//! are always accepted, so no job fails because of an upgrade.

use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::state::Service;
use trestle_core::compat::{Compat, worker_compat};

/// The code of the answer that tells a worker to drain and exit.
pub const UPGRADE_REQUIRED: &str = "upgrade-required";

fn drain(message: String) -> ServiceError {
    ServiceError::new(ErrorKind::Conflict, UPGRADE_REQUIRED, message)
}

fn decide(version: &str) -> Option<String> {
    match worker_compat(trestle_core::VERSION, version) {
        Compat::Compatible => None,
        Compat::Drain(why) => Some(why),
    }
}

/// Checks the version a worker registers with.
pub fn check_version(version: &str) -> ServiceResult<()> {
    decide(version).map_or(Ok(()), |why| Err(drain(why)))
}

/// Checks a registered worker's version before it leases (remembered
/// after the first look).
pub async fn check_registered(app: &Service, worker: &str) -> ServiceResult<()> {
    let decision = match app.versions.get(worker) {
        Some(d) => d,
        None => {
            // An unknown worker is the lease handler's 404, not ours.
            let Some(v) = app.store.worker_version(worker).await? else {
                return Ok(());
            };
            let d = decide(&v);
            app.versions.put(worker, d.clone());
            d
        }
    };
    decision.map_or(Ok(()), |why| Err(drain(why)))
}
