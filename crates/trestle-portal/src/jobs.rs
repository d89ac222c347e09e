//! Jobs: the filterable, paginated list and the job page (spec, attempts,
//! live log, why not running, outputs, cancel and resubmit, array
//! children, pipeline graph).

use super::login::or_error;
use super::{Form, Nav, Viewer, csrf_field, duration, html_response, page, state_badge, when};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::api::workflow::StepView;
use trestle_core::batch::workflow::JobKind;
use trestle_service::Service;
use trestle_service::jobs as svc;

/// Jobs per page.
const PAGE: u32 = 25;

/// The time filter's choices: (value, label, milliseconds back; 0: any).
const SINCE: &[(&str, &str, i64)] = &[
    ("", "Any time", 0),
    ("1h", "In the last hour", 3_600_000),
    ("24h", "In the last day", 86_400_000),
    ("7d", "In the last week", 604_800_000),
    ("30d", "In the last 30 days", 2_592_000_000),
];

/// `GET /ui/jobs?state=&queue=&project=&name=&before=`.
pub async fn list(
    State(app): State<Service>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map_or("", |s| s.trim());
    let (state, queue, project, name, before, since) = (
        get("state"),
        get("queue"),
        get("project"),
        get("name"),
        get("before"),
        get("since"),
    );
    let mut errors: Vec<(&str, String)> = Vec::new();
    let mut api_q = HashMap::new();
    if !state.is_empty() {
        match JobState::parse(&state.to_uppercase()) {
            Some(s) => {
                api_q.insert("state".to_string(), s.as_str().to_string());
            }
            None => errors.push(("state", format!("`{state}` is not a job state"))),
        }
    }
    for (k, val) in [("queue", queue), ("project", project)] {
        if !val.is_empty() {
            api_q.insert(k.to_string(), val.to_string());
        }
    }
    if !before.is_empty() {
        if before.parse::<i64>().is_ok_and(|n| n > 0) {
            api_q.insert("before".into(), before.to_string());
        } else {
            errors.push(("before", format!("`{before}` is not a job id")));
        }
    }
    let since_ms = match SINCE.iter().find(|(k, _, _)| *k == since) {
        Some((_, _, ms)) => *ms,
        None => {
            errors.push((
                "since",
                format!("`{since}` is not one of the offered periods"),
            ));
            0
        }
    };
    // Name and time filters read more and keep the matches.
    let narrowed = !name.is_empty() || since_ms > 0;
    let limit = if narrowed { 1000 } else { PAGE };
    api_q.insert("limit".into(), limit.to_string());
    let (mut rows, mut next) = (Vec::new(), None);
    if errors.is_empty() {
        let r = super::list_jobs(&app, &v.p, &api_q).await;
        match r {
            Ok(l) => {
                rows = l.jobs;
                next = l.next_before;
            }
            Err(e) => errors.push((
                e.field
                    .clone()
                    .map_or("", |f| if f == "queue" { "queue" } else { "project" }),
                e.message,
            )),
        }
    }
    if narrowed {
        let n = name.to_lowercase();
        let from = trestle_service::now_ms() - since_ms;
        rows.retain(|j| {
            j.name.to_lowercase().contains(&n) && (since_ms == 0 || j.submitted_at >= from)
        });
        next = (rows.len() > PAGE as usize).then(|| rows[PAGE as usize - 1].id);
        rows.truncate(PAGE as usize);
    }
    let err = |f: &str| errors.iter().find(|(k, _)| *k == f).map(|(_, m)| m.clone());
    let field = |id: &'static str, label: &'static str, value: &str| {
        html! {
            div class="field" {
                label for=(id) { (label) }
                input id=(id) name=(id) type="text" value=(value)
                    aria-invalid=[err(id).map(|_| "true")];
                @if let Some(m) = err(id) { p class="field-error" { (m) } }
            }
        }
    };
    let keep = |before: i64| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", state)
            .append_pair("queue", queue)
            .append_pair("project", project)
            .append_pair("name", name)
            .append_pair("since", since)
            .append_pair("before", &before.to_string())
            .finish()
    };
    let body = html! {
        form method="get" action="/ui/jobs" class="filters" role="search" aria-label="Filter jobs" {
            div class="field" {
                label for="state" { "State" }
                select id="state" name="state" aria-invalid=[err("state").map(|_| "true")] {
                    option value="" { "Any" }
                    @for s in JobState::ALL {
                        option value=(s.as_str()) selected[state.eq_ignore_ascii_case(s.as_str())] { (s.as_str()) }
                    }
                }
                @if let Some(m) = err("state") { p class="field-error" { (m) } }
            }
            (field("queue", "Queue", queue))
            (field("project", "Project", project))
            (field("name", "Name contains", name))
            div class="field" {
                label for="since" { "Submitted" }
                select id="since" name="since" aria-invalid=[err("since").map(|_| "true")] {
                    @for (k, label, _) in SINCE { option value=(k) selected[*k == since] { (label) } }
                }
                @if let Some(m) = err("since") { p class="field-error" { (m) } }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(m) = err("before").or(err("")) { div class="error" role="alert" { (m) } }
        (job_table(&rows))
        nav class="pager" aria-label="Pages" {
            @if !before.is_empty() { a href="/ui/jobs" { "Newest" } }
            @if let Some(n) = next { a href={ "/ui/jobs?" (keep(n)) } rel="next" { "Older jobs" } }
        }
    };
    html_response(StatusCode::OK, page(Some(&v), Nav::Jobs, "Jobs", body))
}

/// A table of jobs (also used by the dashboard); an array child's
/// `PARENT_INDEX` stands beside its id.
pub fn job_table(rows: &[JobView]) -> Markup {
    let tasks = rows.iter().any(|j| j.flow.array_index.is_some());
    html! {
        @if rows.is_empty() {
            p class="empty" { "No jobs." }
        } @else {
            div class="scroll" {
                table {
                    thead { tr { th scope="col" { "Id" } @if tasks { th scope="col" { "Array task" } }
                        th scope="col" { "Name" } th scope="col" { "State" }
                        th scope="col" { "Attempts" }
                        th scope="col" { "Queue" } th scope="col" { "Project" } th scope="col" { "Submitted" } th scope="col" { "Reason" } } }
                    tbody {
                        @for j in rows {
                            tr {
                                td { a href={ "/ui/jobs/" (j.id) } { (j.id) } }
                                @if tasks { td class="task" { (j.task_id().unwrap_or_default()) } }
                                td { a href={ "/ui/jobs/" (j.id) } { (j.name) } }
                                td { (state_badge(j.state)) }
                                td { @if j.flow.kind.is_job() { (j.attempts_label()) } }
                                td { (j.queue) }
                                td { (j.spec.project.as_deref().unwrap_or("")) }
                                td { (when(j.submitted_at)) }
                                td class="reason" { (j.reason.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn command_text(j: &JobView) -> String {
    fn flat(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a.iter().map(flat).collect::<Vec<_>>().join(" "),
            serde_json::Value::Object(m) if m.len() == 1 => m.values().map(flat).collect(),
            other => other.to_string(),
        }
    }
    serde_json::to_value(&j.spec.command)
        .map(|c| flat(&c))
        .unwrap_or_default()
}

/// The pipeline's steps as an SVG graph: one column per depth.
pub(crate) fn pipeline_svg(steps: &[StepView]) -> Markup {
    let mut depth: HashMap<i64, usize> = HashMap::new();
    for _ in 0..steps.len() {
        for s in steps {
            let d = s
                .after
                .iter()
                .filter_map(|a| depth.get(a))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(s.id, d);
        }
    }
    let mut rows: HashMap<usize, usize> = HashMap::new();
    let mut pos: HashMap<i64, (usize, usize)> = HashMap::new();
    for s in steps {
        let d = depth.get(&s.id).copied().unwrap_or(0);
        let r = rows.entry(d).or_default();
        pos.insert(s.id, (d, *r));
        *r += 1;
    }
    let cols = depth.values().max().map_or(1, |m| m + 1);
    let nrows = rows.values().max().copied().unwrap_or(1);
    let (w, h) = (cols * 190 + 10, nrows * 70 + 10);
    let xy = |id: i64| pos.get(&id).map(|(c, r)| (c * 190 + 10, r * 70 + 10));
    html! {
        svg class="graph" viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) role="img" aria-label="Pipeline steps and their dependencies" {
            @for s in steps {
                @for a in &s.after {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (xy(*a), xy(s.id)) {
                        line x1=(x1 + 150) y1=(y1 + 25) x2=(x2) y2=(y2 + 25) class="edge" {}
                    }
                }
            }
            @for s in steps {
                @if let Some((x, y)) = xy(s.id) {
                    a href={ "/ui/jobs/" (s.id) } {
                        rect x=(x) y=(y) width="150" height="50" rx="6" class={ "node s-" (s.state.as_str().to_lowercase()) } {}
                        text x=(x + 8) y=(y + 20) { (s.name) }
                        text x=(x + 8) y=(y + 40) class="small" { (s.state.as_str()) }
                    }
                }
            }
        }
    }
}

/// `GET /ui/jobs/{id}`.
pub async fn show(
    State(app): State<Service>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = match svc::parse_id("id", &id) {
        Ok(id) => id,
        Err(e) => return super::error_page(Some(&v), &e),
    };
    let r = svc::show(&app, &v.p, id).await;
    let j = match or_error(&v, r) {
        Ok(j) => j,
        Err(resp) => return *resp,
    };
    let log = svc::log(&app, &v.p, id, None, 0).await.ok();
    let cost = trestle_service::costs::of_job(&app, &v.p, id)
        .await
        .ok()
        .filter(|c| c.records > 0);
    let samples = svc::samples(&app, &v.p, id, 0, super::usage::SPARK_SAMPLES)
        .await
        .map(|s| s.samples)
        .unwrap_or_default();
    let outputs = svc::outputs(&app, &v.p, id, None).await.ok();
    let children = super::children::load(&app, &v, &j, &q).await;
    let terminal = j.state.is_terminal();
    // Arrays and pipelines: their children run, they have no log of their own.
    let group = j.flow.kind != JobKind::Job;
    let title = format!("Job {} · {}", j.id, j.name);
    let body = html! {
        div class="job-head" {
            p { "State " span id="job-state" data-state=(j.state.as_str()) { (state_badge(j.state)) } }
            @if let Some(r) = &j.reason {
                p class={ @if j.state == JobState::Failed { "error" } @else { "why" } } id="job-reason" {
                    @if matches!(j.state, JobState::Pending | JobState::Runnable) { strong { "Why it is not running: " } }
                    @else { strong { "Reason: " } }
                    (r)
                }
            }
            @if let Some(c) = &cost {
                p id="job-cost" {
                    strong { "Cost: " } (trestle_core::cost::format(c.charge, &c.unit))
                    " (" (c.records) @if group { " attempts of its children metered)" } @else { " attempts metered)" }
                }
            }
            div class="actions" {
                @if !terminal {
                    form method="post" action={ "/ui/jobs/" (j.id) "/cancel" } class="inline" {
                        (csrf_field(&v))
                        button type="submit" class="danger" id="cancel" { "Cancel job" }
                    }
                }
                @if !group {
                    form method="post" action={ "/ui/jobs/" (j.id) "/resubmit" } class="inline" {
                        (csrf_field(&v))
                        button type="submit" id="resubmit" { "Resubmit" }
                    }
                }
            }
        }
        (super::children::section(&v, &j, &children))
        @if !group {
        section aria-labelledby="log-h" {
            h2 id="log-h" { "Log" }
            pre id="log" class="log" tabindex="0" aria-live="polite" data-job=(j.id)
                data-next=(log.as_ref().map_or(0, |l| l.next)) data-attempt=(log.as_ref().map_or(0, |l| l.attempt))
                data-follow=(if terminal { "no" } else { "yes" }) {
                (log.as_ref().map_or("", |l| l.data.as_str()))
            }
            @if !terminal { p class="small" { "The log follows as the job runs (with JavaScript); reload the page otherwise." } }
        }
        }
        section aria-labelledby="spec-h" {
            h2 id="spec-h" { "Specification" }
            dl class="spec" {
                dt { "Command" } dd { code { (command_text(&j)) } }
                dt { "Queue" } dd { (j.queue) }
                dt { "Project" } dd { (j.spec.project.as_deref().unwrap_or("-")) }
                dt { "Owner" } dd { (j.spec.owner.as_deref().unwrap_or("-")) }
                dt { "Resources" } dd { (j.spec.resources.cpus) " CPU, " (j.spec.resources.mem_mib) " MiB, " (j.spec.resources.gpus) " GPU" }
                @if !group { dt { "Attempts" } dd { (j.attempts_label().replace('/', " of ")) } }
                @if let Some(t) = j.task_id() { dt { "Array task" } dd { (t) } }
                dt { "Timeout" } dd { @if j.spec.timeout_secs == 0 { "none" } @else { (duration(j.spec.timeout_secs as i64 * 1000)) } }
                @if let Some(s) = &j.spec.success_string { dt { "Success string" } dd { code { (s) } } }
                @if let Some(u) = &j.spec.inputs { dt { "Inputs" } dd { code { (u) } } }
                dt { "Submitted" } dd { (when(j.submitted_at)) }
                @if let Some(t) = j.started_at { dt { "Started" } dd { (when(t)) } }
                @if let Some(t) = j.finished_at { dt { "Finished" } dd { (when(t)) } }
                @if let Some(c) = j.exit_code { dt { "Exit code" } dd { (c) } }
                @if let Some(p) = j.flow.parent { dt { "Part of" } dd { a href={ "/ui/jobs/" (p) } { "job " (p) } } }
            }
            @if !j.flow.dependencies.is_empty() {
                h3 { "Waits for" }
                ul { @for d in &j.flow.dependencies {
                    li { (format!("{:?}", d.kind).to_lowercase()) " " a href={ "/ui/jobs/" (d.job) } { "job " (d.job) }
                        @if let Some(s) = d.state { " " (state_badge(s)) } }
                } }
            }
        }
        @if !group {
        section aria-labelledby="attempts-h" {
            h2 id="attempts-h" { "Attempts" }
            @if j.attempts.is_empty() { p class="empty" { "No attempt yet." } } @else {
                div class="scroll" { table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Worker" } th scope="col" { "State" } th scope="col" { "Exit" } th scope="col" { "Reason" } th scope="col" { "Leased" } } }
                    tbody { @for a in &j.attempts { tr {
                        td { (a.attempt) } td { (a.worker) }
                        td { (format!("{:?}", a.state)) }
                        td { (a.exit_code.map(|c| c.to_string()).unwrap_or_default()) }
                        td { (a.reason.map(|r| format!("{r:?}")).unwrap_or_default()) }
                        td { (when(a.leased_at)) }
                    } } }
                } }
            }
        }
        (super::usage::section(&j, &samples))
        section aria-labelledby="out-h" {
            h2 id="out-h" { "Outputs" }
            @match &outputs {
                Some(o) if !o.files.is_empty() => ul { @for f in &o.files {
                    li { a href={ "/api/v1/jobs/" (j.id) "/outputs/" (f.path) } download { (f.path) } " (" (f.size) " bytes)" }
                } },
                _ => p class="empty" { "No outputs." },
            }
        }
        }
    };
    html_response(StatusCode::OK, page(Some(&v), Nav::Jobs, &title, body))
}

/// `POST /ui/jobs/{id}/cancel`.
pub async fn cancel(
    State(app): State<Service>,
    v: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = Form::parse(&body).check_csrf(&v) {
        return *r;
    }
    let id = match svc::parse_id("id", &id) {
        Ok(id) => id,
        Err(e) => return super::error_page(Some(&v), &e),
    };
    match svc::cancel(&app, &v.p, id).await {
        Ok(j) => Redirect::to(&format!("/ui/jobs/{}", j.id)).into_response(),
        Err(e) => super::error_page(Some(&v), &e),
    }
}

/// `POST /ui/jobs/{id}/resubmit`: the job's work again as a new job (one
/// task of an array runs as a plain job with the same index).
pub async fn resubmit(
    State(app): State<Service>,
    v: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(r) = form.check_csrf(&v) {
        return *r;
    }
    let id = match svc::parse_id("id", &id) {
        Ok(id) => id,
        Err(e) => return super::error_page(Some(&v), &e),
    };
    let r = if form.get("failed") == "1" {
        svc::resubmit_failed(&app, &v.p, id).await
    } else {
        svc::resubmit(&app, &v.p, id).await
    };
    match r {
        Ok(j) => super::submit::created(j.id),
        Err(e) => super::error_page(Some(&v), &e),
    }
}
