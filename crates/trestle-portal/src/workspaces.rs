//! Workspaces: the catalogue of configurations the user may launch (with
//! their estimated cost), the launch form, "my workspaces" with state,
//! time left and Open / Stop / Start / Terminate, and the admins' page
//! for approving and revoking type versions and seeing every workspace.

use super::{Form, Nav, Viewer, csrf_field, duration, html_response, page, when};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::{BTreeMap, HashMap};
use trestle_core::api::workspace::{ConfigView, LaunchRequest, WorkspaceView};
use trestle_core::workspace::WorkspaceState;
use trestle_core::workspace::kind::Approval;
use trestle_core::workspace::state::Request;
use trestle_service::Service;
use trestle_service::workspaces as svc;

fn badge(s: WorkspaceState) -> Markup {
    let class = match s {
        WorkspaceState::Running => "s-running",
        WorkspaceState::Pending
        | WorkspaceState::Starting
        | WorkspaceState::Stopping
        | WorkspaceState::Terminating => "s-starting",
        WorkspaceState::Failed => "s-failed",
        WorkspaceState::Stopped => "s-succeeded",
        WorkspaceState::Terminated => "s-cancelled",
    };
    html! { span class={ "badge " (class) } { (s.as_str()) } }
}

fn time_left(w: &WorkspaceView) -> String {
    w.deadline
        .map(|d| duration(d - trestle_service::now_ms()))
        .unwrap_or_else(|| "-".into())
}

fn action(v: &Viewer, id: i64, verb: &str, label: &str, danger: bool, admin: bool) -> Markup {
    html! {
        form method="post" action={ "/ui/workspaces/" (id) "/" (verb) } class="inline" {
            (csrf_field(v))
            @if admin { input type="hidden" name="from" value="admin"; }
            button type="submit" class=[danger.then_some("danger")] { (label) }
        }
    }
}

/// What each workspace's ended running intervals were charged.
async fn metered(app: &Service, v: &Viewer, rows: &[WorkspaceView]) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for w in rows.iter().take(200) {
        if let Ok(c) = trestle_service::costs::of_workspace(app, &v.p, w.id).await {
            out.insert(w.id, trestle_core::cost::format(c.charge, &c.unit));
        }
    }
    out
}

