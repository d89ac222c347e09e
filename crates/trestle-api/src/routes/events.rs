//! `GET /api/v1/events`: job state changes as server-sent events, read
//! from the event outbox. Each event's SSE id is its outbox id, so a
//! client that reconnects with `Last-Event-ID` resumes exactly after the
//! last event it saw. Filters: `job` (the job or its children), `state`,
//! `queue`; `follow=true` keeps the stream open for new events.

use crate::error::{ApiError, ApiResult};
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use trestle_core::JobState;
use trestle_core::identity::authz::Action;
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access;
use trestle_store::EventFilter;

/// How often an open stream looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// Events read per round.
const PAGE: u32 = 500;
/// How long a missing event id is waited for before it is taken to be a
/// rolled-back transaction's (PostgreSQL hands out ids before commit).
const GAP_WAIT: Duration = Duration::from_secs(2);

/// Where a reader may safely read up to: the last id of the run of
/// consecutive ids after `cursor`; a hole is waited for (up to `wait`
/// since `hole_seen`) because a transaction holding that id may still
/// commit. Returns the horizon and when the current hole was first seen.
pub fn horizon(
    cursor: i64,
    ids: &[i64],
    hole_seen: Option<(i64, Instant)>,
    now: Instant,
    wait: Duration,
) -> (i64, Option<(i64, Instant)>) {
    let mut h = cursor;
    for &id in ids {
        if id <= h {
            continue;
        }
        if id == h + 1 {
            h = id;
            continue;
        }
        // A hole at h + 1.
        let missing = h + 1;
        match hole_seen {
            Some((m, since)) if m == missing && now.duration_since(since) >= wait => {
                h = id;
            }
            Some((m, since)) if m == missing => return (h, Some((m, since))),
            _ => return (h, Some((missing, now))),
        }
    }
    (h, None)
}

struct Cursor {
    app: Service,
    filter: EventFilter,
    follow: bool,
    hole: Option<(i64, Instant)>,
    buffer: std::collections::VecDeque<Event>,
    done: bool,
}

impl Cursor {
    /// Reads the next batch into the buffer; false when there is nothing
    /// new (yet).
    async fn fill(&mut self) -> Result<bool, String> {
        let raw = self
            .app
            .store
            .events(&EventFilter {
                after: self.filter.after,
                limit: PAGE,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let ids: Vec<i64> = raw.iter().map(|e| e.id).collect();
        let (h, hole) = horizon(self.filter.after, &ids, self.hole, Instant::now(), GAP_WAIT);
        self.hole = hole;
        if h <= self.filter.after {
            return Ok(false);
        }
        let mut f = self.filter.clone();
        f.until = Some(h);
        f.limit = PAGE;
        let events = self.app.store.events(&f).await.map_err(|e| e.to_string())?;
        for e in &events {
            let data = serde_json::to_string(e).map_err(|e| e.to_string())?;
            self.buffer.push_back(
                Event::default()
                    .id(e.id.to_string())
                    .event("job")
                    .data(data),
            );
        }
        // Everything up to the horizon has been seen, delivered or not.
        self.filter.after = h;
        Ok(true)
    }
}

/// `GET /api/v1/events?job=&state=&queue=&after=&follow=`.
pub async fn stream(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let mut filter = EventFilter::default();
    let mut follow = false;
    for (k, v) in &q {
        match k.as_str() {
            "job" => {
                let id = super::parse_id(v).map_err(|mut e| {
                    e.field = Some("job".into());
                    e
                })?;
                access::job(&app, &p, id, Action::JobRead).await?;
                filter.job = Some(id);
            }
            "state" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    filter.states.push(JobState::parse(s).ok_or_else(|| {
                        ApiError::bad(
                            "invalid-state",
                            "state",
                            format!("`{s}` is not a job state"),
                        )
                    })?);
                }
            }
            "queue" => filter.queue = Some(v.clone()),
            "after" => filter.after = parse_cursor("after", v)?,
            "follow" => {
                follow = match v.as_str() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad(
                            "invalid-follow",
                            "follow",
                            format!("follow must be true or false, got `{v}`"),
                        ));
                    }
                }
            }
            other => {
                return Err(ApiError::bad(
                    "unknown-parameter",
                    other,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let text = last.to_str().map_err(|_| {
            ApiError::bad("invalid-last-event-id", "Last-Event-ID", "not an event id")
        })?;
        filter.after = parse_cursor("Last-Event-ID", text)?;
    }
    if !p.is_admin() {
        match p.user() {
            Some(u) => {
                filter.visible_to = Some(u.name.clone());
                filter.visible_projects = u.readable_projects();
            }
            None => access::check(
                &p,
                Action::JobRead,
                trestle_core::identity::authz::Resource::None,
                "events",
            )?,
        }
    }
    let cursor = Cursor {
        app,
        filter,
        follow,
        hole: None,
        buffer: Default::default(),
        done: false,
    };
    let s = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.buffer.pop_front() {
                return Some((Ok(e), c));
            }
            if c.done {
                return None;
            }
            match c.fill().await {
                Ok(true) => continue,
                Ok(false) if !c.follow && c.hole.is_none() => return None,
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream read failed");
                    c.done = true;
                    return Some((Ok(Event::default().event("error").data(e)), c));
                }
            }
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn parse_cursor(field: &str, v: &str) -> ApiResult<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad("invalid-cursor", field, format!("`{v}` is not an event id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_wait_for_holes_then_skip_them() {
        let t0 = Instant::now();
        let w = Duration::from_secs(2);
        assert_eq!(horizon(0, &[1, 2, 3], None, t0, w), (3, None));
        assert_eq!(horizon(5, &[], None, t0, w), (5, None));
        // 4 is missing: stop before it and remember when.
        let (h, hole) = horizon(2, &[3, 5, 6], None, t0, w);
        assert_eq!((h, hole), (3, Some((4, t0))));
        // Still missing shortly after: keep waiting.
        let (h, hole) = horizon(3, &[5, 6], hole, t0 + Duration::from_secs(1), w);
        assert_eq!((h, hole), (3, Some((4, t0))));
        // It arrived: read on.
        assert_eq!(
            horizon(3, &[4, 5, 6], hole, t0 + Duration::from_secs(1), w),
            (6, None)
        );
        // Never arrived (a rolled-back transaction): skipped after the wait.
        assert_eq!(horizon(3, &[5, 6], hole, t0 + w, w), (6, None));
        // A second hole is waited for on its own.
        let (h, hole2) = horizon(3, &[5, 7], hole, t0 + w, w);
        assert_eq!((h, hole2), (5, Some((6, t0 + w))));
    }
}
