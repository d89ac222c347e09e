//! Workspace operations for users and admins: the catalogue (import,
//! approve and revoke type versions; set configurations), launching, and
//! the lifecycle requests (stop, start, terminate, extend, share, assist).
//! The worker's side (readiness, homes, activity) and the loop that
//! follows sessions are in [`crate::workspace_sessions`].

use crate::access;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::state::Service;
use crate::workspace_sessions as sessions;
use trestle_core::api::workspace::{ConfigView, LaunchRequest, TypeView, WorkspaceView};
use trestle_core::identity::authz::Role;
use trestle_core::identity::authz::{Decision, Denial};
use trestle_core::identity::authz_workspace::{WsAction, WsResource, decide};
use trestle_core::notify::event::EventType;
use trestle_core::workspace::config::WorkspaceConfigRequest;
use trestle_core::workspace::kind::{AppKind, Approval, WorkspaceTypeRequest, shipped};
use trestle_core::workspace::state::{Request, StopCause, apply};
use trestle_core::workspace::{Launch, WorkspaceState, check_name, params, session};
use trestle_store::workspace::{ConfigRecord, TypeRecord, WorkspaceFilter, WorkspaceRecord};

/// How workspaces are reached and limited (`[workspaces]`).
#[derive(Debug, Clone)]
pub struct WorkspaceSettings {
    /// Each workspace at its own origin (`https://ws-{id}.example.org`,
    /// with a wildcard DNS name); `None`: path mode, `/ws/{id}/` under the
    /// server's own origin.
    pub origin: Option<trestle_core::workspace::origin::OriginTemplate>,
    /// The server's public URL (for links), when known.
    pub public_url: Option<String>,
    /// Running workspaces per user, whatever the configuration.
    pub max_running_per_user: u32,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        WorkspaceSettings {
            origin: None,
            public_url: None,
            max_running_per_user: 4,
        }
    }
}

/// Decides and maps a denial (`what` names the thing in a 404).
pub(crate) fn check(
    p: &Principal,
    action: WsAction,
    r: WsResource<'_>,
    what: &str,
) -> ServiceResult<()> {
    match decide(&p.subject, action, r) {
        Decision::Allow => Ok(()),
        Decision::Deny(Denial::NotFound) => Err(ServiceError::not_found(what)),
        Decision::Deny(Denial::Forbidden(m)) => Err(ServiceError::forbidden(m)),
    }
}

fn role(p: &Principal) -> Option<Role> {
    p.user().map(|u| u.role)
}

fn type_view(t: TypeRecord) -> TypeView {
    TypeView {
        spec: t.spec,
        approval: t.approval,
        imported_by: t.imported_by,
        imported_at: t.imported_at,
        decided_by: t.decided_by,
        decided_at: t.decided_at,
    }
}

