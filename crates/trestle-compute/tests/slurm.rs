//! The Slurm provider against the real local Slurm that `scripts/slurm.sh`
//! starts (`./scripts/test.sh` does): the provider conformance suite, and
//! what Slurm answers for settings and shapes it cannot honour.

use std::collections::HashMap;
use std::time::Duration;
use trestle_compute::{
    ComputeError, InstanceStatus, LaunchRequest, Provider, SlurmConfig, SlurmProvider,
};
use trestle_core::Capacity;

/// Points the Slurm tools at the test cluster and checks it answers.
fn slurm_ready() {
    let conf = std::env::var("TRESTLE_TEST_SLURM_CONF")
        .unwrap_or_else(|_| "/var/lib/trestle-slurm/etc/slurm.conf".to_string());
    // SAFETY: set before any thread of this test binary reads the
    // environment; every test sets the same value.
    unsafe { std::env::set_var("SLURM_CONF", &conf) };
    let out = std::process::Command::new("sinfo")
        .arg("--noheader")
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "Slurm must be running for these tests (./scripts/slurm.sh start, SLURM_CONF={conf}): {other:?}"
        ),
    }
}

fn provider(name: &str, dir: &std::path::Path, partition: Option<&str>) -> SlurmProvider {
    let shapes: HashMap<String, Capacity> = [("s1".to_string(), shape())].into();
    SlurmProvider::new(SlurmConfig {
        env_name: name.into(),
        job_name: format!("trestle-test-{name}-{}", std::process::id()),
        command: trestle_compute::stand_in_worker(dir),
        shapes,
        partition: partition.map(str::to_string),
        account: None,
        qos: None,
        extra_args: vec![],
        time_limit_secs: 600,
        log_dir: Some(dir.join("logs")),
    })
}

fn shape() -> Capacity {
    Capacity {
        cpus: 1,
        mem_mib: 100,
        gpus: 0,
    }
}

#[tokio::test]
async fn slurm_provider_conforms() {
    slurm_ready();
    let dir = tempfile::tempdir().unwrap();
    let p = provider("conf", dir.path(), None);
    trestle_compute::conformance(&p, shape(), dir.path(), Duration::from_secs(60)).await;
    let avail = p.available(&[("s1".into(), shape())]).await.unwrap();
    assert!(avail["s1"] >= 1, "{avail:?}");
}

#[tokio::test]
async fn bad_settings_and_impossible_shapes() {
    slurm_ready();
    let dir = tempfile::tempdir().unwrap();
    let p = provider("bad", dir.path(), Some("nosuchpartition"));
    let req = LaunchRequest {
        shape_name: "s1",
        shape: shape(),
        count: 1,
        env: &[],
    };
    match p.launch(&req).await {
        Err(ComputeError::Launch(m)) => assert!(m.contains("partition"), "{m}"),
        other => panic!("a bad partition is a launch error: {other:?}"),
    }
    // More memory than any node has: sbatch refuses at once.
    let p = provider("huge", dir.path(), None);
    let huge = Capacity {
        cpus: 1,
        mem_mib: 64 * 1024 * 1024,
        gpus: 0,
    };
    let r = p
        .launch(&LaunchRequest {
            shape_name: "s1",
            shape: huge,
            count: 1,
            env: &[],
        })
        .await;
    assert!(matches!(r, Err(ComputeError::Capacity(_))), "{r:?}");
    // More CPUs than any node has: accepted, but pending for good.
    let many = Capacity {
        cpus: 512,
        mem_mib: 100,
        gpus: 0,
    };
    let w = p
        .launch(&LaunchRequest {
            shape_name: "s1",
            shape: many,
            count: 1,
            env: &[],
        })
        .await
        .unwrap();
    let id = w[0].id.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let l = p.list().await.unwrap();
        let st = l.iter().find(|x| x.id == id).map(|x| x.status.clone());
        if matches!(st, Some(InstanceStatus::Stuck(_))) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reported stuck: {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.terminate(&id).await.unwrap();
}
