//! Budgets: setting and reading them, the check every submission and
//! launch passes, and the leader loop that evaluates each budget (one
//! event per threshold per period, block state, holds on queued jobs of
//! over-budget projects, warnings and stops of their running
//! workspaces). The decisions are `trestle_core::cost::budget`'s.

use crate::loops::BackgroundLoop;
use crate::principal::Principal;
use crate::state::Service;
use crate::{ServiceError, ServiceResult, metering};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use trestle_core::api::cost::BudgetView;
use trestle_core::cost::budget::{self, BudgetRequest, Enforcement, Mark, ScopeKind};
use trestle_core::cost::{self as costs, daily};
use trestle_core::identity::authz::{Decision, Denial};
use trestle_core::identity::authz_cost::{CostAction, CostResource, decide};
use trestle_core::notify::event::{EventType, NewEvent};
use trestle_core::workspace::state::{Request, StopCause, WorkspaceState};
use trestle_store::WorkspaceFilter;
use trestle_store::cost::{BudgetRecord, RunningAttempt};

/// How long the blocked-project set a submission checks is reused.
const GATE_TTL: Duration = Duration::from_secs(2);

/// The projects whose budgets stop spending, as submissions see them
/// (read from the store at most every [`GATE_TTL`]).
#[derive(Default)]
pub struct BudgetGate {
    cached: RwLock<Option<(Instant, BTreeMap<String, String>)>>,
    /// Some budget is in escrow mode (submissions then wake the budget
    /// loop, which admits their jobs).
    escrow: std::sync::atomic::AtomicBool,
    /// Wakes the budget loop early.
    pub wake: Arc<Notify>,
}

impl BudgetGate {
    /// Called after jobs are submitted: with escrow budgets, the budget
    /// loop admits them now rather than at its next tick.
    pub fn submitted(&self) {
        if self.escrow.load(std::sync::atomic::Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Forgets the cached set (a budget changed on this server).
    pub fn invalidate(&self) {
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The one decision on costs, as a service result.
pub fn allow(
    p: &Principal,
    action: CostAction,
    resource: CostResource<'_>,
    what: &str,
) -> ServiceResult<()> {
    match decide(&p.subject, action, resource) {
        Decision::Allow => Ok(()),
        Decision::Deny(Denial::NotFound) => Err(ServiceError::not_found(what)),
        Decision::Deny(Denial::Forbidden(m)) => Err(ServiceError::forbidden(m)),
    }
}

/// Every budget and which index each project belongs to, read once per
/// evaluation (or gate refresh) and asked everything the loop decides.
struct Snapshot {
    budgets: Vec<BudgetRecord>,
    index_of: BTreeMap<String, String>,
}

impl Snapshot {
    async fn read(app: &Service) -> ServiceResult<Snapshot> {
        let budgets = app.store.budgets().await?;
        let index_of = if budgets.is_empty() {
            BTreeMap::new()
        } else {
            app.store
                .list_projects()
                .await?
                .into_iter()
                .map(|p| (p.name, p.index))
                .collect()
        };
        Ok(Snapshot { budgets, index_of })
    }

    /// Whether budget `b` covers `project`.
    fn covers(&self, b: &BudgetRecord, project: &str) -> bool {
        match b.spec.scope_kind {
            ScopeKind::Project => project == b.spec.scope,
            ScopeKind::Index => self
                .index_of
                .get(project)
                .is_some_and(|i| *i == b.spec.scope),
        }
    }

    /// The projects budget `b` covers.
    fn projects_of(&self, b: &BudgetRecord) -> Vec<String> {
        match b.spec.scope_kind {
            ScopeKind::Project => vec![b.spec.scope.clone()],
            ScopeKind::Index => self
                .index_of
                .iter()
                .filter(|(_, i)| **i == b.spec.scope)
                .map(|(p, _)| p.clone())
                .collect(),
        }
    }

    /// Blocked projects and, for each, the budget that blocks it.
    fn blocked(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for b in self.budgets.iter().filter(|b| b.blocked_at.is_some()) {
            let label = format!("{} `{}`", b.spec.scope_kind.as_str(), b.spec.scope);
            for p in self.projects_of(b) {
                out.insert(p, label.clone());
            }
        }
        out
    }

    /// Each escrow budget with the projects it covers.
    fn escrow(&self) -> Vec<(&BudgetRecord, Vec<String>)> {
        self.budgets
            .iter()
            .filter(|b| b.spec.enforcement == Enforcement::Escrow)
            .map(|b| (b, self.projects_of(b)))
            .collect()
    }

    /// Tells this server's store (and gate) which projects are under escrow.
    fn apply_escrow(&self, app: &Service) {
        let all: BTreeSet<String> = self.escrow().into_iter().flat_map(|(_, p)| p).collect();
        app.costs_gate
            .escrow
            .store(!all.is_empty(), std::sync::atomic::Ordering::Relaxed);
        app.store
            .set_escrow_projects(&all.into_iter().collect::<Vec<_>>());
    }
}

/// Refuses new work charged to `project` while a budget stops its
/// spending (a 403 naming the budget; admins raise it or override jobs).
pub async fn check_open(app: &Service, project: &str) -> ServiceResult<()> {
    let fresh = {
        let c = app
            .costs_gate
            .cached
            .read()
            .unwrap_or_else(|p| p.into_inner());
        c.as_ref()
            .filter(|(at, _)| at.elapsed() < GATE_TTL)
            .map(|(_, m)| m.get(project).cloned())
    };
    let hit = match fresh {
        Some(hit) => hit,
        None => {
            let m = Snapshot::read(app).await?.blocked();
            let hit = m.get(project).cloned();
            *app.costs_gate
                .cached
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), m));
            hit
        }
    };
    match hit {
        None => Ok(()),
        Some(budget) => Err(ServiceError {
            field: Some("project".into()),
            ..ServiceError::new(
                crate::ErrorKind::Forbidden,
                "over-budget",
                format!(
                    "the budget of {budget} is spent: project `{project}` takes no new work until an admin raises the budget (`trestle budget set`)"
                ),
            )
        }),
    }
}

/// Spending so far of running attempts, per project and per index.
fn running_spend(
    app: &Service,
    running: &[RunningAttempt],
    now: i64,
) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut by_project = BTreeMap::new();
    let mut by_index = BTreeMap::new();
    for a in running {
        let c = metering::running_charge(a, &app.costs.settings, now);
        *by_project.entry(a.project.clone()).or_insert(0.0) += c;
        *by_index.entry(a.index_name.clone()).or_insert(0.0) += c;
    }
    (by_project, by_index)
}

