//! Two report batches that finish children of two arrays in opposite
//! orders, at the same time, on PostgreSQL. Each batch updates both
//! parents' counters; taken in the batch's own order, the two transactions
//! waited on each other and PostgreSQL aborted one (`deadlock detected`).
//! The workflow plan now takes the parents in one fixed order (by id), so
//! every round commits.

use trestle_core::api::{AttemptRef, Lease, Update, UpdatesRequest, WorkerRegistration};
use trestle_core::batch::spec::request_from_value;
use trestle_core::{AttemptReason, Capacity, JobState};
use trestle_store::{JobFilter, JobStore, LeaseParams, SqlStore, WorkerStore};
use trestle_store_conformance::db::TestDb;

const T0: i64 = 1_700_000_000_000;
const ROUNDS: usize = 60;

fn cap(cpus: u32) -> Capacity {
    Capacity {
        cpus,
        mem_mib: 1 << 20,
        gpus: 0,
    }
}

async fn lease_all(s: &SqlStore, worker: &str, now: i64) -> Vec<Lease> {
    s.lease(&LeaseParams {
        worker_id: worker,
        free: cap(1000),
        max_jobs: 1000,
        prefetch: 0,
        lease_ms: 600_000,
        now,
        kinds: &[],
    })
    .await
    .expect("lease")
}

fn finished(l: &Lease, now: i64) -> Update {
    Update::Finished {
        at: AttemptRef {
            job_id: l.job_id,
            attempt: l.attempt,
            token: l.token.clone(),
        },
        reason: AttemptReason::Success,
        exit_code: Some(0),
        time: now,
        message: None,
        cpu_ms: None,
        max_rss_kib: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_report_batches_over_two_arrays_do_not_deadlock() {
    let db = TestDb::postgres("deadlock").await;
    let a = db.store.clone();
    let b = SqlStore::connect(db.url()).await.unwrap();
    for (s, w) in [(&a, "w1"), (&b, "w2")] {
        s.register_worker(
            w,
            &WorkerRegistration {
                host: "h".into(),
                pid: 1,
                capacity: cap(1000),
                compute_env: None,
                instance: None,
                version: "test".into(),
                isolation: None,
            },
            T0,
        )
        .await
        .unwrap();
    }
    // Two arrays of two children at a time: refills give each array a new
    // child with the next id, so the arrays' children interleave by id.
    let spec = || {
        request_from_value(serde_json::json!({"command": "x", "array": "0-399%2"}))
            .unwrap()
            .validate()
            .unwrap()
    };
    let arrays = a.submit(&[spec(), spec()], T0).await.unwrap();
    let (p, q) = (arrays[0], arrays[1]);
    let mut active: Vec<Lease> = lease_all(&a, "w1", T0 + 1).await;
    assert_eq!(active.len(), 4);
    let parent = |l: &Lease| l.spec.flow.array_task.map(|t| t.parent);
    let mut failures = Vec::new();
    let mut rounds = 0;
    let mut now = T0 + 10;
    while rounds < ROUNDS {
        now += 1;
        active.sort_by_key(|l| l.job_id);
        let of =
            |x: i64| -> Vec<&Lease> { active.iter().filter(|l| parent(l) == Some(x)).collect() };
        let (ps, qs) = (of(p), of(q));
        if ps.len() < 2 || qs.len() < 2 {
            eprintln!(
                "stopping after {rounds} rounds: P has {} active, Q {}",
                ps.len(),
                qs.len()
            );
            break;
        }
        // Batch one ends a child of P and a later child of Q; batch two a
        // child of Q and a later child of P: in id order, one takes P's
        // counters first and the other Q's.
        let one = ps
            .iter()
            .find_map(|x| qs.iter().find(|y| y.job_id > x.job_id).map(|y| (*x, *y)));
        let two = qs.iter().find_map(|y| {
            ps.iter()
                .find(|x| x.job_id > y.job_id && one.is_none_or(|(a, _)| a.job_id != x.job_id))
                .map(|x| (*y, *x))
        });
        match (one, two) {
            (Some((x1, y1)), Some((y2, x2))) if y1.job_id != y2.job_id => {
                let b1 = UpdatesRequest {
                    heartbeat: vec![],
                    updates: vec![finished(x1, now), finished(y1, now)],
                    ..Default::default()
                };
                let b2 = UpdatesRequest {
                    heartbeat: vec![],
                    updates: vec![finished(y2, now), finished(x2, now)],
                    ..Default::default()
                };
                let done = [x1.job_id, y1.job_id, y2.job_id, x2.job_id];
                let (r1, r2) = tokio::join!(
                    a.apply_updates("w1", &b1, 600_000, now),
                    b.apply_updates("w1", &b2, 600_000, now)
                );
                for r in [r1, r2] {
                    if let Err(e) = r {
                        failures.push(format!("round {rounds}: {e}"));
                    }
                }
                rounds += 1;
                let ended: Vec<i64> = done.to_vec();
                active.retain(|l| !ended.contains(&l.job_id));
            }
            _ => {
                // No interleaving yet: end the oldest child alone, so its
                // array makes one with a newer id.
                let first = active.remove(0);
                a.apply_updates(
                    "w1",
                    &UpdatesRequest {
                        heartbeat: vec![],
                        updates: vec![finished(&first, now)],
                        ..Default::default()
                    },
                    600_000,
                    now,
                )
                .await
                .expect("a lone report");
            }
        }
        active.extend(lease_all(&a, "w1", now).await);
    }
    assert!(failures.is_empty(), "report batches aborted: {failures:?}");
    assert!(
        rounds >= ROUNDS / 2,
        "only {rounds} concurrent rounds were set up"
    );
    // Every child reported so far succeeded, exactly once.
    let all = a
        .list_jobs(&JobFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let children: Vec<_> = all.iter().filter(|j| j.flow.parent.is_some()).collect();
    assert!(children.iter().all(|j| matches!(
        j.state,
        JobState::Succeeded | JobState::Starting | JobState::Runnable
    )));
    b.close().await;
    db.finish().await;
}
