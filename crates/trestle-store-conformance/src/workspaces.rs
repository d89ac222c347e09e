//! The conformance suite for workspaces: the catalogue (type versions are
//! unique and approved one by one; configurations are replaced whole),
//! workspaces (lifecycle writes are a compare-and-set on the state, so
//! two servers never both move one), and the columns the worker reports
//! (readiness, home saves, activity), which a lifecycle write never
//! overwrites.

use std::collections::BTreeMap;
use std::sync::Arc;
use trestle_core::workspace::config::WorkspaceConfigRequest;
use trestle_core::workspace::idle::Activity;
use trestle_core::workspace::kind::{Approval, shipped};
use trestle_core::workspace::{Launch, WorkspaceState};
use trestle_store::workspace::{ConfigRecord, TypeRecord, WorkspaceFilter, WorkspaceRecord};
use trestle_store::{Store, StoreError};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "catalogue_versions_and_approval",
    "lifecycle_is_compare_and_set",
    "reports_and_homes_survive_lifecycle_writes",
    "origin_grants",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "catalogue_versions_and_approval" => catalogue(&*s).await,
        "lifecycle_is_compare_and_set" => lifecycle(&*s).await,
        "reports_and_homes_survive_lifecycle_writes" => reports(&*s).await,
        "origin_grants" => grants(&*s).await,
        other => panic!("unknown workspaces conformance check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn type_record(version: &str) -> TypeRecord {
    let mut req = shipped().remove(0);
    req.version = Some(version.into());
    TypeRecord {
        spec: req.validate().unwrap(),
        approval: Approval::Pending,
        imported_by: Some("admin".into()),
        imported_at: T0,
        decided_by: None,
        decided_at: None,
    }
}

fn launch() -> Launch {
    let t = type_record("1").spec;
    let config = WorkspaceConfigRequest {
        name: Some("lab".into()),
        type_ref: Some("jupyterlab@1".into()),
        allow_roles: vec!["researcher".into()],
        ..Default::default()
    }
    .validate(&t)
    .unwrap();
    Launch {
        config,
        kind: t,
        params: BTreeMap::new(),
    }
}

fn workspace(owner: &str) -> WorkspaceRecord {
    WorkspaceRecord {
        id: 0,
        name: "lab".into(),
        owner: owner.into(),
        project: Some("genomics".into()),
        launch: launch(),
        state: WorkspaceState::Pending,
        reason: None,
        shared: false,
        job_id: None,
        created_at: T0,
        updated_at: T0,
        running_since: None,
        deadline: None,
        extended_secs: 0,
        secret: None,
        ready_job: None,
        home_key: None,
        home_bytes: None,
        home_saved_at: None,
        home_saved_job: None,
        save_error: None,
        save_error_job: None,
        activity: Activity::default(),
        assist_by: None,
        assist_until: None,
    }
}

async fn catalogue(s: &dyn Store) {
    s.put_ws_type(&type_record("1")).await.unwrap();
    s.put_ws_type(&type_record("2")).await.unwrap();
    let again = s.put_ws_type(&type_record("1")).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict { .. }), "{again}");
    let all = s.ws_types().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter().all(|t| t.approval == Approval::Pending),
        "imported not approved"
    );
    assert!(
        s.decide_ws_type("jupyterlab", "2", Approval::Approved, "root", T0 + 1)
            .await
            .unwrap()
    );
    assert!(
        !s.decide_ws_type("jupyterlab", "9", Approval::Approved, "root", T0)
            .await
            .unwrap()
    );
    let v2 = s.ws_type("jupyterlab", "2").await.unwrap().unwrap();
    assert_eq!(
        (v2.approval, v2.decided_by.as_deref(), v2.decided_at),
        (Approval::Approved, Some("root"), Some(T0 + 1))
    );
    assert_eq!(
        s.ws_type("jupyterlab", "1")
            .await
            .unwrap()
            .unwrap()
            .approval,
        Approval::Pending
    );
    assert!(s.ws_type("nope", "1").await.unwrap().is_none());

    let mut c = ConfigRecord {
        config: launch().config,
        updated_by: Some("admin".into()),
        updated_at: T0,
    };
    s.put_ws_config(&c).await.unwrap();
    c.config.cpus = 4;
    c.updated_at = T0 + 5;
    s.put_ws_config(&c).await.unwrap();
    let got = s.ws_config("lab").await.unwrap().unwrap();
    assert_eq!(
        (got.config.cpus, got.updated_at),
        (4, T0 + 5),
        "replaced whole"
    );
    assert_eq!(s.ws_configs().await.unwrap().len(), 1);
    assert!(s.delete_ws_config("lab").await.unwrap());
    assert!(!s.delete_ws_config("lab").await.unwrap());
    assert!(s.ws_config("lab").await.unwrap().is_none());
}

