//! The conformance suite for notifications (issue 16): events of other
//! domains and job events read by cursor, routing that stores items and
//! moves its cursor at once (and refuses a cursor someone else moved),
//! targets, rules and subscriptions, and the outbox of deliveries:
//! first in line per target and user, retried, dead-lettered, revived.

use crate::support::{r, spec, worker};
use std::sync::Arc;
use trestle_core::api::{Update, UpdatesRequest};
use trestle_core::notify::event::{EventType, NewEvent};
use trestle_core::notify::route::SubscriptionMode;
use trestle_core::notify::rule::{EventPattern, RuleSpec};
use trestle_core::notify::target::TargetSpec;
use trestle_core::{AttemptReason, Capacity};
use trestle_store::notify::*;
use trestle_store::{LeaseParams, Store, StoreError};

/// Names of every check, for harnesses that enumerate them.
pub const CHECKS: &[&str] = &[
    "events_are_routed_by_cursor",
    "targets_rules_and_subscriptions",
    "deliveries_retry_die_and_revive",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "events_are_routed_by_cursor" => events_are_routed_by_cursor(&*s).await,
        "targets_rules_and_subscriptions" => targets_rules_and_subscriptions(&*s).await,
        "deliveries_retry_die_and_revive" => deliveries_retry_die_and_revive(&*s).await,
        other => panic!("unknown notify check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn ws_event(n: i64) -> NewEvent {
    NewEvent {
        kind: EventType::WorkspaceReady,
        subject: format!("workspace:{n}"),
        title: format!("jupyter {n}"),
        owner: Some("ada".into()),
        project: Some("x".into()),
        link: Some(format!("/ui/workspaces/{n}")),
        detail: None,
        time: T0 + n,
    }
}

async fn target(s: &dyn Store, name: &str, owner: Option<&str>) -> TargetRecord {
    let spec = TargetSpec {
        name: name.into(),
        kind: "webhook".into(),
        url: Some("https://hooks.example.org/t".into()),
        ..Default::default()
    };
    let (config, _) = spec.validate().unwrap();
    s.create_target(
        &NewTarget {
            name: name.into(),
            owner: owner.map(String::from),
            config,
            key_id: "k1".into(),
            secret: "sealed".into(),
        },
        T0,
    )
    .await
    .unwrap()
}

async fn events_are_routed_by_cursor(s: &dyn Store) {
    let a = s.record_event(&ws_event(1)).await.unwrap();
    let b = s.record_event(&ws_event(2)).await.unwrap();
    assert!(b > a);
    let got = s.other_events(0, 100).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.event, ws_event(1));
    assert_eq!(got[0].1.key, format!("event:{a}"));
    assert_eq!(s.other_events(a, 100).await.unwrap()[0].0, b);

    // Job events: a job that fails is a `job.failed` notice with its name;
    // the other states are ids only.
    worker(s, "w1", 2).await;
    let ids = s
        .submit(
            &[spec(r#"{"name":"sim","command":["x"],"project":"p1"}"#)],
            T0,
        )
        .await
        .unwrap();
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
            now: T0 + 1,
            kinds: &[],
        })
        .await
        .unwrap()
        .remove(0);
    s.apply_updates(
        "w1",
        &UpdatesRequest {
            heartbeat: vec![],
            updates: vec![Update::Finished {
                at: r(&l),
                reason: AttemptReason::ExitCode,
                exit_code: Some(3),
                time: T0 + 2,
                message: None,
                cpu_ms: None,
                max_rss_kib: None,
            }],
            ..Default::default()
        },
        30_000,
        T0 + 2,
    )
    .await
    .unwrap();
    let notices = s.job_notices(0, 100).await.unwrap();
    assert!(notices.len() >= 2, "{notices:?}");
    let failed: Vec<_> = notices.iter().filter_map(|(_, e)| e.as_ref()).collect();
    assert_eq!(failed.len(), 1, "{notices:?}");
    let f = failed[0];
    assert_eq!(f.event.kind, EventType::JobFailed);
    assert_eq!(f.event.subject, format!("job:{}", ids[0]));
    assert_eq!(f.event.title, format!("Job {} (sim)", ids[0]));
    assert_eq!(f.event.project.as_deref(), Some("p1"));
    assert!(f.event.detail.as_deref().unwrap().contains("exit code 3"));
    let ids_seen: Vec<i64> = notices.iter().map(|(i, _)| *i).collect();
    assert!(ids_seen.windows(2).all(|w| w[0] < w[1]));

    // Routing stores the items and moves the cursor together, once.
    let t = target(s, "hook", None).await;
    assert_eq!(s.notify_cursor(EVENT_SOURCE).await.unwrap(), 0);
    let items: Vec<NewItem> = got
        .iter()
        .map(|(_, e)| NewItem {
            target_id: t.id,
            user: None,
            event: e.clone(),
        })
        .collect();
    assert!(
        s.route_events(EVENT_SOURCE, 0, b, &items, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.notify_cursor(EVENT_SOURCE).await.unwrap(), b);
    assert!(
        !s.route_events(EVENT_SOURCE, 0, b, &items, T0)
            .await
            .unwrap(),
        "a cursor moved by someone else is refused"
    );
    assert_eq!(s.notify_cursor(JOB_SOURCE).await.unwrap(), 0);
    assert_eq!(s.waiting_items(t.id, 100).await.unwrap().len(), 2);
    assert_eq!(s.targets_with_waiting().await.unwrap(), vec![t.id]);
}

async fn targets_rules_and_subscriptions(s: &dyn Store) {
    let t = target(s, "hook", None).await;
    let mine = target(s, "ada-hook", Some("ada")).await;
    let again = TargetSpec {
        name: "hook".into(),
        kind: "webhook".into(),
        url: Some("https://hooks.example.org/t".into()),
        ..Default::default()
    };
    let (config, _) = again.validate().unwrap();
    let dup = s
        .create_target(
            &NewTarget {
                name: "hook".into(),
                owner: None,
                config,
                key_id: "k1".into(),
                secret: "x".into(),
            },
            T0,
        )
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { ref field, .. } if field == "name"));
    let all = s.targets().await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["ada-hook", "hook"]
    );
    assert_eq!(all[0].owner.as_deref(), Some("ada"));
    assert_eq!(all[1], t);
    // Rotation: resealed only from the key it is under.
    assert!(s.reseal_target(t.id, "k1", "k2", "sealed2").await.unwrap());
    assert!(!s.reseal_target(t.id, "k1", "k3", "sealed3").await.unwrap());
    let t2 = s.targets().await.unwrap().remove(1);
    assert_eq!((t2.key_id.as_str(), t2.secret.as_str()), ("k2", "sealed2"));
    let mut changed = NewTarget {
        name: "hook".into(),
        owner: None,
        config: t2.config.clone(),
        key_id: "k2".into(),
        secret: "sealed4".into(),
    };
    changed.config.min_interval_ms = 5;
    assert!(s.update_target(t.id, &changed, T0 + 5).await.unwrap());
    let t3 = s.targets().await.unwrap().remove(1);
    assert_eq!((t3.config.min_interval_ms, t3.updated_at), (5, T0 + 5));

    let rule = RuleSpec {
        name: "ws-x".into(),
        events: vec!["workspace.*".into(), "job.failed".into()],
        project: Some("x".into()),
        targets: vec!["hook".into()],
    }
    .validate()
    .unwrap();
    let rec = s.create_rule(&rule, T0).await.unwrap();
    assert_eq!(s.rules().await.unwrap(), vec![rec]);
    assert!(matches!(
        s.create_rule(&rule, T0).await.unwrap_err(),
        StoreError::Conflict { .. }
    ));
    assert!(s.delete_rule("ws-x").await.unwrap());
    assert!(!s.delete_rule("ws-x").await.unwrap());

    let sub = NewSubscription {
        user: "ada".into(),
        events: vec![EventPattern::Exact(EventType::WorkspaceReady)],
        target: None,
        job: None,
        mode: SubscriptionMode::Muted,
    };
    let a = s.add_subscription(&sub, T0).await.unwrap();
    let b = s
        .add_subscription(
            &NewSubscription {
                user: "bob".into(),
                target: Some("ada-hook".into()),
                job: Some(7),
                mode: SubscriptionMode::On,
                ..sub.clone()
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(s.subscriptions(Some("ada")).await.unwrap(), vec![a.clone()]);
    assert_eq!(
        s.subscriptions(None).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(
        !s.delete_subscription(b.id, Some("ada")).await.unwrap(),
        "not ada's"
    );
    assert!(s.delete_subscription(b.id, Some("bob")).await.unwrap());
    assert!(s.delete_subscription(a.id, None).await.unwrap());
    assert!(s.subscriptions(None).await.unwrap().is_empty());

    assert!(s.delete_target(mine.id).await.unwrap());
    assert!(!s.delete_target(mine.id).await.unwrap());

    // Addresses an admin sets: replaced, then cleared.
    assert_eq!(s.notify_address("ada").await.unwrap(), None);
    s.set_notify_address("ada", Some("ada@a.example"), "admin", T0)
        .await
        .unwrap();
    s.set_notify_address("ada", Some("ada@b.example"), "admin", T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        s.notify_address("ada").await.unwrap().as_deref(),
        Some("ada@b.example")
    );
    s.set_notify_address("ada", None, "admin", T0 + 2)
        .await
        .unwrap();
    assert_eq!(s.notify_address("ada").await.unwrap(), None);
}

async fn deliveries_retry_die_and_revive(s: &dyn Store) {
    let t = target(s, "hook", None).await;
    let mail = target(s, "mail", None).await;
    for n in 1..=4 {
        s.record_event(&ws_event(n)).await.unwrap();
    }
    let evs = s.other_events(0, 10).await.unwrap();
    let mut items: Vec<NewItem> = evs
        .iter()
        .map(|(_, e)| NewItem {
            target_id: t.id,
            user: None,
            event: e.clone(),
        })
        .collect();
    for user in ["ada", "bob"] {
        items.push(NewItem {
            target_id: mail.id,
            user: Some(user.into()),
            event: evs[0].1.clone(),
        });
    }
    let last = evs.last().unwrap().0;
    assert!(
        s.route_events(EVENT_SOURCE, 0, last, &items, T0)
            .await
            .unwrap()
    );
    let waiting = s.waiting_items(t.id, 100).await.unwrap();
    let ids: Vec<i64> = waiting.iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(waiting[0].kind, EventType::WorkspaceReady);
    let d = |id: &str, user: Option<&str>, items: &[i64]| NewDelivery {
        id: id.into(),
        user: user.map(String::from),
        kind: EventType::WorkspaceReady,
        items: items.to_vec(),
    };
    s.form_deliveries(
        t.id,
        &[d("msg_a", None, &ids[..1]), d("msg_b", None, &ids[1..])],
        T0 + 10,
    )
    .await
    .unwrap();
    assert!(s.waiting_items(t.id, 100).await.unwrap().is_empty());
    let formed = s.targets().await.unwrap();
    assert_eq!(
        formed.iter().find(|x| x.id == t.id).unwrap().last_formed_at,
        Some(T0 + 10)
    );
    let m = s.waiting_items(mail.id, 100).await.unwrap();
    s.form_deliveries(
        mail.id,
        &[
            d("msg_ada", Some("ada"), &[m[0].id]),
            d("msg_bob", Some("bob"), &[m[1].id]),
        ],
        T0 + 10,
    )
    .await
    .unwrap();
    assert_eq!(s.pending_users(t.id).await.unwrap(), vec![None]);
    // While a user's delivery is pending, their new items wait behind it.
    let more: Vec<NewItem> = ["ada", "bob"]
        .iter()
        .map(|u| NewItem {
            target_id: mail.id,
            user: Some(u.to_string()),
            event: evs[1].1.clone(),
        })
        .collect();
    assert!(
        s.route_events(EVENT_SOURCE, last, last + 1, &more, T0)
            .await
            .unwrap()
    );
    assert!(s.waiting_items(mail.id, 100).await.unwrap().is_empty());
    let mut users = s.pending_users(mail.id).await.unwrap();
    users.sort();
    assert_eq!(users, vec![Some("ada".into()), Some("bob".into())]);

    // First in line per target and user: msg_b waits behind msg_a.
    let due: Vec<String> = s
        .due_deliveries(T0 + 10, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(due, ["msg_a", "msg_ada", "msg_bob"]);
    assert_eq!(s.delivery_events("msg_b").await.unwrap().len(), 3);
    assert_eq!(s.delivery_events("msg_a").await.unwrap()[0], evs[0].1);

    let retry = AttemptOutcome::Retry {
        at: T0 + 100,
        error: "connection refused".into(),
    };
    assert!(s.finish_attempt("msg_a", &retry, T0 + 11).await.unwrap());
    assert!(
        s.finish_attempt("msg_ada", &AttemptOutcome::Delivered, T0 + 11)
            .await
            .unwrap()
    );
    let w = s.waiting_items(mail.id, 100).await.unwrap();
    assert_eq!(
        w.iter().map(|i| i.user.as_deref()).collect::<Vec<_>>(),
        [Some("ada")],
        "ada's item is free once her delivery is; bob's still waits"
    );
    let due: Vec<String> = s
        .due_deliveries(T0 + 12, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        due,
        ["msg_bob"],
        "msg_a is not due yet and msg_b waits behind it"
    );
    let a = s.delivery("msg_a").await.unwrap().unwrap();
    assert_eq!((a.attempts, a.next_at), (1, T0 + 100));
    assert_eq!(a.last_error.as_deref(), Some("connection refused"));
    assert_eq!(a.target, "hook");
    assert_eq!(a.state, DeliveryState::Pending);

    let dead = AttemptOutcome::Dead {
        error: "HTTP 500".into(),
    };
    assert!(s.finish_attempt("msg_a", &dead, T0 + 100).await.unwrap());
    assert!(
        !s.finish_attempt("msg_a", &dead, T0 + 101).await.unwrap(),
        "not pending"
    );
    let due: Vec<String> = s
        .due_deliveries(T0 + 101, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        due,
        ["msg_b", "msg_bob"],
        "a dead letter no longer holds the line"
    );
    let deads = s
        .deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Dead),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deads.len(), 1);
    assert_eq!(deads[0].last_error.as_deref(), Some("HTTP 500"));
    let bobs = s
        .deliveries(&DeliveryFilter {
            user: Some("bob".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        bobs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["msg_bob"]
    );
    let all = s
        .deliveries(&DeliveryFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].seq > all[1].seq, "newest first");

    assert!(s.retry_delivery("msg_a", T0 + 200).await.unwrap());
    assert!(!s.retry_delivery("msg_a", T0 + 200).await.unwrap());
    let a = s.delivery("msg_a").await.unwrap().unwrap();
    assert_eq!(
        (a.state, a.next_at, a.created_at),
        (DeliveryState::Pending, T0 + 200, T0 + 200)
    );

    // Deleting a target drops what it still had to send, keeps history.
    assert!(s.delete_target(mail.id).await.unwrap());
    assert!(s.delivery("msg_bob").await.unwrap().is_none());
    let ada = s.delivery("msg_ada").await.unwrap().unwrap();
    assert_eq!(
        (ada.state, ada.target.as_str()),
        (DeliveryState::Delivered, "")
    );
}
