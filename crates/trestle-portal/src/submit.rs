//! The submit form: a command or script with resources, attempts, success
//! string, array and dependencies, and an input folder (uploaded by the
//! portal's script through the upload API, with progress; or an upload id
//! made earlier). Validated on the server by the same code
//! as `POST /api/v1/jobs`, with messages next to the fields.

use super::{Form, Nav, Viewer, csrf_field, html_response, page};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use trestle_service::Service;
use trestle_service::jobs as svc;

/// The form's fields: (name, label, hint).
const FIELDS: &[(&str, &str, &str)] = &[
    ("name", "Name", "Optional; shown in lists."),
    ("queue", "Queue", "Default: default."),
    ("project", "Project", "Default: your default project."),
    ("cpus", "CPUs", "Cores, default 1."),
    (
        "memory",
        "Memory",
        "MiB or a size such as 2G; default 256M.",
    ),
    ("gpus", "GPUs", "Default 0."),
    ("timeout", "Timeout", "Seconds or a duration such as 2h."),
    ("attempts", "Attempts", "How many times to try, default 1."),
    (
        "success_string",
        "Success string",
        "The job succeeds only if its log contains it.",
    ),
    ("array", "Array", "Indexes such as 0-99 or 1,3,5-7%4."),
    (
        "after",
        "After jobs",
        "Job ids that must succeed first, separated by commas.",
    ),
];

fn render(v: &Viewer, f: &Form, errors: &[(String, String)]) -> Markup {
    let err = |n: &str| errors.iter().find(|(k, _)| k == n).map(|(_, m)| m.clone());
    let input = |name: &'static str, label: &'static str, hint: &'static str| {
        let e = err(name);
        html! {
            div class="field" {
                label for=(name) { (label) }
                input id=(name) name=(name) type="text" value=(f.get(name))
                    aria-invalid=[e.as_ref().map(|_| "true")]
                    aria-describedby={ (name) "-hint" @if e.is_some() { " " (name) "-error" } };
                p class="hint" id={ (name) "-hint" } { (hint) }
                @if let Some(m) = e { p class="field-error" id={ (name) "-error" } { (m) } }
            }
        }
    };
    let other: Vec<&(String, String)> = errors
        .iter()
        .filter(|(k, _)| {
            k.is_empty()
                || !(FIELDS.iter().any(|(n, _, _)| n == k) || k == "command" || k == "inputs")
        })
        .collect();
    html! {
        form method="post" action="/ui/submit" class="card" id="submit-form" novalidate {
            (csrf_field(v))
            @for (_, m) in &other { div class="error" role="alert" { (m) } }
            div class="field wide" {
                label for="command" { "Command or script" }
                textarea id="command" name="command" rows="5" required
                    aria-invalid=[err("command").map(|_| "true")]
                    aria-describedby="command-hint" { (f.get("command")) }
                p class="hint" id="command-hint" { "Run by /bin/sh -c in the job's scratch directory, next to its input files." }
                @if let Some(m) = err("command") { p class="field-error" id="command-error" { (m) } }
            }
            div class="grid" {
                @for (n, l, h) in FIELDS { (input(n, l, h)) }
            }
            fieldset class="upload" {
                legend { "Input folder" }
                div id="dropzone" class="dropzone" tabindex="0" {
                    p { "Drop a folder here, or " label for="folder" class="button" { "choose a folder" } }
                    input id="folder" type="file" webkitdirectory multiple class="visually-hidden";
                    progress id="upload-progress" max="100" value="0" hidden {}
                    p id="upload-status" role="status" aria-live="polite" {}
                }
                div class="field" {
                    label for="inputs" { "Upload id" }
                    input id="inputs" name="inputs" type="text" value=(f.get("inputs"))
                        aria-invalid=[err("inputs").map(|_| "true")] aria-describedby="inputs-hint";
                    p class="hint" id="inputs-hint" { "Filled in by the upload above, or the id of an earlier upload (`trestle submit DIR --run SCRIPT` uploads from the command line)." }
                    @if let Some(m) = err("inputs") { p class="field-error" id="inputs-error" { (m) } }
                }
            }
            button type="submit" class="primary" id="submit" { "Submit job" }
        }
    }
}