fn workspace_table(
    v: &Viewer,
    rows: &[WorkspaceView],
    owner: bool,
    costs: &BTreeMap<i64, String>,
) -> Markup {
    html! {
        @if rows.is_empty() {
            p class="empty" { "No workspaces." }
        } @else {
            div class="scroll" {
                table {
                    thead { tr {
                        th scope="col" { "Id" } th scope="col" { "Name" }
                        @if owner { th scope="col" { "Owner" } }
                        th scope="col" { "Configuration" } th scope="col" { "State" } th scope="col" { "Worker" }
                        th scope="col" { "Time left" } th scope="col" { "Cost/h" } th scope="col" { "Cost so far" } th scope="col" { "Launched" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for w in rows {
                            tr {
                                td { (w.id) }
                                td { (w.name) }
                                @if owner { td { (w.owner) } }
                                td { (w.config) " (" (w.type_id) ")" @if w.type_revoked { " " span class="badge s-failed" { "type revoked" } } }
                                td { (badge(w.state)) @if let Some(r) = &w.reason { div class="reason" { (r) } } }
                                td { (w.worker.as_deref().unwrap_or("-")) }
                                td { (time_left(w)) }
                                td { (format!("{:.2}", w.cost_per_hour)) }
                                td { (costs.get(&w.id).map_or("-", String::as_str)) }
                                td { (when(w.created_at)) }
                                td class="actions" {
                                    @if let Some(u) = &w.url { a class="button" href=(u) target="_blank" rel="noopener" { "Open" } " " }
                                    @match w.state {
                                        WorkspaceState::Pending | WorkspaceState::Starting | WorkspaceState::Running => {
                                            (action(v, w.id, "stop", "Stop", false, owner)) " "
                                            (action(v, w.id, "terminate", "Terminate", true, owner))
                                        }
                                        WorkspaceState::Stopped | WorkspaceState::Failed => {
                                            (action(v, w.id, "start", "Start", false, owner)) " "
                                            (action(v, w.id, "terminate", "Terminate", true, owner))
                                        }
                                        _ => {}
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn catalogue(v: &Viewer, configs: &[ConfigView]) -> Markup {
    html! {
        @if configs.iter().all(|c| !c.launchable) {
            p class="empty" { "No configuration is open to your role yet; an admin approves workspace types and sets configurations." }
        }
        div class="cards" {
            @for c in configs.iter().filter(|c| c.launchable) {
                @let k = &c.config;
                section class="card" aria-labelledby={ "cfg-" (k.name) } {
                    h3 id={ "cfg-" (k.name) } { (k.name) }
                    @if !k.description.is_empty() { p { (k.description) } }
                    dl {
                        dt { "Type" } dd { (k.type_id()) }
                        dt { "Shape" } dd { (k.cpus) " CPU, " (k.mem_mib) " MiB" @if k.gpus > 0 { ", " (k.gpus) " GPU" } }
                        dt { "Estimated cost" } dd { (format!("{:.2}", k.cost_per_hour)) " per hour" }
                        dt { "Idle stop" } dd { @if k.idle_timeout_secs == 0 { "never" } @else { "after " (duration(k.idle_timeout_secs as i64 * 1000)) } }
                        dt { "Lifetime" } dd { (duration(k.max_lifetime_secs as i64 * 1000)) }
                    }
                    form method="post" action="/ui/workspaces/launch" {
                        (csrf_field(v))
                        input type="hidden" name="config" value=(k.name);
                        div class="field" {
                            label for={ "name-" (k.name) } { "Name" }
                            input id={ "name-" (k.name) } name="name" type="text" maxlength="64" placeholder=(k.name);
                        }
                        @for p in k.params.keys() {
                            div class="field" {
                                label for={ "p-" (k.name) "-" (p) } { (p) }
                                input id={ "p-" (k.name) "-" (p) } name={ "param." (p) } type="text" value=(k.params[p]);
                            }
                        }
                        button type="submit" { "Launch" }
                    }
                }
            }
        }
    }
}

/// `GET /ui/workspaces`: the catalogue and my workspaces.
pub async fn list(
    State(app): State<Service>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let configs = svc::configs(&app, &v.p).await.unwrap_or_default();
    let mine = match svc::list(&app, &v.p, false, false).await {
        Ok(w) => w,
        Err(e) => return super::error_page(Some(&v), &e),
    };
    let mine_costs = metered(&app, &v, &mine).await;
    let launched = q.get("launched").cloned();
    // Resource use of the running ones: their session task's samples.
    let mut usage = Vec::new();
    for w in mine.iter().filter(|w| w.state == WorkspaceState::Running) {
        if let Some(job) = w.job_id
            && let Ok(s) = trestle_service::jobs::samples(&app, &v.p, job, 0, 120).await
        {
            usage.push((w, s));
        }
    }
    let body = html! {
        @if let Some(id) = launched { p class="notice" role="status" { "Workspace " (id) " launched; it shows RUNNING once the app answers." } }
        h2 { "My workspaces" }
        (workspace_table(&v, &mine, false, &mine_costs))
        @if !usage.is_empty() {
            section aria-labelledby="ws-usage-h" id="ws-usage" {
                h2 id="ws-usage-h" { "Resource use" }
                @for (w, s) in &usage {
                    h3 { "Workspace " (w.id) " · " (w.name) }
                    @if !s.alarms.is_empty() { (super::usage::alarm_table(&s.alarms)) }
                    @if s.samples.is_empty() { p class="empty" { "No samples yet." } }
                    @else { (super::usage::sparklines(&s.samples)) }
                }
            }
        }
        h2 { "Launch a workspace" }
        (catalogue(&v, &configs))
    };
    html_response(
        StatusCode::OK,
        page(Some(&v), Nav::Workspaces, "Workspaces", body),
    )
}

/// `POST /ui/workspaces/launch`.
pub async fn launch(State(app): State<Service>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if let Err(r) = f.check_csrf(&v) {
        return *r;
    }
    let params: BTreeMap<String, String> =
        f.0.iter()
            .filter_map(|(k, val)| {
                k.strip_prefix("param.")
                    .map(|p| (p.to_string(), val.clone()))
            })
            .collect();
    let name = f.get("name");
    let req = LaunchRequest {
        config: f.get("config").to_string(),
        name: (!name.is_empty()).then(|| name.to_string()),
        project: None,
        params,
    };
    match svc::launch(&app, &v.p, req).await {
        Ok(w) => Redirect::to(&format!("/ui/workspaces?launched={}", w.id)).into_response(),
        Err(e) => super::error_page(Some(&v), &e),
    }
}

/// `POST /ui/workspaces/{id}/{stop|start|terminate}`.
pub async fn act(
    State(app): State<Service>,
    v: Viewer,
    Path((id, verb)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = Form::parse(&body).check_csrf(&v) {
        return *r;
    }
    let req = match verb.as_str() {
        "stop" => Request::Stop,
        "start" => Request::Start,
        "terminate" => Request::Terminate,
        _ => {
            return super::error_page(
                Some(&v),
                &trestle_service::ServiceError::not_found("that action"),
            );
        }
    };
    let id = match trestle_service::jobs::parse_id("id", &id) {
        Ok(id) => id,
        Err(e) => return super::error_page(Some(&v), &e),
    };
    let back = if v.p.is_admin() && q_admin(&body) {
        "/ui/admin/workspaces"
    } else {
        "/ui/workspaces"
    };
    match svc::request(&app, &v.p, id, req).await {
        Ok(_) => Redirect::to(back).into_response(),
        Err(e) => super::error_page(Some(&v), &e),
    }
}

fn q_admin(body: &[u8]) -> bool {
    Form::parse(body).get("from") == "admin"
}

/// `GET /ui/admin/workspaces`: type versions with approve/revoke,
/// configurations, and every workspace (admins).
pub async fn admin(State(app): State<Service>, v: Viewer) -> Response {
    if !v.p.is_admin() {
        return super::error_page(
            Some(&v),
            &trestle_service::ServiceError::not_found("the page `/ui/admin/workspaces`"),
        );
    }
    let types = match svc::types(&app, &v.p, true).await {
        Ok(t) => t,
        Err(e) => return super::error_page(Some(&v), &e),
    };
    let configs = svc::configs(&app, &v.p).await.unwrap_or_default();
    let all = svc::list(&app, &v.p, true, false).await.unwrap_or_default();
    let all_costs = metered(&app, &v, &all).await;
    let decide = |name: &str, version: &str, verb: &str, label: &str| {
        html! {
            form method="post" action={ "/ui/admin/workspace-types/" (name) "/" (version) "/" (verb) } class="inline" {
                (csrf_field(&v))
                button type="submit" class=[(verb == "revoke").then_some("danger")] { (label) }
            }
        }
    };
    let body = html! {
        h2 { "Type versions" }
        div class="scroll" { table {
            thead { tr { th scope="col" { "Type" } th scope="col" { "App" } th scope="col" { "Approval" } th scope="col" { "Decided" } th scope="col" { "Description" } th scope="col" { "Actions" } } }
            tbody { @for t in &types { tr {
                td { (t.spec.name) "@" (t.spec.version) }
                td { (format!("{:?}", t.spec.app).to_lowercase()) }
                td { span class={ "badge " (match t.approval { Approval::Approved => "s-succeeded", Approval::Revoked => "s-failed", Approval::Pending => "s-starting" }) } { (t.approval.as_str()) } }
                td { @if let (Some(by), Some(at)) = (&t.decided_by, t.decided_at) { (by) ", " (when(at)) } }
                td { (t.spec.description) }
                td class="actions" {
                    @if t.approval != Approval::Approved { (decide(&t.spec.name, &t.spec.version, "approve", "Approve")) " " }
                    @if t.approval != Approval::Revoked { (decide(&t.spec.name, &t.spec.version, "revoke", "Revoke")) }
                }
            } } }
        } }
        h2 { "Configurations" }
        @if configs.is_empty() { p class="empty" { "No configurations: `trestle ws config set FILE` creates one." } }
        @else { div class="scroll" { table {
            thead { tr { th scope="col" { "Configuration" } th scope="col" { "Type" } th scope="col" { "Shape" } th scope="col" { "Queue" } th scope="col" { "Roles" } th scope="col" { "Cost/h" } th scope="col" { "Idle / lifetime" } } }
            tbody { @for c in &configs { @let k = &c.config; tr {
                td { (k.name) } td { (k.type_id()) " (" (c.type_approval.as_str()) ")" }
                td { (k.cpus) " CPU, " (k.mem_mib) " MiB" } td { (k.queue) }
                td { (k.allow_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))
                     @if !k.deny_roles.is_empty() { " (not " (k.deny_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) ")" } }
                td { (format!("{:.2}", k.cost_per_hour)) }
                td { (duration(k.idle_timeout_secs as i64 * 1000)) " / " (duration(k.max_lifetime_secs as i64 * 1000)) }
            } } }
        } } }
        h2 { "Every workspace" }
        (workspace_table(&v, &all, true, &all_costs))
    };
    html_response(
        StatusCode::OK,
        page(
            Some(&v),
            Nav::WorkspaceAdmin,
            "Workspace administration",
            body,
        ),
    )
}

/// `POST /ui/admin/workspace-types/{name}/{version}/{approve|revoke}`.
pub async fn decide(
    State(app): State<Service>,
    v: Viewer,
    Path((name, version, verb)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = Form::parse(&body).check_csrf(&v) {
        return *r;
    }
    let approval = match verb.as_str() {
        "approve" => Approval::Approved,
        "revoke" => Approval::Revoked,
        _ => {
            return super::error_page(
                Some(&v),
                &trestle_service::ServiceError::not_found("that action"),
            );
        }
    };
    match svc::decide_type(&app, &v.p, &name, &version, approval).await {
        Ok(_) => Redirect::to("/ui/admin/workspaces").into_response(),
        Err(e) => super::error_page(Some(&v), &e),
    }
}
