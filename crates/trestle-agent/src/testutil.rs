//! Helpers shared by the unit tests.

use trestle_core::api::Lease;
use trestle_core::{Command, JobSpec, Resources};

/// A spec running `command` with 1 CPU.
pub fn spec(command: Command) -> JobSpec {
    JobSpec {
        name: "test-job".into(),
        queue: "default".into(),
        key: None,
        command,
        env: Default::default(),
        resources: Resources {
            cpus: 1,
            mem_mib: 10,
            gpus: 0,
        },
        timeout_secs: 0,
        max_attempts: 1,
        success_string: None,
        retry_exit_codes: vec![],
        inputs: None,
        workdir: None,
        priority: 0,
        tags: Default::default(),
        project: None,
        owner: None,
        flow: Default::default(),
        task: Default::default(),
        session: None,
        studies: Vec::new(),
    }
}

/// A lease on attempt 1 of `job_id` (token `t<job_id>`) needing `cpus`.
pub fn lease(job_id: i64, cpus: u32) -> Lease {
    let mut spec = spec(Command::Argv(vec!["true".into()]));
    spec.resources.cpus = cpus;
    Lease {
        job_id,
        attempt: 1,
        token: format!("t{job_id}"),
        spec,
        expires_at: 0,
        full_log: false,
        run_as: None,
    }
}
