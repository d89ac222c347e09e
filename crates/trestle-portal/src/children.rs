//! The children of an array or pipeline on its job page: filtered by
//! state (failed only, in one click), paged past any size, each with its
//! index beside its id, and an array's failed indices as Slurm's
//! compressed range with a button that runs just those again.

use super::jobs::job_table;
use super::{Viewer, csrf_field, state_badge};
use maud::{Markup, html};
use std::collections::HashMap;
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::batch::array::compress;
use trestle_core::batch::workflow::JobKind;
use trestle_service::Service;

/// Children per page.
const PAGE: u32 = 50;

/// Failed indices listed at most (beyond that, the count is shown).
const MAX_LISTED_FAILURES: u64 = 10_000;

/// A page of children and where the next one starts.
pub struct Children {
    rows: Vec<JobView>,
    next: Option<i64>,
    state: Option<JobState>,
    before: Option<i64>,
    error: Option<String>,
    failed_indices: Option<String>,
}

/// Reads the page the query asks for (`children_state`, `children_before`).
pub async fn load(app: &Service, v: &Viewer, j: &JobView, q: &HashMap<String, String>) -> Children {
    let mut out = Children {
        rows: Vec::new(),
        next: None,
        state: None,
        before: None,
        error: None,
        failed_indices: None,
    };
    if j.flow.children.is_none() || !j.flow.steps.is_empty() {
        return out;
    }
    let mut api = HashMap::from([
        ("parent".to_string(), j.id.to_string()),
        ("limit".to_string(), PAGE.to_string()),
    ]);
    if let Some(s) = q
        .get("children_state")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        match JobState::parse(&s.to_uppercase()) {
            Some(st) => {
                out.state = Some(st);
                api.insert("state".into(), st.as_str().into());
            }
            None => out.error = Some(format!("`{s}` is not a job state")),
        }
    }
    if let Some(b) = q
        .get("children_before")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        match b.parse::<i64>() {
            Ok(n) if n > 0 => {
                out.before = Some(n);
                api.insert("before".into(), n.to_string());
            }
            _ => out.error = Some(format!("`{b}` is not a job id")),
        }
    }
    if out.error.is_some() {
        return out;
    }
    match super::list_jobs(app, &v.p, &api).await {
        Ok(l) => {
            out.rows = l.jobs;
            out.next = l.next_before;
        }
        Err(e) => out.error = Some(e.message),
    }
    let failed = j
        .flow
        .children
        .as_ref()
        .map_or(0, |c| c.get(JobState::Failed));
    if j.flow.kind == JobKind::Array && failed > 0 && failed <= MAX_LISTED_FAILURES {
        out.failed_indices = failed_indices(app, v, j.id).await;
    }
    out
}

/// Every failed child's index, page by page.
async fn failed_indices(app: &Service, v: &Viewer, parent: i64) -> Option<String> {
    let mut indices = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut q = HashMap::from([
            ("parent".to_string(), parent.to_string()),
            ("state".to_string(), "FAILED".to_string()),
            ("limit".to_string(), "1000".to_string()),
        ]);
        if let Some(b) = before {
            q.insert("before".into(), b.to_string());
        }
        let page = super::list_jobs(app, &v.p, &q).await.ok()?;
        indices.extend(page.jobs.iter().filter_map(|c| c.flow.array_index));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    Some(compress(&indices))
}

/// The children section of a group's page.
pub fn section(v: &Viewer, j: &JobView, c: &Children) -> Markup {
    let Some(counts) = &j.flow.children else {
        return html! {};
    };
    let link = |state: Option<JobState>, before: Option<i64>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if let Some(st) = state {
            s.append_pair("children_state", st.as_str());
        }
        if let Some(b) = before {
            s.append_pair("children_before", &b.to_string());
        }
        format!("/ui/jobs/{}?{}#children-h", j.id, s.finish())
    };
    let failed = counts.get(JobState::Failed);
    html! {
        section aria-labelledby="children-h" {
            h2 id="children-h" { "Children (" (counts.total) ")" }
            ul class="counts" { @for (s, n) in &counts.counts {
                li { a href=(link(Some(*s), None)) { (state_badge(*s)) " " (n) } }
            } }
            @if !j.flow.steps.is_empty() { (super::jobs::pipeline_svg(&j.flow.steps)) }
            @else {
                @if let Some(ix) = &c.failed_indices {
                    p id="failed-indices" { strong { "Failed indices: " } code { (ix) } }
                }
                @if failed > 0 && j.flow.kind == JobKind::Array && j.state.is_terminal() {
                    form method="post" action={ "/ui/jobs/" (j.id) "/resubmit" } class="inline" {
                        (csrf_field(v))
                        input type="hidden" name="failed" value="1";
                        button type="submit" id="resubmit-failed" { "Run the " (failed) " failed again" }
                    }
                }
                nav class="filters" aria-label="Filter children" {
                    @if c.state.is_some() { a href=(link(None, None)) id="children-all" { "All children" } " · " }
                    a href=(link(Some(JobState::Failed), None)) id="children-failed"
                        aria-current=[(c.state == Some(JobState::Failed)).then_some("true")] { "Failed only" }
                }
                @if let Some(e) = &c.error { div class="error" role="alert" { (e) } }
                (job_table(&c.rows))
                nav class="pager" aria-label="Pages of children" {
                    @if c.before.is_some() { a href=(link(c.state, None)) { "First page" } }
                    @if let Some(n) = c.next { a href=(link(c.state, Some(n))) rel="next" id="children-next" { "Next " (PAGE) } }
                }
            }
        }
    }
}
