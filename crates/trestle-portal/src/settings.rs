//! `/ui/settings/notifications`: where a user's notifications go (their
//! address, or a warning that nothing can reach them), which event types
//! their email gets and which they muted, their subscriptions, their own
//! targets (secrets masked) and their recent deliveries with a retry for
//! dead letters; admins also see the shared targets and the rules. Every
//! change is a form over the same service operations as the API.

use super::login::or_error;
use super::{Form, Nav, Viewer, csrf_field, html_response, page, when};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;
use trestle_core::api::notify::UnsubscribeRequest;
use trestle_core::api::notify::{DeliveryView, RuleView, SubscriptionsView, TargetView};
use trestle_core::notify::event::EventType;
use trestle_core::notify::rule::SubscriptionSpec;
use trestle_core::notify::target::TargetSpec;
use trestle_service::{Service, ServiceError, notify, notify_outbox, notify_subs};

const PATH: &str = "/ui/settings/notifications";

/// Everything the page shows.
struct Data {
    subs: SubscriptionsView,
    targets: Vec<TargetView>,
    rules: Option<Vec<RuleView>>,
    deliveries: Vec<DeliveryView>,
}

async fn load(app: &Service, v: &Viewer) -> Result<Data, ServiceError> {
    let subs = notify_subs::subscriptions(app, &v.p, None).await?;
    let targets = notify::list_targets(app, &v.p).await?;
    let rules = if v.p.is_admin() {
        Some(notify_subs::list_rules(app, &v.p).await?)
    } else {
        None
    };
    let q: HashMap<String, String> = [("limit".to_string(), "20".to_string())].into();
    let deliveries = notify_outbox::deliveries(app, &v.p, &q).await?;
    Ok(Data {
        subs,
        targets,
        rules,
        deliveries,
    })
}