/// Imports the shipped types (JupyterLab, terminal, web app) that are not
/// stored yet, as *not approved*.
pub async fn import_shipped(app: &Service) -> ServiceResult<()> {
    for req in shipped() {
        let t = req.validate()?;
        if app.store.ws_type(&t.name, &t.version).await?.is_some() {
            continue;
        }
        let rec = TypeRecord {
            spec: t,
            approval: Approval::Pending,
            imported_by: None,
            imported_at: crate::now_ms(),
            decided_by: None,
            decided_at: None,
        };
        match app.store.put_ws_type(&rec).await {
            Ok(()) | Err(trestle_store::StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Imports a type version (admins); it starts *not approved*.
pub async fn import_type(
    app: &Service,
    p: &Principal,
    req: WorkspaceTypeRequest,
) -> ServiceResult<TypeView> {
    check(p, WsAction::CatalogManage, WsResource::None, "")?;
    let spec = req.validate()?;
    let rec = TypeRecord {
        spec,
        approval: Approval::Pending,
        imported_by: p.user_name().map(str::to_string),
        imported_at: crate::now_ms(),
        decided_by: None,
        decided_at: None,
    };
    app.store.put_ws_type(&rec).await?;
    Ok(type_view(rec))
}

/// Type versions: admins see every one, users the approved ones; only the
/// latest version of each name unless `all_versions`.
pub async fn types(
    app: &Service,
    p: &Principal,
    all_versions: bool,
) -> ServiceResult<Vec<TypeView>> {
    check(p, WsAction::CatalogRead, WsResource::None, "")?;
    let admin = p.is_admin();
    let mut out: Vec<TypeView> = Vec::new();
    for t in app.store.ws_types().await? {
        if !admin && t.approval != Approval::Approved {
            continue;
        }
        if !all_versions
            && let Some(last) = out.last_mut()
            && last.spec.name == t.spec.name
        {
            *last = type_view(t);
            continue;
        }
        out.push(type_view(t));
    }
    Ok(out)
}

/// Approves or revokes a type version (admins).
pub async fn decide_type(
    app: &Service,
    p: &Principal,
    name: &str,
    version: &str,
    approval: Approval,
) -> ServiceResult<TypeView> {
    check(p, WsAction::CatalogManage, WsResource::None, "")?;
    let by = p.user_name().unwrap_or("admin");
    if !app
        .store
        .decide_ws_type(name, version, approval, by, crate::now_ms())
        .await?
    {
        return Err(ServiceError::not_found(format!(
            "workspace type {name}@{version}"
        )));
    }
    let t = app
        .store
        .ws_type(name, version)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("workspace type {name}@{version}")))?;
    Ok(type_view(t))
}

async fn config_view(app: &Service, p: &Principal, c: ConfigRecord) -> ServiceResult<ConfigView> {
    let approval = app
        .store
        .ws_type(&c.config.type_name, &c.config.type_version)
        .await?
        .map_or(Approval::Revoked, |t| t.approval);
    let launchable = approval == Approval::Approved && role(p).is_some_and(|r| c.config.allows(r));
    Ok(ConfigView {
        config: c.config,
        type_approval: approval,
        launchable,
        updated_by: c.updated_by,
        updated_at: c.updated_at,
    })
}

/// Creates or replaces a configuration (admins). Its type version must
/// exist (approval is needed to launch, not to configure) and its queue
/// too.
pub async fn put_config(
    app: &Service,
    p: &Principal,
    req: WorkspaceConfigRequest,
) -> ServiceResult<ConfigView> {
    check(p, WsAction::CatalogManage, WsResource::None, "")?;
    let (name, version) = req.type_key()?;
    let t = app.store.ws_type(&name, &version).await?.ok_or_else(|| {
        ServiceError::bad(
            "unknown-type",
            "type",
            format!("workspace type {name}@{version} does not exist (`trestle ws types --all` lists them)"),
        )
    })?;
    let config = req.validate(&t.spec)?;
    crate::jobs::check_queue(app, &config.queue).await?;
    config.fits_pilots(t.spec.start_timeout_secs, &slurm_pilots(app, &config.queue))?;
    let rec = ConfigRecord {
        config,
        updated_by: p.user_name().map(str::to_string),
        updated_at: crate::now_ms(),
    };
    app.store.put_ws_config(&rec).await?;
    config_view(app, p, rec).await
}

/// The Slurm compute environments a queue's tasks may run on, with their
/// pilots' time limits.
fn slurm_pilots(app: &Service, queue: &str) -> Vec<(String, u64)> {
    let t = app.compute.topology();
    let listed: Option<Vec<String>> = t
        .queues
        .iter()
        .find(|q| q.spec.name == queue)
        .map(|q| q.spec.compute_environments.clone())
        .filter(|l| !l.is_empty());
    t.envs
        .iter()
        .filter(|e| listed.as_ref().is_none_or(|l| l.contains(&e.spec.name)))
        .filter_map(|e| {
            e.spec
                .slurm
                .as_ref()
                .map(|s| (e.spec.name.clone(), s.time_limit_secs))
        })
        .collect()
}

/// Configurations: admins see all; users only those they may launch.
pub async fn configs(app: &Service, p: &Principal) -> ServiceResult<Vec<ConfigView>> {
    check(p, WsAction::CatalogRead, WsResource::None, "")?;
    let mut out = Vec::new();
    for c in app.store.ws_configs().await? {
        let v = config_view(app, p, c).await?;
        if p.is_admin() || v.launchable {
            out.push(v);
        }
    }
    Ok(out)
}

/// Deletes a configuration (admins); running workspaces keep theirs.
pub async fn delete_config(app: &Service, p: &Principal, name: &str) -> ServiceResult<()> {
    check(p, WsAction::CatalogManage, WsResource::None, "")?;
    if !app.store.delete_ws_config(name).await? {
        return Err(ServiceError::not_found(format!(
            "workspace configuration `{name}`"
        )));
    }
    Ok(())
}

/// The resource facts of a workspace for `p`.
pub(crate) fn resource<'a>(p: &Principal, w: &'a WorkspaceRecord, now: i64) -> WsResource<'a> {
    let assisted = w
        .assist_by
        .as_deref()
        .is_some_and(|a| Some(a) == p.user_name())
        && w.assist_until.is_some_and(|u| u > now);
    WsResource::Workspace {
        owner: &w.owner,
        project: w.project.as_deref(),
        shared: w.shared,
        assisted,
    }
}

