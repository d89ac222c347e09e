//! Data integrity on SQLite and PostgreSQL: every spec the API accepts is
//! stored and read back equal (a property test over generated requests:
//! plain jobs, arrays and their children, sbatch jobs, seed JSON,
//! resubmissions); a resubmitted array task is one plain job and breaks no
//! listing; one row that cannot be decoded is skipped, reported and
//! counted, and everything else carries on.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use trestle_core::api::{AttemptRef, Update, UpdatesRequest, WorkerRegistration};
use trestle_core::batch::resubmit::resubmission;
use trestle_core::batch::spec::request_from_value;
use trestle_core::batch::workflow::JobKind;
use trestle_core::{AttemptReason, Capacity, JobSpec, JobState};
use trestle_store::{JobFilter, JobStore, LeaseParams, SqlStore, StoreError, WorkerStore};
use trestle_store_conformance::db::TestDb;

const T0: i64 = 1_700_000_000_000;

fn spec(v: Value) -> JobSpec {
    request_from_value(v).unwrap().validate().unwrap()
}

async fn all(s: &SqlStore) -> Vec<trestle_core::api::JobView> {
    s.list_jobs(&JobFilter {
        limit: 1000,
        ..Default::default()
    })
    .await
    .expect("listing")
}

async fn worker(s: &SqlStore) {
    s.register_worker(
        "w",
        &WorkerRegistration {
            host: "h".into(),
            pid: 1,
            capacity: Capacity {
                cpus: 16,
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
    .unwrap();
}

async fn lease(s: &SqlStore, now: i64) -> Vec<trestle_core::api::Lease> {
    s.lease(&LeaseParams {
        worker_id: "w",
        free: Capacity {
            cpus: 16,
            mem_mib: 64 * 1024,
            gpus: 0,
        },
        max_jobs: 16,
        prefetch: 0,
        lease_ms: 30_000,
        now,
        kinds: &[],
    })
    .await
    .expect("lease")
}

async fn finish(s: &SqlStore, l: &trestle_core::api::Lease, code: i32, now: i64) {
    let at = AttemptRef {
        job_id: l.job_id,
        attempt: l.attempt,
        token: l.token.clone(),
    };
    let reason = if code == 0 {
        AttemptReason::Success
    } else {
        AttemptReason::ExitCode
    };
    s.apply_updates(
        "w",
        &UpdatesRequest {
            heartbeat: vec![],
            updates: vec![
                Update::Started {
                    at: at.clone(),
                    time: now,
                },
                Update::Finished {
                    at,
                    reason,
                    exit_code: Some(code),
                    time: now,
                    message: None,
                    cpu_ms: None,
                    max_rss_kib: None,
                },
            ],
            ..Default::default()
        },
        30_000,
        now,
    )
    .await
    .expect("report");
}

/// The portal's failure: resubmitting a failed task of an array.
async fn resubmitted_array_task(s: &SqlStore) {
    worker(s).await;
    let ids = s
        .submit(
            &[spec(json!({"command": "./sweep.sh", "array": "0-3"}))],
            T0,
        )
        .await
        .unwrap();
    let array = ids[0];
    let leases = lease(s, T0 + 1).await;
    assert_eq!(leases.len(), 4, "every child leased");
    let mut failed = None;
    for l in &leases {
        let index = l.spec.flow.array_task.expect("a child").index;
        finish(s, l, i32::from(index == 2), T0 + 2).await;
        if index == 2 {
            failed = Some(l.job_id);
        }
    }
    let child = s.job(failed.unwrap()).await.unwrap().unwrap();
    assert_eq!(child.state, JobState::Failed);
    assert_eq!(child.flow.parent, Some(array));
    let again = resubmission(&child).unwrap();
    let n = s
        .submit(std::slice::from_ref(&again), T0 + 3)
        .await
        .unwrap()[0];
    let j = s.job(n).await.unwrap().unwrap();
    assert_eq!(j.spec, again, "read back equal");
    assert_eq!(j.flow.kind, JobKind::Job, "one plain job, not a new array");
    assert_eq!(j.flow.parent, None, "not counted in the array");
    assert_eq!(j.state, JobState::Runnable);
    let listed = all(s).await;
    assert_eq!(listed.len(), 6, "the array, its 4 children and the new job");
    assert!(s.damaged().rows().is_empty(), "no damaged rows");
    let l = lease(s, T0 + 4).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].job_id, n);
    assert_eq!(l[0].spec.flow.array_task.unwrap().index, 2, "the same task");
    finish(s, &l[0], 0, T0 + 5).await;
    assert_eq!(s.job(n).await.unwrap().unwrap().state, JobState::Succeeded);
    assert_eq!(
        s.job(array).await.unwrap().unwrap().state,
        JobState::Failed,
        "the array's own outcome stands"
    );
    // Groups are not resubmitted as such.
    let arr = s.job(array).await.unwrap().unwrap();
    assert_eq!(resubmission(&arr).unwrap_err().code, "not-resubmittable");
}

/// One row corrupted on purpose: listings, leases and counts go on.
async fn damaged_row_is_skipped(s: &SqlStore, url: &str) {
    use sqlx::Executor;
    worker(s).await;
    let ids = s
        .submit(
            &[
                spec(json!({"command": "echo a"})),
                spec(json!({"command": "echo b"})),
                spec(json!({"command": "echo c"})),
            ],
            T0,
        )
        .await
        .unwrap();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    pool.execute(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET spec = '{{\"name\":\"x\",\"name\":\"y\"}}' WHERE id = {}",
        ids[1]
    )))
    .await
    .unwrap();
    let listed: Vec<i64> = all(s).await.iter().map(|j| j.id).collect();
    assert_eq!(listed, vec![ids[2], ids[0]], "the damaged row is skipped");
    let damaged = s.damaged().rows();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].job_id, ids[1]);
    assert!(
        damaged[0].problem.contains("duplicate field"),
        "{damaged:?}"
    );
    assert!(s.damaged().skipped() >= 1);
    assert!(matches!(s.job(ids[1]).await, Err(StoreError::Damaged(id)) if id == ids[1]));
    assert!(s.job(ids[0]).await.unwrap().is_some());
    let leased: Vec<i64> = lease(s, T0 + 1).await.iter().map(|l| l.job_id).collect();
    assert_eq!(leased, vec![ids[0], ids[2]], "the good jobs run");
    let state: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT state FROM jobs WHERE id = {}",
        ids[1]
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(state, "FAILED", "a job that can never run fails once");
    assert!(lease(s, T0 + 2).await.is_empty(), "and is not leased again");
    let counts = s.counts().await.unwrap();
    assert_eq!(counts.iter().map(|c| c.2).sum::<u64>(), 3);
    pool.close().await;
}

