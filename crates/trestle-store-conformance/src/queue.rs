//! The conformance suite for the queue semantics: every store
//! implementation must pass every check here. Each check takes a fresh,
//! empty store. `tests/conformance.rs` runs each check as its own test on
//! SQLite and on PostgreSQL.

use crate::support::{r, spec, worker};
use std::sync::Arc;
use trestle_core::api::{AttemptRef, Lease, Update, UpdatesRequest, WorkerRegistration};
use trestle_core::{AttemptReason, AttemptState, Capacity, JobSpec, JobState};
use trestle_store::{EventFilter, JobFilter, LeaseParams, Store, StoreError};

/// Names of every check, for harnesses that enumerate them.
pub const CHECKS: &[&str] = &[
    "submit_get_list",
    "key_conflict_is_atomic",
    "lease_fits_capacity",
    "reports_are_fenced",
    "retries_then_fails",
    "expired_lease_is_lost_and_requeued",
    "cancel_semantics",
    "logs_in_order",
    "logs_keep_the_newest_output",
    "concurrent_leases_claim_once",
    "workers_and_tokens",
    "counts_and_demand",
    "batches_of_reports",
    "task_kinds",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "submit_get_list" => submit_get_list(&*s).await,
        "key_conflict_is_atomic" => key_conflict_is_atomic(&*s).await,
        "lease_fits_capacity" => lease_fits_capacity(&*s).await,
        "reports_are_fenced" => reports_are_fenced(&*s).await,
        "retries_then_fails" => retries_then_fails(&*s).await,
        "expired_lease_is_lost_and_requeued" => expired_lease_is_lost_and_requeued(&*s).await,
        "cancel_semantics" => cancel_semantics(&*s).await,
        "logs_in_order" => logs_in_order(&*s).await,
        "logs_keep_the_newest_output" => logs_keep_the_newest_output(&*s).await,
        "concurrent_leases_claim_once" => concurrent_leases_claim_once(s).await,
        "workers_and_tokens" => workers_and_tokens(&*s).await,
        "counts_and_demand" => counts_and_demand(&*s).await,
        "batches_of_reports" => batches_of_reports(&*s).await,
        "task_kinds" => task_kinds(&*s).await,
        other => panic!("unknown queue check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn cap(cpus: u32, mem_mib: u64) -> Capacity {
    Capacity {
        cpus,
        mem_mib,
        gpus: 0,
    }
}

async fn lease(s: &dyn Store, w: &str, free: Capacity, max: u32, now: i64) -> Vec<Lease> {
    s.lease(&LeaseParams {
        worker_id: w,
        free,
        max_jobs: max,
        prefetch: 0,
        lease_ms: 30_000,
        now,
        kinds: &[],
    })
    .await
    .expect("lease")
}

fn finished(at: AttemptRef, reason: AttemptReason, code: Option<i32>, time: i64) -> Update {
    Update::Finished {
        at,
        reason,
        exit_code: code,
        time,
        message: None,
        cpu_ms: None,
        max_rss_kib: None,
    }
}

async fn send(
    s: &dyn Store,
    w: &str,
    updates: Vec<Update>,
    now: i64,
) -> trestle_store::UpdateOutcome {
    s.apply_updates(
        w,
        &UpdatesRequest {
            heartbeat: vec![],
            updates,
            ..Default::default()
        },
        30_000,
        now,
    )
    .await
    .expect("updates")
}

async fn state(s: &dyn Store, id: i64) -> JobState {
    s.job(id).await.expect("get").expect("exists").state
}

async fn submit_get_list(s: &dyn Store) {
    let ids = s
        .submit(
            &[
                spec(r#"{"command":["echo","a"],"name":"first"}"#),
                spec(r#"{"command":"echo b","queue":"other","memory":"1G"}"#),
            ],
            T0,
        )
        .await
        .expect("submit");
    assert_eq!(ids.len(), 2);
    assert!(ids[1] > ids[0]);
    let j = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(j.name, "first");
    assert_eq!(j.state, JobState::Runnable);
    assert_eq!(j.submitted_at, T0);
    assert_eq!(j.spec, spec(r#"{"command":["echo","a"],"name":"first"}"#));
    assert!(j.attempts.is_empty());
    assert!(s.job(ids[1] + 1000).await.unwrap().is_none());
    let all = s
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    let q = s
        .list_jobs(&JobFilter {
            queue: Some("other".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].spec.resources.mem_mib, 1024);
    let none = s
        .list_jobs(&JobFilter {
            states: vec![JobState::Failed, JobState::Running],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let page = s
        .list_jobs(&JobFilter {
            before: Some(ids[1]),
            limit: 10,
            states: vec![JobState::Runnable],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, ids[0]);
}

async fn key_conflict_is_atomic(s: &dyn Store) {
    s.submit(&[spec(r#"{"command":["x"],"key":"k1"}"#)], T0)
        .await
        .unwrap();
    let err = s
        .submit(
            &[
                spec(r#"{"command":["x"],"key":"k2"}"#),
                spec(r#"{"command":["x"],"key":"k1"}"#),
            ],
            T0,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref field, .. } if field == "key"),
        "{err:?}"
    );
    let all = s
        .list_jobs(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "a failed batch must store nothing");

    // Keys are unique per owner: another user's key neither blocks nor
    // reveals yours.
    let owned = |owner: &str| {
        let mut s = spec(r#"{"command":["x"],"key":"shared"}"#);
        s.owner = Some(owner.into());
        s
    };
    let ada = s.submit(&[owned("ada")], T0).await.unwrap()[0];
    let bob = s.submit(&[owned("bob")], T0).await.unwrap()[0];
    assert_ne!(ada, bob);
    let again = s.submit(&[owned("ada")], T0).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict { .. }), "{again:?}");
    assert_eq!(s.job_id_by_key("ada", "shared").await.unwrap(), Some(ada));
    assert_eq!(s.job_id_by_key("bob", "shared").await.unwrap(), Some(bob));
    assert_eq!(s.job_id_by_key("eve", "shared").await.unwrap(), None);
    assert_eq!(
        s.job(ada).await.unwrap().unwrap().spec.key.as_deref(),
        Some("shared"),
        "the key is shown as it was given"
    );
}

async fn lease_fits_capacity(s: &dyn Store) {
    worker(s, "w1", 2).await;
    let ids = s
        .submit(
            &[
                spec(r#"{"command":["big"],"cpus":4}"#),
                spec(r#"{"command":["small"],"cpus":1,"memory":100}"#),
                spec(r#"{"command":["fat"],"cpus":1,"memory":5000}"#),
                spec(r#"{"command":["small2"],"cpus":1,"memory":100}"#),
            ],
            T0,
        )
        .await
        .unwrap();
    let got = lease(s, "w1", cap(2, 1000), 8, T0 + 1).await;
    let leased: Vec<i64> = got.iter().map(|l| l.job_id).collect();
    assert_eq!(leased, vec![ids[1], ids[3]]);
    assert!(got.iter().all(|l| l.attempt == 1 && l.token.len() >= 16));
    assert_eq!(got[0].spec.name, "small");
    let j = s.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Starting);
    assert_eq!(j.worker.as_deref(), Some("w1"));
    assert_eq!(j.attempts.len(), 1);
    assert_eq!(j.attempts[0].state, AttemptState::Running);
    assert_eq!(j.attempts[0].worker, "w1");
    assert_eq!(state(s, ids[0]).await, JobState::Runnable);
    // Nothing else fits two CPUs and 1000 MiB.
    assert!(lease(s, "w1", cap(2, 1000), 8, T0 + 2).await.is_empty());
    // max_jobs is honoured.
    let more = lease(s, "w1", cap(8, 100_000), 1, T0 + 3).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].job_id, ids[0]);
    // An unknown worker cannot lease.
    let err = s
        .lease(&LeaseParams {
            worker_id: "ghost",
            free: cap(8, 8000),
            max_jobs: 1,
            prefetch: 0,
            lease_ms: 1000,
            now: T0,
            kinds: &[],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    // Prefetch: beyond what fits together, more that each fit on their own.
    let ids = s
        .submit(&vec![spec(r#"{"command":["p"],"cpus":2}"#); 5], T0 + 4)
        .await
        .unwrap();
    let pre = s
        .lease(&LeaseParams {
            worker_id: "w1",
            free: cap(2, 1000),
            max_jobs: 4,
            prefetch: 3,
            lease_ms: 1000,
            now: T0 + 5,
            kinds: &[],
        })
        .await
        .unwrap();
    let leased: Vec<i64> = pre.iter().map(|l| l.job_id).collect();
    assert_eq!(leased, ids[..4].to_vec(), "one fits, three prefetched");
}

async fn reports_are_fenced(s: &dyn Store) {
    worker(s, "w1", 2).await;
    let ids = s.submit(&[spec(r#"{"command":["x"]}"#)], T0).await.unwrap();
    let l = lease(s, "w1", cap(2, 4096), 1, T0 + 5).await.remove(0);
    let mut forged = r(&l);
    forged.token = "0".repeat(32);
    let out = send(
        s,
        "w1",
        vec![finished(forged, AttemptReason::Success, Some(0), T0 + 6)],
        T0 + 6,
    )
    .await;
    assert_eq!(out.stale.len(), 1);
    assert_eq!(state(s, ids[0]).await, JobState::Starting);
    let out = send(
        s,
        "w1",
        vec![
            Update::Started {
                at: r(&l),
                time: T0 + 7,
            },
            finished(r(&l), AttemptReason::Success, Some(0), T0 + 9),
        ],
        T0 + 9,
    )
    .await;
    assert!(out.stale.is_empty());
    assert_eq!(out.started_latency_ms, vec![7]);
    assert_eq!(out.finished, vec![(ids[0], JobState::Succeeded)]);
    let j = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(j.exit_code, Some(0));
    assert_eq!(j.started_at, Some(T0 + 7));
    assert_eq!(j.finished_at, Some(T0 + 9));
    assert_eq!(j.worker, None);
    assert_eq!(j.attempts[0].state, AttemptState::Succeeded);
    assert_eq!(j.attempts[0].reason, Some(AttemptReason::Success));
    // A duplicate report changes nothing.
    let out = send(
        s,
        "w1",
        vec![finished(r(&l), AttemptReason::ExitCode, Some(1), T0 + 10)],
        T0 + 10,
    )
    .await;
    assert_eq!(out.stale.len(), 1);
    assert_eq!(state(s, ids[0]).await, JobState::Succeeded);
    assert!(
        !s.lease_holds(l.job_id, l.attempt, &l.token, "t-w1")
            .await
            .unwrap()
    );
}

async fn retries_then_fails(s: &dyn Store) {
    worker(s, "w1", 1).await;
    let ids = s
        .submit(&[spec(r#"{"command":["x"],"attempts":2}"#)], T0)
        .await
        .unwrap();
    let l1 = lease(s, "w1", cap(1, 4096), 1, T0).await.remove(0);
    assert!(
        s.lease_holds(l1.job_id, 1, &l1.token, "t-w1")
            .await
            .unwrap()
    );
    let out = send(
        s,
        "w1",
        vec![finished(r(&l1), AttemptReason::ExitCode, Some(3), T0 + 1)],
        T0 + 1,
    )
    .await;
    assert_eq!(out.finished, vec![(ids[0], JobState::Runnable)]);
    let j = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(j.attempts_used, 1);
    assert_eq!(j.exit_code, Some(3));
    let l2 = lease(s, "w1", cap(1, 4096), 1, T0 + 2).await.remove(0);
    assert_eq!(l2.attempt, 2);
    assert_ne!(l1.token, l2.token);
    send(
        s,
        "w1",
        vec![finished(
            r(&l2),
            AttemptReason::SuccessStringMissing,
            Some(0),
            T0 + 3,
        )],
        T0 + 3,
    )
    .await;
    let j = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.reason.as_deref(), Some("success-string-missing"));
    assert_eq!(j.attempts_used, 2);
    assert_eq!(j.attempts.len(), 2);
    assert_eq!(j.attempts[0].reason, Some(AttemptReason::ExitCode));
    assert_eq!(
        j.attempts[1].reason,
        Some(AttemptReason::SuccessStringMissing)
    );
    assert!(lease(s, "w1", cap(1, 4096), 1, T0 + 4).await.is_empty());
}

async fn expired_lease_is_lost_and_requeued(s: &dyn Store) {
    worker(s, "w1", 1).await;
    worker(s, "w2", 1).await;
    let ids = s.submit(&[spec(r#"{"command":["x"]}"#)], T0).await.unwrap();
    let l1 = lease(s, "w1", cap(1, 4096), 1, T0).await.remove(0);
    // A heartbeat extends the lease.
    let hb = s
        .apply_updates(
            "w1",
            &UpdatesRequest {
                heartbeat: vec![r(&l1)],
                updates: vec![],
                ..Default::default()
            },
            30_000,
            T0 + 20_000,
        )
        .await
        .unwrap();
    assert!(hb.stale.is_empty() && hb.cancel.is_empty());
    assert_eq!(s.expire_leases(T0 + 40_000).await.unwrap(), 0);
    assert_eq!(s.expire_leases(T0 + 50_001).await.unwrap(), 1);
    let j = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Runnable);
    assert_eq!(j.attempts_used, 0, "a lost attempt is not counted");
    assert_eq!(j.attempts[0].state, AttemptState::Lost);
    assert_eq!(j.attempts[0].reason, Some(AttemptReason::Lost));
    let l2 = lease(s, "w2", cap(1, 4096), 1, T0 + 50_002).await.remove(0);
    assert_eq!(l2.attempt, 2);
    // The old worker's late report and heartbeat are fenced off.
    let out = send(
        s,
        "w1",
        vec![finished(
            r(&l1),
            AttemptReason::Success,
            Some(0),
            T0 + 50_003,
        )],
        T0 + 50_003,
    )
    .await;
    assert_eq!(out.stale.len(), 1);
    let j = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Starting);
    assert_eq!(j.worker.as_deref(), Some("w2"));
    send(
        s,
        "w2",
        vec![finished(
            r(&l2),
            AttemptReason::Success,
            Some(0),
            T0 + 50_004,
        )],
        T0 + 50_004,
    )
    .await;
    assert_eq!(state(s, ids[0]).await, JobState::Succeeded);
    // A worker leaving hands back its leases.
    let ids = s.submit(&[spec(r#"{"command":["y"]}"#)], T0).await.unwrap();
    lease(s, "w1", cap(1, 4096), 1, T0 + 60_000).await;
    assert_eq!(s.release_worker_leases("w1", T0 + 60_001).await.unwrap(), 1);
    assert_eq!(state(s, ids[0]).await, JobState::Runnable);
}

async fn cancel_semantics(s: &dyn Store) {
    worker(s, "w1", 4).await;
    let ids = s
        .submit(
            &[spec(r#"{"command":["a"]}"#), spec(r#"{"command":["b"]}"#)],
            T0,
        )
        .await
        .unwrap();
    let c = s.cancel(ids[0], T0 + 1).await.unwrap().unwrap();
    assert_eq!(c.state, JobState::Cancelled);
    assert_eq!(c.finished_at, Some(T0 + 1));
    let l = lease(s, "w1", cap(4, 4096), 4, T0 + 2).await;
    assert_eq!(l.len(), 1, "a cancelled job is never leased");
    let c = s.cancel(ids[1], T0 + 3).await.unwrap().unwrap();
    assert_eq!(
        c.state,
        JobState::Starting,
        "a leased job waits for its worker"
    );
    let hb = s
        .apply_updates(
            "w1",
            &UpdatesRequest {
                heartbeat: vec![r(&l[0])],
                updates: vec![],
                ..Default::default()
            },
            30_000,
            T0 + 4,
        )
        .await
        .unwrap();
    assert_eq!(hb.cancel.len(), 1);
    assert_eq!(hb.cancel[0].job_id, ids[1]);
    send(
        s,
        "w1",
        vec![finished(r(&l[0]), AttemptReason::Cancelled, None, T0 + 5)],
        T0 + 5,
    )
    .await;
    let j = s.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.attempts[0].state, AttemptState::Cancelled);
    // Cancelling a finished job changes nothing; an unknown job is None.
    assert_eq!(
        s.cancel(ids[1], T0 + 6).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert!(s.cancel(ids[1] + 100, T0).await.unwrap().is_none());
}

async fn logs_in_order(s: &dyn Store) {
    worker(s, "w1", 1).await;
    let ids = s.submit(&[spec(r#"{"command":["x"]}"#)], T0).await.unwrap();
    let l = lease(s, "w1", cap(1, 4096), 1, T0).await.remove(0);
    let log = |seq: u32, data: &str| Update::Log {
        at: r(&l),
        seq,
        data: data.into(),
    };
    send(s, "w1", vec![log(1, "hello "), log(2, "world\n")], T0 + 1).await;
    // A retried chunk is not duplicated.
    send(s, "w1", vec![log(2, "world\n"), log(3, "bye\n")], T0 + 2).await;
    let all = s.read_log(ids[0], None, 0).await.unwrap().unwrap();
    assert_eq!(all.data, "hello world\nbye\n");
    assert_eq!(all.next, 3);
    assert_eq!(all.attempt, 1);
    let tail = s.read_log(ids[0], Some(1), 2).await.unwrap().unwrap();
    assert_eq!(tail.data, "bye\n");
    let empty = s.read_log(ids[0], Some(1), 3).await.unwrap().unwrap();
    assert_eq!((empty.data.as_str(), empty.next), ("", 3));
    assert!(s.read_log(ids[0] + 1, None, 0).await.unwrap().is_none());
}

async fn logs_keep_the_newest_output(s: &dyn Store) {
    use trestle_core::batch::logs::LogLimits;
    s.set_log_limits(LogLimits {
        default: 1 << 30,
        queues: [("small".to_string(), 64 * 1024)].into(),
    });
    worker(s, "w1", 2).await;
    let big = s
        .submit(&[spec(r#"{"command":["x"],"queue":"small"}"#)], T0)
        .await
        .unwrap()[0];
    let other = s.submit(&[spec(r#"{"command":["y"]}"#)], T0).await.unwrap()[0];
    let leases = lease(s, "w1", cap(2, 8192), 2, T0).await;
    let of = |id: i64| leases.iter().find(|l| l.job_id == id).unwrap();
    // 100 chunks of 4 KiB, each starting with its number, in batches of 10.
    let chunk = |seq: u32| format!("{seq:04}{}\n", "x".repeat(4091));
    for batch in 0..10u32 {
        let mut ups = Vec::new();
        for seq in batch * 10 + 1..=batch * 10 + 10 {
            for id in [big, other] {
                ups.push(Update::Log {
                    at: r(of(id)),
                    seq,
                    data: chunk(seq),
                });
            }
        }
        send(s, "w1", ups, T0 + 1 + i64::from(batch)).await;
    }
    let log = s.read_log(big, None, 0).await.unwrap().unwrap();
    assert!(log.data.len() <= 64 * 1024, "{} bytes kept", log.data.len());
    assert!(log.data.ends_with(&chunk(100)), "the newest output is kept");
    let (marker, kept) = log.data.split_once('\n').unwrap();
    assert!(marker.starts_with("[trestle: "), "{marker}");
    let kept_chunks = (kept.len() + 1) / 4096;
    let dropped = (100 - kept_chunks) * 4096;
    assert!(
        marker.contains(&format!("{dropped} bytes of earlier output were dropped")),
        "{marker} (kept {kept_chunks} chunks)"
    );
    assert_eq!(log.next, 100, "followers keep their place");
    // A queue with a larger limit keeps everything.
    let whole = s.read_log(other, None, 0).await.unwrap().unwrap();
    assert_eq!(whole.data, (1..=100).map(chunk).collect::<String>());
}

async fn concurrent_leases_claim_once(s: Arc<dyn Store>) {
    const JOBS: usize = 200;
    const WORKERS: usize = 8;
    let specs: Vec<JobSpec> = (0..JOBS).map(|_| spec(r#"{"command":["x"]}"#)).collect();
    s.submit(&specs, T0).await.unwrap();
    for w in 0..WORKERS {
        worker(&*s, &format!("w{w}"), 4).await;
    }
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let got = lease(&*s, &id, cap(4, 100_000), 4, T0 + 1).await;
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|l| l.job_id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a job was leased twice");
    assert_eq!(all.len(), JOBS, "every job was leased");
}

async fn workers_and_tokens(s: &dyn Store) {
    worker(s, "w1", 2).await;
    worker(s, "w2", 2).await;
    let dup = s
        .register_worker(
            "w1",
            &WorkerRegistration {
                host: "h".into(),
                pid: 2,
                capacity: cap(1, 1),
                compute_env: None,
                instance: None,
                version: "t".into(),
                isolation: None,
            },
            T0,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })));
    assert_eq!(
        s.worker_version("w1").await.unwrap().as_deref(),
        Some("test"),
        "the first registration's version"
    );
    assert_eq!(s.worker_version("nobody").await.unwrap(), None);
    let ids = s.submit(&[spec(r#"{"command":["x"]}"#)], T0).await.unwrap();
    lease(s, "w1", cap(2, 4096), 1, T0 + 1).await;
    let ws = s.list_workers().await.unwrap();
    assert_eq!(ws.len(), 2);
    assert_eq!(ws[0].running_jobs, vec![ids[0]]);
    assert!(s.touch_worker("w2", T0 + 100_000).await.unwrap());
    assert!(!s.touch_worker("nobody", T0).await.unwrap());
    // w1 was last seen at T0 + 1: reaping hands its job back.
    let gone = s.reap_workers(T0 + 50_000, T0 + 100_000).await.unwrap();
    assert_eq!(gone, vec!["w1".to_string()]);
    assert_eq!(state(s, ids[0]).await, JobState::Runnable);
    assert!(s.remove_worker("w2").await.unwrap());
    assert!(s.list_workers().await.unwrap().is_empty());

    // Worker credentials need no user (user tokens: [`crate::identity`]).
    s.create_token(
        &trestle_store::NewTokenRecord {
            id: "t1".into(),
            name: "worker".into(),
            hash: "hash1".into(),
            user: None,
            kind: trestle_core::identity::TokenKind::Worker,
            scope: trestle_core::identity::authz::Scope::Full,
            expires_at: None,
        },
        T0,
    )
    .await
    .unwrap();
    let t = s
        .find_token("hash1", T0 + 1, "127.0.0.1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.id, "t1");
    assert_eq!(t.kind, trestle_core::identity::TokenKind::Worker);
    assert!(
        s.find_token("nope", T0, "127.0.0.1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn counts_and_demand(s: &dyn Store) {
    s.submit(
        &[
            spec(r#"{"command":["a"],"cpus":2}"#),
            spec(r#"{"command":["b"],"cpus":3}"#),
            spec(r#"{"command":["c"],"cpus":64}"#),
            spec(r#"{"command":["d"],"queue":"q2"}"#),
        ],
        T0,
    )
    .await
    .unwrap();
    let d = s.runnable_demand(8, 1000).await.unwrap();
    assert_eq!((d.jobs, d.cpus, d.too_big, d.leased_cpus), (3, 6, 1, 0));
    worker(s, "w1", 4).await;
    let l = lease(s, "w1", cap(4, 100_000), 1, T0 + 1).await;
    assert_eq!(l.len(), 1);
    let d = s.runnable_demand(8, 1000).await.unwrap();
    assert_eq!((d.jobs, d.cpus, d.leased_cpus), (2, 4, 2));
    let capped = s.runnable_demand(8, 1).await.unwrap();
    assert_eq!(capped.jobs, 1, "the limit bounds the scan");
    let mut c = s.counts().await.unwrap();
    c.sort();
    assert_eq!(
        c,
        vec![
            ("default".to_string(), JobState::Runnable, 2),
            ("default".to_string(), JobState::Starting, 1),
            ("q2".to_string(), JobState::Runnable, 1)
        ]
    );
    s.ping().await.unwrap();
}

/// One lease and one report batch covering many attempts with every kind
/// of outcome: each attempt is judged on its own.
async fn batches_of_reports(s: &dyn Store) {
    worker(s, "w1", 8).await;
    let jobs = [
        r#"{"command":["ok"]}"#,
        r#"{"command":["retry"],"attempts":2}"#,
        r#"{"command":["forged"]}"#,
        r#"{"command":["twice"]}"#,
        r#"{"command":["cancel"]}"#,
        r#"{"command":["codes"],"attempts":3,"retry_exit_codes":[75]}"#,
    ];
    let ids = s
        .submit(&jobs.iter().map(|j| spec(j)).collect::<Vec<_>>(), T0)
        .await
        .unwrap();
    let l = lease(s, "w1", cap(8, 64 * 1024), 10, T0 + 1).await;
    assert_eq!(
        l.iter().map(|x| x.job_id).collect::<Vec<_>>(),
        ids,
        "leased in submission order"
    );
    assert!(
        l.iter()
            .all(|x| x.attempt == 1 && x.expires_at == T0 + 1 + 30_000)
    );
    s.cancel(ids[4], T0 + 2).await.unwrap();
    let mut forged = r(&l[2]);
    forged.token = "f".repeat(32);
    let mut updates: Vec<Update> = l
        .iter()
        .map(|x| Update::Started {
            at: r(x),
            time: T0 + 3,
        })
        .collect();
    updates.push(Update::Log {
        at: r(&l[0]),
        seq: 1,
        data: "out\n".into(),
    });
    updates.push(Update::Log {
        at: forged.clone(),
        seq: 1,
        data: "not mine\n".into(),
    });
    updates.extend([
        finished(r(&l[0]), AttemptReason::Success, Some(0), T0 + 4),
        finished(r(&l[1]), AttemptReason::ExitCode, Some(1), T0 + 4),
        finished(forged, AttemptReason::Success, Some(0), T0 + 4),
        finished(r(&l[3]), AttemptReason::Success, Some(0), T0 + 4),
        finished(r(&l[3]), AttemptReason::ExitCode, Some(2), T0 + 4),
        finished(r(&l[5]), AttemptReason::ExitCode, Some(1), T0 + 4),
    ]);
    let out = s
        .apply_updates(
            "w1",
            &UpdatesRequest {
                heartbeat: l.iter().map(r).collect(),
                updates,
                ..Default::default()
            },
            30_000,
            T0 + 5,
        )
        .await
        .unwrap();
    assert_eq!(
        out.finished,
        vec![
            (ids[0], JobState::Succeeded),
            (ids[1], JobState::Runnable),
            (ids[3], JobState::Succeeded),
            (ids[5], JobState::Failed),
        ],
        "exit 1 is not among job 6's retry codes"
    );
    let stale: Vec<i64> = out.stale.iter().map(|k| k.job_id).collect();
    assert_eq!(stale, vec![ids[2], ids[3]], "forged token; second end");
    assert_eq!(out.cancel.len(), 1);
    assert_eq!(out.cancel[0].job_id, ids[4]);
    assert_eq!(out.started_latency_ms, vec![3; 6]);
    let j = s.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts_used, j.reason.as_deref()),
        (JobState::Runnable, 1, Some("retrying after exit-code"))
    );
    assert_eq!(j.attempts[0].started_at, Some(T0 + 3));
    assert_eq!(j.attempts[0].exit_code, Some(1));
    let j = s.job(ids[3]).await.unwrap().unwrap();
    assert_eq!((j.state, j.exit_code), (JobState::Succeeded, Some(0)));
    // A start reported with its end is applied with it.
    assert_eq!(j.started_at, Some(T0 + 3));
    assert_eq!(j.attempts[0].started_at, Some(T0 + 3));
    assert_eq!(j.attempts[0].ended_at, Some(T0 + 4));
    assert_eq!(state(s, ids[2]).await, JobState::Running);
    let log = s.read_log(ids[0], None, 0).await.unwrap().unwrap();
    assert_eq!(log.data, "out\n");
    let log = s.read_log(ids[2], None, 0).await.unwrap().unwrap();
    assert_eq!(log.data, "", "a forged token writes no log");
    // Every change has its event, in order, even within one batch.
    let ev = s
        .events(&EventFilter {
            job: Some(ids[0]),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let states: Vec<JobState> = ev.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        vec![
            JobState::Runnable,
            JobState::Starting,
            JobState::Running,
            JobState::Succeeded
        ]
    );
    // The retried job is leased again with a new token.
    let again = lease(s, "w1", cap(8, 64 * 1024), 10, T0 + 6).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].job_id, again[0].attempt), (ids[1], 2));
    assert_ne!(again[0].token, l[1].token);
}

async fn lease_kinds(
    s: &dyn Store,
    kinds: &[trestle_core::task::TaskKind],
    now: i64,
) -> Vec<Lease> {
    s.lease(&LeaseParams {
        worker_id: "w1",
        free: cap(4, 4096),
        max_jobs: 4,
        prefetch: 0,
        lease_ms: 30_000,
        now,
        kinds,
    })
    .await
    .expect("lease")
}

/// Tasks of each kind are leased only to workers that run that kind (a
/// worker that names none runs batch only), and a lost lease means what
/// the kind says: a batch attempt runs again, a session ends FAILED.
async fn task_kinds(s: &dyn Store) {
    use trestle_core::task::TaskKind;
    worker(s, "w1", 4).await;
    let mut session = spec(r#"{"command":["serve"],"name":"ws"}"#);
    session.task = TaskKind::Session;
    let ids = s
        .submit(&[spec(r#"{"command":["x"]}"#), session.clone()], T0)
        .await
        .unwrap();
    let stored = s.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(stored.spec.task, TaskKind::Session, "the kind is kept");
    let batch = lease_kinds(s, &[], T0).await;
    assert_eq!(
        batch.iter().map(|l| l.job_id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let sess = lease_kinds(s, &[TaskKind::Session], T0).await;
    assert_eq!(sess.len(), 1);
    assert_eq!(sess[0].job_id, ids[1]);
    assert_eq!(sess[0].spec.task, TaskKind::Session);
    assert_eq!(s.expire_leases(T0 + 30_001).await.unwrap(), 2);
    let b = s.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        b.state,
        JobState::Runnable,
        "a lost batch attempt runs again"
    );
    let w = s.job(ids[1]).await.unwrap().unwrap();
    assert_eq!(w.state, JobState::Failed, "a lost session is never re-run");
    assert!(
        w.reason.as_deref().unwrap_or("").contains("never re-run"),
        "{:?}",
        w.reason
    );
    assert!(
        lease_kinds(s, &[TaskKind::Session], T0 + 30_002)
            .await
            .is_empty()
    );
}