/// Loads workspace `id` if `p` may do `action` on it (404 otherwise).
pub async fn load(
    app: &Service,
    p: &Principal,
    id: i64,
    action: WsAction,
) -> ServiceResult<WorkspaceRecord> {
    let what = format!("workspace {id}");
    let w = app
        .store
        .workspace(id)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
    check(p, action, resource(p, &w, crate::now_ms()), &what)?;
    Ok(w)
}

/// The URL a workspace is reached at.
pub fn url(app: &Service, id: i64) -> String {
    match &app.workspaces.origin {
        // Through the server's own origin first: it hands the browser a
        // cookie of the workspace's origin (see `workspace_access::open`).
        Some(_) => format!(
            "{}/ws-open/{id}",
            app.workspaces
                .public_url
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/')
        ),
        None => format!(
            "{}{}",
            app.workspaces
                .public_url
                .as_deref()
                .unwrap_or("")
                .trim_end_matches('/'),
            session::prefix(id)
        ),
    }
}

/// A stored workspace as `p` sees it.
pub async fn view(
    app: &Service,
    p: &Principal,
    w: &WorkspaceRecord,
) -> ServiceResult<WorkspaceView> {
    let now = crate::now_ms();
    let revoked = app
        .store
        .ws_type(&w.launch.kind.name, &w.launch.kind.version)
        .await?
        .is_none_or(|t| t.approval == Approval::Revoked);
    let worker = match w.job_id {
        Some(j) if w.state.has_session() => {
            app.store.job(j).await.ok().flatten().and_then(|j| j.worker)
        }
        _ => None,
    };
    let connect = decide(&p.subject, WsAction::Connect, resource(p, w, now)).is_allowed();
    let running = w.state == WorkspaceState::Running;
    Ok(WorkspaceView {
        id: w.id,
        name: w.name.clone(),
        owner: w.owner.clone(),
        project: w.project.clone(),
        config: w.launch.config.name.clone(),
        type_id: w.launch.kind.id(),
        type_revoked: revoked,
        app: w.launch.kind.app,
        state: w.state,
        reason: w.reason.clone(),
        shared: w.shared,
        job_id: w.job_id,
        worker,
        url: (running && connect && w.launch.kind.app == AppKind::Http).then(|| url(app, w.id)),
        created_at: w.created_at,
        running_since: w.running_since.filter(|_| running),
        deadline: w.deadline.filter(|_| running),
        extended_secs: w.extended_secs,
        last_activity: running.then(|| w.activity.last()),
        idle_timeout_secs: w.launch.config.idle_timeout_secs,
        home_bytes: w.home_bytes,
        home_saved_at: w.home_saved_at,
        cost_per_hour: w.launch.config.cost_per_hour,
        cpus: w.launch.config.cpus,
        mem_mib: w.launch.config.mem_mib,
    })
}