fn text() -> impl Strategy<Value = String> {
    // Quotes, backslashes, unicode and JSON-looking text inside strings.
    "[a-zA-Z0-9 _./\"'\\\\{}:,é€-]{1,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

fn env_map() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,8}", text(), 0..4).prop_map(|m| json!(m))
}

/// Native requests: plain jobs, arrays, sbatch jobs.
fn native() -> impl Strategy<Value = Value> {
    (
        (
            proptest::option::of("[a-z][a-z0-9-]{0,16}"),
            prop_oneof![
                text().prop_map(Value::from),
                proptest::collection::vec(text(), 1..4).prop_map(|v| json!(v)),
            ],
            env_map(),
            1u32..8,
            prop_oneof![Just(json!(256)), Just(json!("1G")), Just(json!("512M"))],
            proptest::option::of(prop_oneof![Just(json!("10m")), Just(json!(30))]),
        ),
        (
            1u32..5,
            proptest::option::of(text()),
            proptest::collection::vec(1i32..255, 0..3),
            -100i32..100,
            proptest::collection::btree_map("[a-z]{1,6}", text(), 0..3),
            proptest::option::of(prop_oneof![Just("0-9"), Just("1,3,5-7"), Just("0-15:4%2")]),
            proptest::bool::ANY,
        ),
    )
        .prop_map(
            |(
                (name, command, env, cpus, memory, timeout),
                (attempts, ok, codes, prio, tags, array, sbatch),
            )| {
                let mut v = json!({
                    "command": command, "env": env, "cpus": cpus, "memory": memory,
                    "attempts": attempts, "retry_exit_codes": codes, "priority": prio, "tags": tags,
                });
                if let Some(n) = name {
                    v["name"] = json!(n);
                }
                if let Some(t) = timeout {
                    v["timeout"] = t;
                }
                if let Some(s) = ok {
                    v["success_string"] = json!(s);
                }
                if let Some(a) = array {
                    v["array"] = json!(a);
                }
                if sbatch {
                    v["slurm"] = json!({"output": "run-%A_%a.out", "submit_dir": "/home/u/x",
                        "user": "alice", "ntasks": 1, "cpus_per_task": cpus});
                }
                v
            },
        )
}

