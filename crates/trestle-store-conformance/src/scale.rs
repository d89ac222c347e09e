//! Conformance checks for scaling out (compute environments, queues and
//! their priorities, routed leasing, the autoscaler's snapshot, leader
//! leases). `tests/conformance.rs` runs each check as its own test on SQLite
//! and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;
use trestle_core::api::WorkerRegistration;
use trestle_core::batch::spec::JobRequest;
use trestle_core::compute::{ComputeEnvRequest, ComputeEnvSpec, QueueRequest, QueueSpec};
use trestle_core::{Capacity, JobSpec, Resources};
use trestle_store::scale::{SOURCE_API, SOURCE_CONFIG};
use trestle_store::{LeaseParams, Store, StoreError};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "compute_envs_and_queues",
    "queue_priority_orders_leases",
    "routed_leases_and_snapshot",
    "leader_leases",
];

/// Runs one named check on a fresh store.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "compute_envs_and_queues" => compute_envs_and_queues(&*s).await,
        "queue_priority_orders_leases" => queue_priority_orders_leases(&*s).await,
        "routed_leases_and_snapshot" => routed_leases_and_snapshot(&*s).await,
        "leader_leases" => leader_leases(&*s).await,
        other => panic!("unknown scale check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn ce(name: &str, max: u32) -> ComputeEnvSpec {
    let req: ComputeEnvRequest = serde_json::from_value(serde_json::json!({
        "provider": "local",
        "shapes": [{"name": "c1", "vcpus": 1, "memory": "1G"}],
        "max_vcpus": max,
    }))
    .unwrap();
    req.validate(name).unwrap()
}

fn queue(name: &str, priority: i64, envs: &[&str]) -> QueueSpec {
    QueueRequest {
        priority: Some(priority),
        compute_environments: Some(envs.iter().map(|e| e.to_string()).collect()),
        ..Default::default()
    }
    .validate(name)
    .unwrap()
}

fn job(queue: &str, priority: i32, cpus: u32) -> JobSpec {
    let req: JobRequest = serde_json::from_value(serde_json::json!({
        "command": ["true"], "queue": queue, "priority": priority, "cpus": cpus, "memory": "100M",
    }))
    .unwrap();
    req.validate().unwrap()
}

async fn worker(s: &dyn Store, id: &str, env: Option<&str>) {
    s.register_worker(
        id,
        &WorkerRegistration {
            host: "h".into(),
            pid: 1,
            capacity: Capacity {
                cpus: 64,
                mem_mib: 1 << 20,
                gpus: 0,
            },
            compute_env: env.map(str::to_string),
            instance: Some(format!("i-{id}")),
            version: "t".into(),
            isolation: None,
        },
        T0,
    )
    .await
    .unwrap();
}

async fn lease_one(s: &dyn Store, w: &str, exclude: &str) -> Option<i64> {
    let l = s
        .lease_routed(
            &LeaseParams {
                worker_id: w,
                free: Capacity {
                    cpus: 64,
                    mem_mib: 1 << 20,
                    gpus: 0,
                },
                max_jobs: 1,
                prefetch: 0,
                lease_ms: 60_000,
                now: T0,
                kinds: &[],
            },
            exclude,
        )
        .await
        .unwrap();
    l.first().map(|l| l.job_id)
}