/// `GET /ui/submit`.
pub async fn form(v: Viewer) -> Response {
    let body = render(&v, &Form::default(), &[]);
    html_response(
        StatusCode::OK,
        page(Some(&v), Nav::Submit, "Submit a job", body),
    )
}

/// Builds the API's job request from the form; field errors on the way.
fn request(f: &Form) -> Result<Value, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let mut m = Map::new();
    let command = f.get("command");
    if command.is_empty() {
        errors.push(("command".into(), "Enter a command or a script.".into()));
    }
    m.insert("command".into(), json!(command));
    for k in [
        "name",
        "queue",
        "project",
        "memory",
        "timeout",
        "success_string",
        "array",
        "inputs",
    ] {
        if !f.get(k).is_empty() {
            m.insert(k.into(), json!(f.get(k)));
        }
    }
    for k in ["cpus", "gpus", "attempts"] {
        let s = f.get(k);
        if s.is_empty() {
            continue;
        }
        match s.parse::<u32>() {
            Ok(n) => {
                m.insert(k.into(), json!(n));
            }
            Err(_) => errors.push((k.into(), format!("`{s}` is not a whole number."))),
        }
    }
    let mut after = Vec::new();
    for part in f
        .get("after")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match part.parse::<i64>() {
            Ok(n) if n > 0 => after.push(json!({ "kind": "after-ok", "job": n })),
            _ => errors.push(("after".into(), format!("`{part}` is not a job id."))),
        }
    }
    if !after.is_empty() {
        m.insert("after".into(), Value::Array(after));
    }
    if errors.is_empty() {
        Ok(Value::Object(m))
    } else {
        Err(errors)
    }
}

/// The form field an API error's field path belongs to.
fn form_field(api_field: Option<&str>) -> String {
    let f = api_field.unwrap_or("");
    let head = f.split(['.', '[']).next().unwrap_or("");
    match head {
        "memory" | "mem_mib" => "memory".into(),
        "timeout" | "timeout_secs" => "timeout".into(),
        "attempts" | "max_attempts" => "attempts".into(),
        other => other.into(),
    }
}

/// A redirect to a new job's page, tagged for the audit trail.
pub fn created(id: i64) -> Response {
    let mut r = Redirect::to(&format!("/ui/jobs/{id}")).into_response();
    r.extensions_mut()
        .insert(trestle_service::audit::AuditResource(format!("job:{id}")));
    r
}

/// `POST /ui/submit`.
pub async fn submit(State(app): State<Service>, v: Viewer, body: Bytes) -> Response {
    let f = Form::parse(&body);
    if let Err(r) = f.check_csrf(&v) {
        return *r;
    }
    let result = match request(&f) {
        Err(errors) => Err(errors),
        Ok(value) => match svc::validate_request(value) {
            Err(e) => Err(vec![(form_field(e.field.as_deref()), e.message)]),
            Ok(spec) => svc::submit_one(&app, &v.p, spec)
                .await
                .map_err(|e| vec![(form_field(e.field.as_deref()), e.message)]),
        },
    };
    match result {
        Ok(job) => created(job.id),
        Err(errors) => html_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                Some(&v),
                Nav::Submit,
                "Submit a job",
                render(&v, &f, &errors),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_to_request() {
        let f = Form::parse(b"command=echo+hi&cpus=2&after=3,+4&memory=1G");
        let v = request(&f).unwrap();
        assert_eq!(v["cpus"], 2);
        assert_eq!(v["after"][1]["job"], 4);
        let bad = Form::parse(b"cpus=two&after=x");
        let e = request(&bad).unwrap_err();
        let fields: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(fields, ["command", "cpus", "after"]);
        assert_eq!(form_field(Some("after[0].job")), "after");
    }
}
