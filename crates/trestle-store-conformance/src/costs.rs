//! The conformance suite for metering and budgets: an ended attempt
//! waits for the meter with its worker's price and its job's owner,
//! project and index, once; recording usage is idempotent and rolls up
//! per day (split at midnight); workers that left wait for their
//! overhead once their attempts are metered; budgets are replaced and
//! deleted, each mark is recorded once per period with its event; over-
//! budget holds take runnable jobs of the listed projects and release
//! them when the project is no longer listed or the job is overridden.

use crate::support::{r, spec, worker};
use std::sync::Arc;
use trestle_core::api::Update;
use trestle_core::cost::WorkerPrice;
use trestle_core::cost::budget::{self, BudgetRequest, ScopeKind};
use trestle_core::cost::daily::DAY_MS;
use trestle_core::notify::event::{EventType, NewEvent};
use trestle_core::{AttemptReason, Capacity, JobState, Resources};
use trestle_store::cost::{Grouping, UsageFilter, UsageKind, UsageOf, UsageRecord};
use trestle_store::{LeaseParams, Store};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "ended_attempts_wait_for_the_meter_once",
    "usage_is_idempotent_and_rolls_up_per_day",
    "budgets_marks_and_holds",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "ended_attempts_wait_for_the_meter_once" => unmetered(&*s).await,
        "usage_is_idempotent_and_rolls_up_per_day" => usage(&*s).await,
        "budgets_marks_and_holds" => budgets(&*s).await,
        other => panic!("unknown costs conformance check `{other}`"),
    }
}

/// Midnight (UTC) of some day, plus an hour.
const T0: i64 = 19_700 * DAY_MS + 3_600_000;

fn price() -> WorkerPrice {
    WorkerPrice {
        shape: "c2".into(),
        size: Capacity {
            cpus: 2,
            mem_mib: 4096,
            gpus: 0,
        },
        price_per_hour: 0.72,
    }
}

