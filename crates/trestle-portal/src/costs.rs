//! The costs page: what the last days cost (per project, index, user or
//! compute environment) as daily stacked bars drawn in SVG, yesterday's
//! spend, the top users, and the budgets with how much of each is spent.
//! Every figure comes from `trestle_service::costs` and
//! `trestle_service::budgets`, with their authorization: admins see
//! everything, others their own usage and that of projects they manage.

use super::login::or_error;
use super::{Nav, Viewer, html_response, page};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use std::collections::{BTreeMap, BTreeSet};
use trestle_core::api::cost::{BudgetView, CostQuery, CostReport};
use trestle_core::cost::format;
use trestle_service::{Service, budgets, costs as svc};

/// Colours of the stacks, in order (the rest share the last).
const COLOURS: [&str; 8] = [
    "#0b5cad", "#17692e", "#8a5300", "#a3201c", "#5b3f99", "#0e7c86", "#7a6a00", "#6b7280",
];
/// Groups drawn as their own stack; the others are summed as "other".
const STACKS: usize = 7;

const GROUPINGS: [(&str, &str); 4] = [
    ("project", "Projects"),
    ("index", "Indexes"),
    ("user", "Users"),
    ("env", "Compute environments"),
];

/// A legend's colour key (SVG: the portal's policy allows no inline styles).
fn swatch(colour: &str) -> Markup {
    html! {
        svg class="swatch" width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" {
            rect width="12" height="12" rx="2" fill=(colour) {}
        }
    }
}

fn hours(h: f64) -> String {
    if h > 0.0 && h < 0.1 {
        format!("{h:.3}")
    } else {
        format!("{h:.1}")
    }
}