/// Launches a configuration for `p`: checks the configuration, its type
/// version, the name, the parameters, the project and the user's limits
/// before anything is stored, then stores the workspace and queues its
/// session task.
pub async fn launch(
    app: &Service,
    p: &Principal,
    req: LaunchRequest,
) -> ServiceResult<WorkspaceView> {
    let Some(u) = p.user() else {
        return Err(ServiceError::forbidden(
            "a worker credential cannot launch workspaces",
        ));
    };
    let missing = || {
        ServiceError::not_found(format!("workspace configuration `{}`", req.config))
            .in_field("config")
    };
    let c = app
        .store
        .ws_config(&req.config)
        .await?
        .ok_or_else(missing)?;
    check(
        p,
        WsAction::Launch,
        WsResource::Config {
            role_allowed: c.config.allows(u.role),
        },
        "",
    )
    .map_err(|_| missing())?;
    let t = app
        .store
        .ws_type(&c.config.type_name, &c.config.type_version)
        .await?
        .ok_or_else(missing)?;
    if t.approval != Approval::Approved {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "type-not-approved",
            format!(
                "configuration `{}` uses workspace type {} which is {}; an admin must approve it first",
                c.config.name,
                t.spec.id(),
                if t.approval == Approval::Revoked { "revoked" } else { "not approved" }
            ),
        )
        .in_field("config"));
    }
    let name = req.name.clone().unwrap_or_else(|| c.config.name.clone());
    check_name("name", &name)?;
    let values = params::resolve(&t.spec.params, &c.config.params, &req.params, "params")?;
    // The project is checked (and defaulted) as for any job.
    let probe = session::session_job(
        0,
        &name,
        &Launch {
            config: c.config.clone(),
            kind: t.spec.clone(),
            params: values.clone(),
        },
        false,
    );
    let probe = trestle_core::JobSpec {
        project: req.project.clone(),
        ..probe
    };
    let charged = access::charge(app, p, probe).await?;
    let mine = app
        .store
        .workspaces(&WorkspaceFilter {
            owner: Some(u.name.clone()),
            limit: 5000,
            ..Default::default()
        })
        .await?;
    let running: Vec<_> = mine
        .iter()
        .filter(|w| w.state.counts_as_running())
        .collect();
    let of_config = running
        .iter()
        .filter(|w| w.launch.config.name == c.config.name)
        .count() as u32;
    if of_config >= c.config.max_per_user {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "workspace-limit",
            format!(
                "you already run {of_config} workspace(s) of `{}`, its limit per user; stop one first",
                c.config.name
            ),
        ));
    }
    if running.len() as u32 >= app.workspaces.max_running_per_user && !p.is_admin() {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "workspace-limit",
            format!(
                "you already run {} workspaces, the limit per user; stop one first",
                running.len()
            ),
        ));
    }
    let now = crate::now_ms();
    let launch = Launch {
        config: c.config,
        kind: t.spec,
        params: values,
    };
    let mut w = WorkspaceRecord {
        id: 0,
        name,
        owner: u.name.clone(),
        project: charged.project.clone(),
        launch,
        state: WorkspaceState::Pending,
        reason: None,
        shared: false,
        job_id: None,
        created_at: now,
        updated_at: now,
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
        activity: Default::default(),
        assist_by: None,
        assist_until: None,
    };
    w.id = app.store.insert_workspace(&w).await?;
    queue_session(
        app,
        &mut w,
        WorkspaceState::Pending,
        Some(EventType::WorkspaceLaunched),
    )
    .await?;
    view(app, p, &w).await
}

/// Queues a new session task for `w` (in state `expected`) and records
/// it, with `kind`'s event (launched; none for a start).
async fn queue_session(
    app: &Service,
    w: &mut WorkspaceRecord,
    expected: WorkspaceState,
    kind: Option<EventType>,
) -> ServiceResult<()> {
    let mut spec = session::session_job(w.id, &w.name, &w.launch, w.home_key.is_some());
    // Charged at launch (the owner's project); a start by an admin still
    // charges the owner.
    spec.project = w.project.clone();
    spec.owner = Some(w.owner.clone());
    let job = match crate::jobs::submit_charged(app, vec![spec]).await {
        Ok(ids) => ids[0],
        Err(e) => {
            w.state = WorkspaceState::Failed;
            w.reason = Some(format!("its session could not be queued: {}", e.message));
            w.updated_at = crate::now_ms();
            let ev = sessions::event(w, EventType::WorkspaceFailed, w.reason.clone());
            let _ = app.store.set_ws_lifecycle(w, expected, Some(&ev)).await;
            sessions::wake_notify(app);
            return Err(e);
        }
    };
    w.job_id = Some(job);
    w.state = WorkspaceState::Pending;
    w.reason = None;
    w.updated_at = crate::now_ms();
    let ev = kind.map(|k| sessions::event(w, k, None));
    if !app.store.set_ws_lifecycle(w, expected, ev.as_ref()).await? {
        let _ = app.store.cancel(job, crate::now_ms()).await;
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "changed",
            "the workspace changed meanwhile; try again",
        ));
    }
    if ev.is_some() {
        sessions::wake_notify(app);
    }
    Ok(())
}

