//! Admin pages: queues, compute environments and workers; the audit trail
//! as named queries and filters. Both go through the API's handlers and
//! their authorization checks (non-admins get the same answer as the API).

use super::login::or_error;
use super::{Nav, Viewer, error_page, html_response, page, state_badge, when};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use std::collections::BTreeMap;
use trestle_core::JobState;
use trestle_core::identity::authz::{Action, Resource};
use trestle_service::Service;
use trestle_service::ServiceError;
use trestle_service::access;
use trestle_service::{ErrorKind, audit_queries, jobs as svc_jobs};

/// `GET /ui/workers` (admins).
pub async fn workers(State(app): State<Service>, v: Viewer) -> Response {
    if !v.p.is_admin() {
        let e = ServiceError::new(
            ErrorKind::Forbidden,
            "forbidden",
            "only admins see the queues, compute environments and workers page",
        );
        return error_page(Some(&v), &e);
    }
    if let Err(r) = or_error(
        &v,
        access::check(&v.p, Action::ComputeRead, Resource::None, ""),
    ) {
        return *r;
    }
    let r = svc_jobs::workers(&app, &v.p).await;
    let list = match or_error(&v, r) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let users = app
        .store
        .list_users()
        .await
        .map(|u| u.iter().filter(|u| u.disabled_at.is_none()).count())
        .unwrap_or(0);
    let modes: Vec<Option<&str>> = list
        .iter()
        .map(|w| w.isolation.as_ref().map(|i| i.mode.as_str()))
        .collect();
    let unisolated = trestle_core::identity::unix::isolation_warning(users, &modes);
    let envs = app.store.compute_envs().await.unwrap_or_default();
    let queues = app.store.queue_records().await.unwrap_or_default();
    let mut events = BTreeMap::new();
    for e in &envs {
        let ev = app
            .store
            .compute_env_events(&e.spec.name, 5)
            .await
            .unwrap_or_default();
        events.insert(e.spec.name.clone(), ev);
    }
    let cap = trestle_service::workflows::capacity(&app).await.ok();
    let mut per_queue: BTreeMap<String, BTreeMap<JobState, u64>> = BTreeMap::new();
    per_queue.entry("default".into()).or_default();
    for q in &app.flow.queues {
        per_queue.entry(q.name.clone()).or_default();
    }
    for q in &queues {
        per_queue.entry(q.spec.name.clone()).or_default();
    }
    // The store's counts, not a listing (which stops at its limit).
    for (queue, state, n) in app.store.counts().await.unwrap_or_default() {
        if !state.is_terminal() {
            *per_queue
                .entry(queue)
                .or_default()
                .entry(state)
                .or_default() += n;
        }
    }
    let in_use = |env: &str| -> u64 {
        list.iter()
            .filter(|w| w.compute_env.as_deref() == Some(env))
            .map(|w| u64::from(w.capacity.cpus))
            .sum()
    };
    let total: u64 = list.iter().map(|w| u64::from(w.capacity.cpus)).sum();
    let damaged = app.store.damaged().rows();
    let body = html! {
        @if !damaged.is_empty() {
            section aria-labelledby="damaged-h" id="damaged" {
                h2 id="damaged-h" { "Damaged jobs (" (damaged.len()) ")" }
                p class="error" { "These stored jobs cannot be decoded. Listings, the scheduler and the dashboard skip them; "
                    "the rows are kept as they are, for repair (" code { "GET /api/v1/admin/damaged-jobs" } ")." }
                div class="scroll" { table {
                    thead { tr { th scope="col" { "Job" } th scope="col" { "Problem" } th scope="col" { "First seen" } } }
                    tbody { @for d in &damaged { tr {
                        td { (d.job_id) } td { code { (d.problem) } } td { (when(d.first_seen)) }
                    } } }
                } }
            }
        }
        section aria-labelledby="q-h" {
            h2 id="q-h" { "Queues" }
            div class="scroll" { table {
                thead { tr { th scope="col" { "Queue" } th scope="col" { "State" } th scope="col" { "Priority" }
                    th scope="col" { "Compute environments" } th scope="col" { "Jobs waiting or running" } } }
                tbody { @for (name, counts) in &per_queue {
                    @let rec = queues.iter().find(|q| &q.spec.name == name);
                    tr {
                        td { a href={ "/ui/jobs?queue=" (name) } { (name) } }
                        td { @if app.flow.is_disabled(name) { "disabled" } @else { "enabled" } }
                        td { (rec.map(|q| q.spec.priority.to_string()).unwrap_or_else(|| "-".into())) }
                        td { (rec.map(|q| q.spec.compute_environments.join(", ")).unwrap_or_else(|| "any".into())) }
                        td { @if counts.is_empty() { "none" }
                            @for (s, n) in counts { (state_badge(*s)) " " (n) " " } }
                    }
                } }
            } }
        }
        section aria-labelledby="ce-h" {
            h2 id="ce-h" { "Compute environments" }
            @if let Some(c) = &cap {
                p { "In all: " (total) " CPUs on " (list.len()) " workers: " (total.saturating_sub(c.free_cpus)) " running jobs, " (c.free_cpus) " free." }
            }
            @if let Some((shape, max)) = app.flow.local {
                p { "local (built in): workers of " (shape.cpus) " CPU; " (in_use("local")) " of at most " (max) " CPUs started as workers (busy or free: see above)." }
            }
            @if !envs.is_empty() {
                div class="scroll" { table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Provider" } th scope="col" { "Status" }
                        th scope="col" { "CPUs started" } th scope="col" { "Limits" } th scope="col" { "Recent decisions" } } }
                    tbody { @for e in &envs { tr {
                        td { (e.spec.name) }
                        td { (format!("{:?}", e.spec.provider).to_lowercase()) }
                        td { (e.status) @if let Some(r) = &e.status_reason { br; span class="hint" { (r) } }
                            @if !e.spec.enabled { " (disabled)" } }
                        td { (in_use(&e.spec.name)) }
                        td { (e.spec.min_vcpus) " to " (e.spec.max_vcpus) " CPUs" }
                        td { ul class="plain" { @for ev in events.get(&e.spec.name).into_iter().flatten() {
                            li { span class="hint" { (when(ev.at)) } " " (ev.kind) ": " (ev.message) }
                        } } }
                    } } }
                } }
            }
        }
        section aria-labelledby="w-h" {
            h2 id="w-h" { "Workers" }
            @if let Some(w) = &unisolated { div class="error" role="alert" { (w) } }
            @if list.is_empty() { p class="empty" { "No workers are registered." } } @else {
                div class="scroll" { table {
                    thead { tr { th scope="col" { "Worker" } th scope="col" { "Host" } th scope="col" { "Environment" }
                        th scope="col" { "Capacity" } th scope="col" { "Isolation" } th scope="col" { "Running" } th scope="col" { "Since" } } }
                    tbody { @for w in &list { tr {
                        td { (w.id) } td { (w.host) } td { (w.compute_env.as_deref().unwrap_or("-")) }
                        td { (w.capacity.cpus) " CPU, " (w.capacity.mem_mib) " MiB" }
                        td { @match &w.isolation {
                            Some(i) => { (i.mode) br; span class="hint" { (i.limits) } },
                            None => "unknown",
                        } }
                        td { @for j in &w.running_jobs { a href={ "/ui/jobs/" (j) } { (j) } " " } }
                        td { (when(w.started_at)) }
                    } } }
                } }
            }
        }
    };
    html_response(
        StatusCode::OK,
        page(Some(&v), Nav::Workers, "Queues & workers", body),
    )
}