fn render(v: &Viewer, d: &Data, error: Option<&ServiceError>) -> Markup {
    let s = &d.subs;
    let mine: Vec<&TargetView> = d
        .targets
        .iter()
        .filter(|t| t.owner.as_deref() == Some(v.name()))
        .collect();
    let shared: Vec<&TargetView> = d.targets.iter().filter(|t| t.owner.is_none()).collect();
    html! {
        @if let Some(e) = error {
            div class="error" role="alert" {
                (e.message)
                @if let Some(f) = &e.field { " (" code { (f) } ")" }
            }
        }
        section aria-labelledby="addr-h" class="card" {
            h2 id="addr-h" { "Where your notifications go" }
            @match (&s.email, &s.email_source) {
                (Some(e), Some(src)) => { p { "Email: " strong { (e) } " (from " (src) ")" } }
                (Some(e), None) => { p { "Email: " strong { (e) } } }
                _ => { p { "You have no email address." } }
            }
            @if let Some(w) = &s.warning {
                p class="why" role="status" id="unreachable" {
                    strong { "Nothing can reach you: " }
                    (w.strip_prefix("nothing can reach you: ").unwrap_or(w))
                }
            }
            p class="hint" { "Your email gets your own events of these types: " (s.defaults.join(", ")) ". "
                "Job events are sent only when you subscribe to them." }
        }
        section aria-labelledby="subs-h" {
            h2 id="subs-h" { "Subscriptions and muted events" }
            @if s.subscriptions.is_empty() { p class="empty" { "None: you get the defaults above." } }
            @else {
                div class="scroll" { table {
                    thead { tr { th scope="col" { "Mode" } th scope="col" { "Events" } th scope="col" { "To" }
                        th scope="col" { "Job" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                    tbody { @for x in &s.subscriptions { tr {
                        td { (x.mode) } td { (x.events.join(", ")) }
                        td { (x.target.clone().unwrap_or_else(|| "your email".into())) }
                        td { @if let Some(j) = x.job { a href={ "/ui/jobs/" (j) } { (j) } } }
                        td { form method="post" action={ (PATH) "/unsubscribe" } class="inline" {
                            (csrf_field(v))
                            input type="hidden" name="id" value=(x.id);
                            button type="submit" class="danger" { "Remove" }
                        } }
                    } } }
                } }
            }
            div class="grid" {
                form method="post" action={ (PATH) "/subscribe" } class="card" {
                    (csrf_field(v))
                    h3 { "Subscribe" }
                    div class="field" {
                        label for="sub-events" { "Event types" }
                        input id="sub-events" name="events" type="text" placeholder="job.failed, workspace.*";
                    }
                    div class="field" {
                        label for="sub-target" { "To (empty: your email)" }
                        select id="sub-target" name="target" {
                            option value="" { "your email" }
                            @for t in &mine { option value=(t.name) { (t.name) } }
                        }
                    }
                    div class="field" {
                        label for="sub-job" { "Only job (optional)" }
                        input id="sub-job" name="job" type="text";
                    }
                    button type="submit" class="primary" { "Subscribe" }
                }
                form method="post" action={ (PATH) "/mute" } class="card" {
                    (csrf_field(v))
                    h3 { "Mute in your email" }
                    div class="field" {
                        label for="mute-events" { "Event type" }
                        select id="mute-events" name="events" {
                            @for t in EventType::ALL.iter().filter(|t| trestle_core::notify::route::personal_by_default(**t)) {
                                option value=(t.as_str()) { (t.as_str()) }
                            }
                        }
                    }
                    button type="submit" { "Mute" }
                }
            }
        }
        section aria-labelledby="targets-h" {
            h2 id="targets-h" { "Your targets" }
            (targets_table(v, &mine))
            form method="post" action={ (PATH) "/targets" } class="card" id="add-target" {
                (csrf_field(v))
                h3 { "Add a Slack, Teams or webhook target" }
                div class="grid" {
                    div class="field" { label for="t-name" { "Name" } input id="t-name" name="name" type="text"; }
                    div class="field" { label for="t-kind" { "Kind" }
                        select id="t-kind" name="kind" {
                            option value="slack" { "Slack" } option value="teams" { "Microsoft Teams" }
                            option value="webhook" { "Webhook (signed)" }
                        } }
                    div class="field" { label for="t-url" { "Webhook URL" }
                        input id="t-url" name="url" type="text" autocomplete="off" placeholder="https://hooks.slack.com/services/…";
                        p class="hint" { "Kept encrypted; never shown again." } }
                }
                button type="submit" class="primary" { "Add target" }
            }
        }
        @if let Some(rules) = &d.rules {
            section aria-labelledby="shared-h" {
                h2 id="shared-h" { "Shared targets" }
                (targets_table(v, &shared))
                h2 { "Rules" }
                @if rules.is_empty() { p class="empty" { "No rules." } }
                @else { div class="scroll" { table {
                    thead { tr { th scope="col" { "Rule" } th scope="col" { "Events" } th scope="col" { "Project" } th scope="col" { "Targets" } } }
                    tbody { @for r in rules { tr {
                        td { (r.name) } td { (r.events.join(", ")) }
                        td { (r.project.clone().unwrap_or_else(|| "any".into())) } td { (r.targets.join(", ")) }
                    } } }
                } } }
            }
        }
        section aria-labelledby="del-h" {
            h2 id="del-h" { "Recent deliveries" }
            @if d.deliveries.is_empty() { p class="empty" { "Nothing sent yet." } }
            @else { div class="scroll" { table {
                thead { tr { th scope="col" { "Made" } th scope="col" { "Target" } th scope="col" { "Event" }
                    th scope="col" { "Events" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last error" } } }
                tbody { @for x in &d.deliveries { tr {
                    td { (when(x.created_at)) } td { (x.target) } td { code { (x.kind) } } td { (x.events) }
                    td { (x.state)
                        @if x.state == "dead" {
                            form method="post" action={ (PATH) "/retry" } class="inline" {
                                (csrf_field(v))
                                input type="hidden" name="id" value=(x.id);
                                " " button type="submit" { "Retry" }
                            }
                        } }
                    td { (x.attempts) } td class="reason" { (x.last_error.clone().unwrap_or_default()) }
                } } }
            } } }
        }
    }
}

fn targets_table(v: &Viewer, list: &[&TargetView]) -> Markup {
    html! {
        @if list.is_empty() { p class="empty" { "None." } }
        @else { div class="scroll" { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Where" }
                th scope="col" { span class="visually-hidden" { "Actions" } } } }
            tbody { @for t in list { tr {
                td { (t.name) } td { (t.kind) }
                td { code { (t.url.clone().or_else(|| t.smtp_host.clone()).unwrap_or_default()) } }
                td {
                    form method="post" action={ (PATH) "/test" } class="inline" {
                        (csrf_field(v)) input type="hidden" name="name" value=(t.name);
                        button type="submit" { "Send a test" }
                    }
                    " "
                    form method="post" action={ (PATH) "/delete" } class="inline" {
                        (csrf_field(v)) input type="hidden" name="name" value=(t.name);
                        button type="submit" class="danger" { "Delete" }
                    }
                }
            } } }
        } } }
    }
}

async fn show(
    app: &Service,
    v: &Viewer,
    status: StatusCode,
    error: Option<&ServiceError>,
) -> Response {
    let data = match or_error(v, load(app, v).await) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    html_response(
        status,
        page(
            Some(v),
            Nav::Settings,
            "Notifications",
            render(v, &data, error),
        ),
    )
}

/// `GET /ui/settings/notifications`.
pub async fn form(State(app): State<Service>, v: Viewer) -> Response {
    show(&app, &v, StatusCode::OK, None).await
}

/// After a change: back to the page, or the page with the error.
async fn done(app: &Service, v: &Viewer, r: Result<(), ServiceError>) -> Response {
    match r {
        Ok(()) => Redirect::to(PATH).into_response(),
        Err(e) => {
            let status = match e.kind {
                trestle_service::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                trestle_service::ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                trestle_service::ErrorKind::Conflict => StatusCode::CONFLICT,
                trestle_service::ErrorKind::Invalid => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            show(app, v, status, Some(&e)).await
        }
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// `POST /ui/settings/notifications/{action}`: subscribe, mute,
/// unsubscribe, add/delete/test a target, retry a dead letter.
pub async fn post(
    State(app): State<Service>,
    v: Viewer,
    axum::extract::Path(action): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    if let Err(r) = f.check_csrf(&v) {
        return *r;
    }
    let r: Result<(), ServiceError> = match action.as_str() {
        "subscribe" => {
            let job = match f.get("job") {
                "" => Ok(None),
                j => j.parse::<i64>().map(Some).map_err(|_| {
                    ServiceError::bad("invalid-job", "job", format!("`{j}` is not a job id"))
                }),
            };
            match job {
                Err(e) => Err(e),
                Ok(job) => {
                    let spec = SubscriptionSpec {
                        events: list(f.get("events")),
                        target: Some(f.get("target").to_string()).filter(|t| !t.is_empty()),
                        job,
                    };
                    notify_subs::subscribe(&app, &v.p, None, Ok(spec))
                        .await
                        .map(|_| ())
                }
            }
        }
        "mute" => notify_subs::unsubscribe(
            &app,
            &v.p,
            Ok(UnsubscribeRequest {
                events: list(f.get("events")),
                ..Default::default()
            }),
        )
        .await
        .map(|_| ()),
        "unsubscribe" => match f.get("id").parse::<i64>() {
            Ok(id) => notify_subs::unsubscribe(
                &app,
                &v.p,
                Ok(UnsubscribeRequest {
                    id: Some(id),
                    ..Default::default()
                }),
            )
            .await
            .map(|_| ()),
            Err(_) => Err(ServiceError::bad(
                "invalid-id",
                "id",
                "not a subscription id",
            )),
        },
        "targets" => {
            let spec = TargetSpec {
                name: f.get("name").to_string(),
                kind: f.get("kind").to_string(),
                url: Some(f.get("url").to_string()).filter(|u| !u.is_empty()),
                ..Default::default()
            };
            notify::create_target(&app, &v.p, Ok(spec))
                .await
                .map(|_| ())
        }
        "delete" => notify::delete_target(&app, &v.p, f.get("name")).await,
        "test" => match notify::test_target(&app, &v.p, f.get("name")).await {
            Ok(t) if t.delivered => Ok(()),
            Ok(t) => Err(ServiceError::new(
                trestle_service::ErrorKind::Conflict,
                "test-failed",
                format!(
                    "the test message to `{}` was not delivered: {}",
                    f.get("name"),
                    t.error.unwrap_or_default()
                ),
            )),
            Err(e) => Err(e),
        },
        "retry" => notify_outbox::retry(&app, &v.p, f.get("id"))
            .await
            .map(|_| ()),
        other => Err(ServiceError::not_found(format!(
            "the page `{PATH}/{other}`"
        ))),
    };
    done(&app, &v, r).await
}
