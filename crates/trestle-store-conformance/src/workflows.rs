//! Conformance checks for workflows: events written with every state
//! change, dependencies resolved in the transaction that finishes a job,
//! arrays created lazily within their window and `%` limit, groups that
//! summarise and cancel their children, pipelines, and the resolver tick.
//! `tests/conformance.rs` runs each check as its own test on SQLite and on
//! PostgreSQL.

use crate::support::spec;
use std::sync::Arc;
use trestle_core::api::{AttemptRef, Lease, Update, UpdatesRequest};
use trestle_core::batch::pipeline::PipelineRequest;
use trestle_core::batch::workflow::JobKind;
use trestle_core::{AttemptReason, Capacity, JobState};
use trestle_store::{EventFilter, LeaseParams, Store, StoreError};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "events_record_every_change",
    "dependencies_resolve_with_the_finish",
    "after_waits_for_a_start",
    "arrays_are_created_lazily",
    "array_parallel_limit_and_failure",
    "arrays_fail_fast_and_children_are_found",
    "cancelling_a_group",
    "pipelines_run_in_order",
    "tick_holds_disabled_queues_and_is_a_safety_net",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    let s = &*s;
    match name {
        "events_record_every_change" => events_record_every_change(s).await,
        "dependencies_resolve_with_the_finish" => dependencies_resolve_with_the_finish(s).await,
        "after_waits_for_a_start" => after_waits_for_a_start(s).await,
        "arrays_are_created_lazily" => arrays_are_created_lazily(s).await,
        "array_parallel_limit_and_failure" => array_parallel_limit_and_failure(s).await,
        "arrays_fail_fast_and_children_are_found" => arrays_fail_fast(s).await,
        "cancelling_a_group" => cancelling_a_group(s).await,
        "pipelines_run_in_order" => pipelines_run_in_order(s).await,
        "tick_holds_disabled_queues_and_is_a_safety_net" => tick_holds(s).await,
        other => panic!("unknown workflow check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

async fn submit(s: &dyn Store, json: &str) -> i64 {
    s.submit(&[spec(json)], T0).await.expect("submit")[0]
}

fn cap(cpus: u32) -> Capacity {
    Capacity {
        cpus,
        mem_mib: 64 * 1024,
        gpus: 0,
    }
}

async fn lease(s: &dyn Store, max: u32) -> Vec<Lease> {
    s.lease(&LeaseParams {
        worker_id: "w1",
        free: cap(64),
        max_jobs: max,
        prefetch: 0,
        lease_ms: 30_000,
        now: T0 + 1,
        kinds: &[],
    })
    .await
    .expect("lease")
}

fn at(l: &Lease) -> AttemptRef {
    AttemptRef {
        job_id: l.job_id,
        attempt: l.attempt,
        token: l.token.clone(),
    }
}

async fn finish(s: &dyn Store, l: &Lease, reason: AttemptReason) -> trestle_store::UpdateOutcome {
    let code = if reason == AttemptReason::Success {
        0
    } else {
        1
    };
    s.apply_updates(
        "w1",
        &UpdatesRequest {
            heartbeat: vec![],
            updates: vec![
                Update::Started {
                    at: at(l),
                    time: T0 + 2,
                },
                Update::Finished {
                    at: at(l),
                    reason,
                    exit_code: Some(code),
                    time: T0 + 3,
                    message: None,
                    cpu_ms: None,
                    max_rss_kib: None,
                },
            ],
            ..Default::default()
        },
        30_000,
        T0 + 3,
    )
    .await
    .expect("updates")
}

async fn state(s: &dyn Store, id: i64) -> JobState {
    s.job(id).await.expect("get").expect("exists").state
}

async fn reason(s: &dyn Store, id: i64) -> Option<String> {
    s.job(id).await.expect("get").expect("exists").reason
}

/// Leases everything runnable and finishes it with `reason`; returns the
/// leased job ids.
async fn run_all(s: &dyn Store, reason: AttemptReason) -> Vec<i64> {
    let leases = lease(s, 1000).await;
    for l in &leases {
        finish(s, l, reason).await;
    }
    leases.iter().map(|l| l.job_id).collect()
}

async fn events_record_every_change(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let a = submit(s, r#"{"command":["a"]}"#).await;
    let b = submit(s, r#"{"command":["b"],"queue":"other"}"#).await;
    let l = lease(s, 1).await.remove(0);
    assert_eq!(l.job_id, a);
    finish(s, &l, AttemptReason::Success).await;
    let all = s
        .events(&EventFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let seq: Vec<(i64, JobState)> = all.iter().map(|e| (e.job_id, e.state)).collect();
    assert_eq!(
        seq,
        vec![
            (a, JobState::Runnable),
            (b, JobState::Runnable),
            (a, JobState::Starting),
            (a, JobState::Running),
            (a, JobState::Succeeded),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[4].exit_code, Some(0));
    assert_eq!(all[1].queue, "other");
    assert_eq!(s.last_event_id().await.unwrap(), all[4].id);
    // Resuming after an id returns only what came later.
    let rest = s
        .events(&EventFilter {
            after: all[2].id,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    let upto = s
        .events(&EventFilter {
            after: all[2].id,
            until: Some(all[3].id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(upto.len(), 1);
    let done = s
        .events(&EventFilter {
            states: vec![JobState::Succeeded, JobState::Failed],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    let of_b = s
        .events(&EventFilter {
            job: Some(b),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_b.len(), 1);
    let other = s
        .events(&EventFilter {
            queue: Some("other".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    // A user sees only the events of jobs they may read.
    let mut theirs = spec(r#"{"command":["t"]}"#);
    theirs.owner = Some("ada".into());
    theirs.project = Some("cfd".into());
    let t = s.submit(&[theirs], T0).await.unwrap()[0];
    let visible = |user: &str, projects: &[&str]| EventFilter {
        visible_to: Some(user.into()),
        visible_projects: projects.iter().map(|p| p.to_string()).collect(),
        limit: 100,
        ..Default::default()
    };
    let ada = s.events(&visible("ada", &[])).await.unwrap();
    assert_eq!(ada.iter().map(|e| e.job_id).collect::<Vec<_>>(), vec![t]);
    let member = s.events(&visible("bob", &["cfd"])).await.unwrap();
    assert_eq!(member.len(), 1);
    assert!(
        s.events(&visible("eve", &["other"]))
            .await
            .unwrap()
            .is_empty()
    );
    // Cancelling is an event too.
    let before_cancel = s.last_event_id().await.unwrap();
    s.cancel(b, T0 + 10).await.unwrap();
    let last = s
        .events(&EventFilter {
            after: before_cancel,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].job_id, last[0].state), (b, JobState::Cancelled));
}

async fn dependencies_resolve_with_the_finish(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let a = submit(s, r#"{"command":["a"]}"#).await;
    let ok = submit(
        s,
        &format!(r#"{{"command":["b"],"after":[{{"kind":"after-ok","job":{a}}}]}}"#),
    )
    .await;
    let any = submit(
        s,
        &format!(r#"{{"command":["c"],"after":[{{"kind":"after-any","job":{a}}}]}}"#),
    )
    .await;
    let notok = submit(
        s,
        &format!(r#"{{"command":["d"],"after":[{{"kind":"after-not-ok","job":{a}}}]}}"#),
    )
    .await;
    for id in [ok, any, notok] {
        assert_eq!(state(s, id).await, JobState::Pending);
    }
    let j = s.job(ok).await.unwrap().unwrap();
    assert_eq!(j.flow.dependencies.len(), 1);
    assert_eq!(j.flow.dependencies[0].job, a);
    assert!(!j.flow.dependencies[0].resolved);
    // Pending jobs are never leased.
    let l = lease(s, 10).await;
    assert_eq!(l.len(), 1);
    let out = finish(s, &l[0], AttemptReason::Success).await;
    assert_eq!(out.unblocked, 2, "resolved in the finishing transaction");
    assert_eq!(state(s, ok).await, JobState::Runnable);
    assert_eq!(state(s, any).await, JobState::Runnable);
    assert_eq!(state(s, notok).await, JobState::Cancelled);
    assert_eq!(
        reason(s, notok).await.as_deref(),
        Some("dependency-never-satisfied")
    );
    assert!(s.job(ok).await.unwrap().unwrap().flow.dependencies[0].resolved);

    // A failure cancels after-ok dependents, and theirs in turn.
    let f = submit(s, r#"{"command":["f"]}"#).await;
    let e = submit(
        s,
        &format!(r#"{{"command":["e"],"after":[{{"kind":"after-ok","job":{f}}}]}}"#),
    )
    .await;
    let g = submit(
        s,
        &format!(r#"{{"command":["g"],"after":[{{"kind":"after-ok","job":{e}}}]}}"#),
    )
    .await;
    let h = submit(
        s,
        &format!(r#"{{"command":["h"],"after":[{{"kind":"after-not-ok","job":{f}}}]}}"#),
    )
    .await;
    for l in lease(s, 10).await {
        let r = if l.job_id == f {
            AttemptReason::ExitCode
        } else {
            AttemptReason::Success
        };
        finish(s, &l, r).await;
    }
    assert_eq!(state(s, f).await, JobState::Failed);
    assert_eq!(state(s, e).await, JobState::Cancelled);
    assert_eq!(reason(s, e).await.as_deref(), Some("dependency-failed"));
    assert_eq!(state(s, g).await, JobState::Cancelled);
    assert_eq!(reason(s, g).await.as_deref(), Some("dependency-failed"));
    assert_eq!(state(s, h).await, JobState::Runnable);

    // Dependencies already decided at submission.
    let done = submit(
        s,
        &format!(r#"{{"command":["x"],"after":[{{"kind":"after-ok","job":{a}}}]}}"#),
    )
    .await;
    assert_eq!(state(s, done).await, JobState::Runnable);
    let doomed = submit(
        s,
        &format!(r#"{{"command":["x"],"after":[{{"kind":"after-ok","job":{f}}}]}}"#),
    )
    .await;
    assert_eq!(state(s, doomed).await, JobState::Cancelled);
    assert_eq!(
        reason(s, doomed).await.as_deref(),
        Some("dependency-failed")
    );
    // An unknown job cannot be depended on, and nothing is stored.
    let before = s.last_event_id().await.unwrap();
    let err = s
        .submit(
            &[spec(
                r#"{"command":["x"],"after":[{"kind":"after-ok","job":999999}]}"#,
            )],
            T0,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(s.last_event_id().await.unwrap(), before);
}

async fn after_waits_for_a_start(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let a = submit(s, r#"{"command":["a"]}"#).await;
    let b = submit(
        s,
        &format!(r#"{{"command":["b"],"after":[{{"kind":"after","job":{a}}}]}}"#),
    )
    .await;
    let l = lease(s, 1).await.remove(0);
    assert_eq!(
        state(s, b).await,
        JobState::Pending,
        "leased is not started"
    );
    let out = s
        .apply_updates(
            "w1",
            &UpdatesRequest {
                heartbeat: vec![],
                updates: vec![Update::Started {
                    at: at(&l),
                    time: T0 + 2,
                }],
                ..Default::default()
            },
            30_000,
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(out.unblocked, 1);
    assert_eq!(state(s, b).await, JobState::Runnable);
}

async fn arrays_are_created_lazily(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let other = submit(s, r#"{"command":["other"],"priority":5}"#).await;
    let mut sweep = spec(r#"{"command":["sweep"],"array":"0-99999"}"#);
    sweep.owner = Some("ada".into());
    sweep.project = Some("cfd".into());
    let p = s.submit(&[sweep], T0).await.unwrap()[0];
    // Children belong to the array's owner and project.
    let mine = s
        .list_jobs(&trestle_store::JobFilter {
            owner: Some("ada".into()),
            project: Some("cfd".into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 5);
    assert!(mine.iter().all(|j| j.flow.parent == Some(p)));
    let v = s.job(p).await.unwrap().unwrap();
    assert_eq!(v.flow.kind, JobKind::Array);
    assert_eq!(
        v.state,
        JobState::Runnable,
        "a waiting array shows RUNNABLE"
    );
    let c = v.flow.children.clone().unwrap();
    assert_eq!(c.total, 100_000);
    assert_eq!(c.created, trestle_core::batch::array::ARRAY_WINDOW);
    assert_eq!(c.get(JobState::Runnable), 100_000);
    // Other jobs still lease first by priority; children carry their index.
    let l = lease(s, 3).await;
    assert_eq!(l[0].job_id, other);
    let t = l[1].spec.flow.array_task.expect("array task");
    assert_eq!((t.parent, t.index), (p, 0));
    assert_eq!(l[2].spec.flow.array_task.unwrap().index, 1);
    assert_eq!(l[1].spec.flow.array.as_ref().unwrap().len(), 100_000);
    let child = s.job(l[1].job_id).await.unwrap().unwrap();
    assert_eq!(child.flow.parent, Some(p));
    assert_eq!(child.flow.array_index, Some(0));
    for x in &l {
        finish(s, x, AttemptReason::Success).await;
    }
    let v = s.job(p).await.unwrap().unwrap();
    let c = v.flow.children.unwrap();
    assert_eq!(c.get(JobState::Succeeded), 2);
    assert_eq!(
        c.created,
        trestle_core::batch::array::ARRAY_WINDOW,
        "no refill yet"
    );
    // Finishing half the window refills it.
    let mut done = 0;
    while done < 600 {
        let leases = lease(s, 50).await;
        assert!(!leases.is_empty());
        for x in &leases {
            finish(s, x, AttemptReason::Success).await;
        }
        done += leases.len();
    }
    let c = s.job(p).await.unwrap().unwrap().flow.children.unwrap();
    assert!(
        c.created > trestle_core::batch::array::ARRAY_WINDOW,
        "{c:?}"
    );
    assert_eq!(c.get(JobState::Succeeded), 602);
    assert_eq!(c.active(), c.created - 602);
    assert_eq!(c.total, 100_000);
}

async fn array_parallel_limit_and_failure(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let p = submit(s, r#"{"command":["x"],"array":"1,3,5-7%2"}"#).await;
    let after = submit(
        s,
        &format!(r#"{{"command":["post"],"after":[{{"kind":"after-ok","job":{p}}}]}}"#),
    )
    .await;
    let mut seen = Vec::new();
    loop {
        let l = lease(s, 10).await;
        if l.is_empty() {
            break;
        }
        assert!(l.len() <= 2, "the %2 limit holds: {}", l.len());
        for x in &l {
            seen.push(x.spec.flow.array_task.unwrap().index);
            let r = if x.spec.flow.array_task.unwrap().index == 5 {
                AttemptReason::ExitCode
            } else {
                AttemptReason::Success
            };
            finish(s, x, r).await;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 3, 5, 6, 7]);
    let v = s.job(p).await.unwrap().unwrap();
    assert_eq!(v.state, JobState::Failed);
    assert_eq!(v.reason.as_deref(), Some("1 of 5 children failed"));
    assert!(v.finished_at.is_some());
    assert_eq!(state(s, after).await, JobState::Cancelled);
    assert_eq!(reason(s, after).await.as_deref(), Some("dependency-failed"));
    let ok = submit(s, r#"{"command":["x"],"array":"0-2"}"#).await;
    let post = submit(
        s,
        &format!(r#"{{"command":["post"],"after":[{{"kind":"after-ok","job":{ok}}}]}}"#),
    )
    .await;
    let ran = run_all(s, AttemptReason::Success).await;
    assert_eq!(ran.len(), 3);
    assert_eq!(state(s, ok).await, JobState::Succeeded);
    assert_eq!(state(s, post).await, JobState::Runnable);
    assert_eq!(s.children(ok).await.unwrap().len(), 3);
}

/// `max_failures`: once that many children failed, the waiting ones are
/// cancelled with the reason, leased ones are asked to stop, and the array
/// ends FAILED saying so. Children are found by parent, index and name,
/// and an owner's jobs are counted per state.
async fn arrays_fail_fast(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let mut req = trestle_core::batch::spec::request_from_value(serde_json::json!({
        "command": ["x"], "name": "sweep", "array": "0-9", "max_failures": 2
    }))
    .unwrap()
    .validate()
    .unwrap();
    req.owner = Some("ada".into());
    let p = s.submit(&[req], T0).await.unwrap()[0];
    let leased = lease(s, 3).await;
    assert_eq!(leased.len(), 3);
    finish(s, &leased[0], AttemptReason::ExitCode).await;
    assert_eq!(
        state(s, p).await,
        JobState::Running,
        "one failure is allowed"
    );
    finish(s, &leased[1], AttemptReason::ExitCode).await;
    // The second failure stops the array: 7 waiting children are cancelled
    // at once; the third, still leased, is asked to stop.
    let kids = s.children(p).await.unwrap();
    let cancelled = kids
        .iter()
        .filter(|(_, st)| *st == JobState::Cancelled)
        .count();
    assert_eq!(cancelled, 7, "{kids:?}");
    assert!(lease(s, 10).await.is_empty(), "nothing more runs");
    let waiting = kids
        .iter()
        .find(|(_, st)| *st == JobState::Cancelled)
        .unwrap()
        .0;
    let r = reason(s, waiting).await.unwrap();
    assert!(r.starts_with("max-failures"), "{r}");
    assert_eq!(
        state(s, p).await,
        JobState::Running,
        "one child is stopping"
    );
    // Its worker hears of the stop at its next heartbeat.
    let hb = s
        .apply_updates(
            "w1",
            &UpdatesRequest {
                heartbeat: vec![at(&leased[2])],
                updates: vec![],
                ..Default::default()
            },
            30_000,
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(hb.cancel.len(), 1, "{hb:?}");
    assert_eq!(hb.cancel[0].job_id, leased[2].job_id);
    finish(s, &leased[2], AttemptReason::Cancelled).await;
    let v = s.job(p).await.unwrap().unwrap();
    assert_eq!(v.state, JobState::Failed);
    let r = v.reason.unwrap();
    assert!(
        r.starts_with("max-failures: stopped after 2 of 10 children failed"),
        "{r}"
    );
    // Listing filters: the children of p, one index, a name.
    let list = |f: trestle_store::JobFilter| async move {
        s.list_jobs(&trestle_store::JobFilter { limit: 100, ..f })
            .await
            .unwrap()
    };
    let children = list(trestle_store::JobFilter {
        parent: Some(p),
        ..Default::default()
    })
    .await;
    assert_eq!(children.len(), 10);
    let one = list(trestle_store::JobFilter {
        parent: Some(p),
        array_index: Some(7),
        ..Default::default()
    })
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].flow.array_index, Some(7));
    let failed = list(trestle_store::JobFilter {
        parent: Some(p),
        states: vec![JobState::Failed],
        ..Default::default()
    })
    .await;
    assert_eq!(failed.len(), 2);
    let other = submit(s, r#"{"command":["y"],"name":"other"}"#).await;
    let named = list(trestle_store::JobFilter {
        name: Some("other".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(named.iter().map(|j| j.id).collect::<Vec<_>>(), vec![other]);
    // Counts per state of one owner: the array and its 10 children.
    let mut counts = s.owner_counts("ada").await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![(JobState::Failed, 3), (JobState::Cancelled, 8)],
        "parent and 2 children failed; 8 cancelled"
    );
    assert!(s.owner_counts("nobody").await.unwrap().is_empty());
}

async fn cancelling_a_group(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let p = submit(s, r#"{"command":["x"],"array":"0-9%3"}"#).await;
    let dep = submit(
        s,
        &format!(r#"{{"command":["y"],"after":[{{"kind":"after-ok","job":{p}}}]}}"#),
    )
    .await;
    let l = lease(s, 1).await.remove(0);
    let v = s.cancel(p, T0 + 5).await.unwrap().unwrap();
    assert_eq!(
        v.state,
        JobState::Running,
        "a leased child is still stopping"
    );
    let kids = s.children(p).await.unwrap();
    assert_eq!(kids.len(), 3);
    let cancelled = kids
        .iter()
        .filter(|(_, st)| *st == JobState::Cancelled)
        .count();
    assert_eq!(cancelled, 2);
    assert!(
        lease(s, 10).await.is_empty(),
        "nothing more is created or leased"
    );
    finish(s, &l, AttemptReason::Cancelled).await;
    let v = s.job(p).await.unwrap().unwrap();
    assert_eq!(v.state, JobState::Cancelled);
    let c = v.flow.children.unwrap();
    assert_eq!(
        c.get(JobState::Cancelled),
        10,
        "unstarted children count as cancelled"
    );
    assert_eq!(state(s, dep).await, JobState::Cancelled);
    // A pending array is cancelled at once.
    let q = submit(
        s,
        &format!(
            r#"{{"command":["z"],"array":"0-4","after":[{{"kind":"after-any","job":{dep}}}]}}"#
        ),
    )
    .await;
    assert_eq!(
        state(s, q).await,
        JobState::Runnable,
        "after-any on a finished job is met"
    );
    assert_eq!(
        s.cancel(q, T0 + 6).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    assert!(s.cancel(999_999, T0).await.unwrap().is_none());
}

async fn pipelines_run_in_order(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let req: PipelineRequest = serde_json::from_str(
        r#"{"name":"cfd","steps":[
            {"name":"pre","command":"pre"},
            {"name":"mesh","command":"mesh","after":["pre"]},
            {"name":"sim","command":"sim","after":["mesh"]},
            {"name":"post","command":"post","after":["sim","pre"]}
        ]}"#,
    )
    .unwrap();
    let (parent, steps) = s
        .submit_pipeline(&req.validate().unwrap(), T0)
        .await
        .unwrap();
    assert_eq!(steps.len(), 4);
    let v = s.job(parent).await.unwrap().unwrap();
    assert_eq!(v.flow.kind, JobKind::Pipeline);
    assert_eq!(v.name, "cfd");
    assert_eq!(v.flow.steps.len(), 4);
    assert_eq!(v.flow.steps[3].after, vec![steps[0], steps[2]]);
    assert_eq!(v.flow.steps[1].state, JobState::Pending);
    let first = run_all(s, AttemptReason::Success).await;
    assert_eq!(first, vec![steps[0]]);
    let second = run_all(s, AttemptReason::ExitCode).await;
    assert_eq!(second, vec![steps[1]]);
    assert_eq!(state(s, steps[2]).await, JobState::Cancelled);
    assert_eq!(state(s, steps[3]).await, JobState::Cancelled);
    let v = s.job(parent).await.unwrap().unwrap();
    assert_eq!(v.state, JobState::Failed);
    assert_eq!(v.flow.children.unwrap().get(JobState::Failed), 1);
    assert!(run_all(s, AttemptReason::Success).await.is_empty());
}

async fn tick_holds(s: &dyn Store) {
    crate::support::worker(s, "w1", 64).await;
    let a = submit(s, r#"{"command":["a"],"queue":"gpu"}"#).await;
    let b = submit(s, r#"{"command":["b"],"key":"drop:q:case1"}"#).await;
    let t = s
        .resolve_workflows(&["gpu".to_string()], T0 + 1)
        .await
        .unwrap();
    assert_eq!(t.held, 1);
    assert_eq!(state(s, a).await, JobState::Pending);
    assert_eq!(reason(s, a).await.as_deref(), Some("queue-disabled"));
    let l = lease(s, 10).await;
    assert_eq!(l.iter().map(|l| l.job_id).collect::<Vec<_>>(), vec![b]);
    let t = s.resolve_workflows(&[], T0 + 2).await.unwrap();
    assert_eq!(t.runnable, 1);
    assert_eq!(state(s, a).await, JobState::Runnable);
    // Lookups drop folders use.
    assert_eq!(s.job_id_by_key("", "drop:q:case1").await.unwrap(), Some(b));
    assert_eq!(s.job_id_by_key("", "nope").await.unwrap(), None);
    let r = s
        .record_rejected(
            &spec(r#"{"command":["c"],"name":"case1/second.sh"}"#),
            "duplicate-trigger: x",
            T0,
        )
        .await
        .unwrap();
    let v = s.job(r).await.unwrap().unwrap();
    assert_eq!(v.state, JobState::Failed);
    assert_eq!(v.reason.as_deref(), Some("duplicate-trigger: x"));
    // The tick finishes what the same-transaction path left: a dependency
    // whose job ended is resolved even if nothing else touches it.
    let c = submit(s, r#"{"command":["c"]}"#).await;
    let d = submit(
        s,
        &format!(r#"{{"command":["d"],"after":[{{"kind":"after-any","job":{c}}}]}}"#),
    )
    .await;
    s.cancel(c, T0 + 3).await.unwrap();
    assert_eq!(
        state(s, d).await,
        JobState::Runnable,
        "cancel resolves at once"
    );
    let again = s.resolve_workflows(&[], T0 + 4).await.unwrap();
    assert_eq!(
        again,
        trestle_store::WorkflowTick::default(),
        "nothing left to do"
    );
}