/// A budget's state now.
async fn view(
    app: &Service,
    rec: &BudgetRecord,
    running: &(BTreeMap<String, f64>, BTreeMap<String, f64>),
    now: i64,
) -> ServiceResult<BudgetView> {
    let spec = &rec.spec;
    let window = budget::window(&spec.period, now);
    let (spend, crossed, forecast) = match window {
        Some((start, end)) => {
            let run = match spec.scope_kind {
                ScopeKind::Project => running.0.get(&spec.scope),
                ScopeKind::Index => running.1.get(&spec.scope),
            };
            let spend = app
                .store
                .spend(
                    spec.scope_kind,
                    &spec.scope,
                    daily::day_of(start),
                    daily::day_of(end),
                )
                .await?
                + run.copied().unwrap_or(0.0);
            let mut marks = app
                .store
                .budget_marks(spec.scope_kind, &spec.scope, start)
                .await?;
            // Thresholds in order, then the forecast.
            marks.sort_by_key(|m| m.parse::<u32>().unwrap_or(u32::MAX));
            (spend, marks, budget::forecast(spend, (start, end), now))
        }
        None => (0.0, Vec::new(), None),
    };
    Ok(BudgetView {
        scope_kind: spec.scope_kind.as_str().into(),
        scope: spec.scope.clone(),
        spec: spec.clone(),
        unit: app.costs.settings.unit.clone(),
        period: window.map(|(s, e)| {
            (
                daily::date(daily::day_of(s)),
                daily::date(daily::day_of(e) - 1),
            )
        }),
        spend,
        percent: if spec.amount > 0.0 {
            spend / spec.amount * 100.0
        } else {
            0.0
        },
        forecast,
        crossed,
        blocked: rec.blocked_at.is_some(),
        updated_by: rec.updated_by.clone(),
    })
}

fn scope_resource<'a>(kind: ScopeKind, scope: &'a str, org: Option<&'a str>) -> CostResource<'a> {
    match kind {
        ScopeKind::Project => CostResource::Project { name: scope, org },
        ScopeKind::Index => CostResource::Index,
    }
}