async fn lifecycle(s: &dyn Store) {
    let a = s.insert_workspace(&workspace("ada")).await.unwrap();
    let b = s.insert_workspace(&workspace("bob")).await.unwrap();
    assert!(b > a);
    let mut w = s.workspace(a).await.unwrap().unwrap();
    assert_eq!(
        (w.owner.as_str(), w.state, w.launch.config.name.as_str()),
        ("ada", WorkspaceState::Pending, "lab")
    );
    w.state = WorkspaceState::Starting;
    w.job_id = Some(77);
    w.updated_at = T0 + 1;
    assert!(
        s.set_ws_lifecycle(&w, WorkspaceState::Pending, None)
            .await
            .unwrap()
    );
    // A second writer that read the old state loses.
    let mut late = w.clone();
    late.state = WorkspaceState::Stopping;
    assert!(
        !s.set_ws_lifecycle(&late, WorkspaceState::Pending, None)
            .await
            .unwrap()
    );
    let got = s.workspace(a).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.job_id),
        (WorkspaceState::Starting, Some(77))
    );
    assert_eq!(s.workspace_by_job(77).await.unwrap().unwrap().id, a);
    assert!(s.workspace_by_job(78).await.unwrap().is_none());

    let mine = s
        .workspaces(&WorkspaceFilter {
            owner: Some("ada".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.iter().map(|w| w.id).collect::<Vec<_>>(), vec![a]);
    let mut t = s.workspace(b).await.unwrap().unwrap();
    t.state = WorkspaceState::Terminated;
    assert!(
        s.set_ws_lifecycle(&t, WorkspaceState::Pending, None)
            .await
            .unwrap()
    );
    let live = s.workspaces(&WorkspaceFilter::default()).await.unwrap();
    assert_eq!(
        live.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![a],
        "terminated are left out"
    );
    let all = s
        .workspaces(&WorkspaceFilter {
            include_terminated: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![b, a],
        "newest first"
    );
    let starting = s
        .workspaces(&WorkspaceFilter {
            states: vec![WorkspaceState::Starting],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(starting.len(), 1);
}

async fn reports(s: &dyn Store) {
    let id = s.insert_workspace(&workspace("ada")).await.unwrap();
    let mut w = s.workspace(id).await.unwrap().unwrap();
    w.job_id = Some(5);
    assert!(
        s.set_ws_lifecycle(&w, WorkspaceState::Pending, None)
            .await
            .unwrap()
    );
    assert!(s.ws_session_ready(5, "s3cret").await.unwrap());
    assert!(
        !s.ws_session_ready(6, "x").await.unwrap(),
        "another session is not this one"
    );
    assert_eq!(
        s.ws_home_saved(5, "workspaces/1/home/5.tar", 100, T0 + 2)
            .await
            .unwrap(),
        None
    );
    let a = Activity {
        last_app: Some(T0 + 3),
        app_busy: true,
        last_attached: Some(T0 + 4),
        attached: 1,
        ..Default::default()
    };
    assert!(s.ws_app_activity(5, &a).await.unwrap());
    s.ws_request_activity(id, T0 + 9).await.unwrap();
    s.ws_request_activity(id, T0 + 8).await.unwrap();
    // A lifecycle write (from a record read before the reports) keeps them.
    w.state = WorkspaceState::Running;
    w.running_since = Some(T0 + 1);
    assert!(
        s.set_ws_lifecycle(&w, WorkspaceState::Pending, None)
            .await
            .unwrap()
    );
    let got = s.workspace(id).await.unwrap().unwrap();
    assert_eq!(
        (got.secret.as_deref(), got.ready_job),
        (Some("s3cret"), Some(5))
    );
    assert_eq!(
        (got.home_key.as_deref(), got.home_bytes, got.home_saved_job),
        (Some("workspaces/1/home/5.tar"), Some(100), Some(5))
    );
    assert_eq!(
        got.activity.last_request,
        Some(T0 + 9),
        "the latest request is kept"
    );
    assert_eq!(
        (
            got.activity.last_app,
            got.activity.app_busy,
            got.activity.attached
        ),
        (Some(T0 + 3), true, 1)
    );
    assert_eq!(got.activity.running_since, T0 + 1);
    // The next session's save replaces the copy and hands back the old key.
    w.job_id = Some(6);
    w.state = WorkspaceState::Pending;
    assert!(
        s.set_ws_lifecycle(&w, WorkspaceState::Running, None)
            .await
            .unwrap()
    );
    assert!(s.ws_save_failed(6, "disk full").await.unwrap());
    let got = s.workspace(id).await.unwrap().unwrap();
    assert_eq!(got.save_error.as_deref(), Some("disk full"));
    assert_eq!(
        got.home_key.as_deref(),
        Some("workspaces/1/home/5.tar"),
        "a failed save keeps the copy"
    );
    let old = s
        .ws_home_saved(6, "workspaces/1/home/6.tar", 120, T0 + 20)
        .await
        .unwrap();
    assert_eq!(old.as_deref(), Some("workspaces/1/home/5.tar"));
    let got = s.workspace(id).await.unwrap().unwrap();
    assert_eq!(got.save_error, None, "a good save clears the error");
    assert_eq!(
        s.ws_clear_home(id).await.unwrap().as_deref(),
        Some("workspaces/1/home/6.tar")
    );
    assert_eq!(s.workspace(id).await.unwrap().unwrap().home_key, None);
}

async fn grants(s: &dyn Store) {
    use trestle_store::Grant;
    let now = trestle_core::clock::now_ms();
    let g = |hash: &str, kind: &str, expires_at: i64| Grant {
        hash: hash.into(),
        kind: kind.into(),
        workspace: 7,
        user: "ada".into(),
        expires_at,
    };
    s.put_ws_grant(&g("t1", "ticket", now + 60_000))
        .await
        .unwrap();
    s.put_ws_grant(&g("t2", "ticket", now - 1)).await.unwrap();
    s.put_ws_grant(&g("c1", "cookie", now + 60_000))
        .await
        .unwrap();
    assert_eq!(
        s.take_ws_ticket("c1", now).await.unwrap(),
        None,
        "a cookie is no ticket"
    );
    let t = s
        .take_ws_ticket("t1", now)
        .await
        .unwrap()
        .expect("the ticket");
    assert_eq!((t.workspace, t.user.as_str()), (7, "ada"));
    assert!(
        s.take_ws_ticket("t1", now).await.unwrap().is_none(),
        "used once"
    );
    assert!(
        s.take_ws_ticket("t2", now).await.unwrap().is_none(),
        "expired"
    );
    assert!(s.ws_cookie("c1", now).await.unwrap().is_some());
    assert!(s.ws_cookie("t1", now).await.unwrap().is_none());
    assert!(
        s.ws_cookie("c1", now + 61_000).await.unwrap().is_none(),
        "expired"
    );
}