/// Lists workspaces: a user's own and those shared with them; admins with
/// `all` see everyone's.
pub async fn list(
    app: &Service,
    p: &Principal,
    all: bool,
    include_terminated: bool,
) -> ServiceResult<Vec<WorkspaceView>> {
    let Some(u) = p.user() else {
        return Err(ServiceError::forbidden(
            "a worker credential cannot list workspaces",
        ));
    };
    let owner = if all && p.is_admin() {
        None
    } else {
        None.or(Some(u.name.clone()))
    };
    let mut rows = app
        .store
        .workspaces(&WorkspaceFilter {
            owner: owner.clone(),
            include_terminated,
            limit: 500,
            ..Default::default()
        })
        .await?;
    if owner.is_some() && !u.readable_projects().is_empty() {
        // Workspaces shared with the user's projects.
        let shared = app
            .store
            .workspaces(&WorkspaceFilter {
                include_terminated,
                limit: 500,
                ..Default::default()
            })
            .await?;
        rows.extend(shared.into_iter().filter(|w| w.shared && w.owner != u.name));
        rows.sort_by_key(|w| std::cmp::Reverse(w.id));
    }
    let now = crate::now_ms();
    let mut out = Vec::new();
    for w in rows {
        if decide(&p.subject, WsAction::Read, resource(p, &w, now)).is_allowed() {
            out.push(view(app, p, &w).await?);
        }
    }
    Ok(out)
}

/// One workspace.
pub async fn show(app: &Service, p: &Principal, id: i64) -> ServiceResult<WorkspaceView> {
    let w = load(app, p, id, WsAction::Read).await?;
    view(app, p, &w).await
}

/// Stops, starts or terminates workspace `id`.
pub async fn request(
    app: &Service,
    p: &Principal,
    id: i64,
    req: Request,
) -> ServiceResult<WorkspaceView> {
    let w = load(app, p, id, WsAction::Operate).await?;
    let cause = if p.user_name() == Some(w.owner.as_str()) {
        StopCause::User
    } else {
        StopCause::Admin
    };
    let w = change(app, w, req, cause).await?;
    view(app, p, &w).await
}

/// Applies `req` to `w` (already authorised): the decision is
/// [`apply`]'s; the store's compare-and-set makes it once.
pub(crate) async fn change(
    app: &Service,
    mut w: WorkspaceRecord,
    req: Request,
    cause: StopCause,
) -> ServiceResult<WorkspaceRecord> {
    let from = w.state;
    let step =
        apply(from, req).map_err(|m| ServiceError::new(ErrorKind::Conflict, "invalid-state", m))?;
    if step.new_session {
        queue_session(app, &mut w, from, None).await?;
        return Ok(w);
    }
    w.state = step.to;
    w.updated_at = crate::now_ms();
    w.reason = match (req, cause) {
        (Request::Stop, StopCause::User) => None,
        (Request::Stop, c) => Some(format!(
            "stopped: {}",
            match c {
                StopCause::Idle => "idle for its configuration's idle timeout",
                StopCause::Lifetime => "it reached its maximum lifetime",
                StopCause::Budget => "its project's budget is spent",
                _ => "an admin stopped it",
            }
        )),
        _ => None,
    };
    let ev = match (w.state, cause) {
        (WorkspaceState::Stopping, StopCause::Idle) => Some(EventType::WorkspaceIdleStopped),
        (WorkspaceState::Stopping, StopCause::Budget) => Some(EventType::WorkspaceStopped),
        // Stopped or failed with no session: there is nothing to wait for.
        (WorkspaceState::Terminated, _) => Some(EventType::WorkspaceTerminated),
        _ => None,
    }
    .map(|k| sessions::event(&w, k, w.reason.clone()));
    if !app.store.set_ws_lifecycle(&w, from, ev.as_ref()).await? {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "changed",
            "the workspace changed meanwhile; try again",
        ));
    }
    if ev.is_some() {
        sessions::wake_notify(app);
    }
    if step.cancel_session
        && let Some(job) = w.job_id
    {
        app.store.cancel(job, crate::now_ms()).await?;
    }
    if step.delete_home {
        crate::workspace_sessions::delete_home(app, w.id).await;
    }
    Ok(w)
}