async fn unmetered(s: &dyn Store) {
    worker(s, "w1", 2).await;
    s.record_worker_price("w1", Some("cloud"), &price(), T0)
        .await
        .unwrap();
    // A second registration of the same id changes nothing.
    let mut other = price();
    other.price_per_hour = 99.0;
    s.record_worker_price("w1", None, &other, T0).await.unwrap();
    let ids = s
        .submit(
            &[spec(
                r#"{"command": ["true"], "cpus": 1, "memory": "100M", "project": "default"}"#,
            )],
            T0,
        )
        .await
        .unwrap();
    assert!(s.unmetered(10).await.unwrap().is_empty());
    let l = s
        .lease(&LeaseParams {
            worker_id: "w1",
            free: Capacity {
                cpus: 2,
                mem_mib: 4096,
                gpus: 0,
            },
            max_jobs: 1,
            prefetch: 0,
            lease_ms: 30_000,
            now: T0,
            kinds: &[],
        })
        .await
        .unwrap()
        .remove(0);
    let report = |u: Vec<Update>, now| {
        let req = trestle_core::api::UpdatesRequest {
            heartbeat: vec![],
            updates: u,
            ..Default::default()
        };
        async move { s.apply_updates("w1", &req, 30_000, now).await.unwrap() }
    };
    report(
        vec![Update::Started {
            at: r(&l),
            time: T0 + 10,
        }],
        T0 + 10,
    )
    .await;
    // Running: counted as running, not waiting for the meter.
    let running = s.running_attempts().await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].job_id, ids[0]);
    assert_eq!(running[0].price.as_ref().unwrap().price_per_hour, 0.72);
    assert!(s.unmetered(10).await.unwrap().is_empty());
    report(
        vec![Update::Finished {
            at: r(&l),
            reason: AttemptReason::Success,
            exit_code: Some(0),
            time: T0 + 3_610,
            message: None,
            cpu_ms: None,
            max_rss_kib: None,
        }],
        T0 + 3_610,
    )
    .await;
    assert!(s.running_attempts().await.unwrap().is_empty());
    let u = s.unmetered(10).await.unwrap();
    assert_eq!(u.len(), 1, "{u:?}");
    let u = &u[0];
    assert_eq!((u.job_id, u.attempt), (ids[0], 1));
    assert_eq!((u.started_at, u.ended_at), (Some(T0 + 10), T0 + 3_610));
    assert_eq!(u.project, "default");
    assert_eq!(u.index_name, "default");
    assert_eq!(u.resources.cpus, 1);
    let (env, p) = u.worker.clone().unwrap();
    assert_eq!(env.as_deref(), Some("cloud"));
    assert_eq!(p, price());
    let rec = UsageRecord {
        id: format!("a:{}:1", ids[0]),
        kind: UsageKind::Job,
        job_id: Some(ids[0]),
        attempt: Some(1),
        parent_id: None,
        workspace_id: None,
        worker_id: Some("w1".into()),
        compute_env: "cloud".into(),
        user: u.owner.clone(),
        project: "default".into(),
        index_name: "default".into(),
        started_at: T0 + 10,
        ended_at: T0 + 3_610,
        resources: u.resources,
        rate_per_hour: 0.36,
        charge: 0.36,
        cpu_used_ms: Some(1_000),
    };
    assert_eq!(
        s.record_usage(std::slice::from_ref(&rec), &[(ids[0], 1)], &[], T0)
            .await
            .unwrap(),
        1
    );
    assert!(s.unmetered(10).await.unwrap().is_empty());
    // Recorded again (a retried tick): nothing counts twice.
    assert_eq!(
        s.record_usage(std::slice::from_ref(&rec), &[(ids[0], 1)], &[], T0)
            .await
            .unwrap(),
        0
    );
    let (c, n, list) = s.usage_of(UsageOf::Job(ids[0])).await.unwrap();
    assert!((c - 0.36).abs() < 1e-9, "{c}");
    assert_eq!(n, 1);
    assert_eq!(list[0].compute_env, "cloud");
    assert_eq!(list[0].cpu_used_ms, None);
    // The worker leaves: its overhead waits until after it left.
    assert!(
        s.ended_workers(T0 + 10 * DAY_MS, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.remove_worker("w1").await.unwrap());
    let w = s.ended_workers(T0 + 10 * DAY_MS, 10).await.unwrap();
    assert_eq!(w.len(), 1);
    assert!((w[0].charged - 0.36).abs() < 1e-9, "{w:?}");
    assert_eq!(w[0].compute_env.as_deref(), Some("cloud"));
    assert!(s.ended_workers(w[0].ended_at, 10).await.unwrap().is_empty());
    s.record_usage(&[], &[], &["w1".into()], T0).await.unwrap();
    assert!(
        s.ended_workers(T0 + 10 * DAY_MS, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn record(id: &str, user: &str, project: &str, start: i64, end: i64, charge: f64) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        kind: UsageKind::Workspace,
        job_id: None,
        attempt: None,
        parent_id: Some(3),
        workspace_id: Some(9),
        worker_id: Some("w".into()),
        compute_env: "cloud".into(),
        user: user.into(),
        project: project.into(),
        index_name: "default".into(),
        started_at: start,
        ended_at: end,
        resources: Resources {
            cpus: 2,
            mem_mib: 100,
            gpus: 0,
        },
        rate_per_hour: 1.0,
        charge,
        cpu_used_ms: Some(500),
    }
}

async fn usage(s: &dyn Store) {
    let day = T0 / DAY_MS;
    let midnight = (day + 1) * DAY_MS;
    let recs = vec![
        record("a:1:1", "ada", "genomics", T0, T0 + 1_000, 1.0),
        // Across midnight: a quarter before, three quarters after.
        record(
            "a:2:1",
            "bob",
            "genomics",
            midnight - 1_000,
            midnight + 3_000,
            4.0,
        ),
        record("a:3:1", "ada", "physics", T0, T0 + 2_000, 2.0),
    ];
    assert_eq!(s.record_usage(&recs, &[], &[], T0).await.unwrap(), 3);
    // Again (a retried tick): nothing counts twice.
    assert_eq!(s.record_usage(&recs, &[], &[], T0).await.unwrap(), 0);
    let f = |by, per_day| UsageFilter {
        from_day: day,
        to_day: day + 1,
        by,
        per_day,
        project: None,
        user: None,
        index: None,
        visible: None,
    };
    let by_user = s.usage(&f(Grouping::User, false)).await.unwrap();
    let get = |rows: &[trestle_store::cost::UsageSum], k: &str| {
        rows.iter()
            .find(|r| r.key == k)
            .map(|r| r.charge)
            .unwrap_or(0.0)
    };
    assert!((get(&by_user, "ada") - 3.0).abs() < 1e-9, "{by_user:?}");
    assert!((get(&by_user, "bob") - 4.0).abs() < 1e-9, "{by_user:?}");
    assert_eq!(by_user[0].key, "bob", "largest first");
    let days = s.usage(&f(Grouping::Day, true)).await.unwrap();
    let on = |d: i64| {
        days.iter()
            .filter(|r| r.day == Some(d))
            .map(|r| r.charge)
            .sum::<f64>()
    };
    assert!((on(day) - 4.0).abs() < 1e-9, "{days:?}");
    assert!((on(day + 1) - 3.0).abs() < 1e-9, "{days:?}");
    // A record counts once, on its first day.
    let n: u64 = days.iter().map(|r| r.records).sum();
    assert_eq!(n, 3);
    // A non-admin's view: their own and their managed projects'.
    let mine = s
        .usage(&UsageFilter {
            visible: Some(("ada".into(), vec![])),
            ..f(Grouping::Project, false)
        })
        .await
        .unwrap();
    assert!((mine.iter().map(|r| r.charge).sum::<f64>() - 3.0).abs() < 1e-9);
    let managed = s
        .usage(&UsageFilter {
            visible: Some(("carol".into(), vec!["genomics".into()])),
            ..f(Grouping::User, false)
        })
        .await
        .unwrap();
    assert!((managed.iter().map(|r| r.charge).sum::<f64>() - 5.0).abs() < 1e-9);
    // Filters, and a budget's spend per scope and days.
    let g = s
        .usage(&UsageFilter {
            project: Some("physics".into()),
            ..f(Grouping::User, false)
        })
        .await
        .unwrap();
    assert_eq!(g.len(), 1);
    let spend = s
        .spend(ScopeKind::Project, "genomics", day, day + 1)
        .await
        .unwrap();
    assert!((spend - 2.0).abs() < 1e-9, "{spend}");
    let spend = s
        .spend(ScopeKind::Index, "default", day, day + 2)
        .await
        .unwrap();
    assert!((spend - 7.0).abs() < 1e-9, "{spend}");
    // Per job, per group.
    let (c, n, list) = s.usage_of(UsageOf::Group(3)).await.unwrap();
    assert!((c - 7.0).abs() < 1e-9);
    assert_eq!((n, list.len()), (3, 3));
    let (c, n, _) = s.usage_of(UsageOf::Workspace(9)).await.unwrap();
    assert!((c - 7.0).abs() < 1e-9);
    assert_eq!(n, 3);
    let (c, n, _) = s.usage_of(UsageOf::Workspace(10)).await.unwrap();
    assert_eq!((c, n), (0.0, 0));
}

async fn budgets(s: &dyn Store) {
    let spec = |amount: f64, enforce: &str| {
        budget::validate(
            ScopeKind::Project,
            "default",
            &BudgetRequest {
                amount: Some(amount),
                enforcement: Some(enforce.into()),
                ..BudgetRequest::default()
            },
        )
        .unwrap()
    };
    assert!(
        s.budget(ScopeKind::Project, "default")
            .await
            .unwrap()
            .is_none()
    );
    s.put_budget(&spec(10.0, "alert"), "admin", T0)
        .await
        .unwrap();
    s.put_budget(&spec(20.0, "block"), "root", T0 + 1)
        .await
        .unwrap();
    let b = s
        .budget(ScopeKind::Project, "default")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.spec, spec(20.0, "block"));
    assert_eq!(b.updated_by.as_deref(), Some("root"));
    assert_eq!(b.blocked_at, None);
    s.set_budget_blocked(ScopeKind::Project, "default", Some(T0 + 5))
        .await
        .unwrap();
    assert_eq!(s.budgets().await.unwrap()[0].blocked_at, Some(T0 + 5));
    // Marks: once per period, each with its event.
    let ev = NewEvent {
        kind: EventType::BudgetThreshold,
        subject: "budget:project:default".into(),
        title: "budget".into(),
        owner: None,
        project: Some("default".into()),
        link: None,
        detail: Some("50% reached".into()),
        time: T0,
    };
    assert!(
        s.record_budget_mark(ScopeKind::Project, "default", T0, "50", 10.0, &ev)
            .await
            .unwrap()
    );
    assert!(
        !s.record_budget_mark(ScopeKind::Project, "default", T0, "50", 11.0, &ev)
            .await
            .unwrap()
    );
    assert!(
        s.record_budget_mark(
            ScopeKind::Project,
            "default",
            T0 + DAY_MS * 31,
            "50",
            1.0,
            &ev
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.budget_marks(ScopeKind::Project, "default", T0)
            .await
            .unwrap(),
        vec!["50".to_string()]
    );
    let events = s.other_events(0, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|(_, e)| e.event.kind == EventType::BudgetThreshold)
            .count(),
        2
    );
    // Holds: runnable jobs of listed projects wait, others do not.
    let ids = s
        .submit(
            &[spec_of("default"), spec_of("default"), spec_of("physics")],
            T0,
        )
        .await
        .unwrap();
    let (held, released) = s.hold_over_budget(&["default".into()], T0).await.unwrap();
    assert_eq!((held, released), (2, 0));
    let state = |id| async move { s.job(id).await.unwrap().unwrap().state };
    assert_eq!(state(ids[0]).await, JobState::Pending);
    assert_eq!(state(ids[2]).await, JobState::Runnable);
    // An override releases one job while the project stays listed.
    assert!(s.override_budget(ids[1], "admin", T0).await.unwrap());
    assert!(!s.override_budget(ids[1], "admin", T0).await.unwrap());
    assert_eq!(
        s.hold_over_budget(&["default".into()], T0).await.unwrap(),
        (0, 1)
    );
    assert_eq!(state(ids[1]).await, JobState::Runnable);
    // No longer listed: released.
    assert_eq!(s.hold_over_budget(&[], T0).await.unwrap(), (0, 1));
    assert_eq!(state(ids[0]).await, JobState::Runnable);
    assert!(
        s.delete_budget(ScopeKind::Project, "default")
            .await
            .unwrap()
    );
    assert!(
        !s.delete_budget(ScopeKind::Project, "default")
            .await
            .unwrap()
    );
}

fn spec_of(project: &str) -> trestle_core::JobSpec {
    spec(&format!(
        r#"{{"command": ["true"], "project": "{project}"}}"#
    ))
}
