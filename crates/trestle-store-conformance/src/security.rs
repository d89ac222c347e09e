//! The conformance suite for the storage side of the security review
//! (issue #19): a lease is bound to the worker it was granted to, and an
//! upload is sealed by the submit that names it as inputs. Each check
//! takes a fresh, empty store; `tests/conformance.rs` runs each on SQLite
//! and on PostgreSQL.

use crate::support::{r, spec};
use std::sync::Arc;
use std::time::Duration;
use trestle_core::api::{AttemptRef, Lease, Update, UpdatesRequest};
use trestle_core::batch::pipeline::PipelineRequest;
use trestle_core::{AttemptReason, Capacity, JobState};
use trestle_store::{LeaseParams, Store};

/// Names of every check, for harnesses that enumerate them.
pub const CHECKS: &[&str] = &[
    "leases_are_bound_to_their_worker",
    "submits_seal_their_uploads",
    "a_held_upload_delays_the_seal",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "leases_are_bound_to_their_worker" => leases_are_bound_to_their_worker(&*s).await,
        "submits_seal_their_uploads" => submits_seal_their_uploads(&*s).await,
        "a_held_upload_delays_the_seal" => a_held_upload_delays_the_seal(s).await,
        other => panic!("unknown security check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn cap(cpus: u32) -> Capacity {
    Capacity {
        cpus,
        mem_mib: 64 * 1024,
        gpus: 0,
    }
}

async fn lease(s: &dyn Store, w: &str, max: u32, now: i64) -> Vec<Lease> {
    s.lease(&LeaseParams {
        worker_id: w,
        free: cap(4),
        max_jobs: max,
        prefetch: 0,
        lease_ms: 30_000,
        now,
        kinds: &[],
    })
    .await
    .expect("lease")
}

/// A start, a log chunk and a successful end of `l`'s attempt.
fn reports(l: &Lease, text: &str, time: i64) -> Vec<Update> {
    vec![
        Update::Started { at: r(l), time },
        Update::Log {
            at: r(l),
            seq: 1,
            data: text.into(),
        },
        Update::Finished {
            at: r(l),
            reason: AttemptReason::Success,
            exit_code: Some(0),
            time: time + 1,
            message: None,
            cpu_ms: None,
            max_rss_kib: None,
        },
    ]
}

async fn send(
    s: &dyn Store,
    w: &str,
    heartbeat: Vec<AttemptRef>,
    updates: Vec<Update>,
    now: i64,
) -> trestle_store::UpdateOutcome {
    s.apply_updates(
        w,
        &UpdatesRequest {
            heartbeat,
            updates,
            ..Default::default()
        },
        30_000,
        now,
    )
    .await
    .expect("updates")
}

/// Another worker presenting a lease's token changes nothing and is told
/// the attempt is stale, exactly as for a token that does not exist; the
/// holder still reports.
async fn leases_are_bound_to_their_worker(s: &dyn Store) {
    crate::support::worker(s, "w1", 4).await;
    crate::support::worker(s, "w2", 4).await;
    let ids = s
        .submit(
            &[spec(r#"{"command":["a"]}"#), spec(r#"{"command":["b"]}"#)],
            T0,
        )
        .await
        .unwrap();
    let held = lease(s, "w1", 1, T0 + 1).await.remove(0);
    let own = lease(s, "w2", 1, T0 + 2).await.remove(0);
    assert_eq!((held.job_id, own.job_id), (ids[0], ids[1]));
    let before = s.job(held.job_id).await.unwrap().unwrap();

    // w2 sends w1's token: heartbeat, start, log and end, with a report of
    // its own lease in the same batch.
    let mut updates = reports(&held, "forged\n", T0 + 10);
    updates.push(Update::Started {
        at: r(&own),
        time: T0 + 10,
    });
    let out = send(s, "w2", vec![r(&held), r(&own)], updates, T0 + 10).await;
    assert!(
        out.stale.iter().all(|k| k.job_id == held.job_id) && out.stale.len() == 1,
        "w1's attempt is stale for w2, w2's own is not: {:?}",
        out.stale
    );
    assert!(out.finished.is_empty(), "{:?}", out.finished);
    let after = s.job(held.job_id).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Starting, "nothing applied");
    assert_eq!(after.started_at, None);
    assert_eq!(after.worker.as_deref(), Some("w1"));
    assert_eq!(after.attempts, before.attempts);
    let log = s.read_log(held.job_id, None, 0).await.unwrap().unwrap();
    assert_eq!(log.data, "", "no log chunk stored");
    assert_eq!(
        s.job(own.job_id).await.unwrap().unwrap().state,
        JobState::Running,
        "w2's own report applied"
    );

    // The same answer as a token that never existed.
    let mut unknown = held.clone();
    unknown.token = "0".repeat(32);
    let forged = send(s, "w2", vec![r(&held)], vec![], T0 + 11).await;
    let made_up = send(s, "w2", vec![r(&unknown)], vec![], T0 + 11).await;
    assert_eq!(forged.stale, made_up.stale);
    assert_eq!(forged.cancel, made_up.cancel);

    // Output uploads: only the credential of the lease's worker holds it.
    assert!(
        s.lease_holds(held.job_id, held.attempt, &held.token, "t-w1")
            .await
            .unwrap()
    );
    assert!(
        !s.lease_holds(held.job_id, held.attempt, &held.token, "t-w2")
            .await
            .unwrap()
    );
    assert!(
        !s.lease_holds(held.job_id, held.attempt, &unknown.token, "t-w1")
            .await
            .unwrap()
    );

    // w1 still reports its attempt.
    let out = send(
        s,
        "w1",
        vec![r(&held)],
        reports(&held, "real\n", T0 + 20),
        T0 + 20,
    )
    .await;
    assert!(out.stale.is_empty(), "{:?}", out.stale);
    assert_eq!(out.finished, vec![(held.job_id, JobState::Succeeded)]);
    let log = s.read_log(held.job_id, None, 0).await.unwrap().unwrap();
    assert_eq!(log.data, "real\n");
    assert_eq!(
        s.job(held.job_id).await.unwrap().unwrap().started_at,
        Some(T0 + 20)
    );
}

/// Single, batch and pipeline submits seal the uploads they name (and no
/// other); a sealed upload cannot be held for writing.
async fn submits_seal_their_uploads(s: &dyn Store) {
    for u in ["u-a", "u-b", "u-c", "u-d", "u-free"] {
        s.create_upload(u, "alice", T0).await.unwrap();
        assert!(!s.upload_sealed(u).await.unwrap());
    }
    let hold = s.hold_unsealed_upload("u-a").await.unwrap();
    hold.expect("an open upload can be held")
        .release()
        .await
        .unwrap();

    s.submit(&[spec(r#"{"command":["x"],"inputs":"u-a"}"#)], T0)
        .await
        .unwrap();
    s.submit(
        &[
            spec(r#"{"command":["x"],"inputs":"u-b"}"#),
            spec(r#"{"command":["x"],"inputs":"u-b"}"#),
            spec(r#"{"command":["x"]}"#),
        ],
        T0,
    )
    .await
    .unwrap();
    let req: PipelineRequest = serde_json::from_str(
        r#"{"name":"p","steps":[
            {"name":"one","command":"one","inputs":"u-d"},
            {"name":"two","command":"two","after":["one"],"inputs":"u-c"}
        ]}"#,
    )
    .unwrap();
    s.submit_pipeline(&req.validate().unwrap(), T0)
        .await
        .unwrap();
    for u in ["u-a", "u-b", "u-c", "u-d"] {
        assert!(s.upload_sealed(u).await.unwrap(), "{u} is sealed");
        assert!(
            s.hold_unsealed_upload(u).await.unwrap().is_none(),
            "{u} cannot be written"
        );
    }
    assert!(!s.upload_sealed("u-free").await.unwrap());
    assert!(s.hold_unsealed_upload("u-free").await.unwrap().is_some());
    assert!(s.hold_unsealed_upload("u-unknown").await.unwrap().is_none());
    // A second submit with a sealed upload (a resubmission) is fine.
    s.submit(&[spec(r#"{"command":["y"],"inputs":"u-a"}"#)], T0 + 1)
        .await
        .unwrap();
    assert!(s.upload_sealed("u-a").await.unwrap());
}

/// A submit naming an upload that a writer holds waits for the hold to
/// end, then seals it: a file made visible under the hold is in the job's
/// inputs, and nothing is written after.
async fn a_held_upload_delays_the_seal(s: Arc<dyn Store>) {
    s.create_upload("u-race", "alice", T0).await.unwrap();
    let hold = s
        .hold_unsealed_upload("u-race")
        .await
        .unwrap()
        .expect("held");
    let s2 = s.clone();
    let submit = tokio::spawn(async move {
        s2.submit(&[spec(r#"{"command":["x"],"inputs":"u-race"}"#)], T0)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!submit.is_finished(), "the submit waits for the writer");
    assert!(!s.upload_sealed("u-race").await.unwrap());
    hold.release().await.unwrap();
    let ids = tokio::time::timeout(Duration::from_secs(10), submit)
        .await
        .expect("the submit goes on once the hold ends")
        .unwrap()
        .unwrap();
    assert_eq!(ids.len(), 1);
    assert!(s.upload_sealed("u-race").await.unwrap());
    assert!(s.hold_unsealed_upload("u-race").await.unwrap().is_none());
}