/// Extends a running workspace's lifetime by `by` (`1h`), within its
/// configuration's allowance.
pub async fn extend(
    app: &Service,
    p: &Principal,
    id: i64,
    by: &str,
) -> ServiceResult<WorkspaceView> {
    let mut w = load(app, p, id, WsAction::Operate).await?;
    let secs = trestle_core::parse::parse_duration("by", by, false)?;
    let (Some(started), WorkspaceState::Running) = (w.running_since, w.state) else {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "invalid-state",
            "only a RUNNING workspace can be extended",
        ));
    };
    let c = &w.launch.config;
    let (deadline, total) = trestle_core::workspace::idle::extend(
        started,
        c.max_lifetime_secs,
        w.extended_secs,
        secs,
        c.max_extension_secs,
    )
    .map_err(|m| ServiceError::bad("extension-limit", "by", m))?;
    w.deadline = Some(deadline);
    w.extended_secs = total;
    w.updated_at = crate::now_ms();
    if !app
        .store
        .set_ws_lifecycle(&w, WorkspaceState::Running, None)
        .await?
    {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "changed",
            "the workspace changed meanwhile; try again",
        ));
    }
    view(app, p, &w).await
}

/// Shares a workspace with its project's members, or stops sharing. Only
/// where each workspace has its own origin: under the portal's origin a
/// shared app's scripts would run with a member's portal session.
pub async fn share(
    app: &Service,
    p: &Principal,
    id: i64,
    shared: bool,
) -> ServiceResult<WorkspaceView> {
    let mut w = load(app, p, id, WsAction::Operate).await?;
    if shared && app.workspaces.origin.is_none() {
        return Err(ServiceError::bad(
            "sharing-needs-origins",
            "shared",
            "sharing needs each workspace at its own origin (`[workspaces] origin`); in path mode a shared app would run in the portal's origin",
        ));
    }
    if shared && w.project.is_none() {
        return Err(ServiceError::bad(
            "no-project",
            "shared",
            "a workspace without a project has no one to share with",
        ));
    }
    let from = w.state;
    w.shared = shared;
    w.updated_at = crate::now_ms();
    if !app.store.set_ws_lifecycle(&w, from, None).await? {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "changed",
            "the workspace changed meanwhile; try again",
        ));
    }
    app.access.forget(id);
    view(app, p, &w).await
}

/// How long an admin's assist grant lasts.
pub const ASSIST_MS: i64 = 3_600_000;

/// An admin grants themselves access to a user's workspace for an hour
/// (the request is audited like every other).
pub async fn assist(app: &Service, p: &Principal, id: i64) -> ServiceResult<WorkspaceView> {
    let mut w = load(app, p, id, WsAction::Assist).await?;
    let from = w.state;
    let now = crate::now_ms();
    w.assist_by = p.user_name().map(str::to_string);
    w.assist_until = Some(now + ASSIST_MS);
    w.updated_at = now;
    if !app.store.set_ws_lifecycle(&w, from, None).await? {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "changed",
            "the workspace changed meanwhile; try again",
        ));
    }
    app.access.forget(id);
    tracing::warn!(workspace = id, admin = ?p.user_name(), owner = %w.owner, "admin assist granted");
    view(app, p, &w).await
}