/// Parses `project`/`index` from a path.
pub fn parse_kind(kind: &str) -> ServiceResult<ScopeKind> {
    ScopeKind::parse(kind).ok_or_else(|| {
        ServiceError::bad(
            "invalid-scope",
            "scope",
            format!("`{kind}` is not a budget scope: project or index"),
        )
    })
}

async fn check_scope_exists(
    app: &Service,
    kind: ScopeKind,
    scope: &str,
) -> ServiceResult<Option<String>> {
    match kind {
        ScopeKind::Project => match app.store.project(scope).await? {
            Some(p) => Ok(p.org),
            None => Err(ServiceError::not_found(format!("project `{scope}`"))),
        },
        ScopeKind::Index => {
            if app
                .store
                .list_indexes()
                .await?
                .iter()
                .any(|i| i.name == scope)
            {
                Ok(None)
            } else {
                Err(ServiceError::not_found(format!("index `{scope}`")))
            }
        }
    }
}

/// Creates or changes the budget of a project or an index (admins).
pub async fn put(
    app: &Service,
    p: &Principal,
    kind: ScopeKind,
    scope: &str,
    req: crate::Parsed<BudgetRequest>,
) -> ServiceResult<BudgetView> {
    allow(p, CostAction::BudgetManage, CostResource::All, "budget")?;
    let req = req?;
    check_scope_exists(app, kind, scope).await?;
    let spec = budget::validate(kind, scope, &req)?;
    let by = p.user_name().unwrap_or("admin");
    app.store.put_budget(&spec, by, crate::now_ms()).await?;
    // Re-evaluated at once: raising a budget opens it without waiting.
    evaluate(app).await?;
    show(app, p, kind, scope).await
}

/// One budget with its state.
pub async fn show(
    app: &Service,
    p: &Principal,
    kind: ScopeKind,
    scope: &str,
) -> ServiceResult<BudgetView> {
    let what = format!("budget of {} `{scope}`", kind.as_str());
    let org = match kind {
        ScopeKind::Project => app.store.project(scope).await?.and_then(|p| p.org),
        ScopeKind::Index => None,
    };
    allow(
        p,
        CostAction::BudgetRead,
        scope_resource(kind, scope, org.as_deref()),
        &what,
    )?;
    let rec = app
        .store
        .budget(kind, scope)
        .await?
        .ok_or_else(|| ServiceError::not_found(what))?;
    let now = crate::now_ms();
    let running = running_spend(app, &app.store.running_attempts().await?, now);
    view(app, &rec, &running, now).await
}

/// Every budget the caller may see.
pub async fn list(app: &Service, p: &Principal) -> ServiceResult<Vec<BudgetView>> {
    let now = crate::now_ms();
    let running = running_spend(app, &app.store.running_attempts().await?, now);
    let projects = app.store.list_projects().await?;
    let mut out = Vec::new();
    for rec in app.store.budgets().await? {
        let org = projects
            .iter()
            .find(|x| rec.spec.scope_kind == ScopeKind::Project && x.name == rec.spec.scope)
            .and_then(|x| x.org.as_deref());
        let r = scope_resource(rec.spec.scope_kind, &rec.spec.scope, org);
        if decide(&p.subject, CostAction::BudgetRead, r) != Decision::Allow {
            continue;
        }
        out.push(view(app, &rec, &running, now).await?);
    }
    Ok(out)
}

/// Deletes a budget (admins).
pub async fn delete(
    app: &Service,
    p: &Principal,
    kind: ScopeKind,
    scope: &str,
) -> ServiceResult<()> {
    allow(p, CostAction::BudgetManage, CostResource::All, "budget")?;
    if !app.store.delete_budget(kind, scope).await? {
        return Err(ServiceError::not_found(format!(
            "budget of {} `{scope}`",
            kind.as_str()
        )));
    }
    evaluate(app).await?;
    Ok(())
}

/// Lets one job past its project's budget (admins).
pub async fn override_job(app: &Service, p: &Principal, job_id: i64) -> ServiceResult<bool> {
    allow(p, CostAction::BudgetOverride, CostResource::All, "job")?;
    if app.store.job(job_id).await?.is_none() {
        return Err(ServiceError::not_found(format!("job {job_id}")));
    }
    let new = app
        .store
        .override_budget(job_id, p.user_name().unwrap_or("admin"), crate::now_ms())
        .await?;
    evaluate(app).await?;
    Ok(new)
}

