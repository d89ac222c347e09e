//! The dashboard: my jobs by state, running now, recent failures with
//! their reasons, and queue depth and worker count over the last hours as
//! a server-rendered SVG chart. The chart reads a small in-memory ring of
//! samples taken by [`Sampler`] ([`Samples`], one per server process; a
//! restart starts afresh).

use super::jobs::job_table;
use super::{Nav, Viewer, html_response, page, state_badge};
use async_trait::async_trait;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trestle_core::JobState;
use trestle_service::Service;
use trestle_service::loops::BackgroundLoop;

/// One sample: (time in ms, jobs waiting, workers).
type Sample = (i64, u64, u64);

/// Samples kept: six hours at one a minute.
const KEEP: usize = 360;

/// The samples of one server process: written by [`Sampler`], read by the
/// dashboard (shared through the router's extensions, not a global).
#[derive(Debug, Default)]
pub struct Samples(Mutex<VecDeque<Sample>>);

impl Samples {
    fn push(&self, s: Sample) {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() >= KEEP {
            r.pop_front();
        }
        r.push_back(s);
    }

    fn all(&self) -> Vec<Sample> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }
}

async fn sample(app: &Service) -> trestle_service::ServiceResult<Sample> {
    // The store's counts, not a listing (which stops at its limit).
    let waiting: u64 = app
        .store
        .counts()
        .await?
        .iter()
        .filter(|(_, s, _)| matches!(s, JobState::Pending | JobState::Runnable))
        .map(|(_, _, n)| n)
        .sum();
    let workers = app.store.list_workers().await?.len();
    Ok((trestle_service::now_ms(), waiting, workers as u64))
}

/// Takes a sample of queue depth and worker count every minute.
pub struct Sampler {
    /// Shared state.
    pub app: Service,
    /// Where the samples go.
    pub samples: Arc<Samples>,
}

/// The sampler as a background loop for the server to run.
pub fn sampler(app: Service, samples: Arc<Samples>) -> Arc<dyn BackgroundLoop> {
    Arc::new(Sampler { app, samples })
}

#[async_trait]
impl BackgroundLoop for Sampler {
    fn name(&self) -> &'static str {
        "portal-sampler"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn tick(&self) -> trestle_service::ServiceResult<()> {
        self.samples.push(sample(&self.app).await?);
        Ok(())
    }
}

/// A line chart of both series.
fn chart(samples: &[Sample]) -> Markup {
    let (w, h, pad) = (640.0_f64, 200.0_f64, 30.0_f64);
    let t0 = samples.first().map_or(0, |s| s.0);
    let t1 = samples.last().map_or(1, |s| s.0).max(t0 + 1);
    let max = samples
        .iter()
        .map(|s| s.1.max(s.2))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |t: i64| pad + (t - t0) as f64 / (t1 - t0) as f64 * (w - 2.0 * pad);
    let y = |v: u64| h - pad - v as f64 / max * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&Sample) -> u64| {
        samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.0), y(f(s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let last = samples.last().copied().unwrap_or((0, 0, 0));
    html! {
        figure class="chart" {
            svg viewBox={ "0 0 " (w) " " (h) } role="img"
                aria-label={ "Jobs waiting and workers over the last " (samples.len()) " samples; now " (last.1) " waiting, " (last.2) " workers" } {
                line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) class="axis" {}
                line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) class="axis" {}
                text x="4" y=(pad + 4.0) class="small" { (max) }
                text x="4" y=(h - pad + 4.0) class="small" { "0" }
                @if samples.len() == 1 {
                    circle cx=(x(last.0)) cy=(y(last.1)) r="4" class="s1" {}
                    circle cx=(x(last.0)) cy=(y(last.2)) r="4" class="s2" {}
                } @else {
                    polyline points=(line(&|s| s.1)) class="s1" {}
                    polyline points=(line(&|s| s.2)) class="s2" {}
                }
            }
            figcaption {
                span class="key s1" { "Jobs waiting (" (last.1) ")" } " "
                span class="key s2" { "Workers (" (last.2) ")" }
                @if let (Some(a), Some(b)) = (samples.first(), samples.last()) {
                    " · " (super::when(a.0)) " to " (super::when(b.0))
                }
            }
        }
    }
}

async fn jobs(app: &Service, v: &Viewer, q: &[(&str, &str)]) -> Vec<trestle_core::api::JobView> {
    let q: HashMap<String, String> = q
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match super::list_jobs(app, &v.p, &q).await {
        Ok(l) => l.jobs,
        Err(_) => Vec::new(),
    }
}

/// `GET /`.
pub async fn page_handler(
    State(app): State<Service>,
    Extension(ring): Extension<Arc<Samples>>,
    v: Viewer,
) -> Response {
    // Counted by the store, not from a page of the listing (which stops
    // at its limit).
    let by_state: BTreeMap<JobState, u64> = app
        .store
        .owner_counts(v.name())
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
    let running = jobs(&app, &v, &[("state", "RUNNING,STARTING"), ("limit", "10")]).await;
    let failed = jobs(&app, &v, &[("state", "FAILED"), ("limit", "5")]).await;
    if ring.all().is_empty()
        && let Ok(s) = sample(&app).await
    {
        ring.push(s);
    }
    let samples = ring.all();
    let body = html! {
        section aria-labelledby="mine-h" {
            h2 id="mine-h" { "My jobs by state" }
            @if by_state.is_empty() { p class="empty" { "You have no jobs yet. " a href="/ui/submit" { "Submit one" } "." } }
            ul class="counts" {
                @for (s, n) in &by_state {
                    li { a href={ "/ui/jobs?state=" (s.as_str()) } { (state_badge(*s)) " " (n) } }
                }
            }
        }
        section aria-labelledby="run-h" { h2 id="run-h" { "Running now" } (job_table(&running)) }
        section aria-labelledby="fail-h" { h2 id="fail-h" { "Recent failures" } (job_table(&failed)) }
        section aria-labelledby="chart-h" { h2 id="chart-h" { "Queue depth and workers" } (chart(&samples)) }
    };
    html_response(StatusCode::OK, page(Some(&v), Nav::Home, "Dashboard", body))
}