async fn compute_envs_and_queues(s: &dyn Store) {
    assert!(
        s.put_compute_env(&ce("a", 4), SOURCE_CONFIG, T0)
            .await
            .unwrap()
    );
    assert!(
        !s.put_compute_env(&ce("a", 8), SOURCE_API, T0 + 1)
            .await
            .unwrap()
    );
    assert!(
        s.put_compute_env(&ce("b", 2), SOURCE_CONFIG, T0)
            .await
            .unwrap()
    );
    let envs = s.compute_envs().await.unwrap();
    assert_eq!(envs.len(), 2);
    assert_eq!(envs[0].spec.max_vcpus, 8);
    assert_eq!(envs[0].source, SOURCE_API);
    assert_eq!(envs[0].status, "VALID");
    // Status changes are reported once.
    assert!(
        s.set_compute_env_status("b", "INVALID", Some("sbatch: bad partition"), T0)
            .await
            .unwrap()
    );
    assert!(
        !s.set_compute_env_status("b", "INVALID", Some("sbatch: bad partition"), T0 + 5)
            .await
            .unwrap()
    );
    let b = s.compute_envs().await.unwrap().remove(1);
    assert_eq!(b.status_reason.as_deref(), Some("sbatch: bad partition"));
    assert_eq!(b.status_at, Some(T0));
    // Replacing the settings makes it valid again.
    s.put_compute_env(&ce("b", 2), SOURCE_CONFIG, T0 + 9)
        .await
        .unwrap();
    assert_eq!(s.compute_envs().await.unwrap()[1].status, "VALID");
    for i in 0..3 {
        s.add_compute_env_event("b", "launched", &format!("pilot {i}"), T0 + i)
            .await
            .unwrap();
    }
    let ev = s.compute_env_events("b", 2).await.unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].message, "pilot 2");
    assert!(s.compute_env_events("a", 10).await.unwrap().is_empty());
    // Queues; a CE a queue lists cannot be deleted.
    assert!(
        s.put_queue(&queue("q", 5, &["a", "b"]), SOURCE_CONFIG, T0)
            .await
            .unwrap()
    );
    assert!(
        !s.put_queue(&queue("q", 6, &["b"]), SOURCE_CONFIG, T0)
            .await
            .unwrap()
    );
    let qs = s.queue_records().await.unwrap();
    assert_eq!(qs.len(), 1);
    assert_eq!(qs[0].spec.priority, 6);
    assert_eq!(qs[0].spec.compute_environments, vec!["b".to_string()]);
    assert!(matches!(
        s.delete_compute_env("b").await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(s.delete_compute_env("a").await.unwrap());
    assert!(!s.delete_compute_env("a").await.unwrap());
    // Pruning a source keeps what the config still declares.
    s.put_queue(&queue("api-q", 0, &["b"]), SOURCE_API, T0)
        .await
        .unwrap();
    s.prune_source(SOURCE_CONFIG, &[], &[]).await.unwrap();
    let qs = s.queue_records().await.unwrap();
    assert_eq!(qs.len(), 1, "the config queue is gone, the API one stays");
    assert_eq!(qs[0].spec.name, "api-q");
    assert_eq!(
        s.compute_envs().await.unwrap().len(),
        1,
        "b stays: api-q lists it"
    );
    assert!(s.delete_queue("api-q").await.unwrap());
    assert!(!s.delete_queue("api-q").await.unwrap());
    s.prune_source(SOURCE_CONFIG, &[], &[]).await.unwrap();
    assert!(s.compute_envs().await.unwrap().is_empty());
}

async fn queue_priority_orders_leases(s: &dyn Store) {
    s.put_compute_env(&ce("a", 4), SOURCE_CONFIG, T0)
        .await
        .unwrap();
    s.put_queue(&queue("low", 1, &["a"]), SOURCE_CONFIG, T0)
        .await
        .unwrap();
    s.put_queue(&queue("high", 10, &["a"]), SOURCE_CONFIG, T0)
        .await
        .unwrap();
    let ids = s
        .submit(
            &[
                job("low", 5, 1),
                job("other", 100, 1),
                job("high", -3, 1),
                job("low", 7, 1),
            ],
            T0,
        )
        .await
        .unwrap();
    worker(s, "w", None).await;
    let mut order = Vec::new();
    while let Some(id) = lease_one(s, "w", ",").await {
        order.push(id);
    }
    // Queue priority first, job priority within a queue, undeclared last.
    assert_eq!(order, vec![ids[2], ids[3], ids[0], ids[1]]);
    // Raising a queue's priority moves its waiting jobs ahead.
    let more = s
        .submit(
            &[job("high", 0, 1), job("low", 0, 1), job("other", 0, 1)],
            T0,
        )
        .await
        .unwrap();
    s.put_queue(&queue("low", 50, &["a"]), SOURCE_CONFIG, T0)
        .await
        .unwrap();
    assert_eq!(lease_one(s, "w", ",").await, Some(more[1]));
    // Deleting a queue puts its jobs back at queue priority 0.
    s.delete_queue("high").await.unwrap();
    let jobs_left = lease_one(s, "w", ",").await;
    assert_eq!(jobs_left, Some(more[0]), "job priority 0, lower id first");
    assert_eq!(lease_one(s, "w", ",").await, Some(more[2]));
}

async fn routed_leases_and_snapshot(s: &dyn Store) {
    let ids = s
        .submit(
            &[
                job("a", 0, 1),
                job("b", 0, 2),
                job("a", 0, 1),
                job("b", 0, 2),
                job("a", 0, 4),
            ],
            T0,
        )
        .await
        .unwrap();
    let buckets = s.runnable_buckets(100).await.unwrap();
    let summary: Vec<(String, u32, u64)> = buckets
        .iter()
        .map(|b| (b.queue.clone(), b.resources.cpus, b.count))
        .collect();
    assert_eq!(
        summary,
        vec![("a".into(), 1, 2), ("b".into(), 2, 2), ("a".into(), 4, 1)]
    );
    // The snapshot looks at no more than `limit` jobs.
    let few: u64 = s
        .runnable_buckets(3)
        .await
        .unwrap()
        .iter()
        .map(|b| b.count)
        .sum();
    assert_eq!(few, 3);
    worker(s, "wa", Some("env-a")).await;
    worker(s, "wb", None).await;
    assert_eq!(
        s.worker_compute_env("wa").await.unwrap(),
        Some(Some("env-a".to_string()))
    );
    assert_eq!(s.worker_compute_env("wb").await.unwrap(), Some(None));
    assert_eq!(s.worker_compute_env("nope").await.unwrap(), None);
    let listed = s.list_workers().await.unwrap();
    assert_eq!(listed[0].instance.as_deref(), Some("i-wa"));
    // A worker whose CE does not serve queue b never gets its jobs.
    let mut got = Vec::new();
    while let Some(id) = lease_one(s, "wa", ",b,").await {
        got.push(id);
    }
    assert_eq!(got, vec![ids[0], ids[2], ids[4]]);
    assert_eq!(lease_one(s, "wb", ",").await, Some(ids[1]));
    let mut leased = s.leased_by_worker().await.unwrap();
    leased.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(leased.len(), 2);
    assert_eq!(leased[0].0, "wa");
    assert_eq!(
        leased[0].1,
        Resources {
            cpus: 6,
            mem_mib: 300,
            gpus: 0
        }
    );
    assert_eq!(leased[1].1.cpus, 2);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn leader_leases(s: &dyn Store) {
    assert!(s.try_lead("reaper", "h1", 400, now()).await.unwrap());
    assert!(!s.try_lead("reaper", "h2", 400, now()).await.unwrap());
    assert!(
        s.try_lead("reaper", "h1", 400, now()).await.unwrap(),
        "renewal"
    );
    assert!(s.try_lead("autoscaler", "h2", 60_000, now()).await.unwrap());
    let l = s.leaders(now()).await.unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].name, "autoscaler");
    assert_eq!(l[1].holder, "h1");
    assert!(l[1].expires_at > l[1].now);
    let first = l[1].acquired_at;
    // The holder stops renewing: the lease runs out and h2 takes it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(s.try_lead("reaper", "h2", 400, now()).await.unwrap());
    assert!(!s.try_lead("reaper", "h1", 400, now()).await.unwrap());
    let l = s.leaders(now()).await.unwrap();
    assert_eq!(l[1].holder, "h2");
    assert!(l[1].acquired_at > first);
    // Resigning frees every lease at once.
    assert_eq!(s.resign("h2").await.unwrap(), 2);
    assert!(s.try_lead("reaper", "h1", 400, now()).await.unwrap());
    assert!(s.try_lead("autoscaler", "h1", 400, now()).await.unwrap());
}