fn budget_event(
    rec: &BudgetRecord,
    unit: &str,
    mark: Mark,
    spend: f64,
    forecast: Option<f64>,
    now: i64,
) -> NewEvent {
    let s = &rec.spec;
    let detail = match mark {
        Mark::Percent(p) => format!(
            "{p}% reached: {} of {} spent",
            costs::format(spend, unit),
            costs::format(s.amount, unit)
        ),
        Mark::Forecast => format!(
            "forecast {} passes the budget of {} ({} spent so far)",
            costs::format(forecast.unwrap_or(spend), unit),
            costs::format(s.amount, unit),
            costs::format(spend, unit)
        ),
    };
    NewEvent {
        kind: EventType::BudgetThreshold,
        subject: format!("budget:{}:{}", s.scope_kind.as_str(), s.scope),
        title: format!("budget of {} {}", s.scope_kind.as_str(), s.scope),
        owner: None,
        project: (s.scope_kind == ScopeKind::Project).then(|| s.scope.clone()),
        link: Some("/ui/costs".into()),
        detail: Some(detail),
        time: now,
    }
}

/// Evaluates every budget once: records threshold crossings (each once
/// per period, with its event), sets or clears the block, holds or
/// releases queued jobs, warns and then stops running workspaces.
pub async fn evaluate(app: &Service) -> ServiceResult<()> {
    let now = crate::now_ms();
    let mut snap = Snapshot::read(app).await?;
    let running = running_spend(app, &app.store.running_attempts().await?, now);
    let unit = app.costs.settings.unit.clone();
    let mut notified = false;
    let mut newly_blocked = Vec::new();
    for rec in &mut snap.budgets {
        let v = view(app, rec, &running, now).await?;
        let s = &rec.spec;
        if let Some((start, _)) = budget::window(&s.period, now) {
            for mark in budget::crossings(s, v.spend, v.forecast, &v.crossed) {
                let ev = budget_event(rec, &unit, mark, v.spend, v.forecast, now);
                notified |= app
                    .store
                    .record_budget_mark(s.scope_kind, &s.scope, start, &mark.key(), v.spend, &ev)
                    .await?;
            }
        }
        let blocks = budget::blocks(s, v.spend);
        if blocks != rec.blocked_at.is_some() {
            app.store
                .set_budget_blocked(s.scope_kind, &s.scope, blocks.then_some(now))
                .await?;
            rec.blocked_at = blocks.then_some(now);
            if blocks {
                newly_blocked.push(rec.clone());
            }
        }
    }
    app.costs_gate.invalidate();
    admit_escrow(app, &snap, &running, now).await?;
    let blocked = snap.blocked();
    let names: Vec<String> = blocked.keys().cloned().collect();
    let (held, released) = app.store.hold_over_budget(&names, now).await?;
    if held > 0 || released > 0 {
        tracing::info!(held, released, "budget holds changed");
        if released > 0 {
            app.wake();
        }
    }
    if !blocked.is_empty() {
        let live = live_workspaces(app).await?;
        for rec in &newly_blocked {
            notified |= warn_workspaces(app, &snap, rec, &live, now).await?;
        }
        stop_workspaces(app, &snap, live, now).await;
    }
    if notified {
        crate::workspace_sessions::wake_notify(app);
    }
    Ok(())
}

/// Tells this server's store which projects are under escrow (their
/// jobs are leased only with a reservation).
pub async fn refresh_escrow(app: &Service) -> ServiceResult<()> {
    Snapshot::read(app).await?.apply_escrow(app);
    Ok(())
}