/// The seed scheduler's job JSON.
fn seed() -> impl Strategy<Value = Value> {
    (
        "[a-z][a-z0-9]{0,12}",
        proptest::option::of(0u32..4),
        proptest::option::of(text()),
        proptest::collection::vec(text(), 1..4),
    )
        .prop_map(|(id, retry, ok, commands)| {
            let mut v = json!({"job_id": id, "commands": commands});
            if let Some(r) = retry {
                v["retry"] = json!(r);
            }
            if let Some(s) = ok {
                v["job_success_string"] = json!(s);
            }
            v
        })
}

async fn specs_round_trip(s: &SqlStore) {
    let strategy = prop_oneof![3 => native(), 1 => seed()];
    let mut runner = TestRunner::deterministic();
    for case in 0..60 {
        let mut v = strategy.new_tree(&mut runner).unwrap().current();
        if v.get("job_id").is_some() {
            // Keys are unique: make each case's its own.
            v["job_id"] = json!(format!("{}-{case}", v["job_id"].as_str().unwrap()));
        }
        let want = match request_from_value(v.clone()).and_then(|r| r.validate()) {
            Ok(spec) => spec,
            Err(e) => panic!("case {case}: generated a request the API rejects: {e}: {v}"),
        };
        let id = s
            .submit(std::slice::from_ref(&want), T0)
            .await
            .unwrap_or_else(|e| panic!("case {case}: {e}: {v}"))[0];
        let got = s.job(id).await.unwrap().unwrap();
        assert_eq!(got.spec, want, "case {case}: {v}");
        if want.flow.array.is_some() {
            let children: Vec<_> = all(s)
                .await
                .into_iter()
                .filter(|j| j.flow.parent == Some(id))
                .collect();
            assert!(!children.is_empty(), "case {case}: children made");
            for c in children {
                let task = c.spec.flow.array_task.expect("child carries its task");
                assert_eq!(task.parent, id);
                let mut base = c.spec.clone();
                base.flow.array_task = None;
                assert_eq!(
                    base, want,
                    "case {case}: a child is its array's spec and task"
                );
                let again = resubmission(&c).unwrap();
                let n = s.submit(std::slice::from_ref(&again), T0).await.unwrap()[0];
                let r = s.job(n).await.unwrap().unwrap();
                assert_eq!(
                    r.spec, again,
                    "case {case}: a resubmitted task reads back equal"
                );
                assert_eq!(r.flow.kind, JobKind::Job);
            }
        }
    }
    assert!(s.damaged().rows().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_resubmitted_array_task() {
    let db = TestDb::sqlite().await;
    resubmitted_array_task(&db.store).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_resubmitted_array_task() {
    let db = TestDb::postgres("int_resubmit").await;
    resubmitted_array_task(&db.store).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_damaged_row_is_skipped() {
    let db = TestDb::sqlite().await;
    damaged_row_is_skipped(&db.store, db.url()).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_damaged_row_is_skipped() {
    let db = TestDb::postgres("int_damaged").await;
    damaged_row_is_skipped(&db.store, db.url()).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_specs_round_trip() {
    let db = TestDb::sqlite().await;
    specs_round_trip(&db.store).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_specs_round_trip() {
    let db = TestDb::postgres("int_roundtrip").await;
    specs_round_trip(&db.store).await;
    db.finish().await;
}
