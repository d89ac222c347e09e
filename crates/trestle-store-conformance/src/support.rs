//! Helpers the suites share: a job spec from JSON, a registered worker, an
//! attempt's reference.

use trestle_core::api::{AttemptRef, Lease, WorkerRegistration};
use trestle_core::batch::spec::JobRequest;
use trestle_core::{Capacity, JobSpec};
use trestle_store::Store;

/// The time every suite starts at.
const T0: i64 = 1_700_000_000_000;

/// A validated spec from a native job request.
pub(crate) fn spec(json: &str) -> JobSpec {
    let req: JobRequest = serde_json::from_str(json).expect("test spec parses");
    req.validate().expect("test spec is valid")
}

/// Registers worker `id` with `cpus` CPUs and 64 GiB, bound to the
/// credential `t-{id}`.
pub(crate) async fn worker(s: &dyn Store, id: &str, cpus: u32) {
    s.register_worker(
        id,
        &WorkerRegistration {
            host: "host".into(),
            pid: 1,
            capacity: Capacity {
                cpus,
                mem_mib: 64 * 1024,
                gpus: 0,
            },
            compute_env: None,
            instance: None,
            version: "test".into(),
            isolation: None,
        },
        T0,
    )
    .await
    .expect("register worker");
    s.bind_worker(id, &format!("t-{id}"))
        .await
        .expect("bind worker");
}

/// The reference reports about lease `l` carry.
pub(crate) fn r(l: &Lease) -> AttemptRef {
    AttemptRef {
        job_id: l.job_id,
        attempt: l.attempt,
        token: l.token.clone(),
    }
}