/// Grants reservations to the runnable jobs of escrow budgets, in lease
/// order, while each fits in what the budget has left (spent, running
/// and reserved counted); the others wait with the reason.
async fn admit_escrow(
    app: &Service,
    snap: &Snapshot,
    running: &(BTreeMap<String, f64>, BTreeMap<String, f64>),
    now: i64,
) -> ServiceResult<()> {
    snap.apply_escrow(app);
    let mut admitted = false;
    for (rec, projects) in snap.escrow() {
        let s = &rec.spec;
        let v = view(app, rec, running, now).await?;
        let mut committed = v.spend + app.store.reserved(s.scope_kind, &s.scope).await?;
        let mut waiting = Vec::new();
        for c in app.store.escrow_candidates(&projects, 500).await? {
            let limit = if c.timeout_secs > 0 {
                c.timeout_secs
            } else {
                app.flow
                    .max_run_secs(&c.queue)
                    .unwrap_or_else(|| app.costs.default_max_run.as_secs())
            };
            let amount = budget::reservation(
                metering::highest_rate(app, c.resources),
                limit,
                c.max_attempts,
            );
            if budget::window(&s.period, now).is_some() && budget::fits(s, committed, amount) {
                if app
                    .store
                    .reserve(c.job_id, s.scope_kind, &s.scope, amount, now)
                    .await?
                {
                    committed += amount;
                    admitted = true;
                }
            } else if c.reason.as_deref() != Some(AWAITING) {
                waiting.push(c.job_id);
            }
        }
        app.store
            .set_waiting_reason(&waiting, Some(AWAITING))
            .await?;
    }
    if admitted {
        app.wake();
    }
    Ok(())
}

/// The stored reason of a job whose escrow reservation does not fit.
pub const AWAITING: &str = "awaiting-budget";

const LIVE: [WorkspaceState; 3] = [
    WorkspaceState::Pending,
    WorkspaceState::Starting,
    WorkspaceState::Running,
];

async fn live_workspaces(app: &Service) -> ServiceResult<Vec<trestle_store::WorkspaceRecord>> {
    Ok(app
        .store
        .workspaces(&WorkspaceFilter {
            states: LIVE.to_vec(),
            limit: 10_000,
            ..WorkspaceFilter::default()
        })
        .await?)
}

/// Tells the owner of every live workspace a budget now blocks when it
/// will be stopped.
async fn warn_workspaces(
    app: &Service,
    snap: &Snapshot,
    rec: &BudgetRecord,
    live: &[trestle_store::WorkspaceRecord],
    now: i64,
) -> ServiceResult<bool> {
    let mut any = false;
    for w in live {
        if !w.project.as_deref().is_some_and(|p| snap.covers(rec, p)) {
            continue;
        }
        let mins = rec.spec.grace_secs.div_ceil(60);
        let mut ev = crate::workspace_sessions::event(
            w,
            EventType::BudgetThreshold,
            Some(format!(
                "the budget of {} `{}` is spent: this workspace will be stopped in {mins} min (its home is kept)",
                rec.spec.scope_kind.as_str(),
                rec.spec.scope
            )),
        );
        ev.time = now;
        app.store.record_event(&ev).await?;
        any = true;
    }
    Ok(any)
}

/// Stops live workspaces covered by a blocking budget whose grace period
/// is over (each failure is logged; the next tick tries again).
async fn stop_workspaces(
    app: &Service,
    snap: &Snapshot,
    live: Vec<trestle_store::WorkspaceRecord>,
    now: i64,
) {
    let due = |project: &str| {
        snap.budgets.iter().any(|b| {
            b.blocked_at
                .is_some_and(|at| now >= at + (b.spec.grace_secs as i64) * 1000)
                && snap.covers(b, project)
        })
    };
    for w in live {
        if !w.project.as_deref().is_some_and(due) {
            continue;
        }
        let id = w.id;
        if let Err(e) = crate::workspaces::change(app, w, Request::Stop, StopCause::Budget).await {
            tracing::warn!(workspace = id, error = %e, "cannot stop a workspace over budget");
        }
    }
}

/// Keeps this server's list of escrow projects current (every server:
/// the budget loop runs on one).
pub struct EscrowRefresh {
    /// Shared state.
    pub app: Service,
}

#[async_trait]
impl BackgroundLoop for EscrowRefresh {
    fn name(&self) -> &'static str {
        "escrow-refresh"
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(2)
    }
    async fn tick(&self) -> ServiceResult<()> {
        refresh_escrow(&self.app).await
    }
}

/// The budget loop (leader).
pub struct BudgetWatch {
    /// Shared state.
    pub app: Service,
}

#[async_trait]
impl BackgroundLoop for BudgetWatch {
    fn name(&self) -> &'static str {
        "budgets"
    }
    fn interval(&self) -> Duration {
        self.app.costs.budget_every
    }
    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.app.costs_gate.wake.clone())
    }
    fn min_gap(&self) -> Duration {
        Duration::from_millis(200)
    }
    async fn tick(&self) -> ServiceResult<()> {
        evaluate(&self.app).await
    }
}