/// `GET /ui/audit?query=NAME&param=value...`.
pub async fn audit(
    State(app): State<Service>,
    v: Viewer,
    Query(mut q): Query<BTreeMap<String, String>>,
) -> Response {
    let r = audit_queries::list_queries(&app, &v.p);
    let queries = match or_error(&v, r) {
        Ok(qs) => qs,
        Err(r) => return *r,
    };
    let name = q.remove("query").unwrap_or_else(|| "recent".to_string());
    q.retain(|_, v| !v.trim().is_empty());
    let chosen = queries.iter().find(|x| x.name == name);
    let answer = match chosen {
        Some(_) => Some(audit_queries::run_query(&app, &v.p, &name, &q).await),
        None if q.is_empty() => None,
        None => Some(audit_queries::query(&app, &v.p, &q).await),
    };
    let body = html! {
        form method="get" action="/ui/audit" class="filters" role="search" aria-label="Audit query" {
            div class="field" {
                label for="query" { "Named query" }
                select id="query" name="query" {
                    option value="" { "(ad-hoc filter)" }
                    @for x in &queries { option value=(x.name) selected[x.name == name] { (x.name) } }
                }
            }
            @for k in ["principal", "action", "since", "status"] {
                div class="field" {
                    label for=(k) { (k) }
                    input id=(k) name=(k) type="text" value=(q.get(k).map_or("", String::as_str));
                }
            }
            button type="submit" { "Run" }
        }
        @if let Some(x) = chosen { p class="hint" { (x.description) } }
        @match answer {
            None => p class="empty" { "Choose a query or a filter." },
            Some(Err(e)) => div class="error" role="alert" { (e.message) },
            Some(Ok(a)) => {
                @if !a.groups.is_empty() {
                    table { thead { tr { th scope="col" { "Key" } th scope="col" { "Count" } th scope="col" { "First" } th scope="col" { "Last" } } }
                        tbody { @for g in &a.groups { tr { td { (g.key) } td { (g.count) } td { (when(g.first)) } td { (when(g.last)) } } } } }
                } @else if !a.tokens.is_empty() {
                    table { thead { tr { th scope="col" { "Token" } th scope="col" { "Name" } } }
                        tbody { @for t in &a.tokens { tr { td { (t.id) } td { (t.name) } } } } }
                } @else if a.records.is_empty() { p class="empty" { "No records." } } @else {
                    div class="scroll" { table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "User" } th scope="col" { "Action" } th scope="col" { "Resource" } th scope="col" { "Request" } th scope="col" { "Status" } th scope="col" { "IP" } } }
                        tbody { @for r in a.records.iter().take(200) { tr {
                            td { (when(r.at)) } td { (r.user.as_deref().unwrap_or("-")) } td { (r.action) }
                            td { (r.resource.as_deref().unwrap_or("")) } td { code { (r.method) " " (r.path) } } td { (r.status) } td { (r.source_ip) }
                        } } }
                    } }
                }
            }
        }
    };
    html_response(StatusCode::OK, page(Some(&v), Nav::Audit, "Audit", body))
}