/// Daily stacked bars of `r` (split per day), as inline SVG with a
/// legend and a text table for screen readers.
fn chart(r: &CostReport, days: u32) -> Markup {
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for row in &r.rows {
        *totals.entry(row.key.as_str()).or_default() += row.charge;
    }
    let mut order: Vec<(&str, f64)> = totals.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    let stacks: Vec<&str> = order.iter().take(STACKS).map(|(k, _)| *k).collect();
    let mut per_day: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let dates: BTreeSet<&str> = r.rows.iter().filter_map(|x| x.day.as_deref()).collect();
    for row in &r.rows {
        let Some(day) = row.day.as_deref() else {
            continue;
        };
        let slot = stacks.iter().position(|s| *s == row.key).unwrap_or(STACKS);
        let v = per_day.entry(day).or_insert_with(|| vec![0.0; STACKS + 1]);
        v[slot] += row.charge;
    }
    let max = per_day
        .values()
        .map(|v| v.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let (w, h, pad) = (720.0_f64, 200.0_f64, 4.0_f64);
    let n = f64::from(days.max(1));
    let bw = (w / n - pad).max(2.0);
    // Day numbers from the report's first day, so empty days stay empty.
    let first = trestle_core::cost::daily::parse_date(&r.from).unwrap_or(0);
    // (x, y, height, colour, title) of every bar segment.
    let mut bars: Vec<(f64, f64, f64, &str, String)> = Vec::new();
    for (day, parts) in &per_day {
        let d = trestle_core::cost::daily::parse_date(day).unwrap_or(first) - first;
        let x = d as f64 * (w / n);
        let mut y = h;
        for (i, v) in parts.iter().enumerate() {
            if *v <= 0.0 || max <= 0.0 {
                continue;
            }
            let bh = v / max * (h - 10.0);
            y -= bh;
            let name = stacks.get(i).copied().unwrap_or("other");
            bars.push((
                x,
                y,
                bh,
                COLOURS[i.min(COLOURS.len() - 1)],
                format!("{day} {name}: {}", format(*v, &r.unit)),
            ));
        }
    }
    html! {
        figure class="chart" {
            svg viewBox=(format!("0 0 {w} {}", h + 20.0)) role="img" aria-labelledby="chart-title" width="100%" {
                title id="chart-title" { "Daily cost over the last " (days) " days, stacked" }
                line x1="0" y1=(h) x2=(w) y2=(h) stroke="#8a94a3" {}
                @for b in &bars {
                    rect x=(format!("{:.1}", b.0)) y=(format!("{:.1}", b.1)) width=(format!("{bw:.1}")) height=(format!("{:.1}", b.2)) fill=(b.3) {
                        title { (b.4) }
                    }
                }
                text x="0" y=(h + 16.0) font-size="12" fill="#4a5563" { (r.from) }
                text x=(w) y=(h + 16.0) font-size="12" fill="#4a5563" text-anchor="end" { (r.to) }
            }
            figcaption class="legend" {
                @for (i, s) in stacks.iter().enumerate() {
                    span class="key" { (swatch(COLOURS[i])) (if s.is_empty() { "(overhead)" } else { s }) }
                }
                @if order.len() > STACKS {
                    span class="key" { (swatch(COLOURS[STACKS])) "other" }
                }
                @if dates.is_empty() { span class="empty" { "Nothing was charged in this period." } }
            }
        }
    }
}

fn budget_table(list: &[BudgetView]) -> Markup {
    html! {
        @if list.is_empty() {
            p class="empty" { "No budgets. Admins set one with " code { "trestle budget set --project P --amount N" } "." }
        } @else {
            table id="budgets" {
                thead { tr { th { "Budget" } th { "Period" } th { "Spent" } th { "Forecast" } th { "Enforcement" } th { "State" } } }
                tbody {
                    @for b in list {
                        tr {
                            td { (b.scope_kind) " " strong { (b.scope) } }
                            td { @if let Some((s, e)) = &b.period { (s) " – " (e) } @else { "not active" } }
                            td {
                                (format(b.spend, &b.unit)) " of " (format(b.spec.amount, &b.unit))
                                " (" (format!("{:.0}", b.percent)) "%)"
                                br;
                                meter min="0" max="100" low="80" high="90" optimum="0" value=(format!("{:.1}", b.percent.min(100.0))) aria-label=(format!("{:.0}% spent", b.percent)) {}
                            }
                            td { @if let Some(f) = b.forecast { (format(f, &b.unit)) } @else { "-" } }
                            td { (b.spec.enforcement.as_str()) }
                            td { @if b.blocked { span class="badge s-failed" { "blocked" } } @else { span class="badge s-succeeded" { "open" } } }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/costs?by=&days=`.
pub async fn page_handler(
    State(app): State<Service>,
    v: Viewer,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let by = q
        .get("by")
        .filter(|b| GROUPINGS.iter().any(|(g, _)| g == b))
        .cloned()
        .unwrap_or_else(|| "project".into());
    let days = q
        .get("days")
        .and_then(|d| d.parse().ok())
        .filter(|d| (1..=svc::MAX_DAYS).contains(d))
        .unwrap_or(30);
    let query = |by: &str, per_day: bool| CostQuery {
        by: Some(by.into()),
        days: Some(days),
        per_day: Some(per_day),
        ..CostQuery::default()
    };
    let daily = match or_error(&v, svc::report(&app, &v.p, &query(&by, true)).await) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let totals = match or_error(&v, svc::report(&app, &v.p, &query(&by, false)).await) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let users = match or_error(&v, svc::report(&app, &v.p, &query("user", false)).await) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let list = match or_error(&v, budgets::list(&app, &v.p).await) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let unit = totals.unit.clone();
    let body = html! {
        div class="cards" {
            div class="card" { p class="small" { "Last " (days) " days" } p class="big" id="cost-total" { (format(totals.total, &unit)) } }
            div class="card" { p class="small" { "Yesterday" } p class="big" id="cost-yesterday" { (format(totals.yesterday, &unit)) } }
            div class="card" { p class="small" { "Running now (so far)" } p class="big" { (format(totals.running, &unit)) } }
        }
        nav class="tabs" aria-label="Group costs by" {
            @for (g, label) in GROUPINGS {
                @let href = format!("/ui/costs?by={g}&days={days}");
                @if g == by { a href=(href) aria-current="page" { (label) } } @else { a href=(href) { (label) } }
            }
        }
        (chart(&daily, days))
        div class="two" {
            section {
                h2 { (GROUPINGS.iter().find(|(g, _)| *g == by).map_or("Projects", |(_, l)| *l)) }
                table id="cost-groups" {
                    thead { tr { th { "Name" } th { "Charge" } th { "Hours" } th { "Core-hours" } th { "CPU used" } th { "Unused core-hours" } th { "Records" } } }
                    tbody {
                        @for r in &totals.rows {
                            tr { td { (if r.key.is_empty() { "(overhead)" } else { &r.key }) } td { (format(r.charge, &unit)) } td { (hours(r.hours)) } td { (hours(r.core_hours)) } td { (r.cpu_efficiency.map_or_else(|| "-".to_string(), |e| format!("{:.0}%", e * 100.0))) } td { (hours(r.unused_core_hours)) } td { (r.records) } }
                        }
                    }
                }
            }
            section {
                h2 { "Top users" }
                table id="top-users" {
                    thead { tr { th { "User" } th { "Charge" } th { "Core-hours" } } }
                    tbody {
                        @for r in users.rows.iter().filter(|r| !r.key.is_empty()).take(10) {
                            tr { td { (r.key) } td { (format(r.charge, &unit)) } td { (hours(r.core_hours)) } }
                        }
                    }
                }
            }
        }
        h2 { "Budgets" }
        (budget_table(&list))
        p class="small" { "Charges are in " (unit) ", per second of each attempt and workspace session, at the task's share of its worker's shape. From the command line: " code { "trestle costs --by user --days 30" } "." }
    };
    html_response(StatusCode::OK, page(Some(&v), Nav::Costs, "Costs", body))
}
