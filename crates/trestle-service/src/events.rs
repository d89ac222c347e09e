//! Job state changes read from the event outbox: which events a caller
//! asked for and may see (`job`, the job or its children; `state`;
//! `queue`; `after`, or a `Last-Event-ID` to resume after; `follow` to
//! keep reading new ones), and a cursor that reads them in id order
//! without skipping an event whose transaction has not committed yet. The
//! edges frame them (server-sent events in the API).

use crate::access;
use crate::error::{Parsed, ServiceError, ServiceResult};
use crate::jobs::parse_id;
use crate::principal::Principal;
use crate::state::Service;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use trestle_core::JobState;
use trestle_core::api::workflow::EventView;
use trestle_core::identity::authz::{Action, Resource};
use trestle_store::EventFilter;

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

/// An event id given as text in `field`.
fn parse_cursor(field: &str, v: &str) -> ServiceResult<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ServiceError::bad("invalid-cursor", field, format!("`{v}` is not an event id"))
        })
}

/// A reader of the events a caller may see, in id order.
pub struct EventCursor {
    app: Service,
    filter: EventFilter,
    follow: bool,
    hole: Option<(i64, Instant)>,
}

/// The events `p` asked for with query parameters `q` (`job`, `state`,
/// `queue`, `after`, `follow`), resuming after `last_event_id` if given
/// (as the edge read it: a header that is not text fails here, after the
/// parameters). A `job` must be one `p` may read; others see only the
/// events of jobs they may read.
pub async fn open(
    app: &Service,
    p: &Principal,
    q: &HashMap<String, String>,
    last_event_id: Option<Parsed<&str>>,
) -> ServiceResult<EventCursor> {
    let mut filter = EventFilter::default();
    let mut follow = false;
    for (k, v) in q {
        match k.as_str() {
            "job" => {
                let id = parse_id("job", v)?;
                access::job(app, p, id, Action::JobRead).await?;
                filter.job = Some(id);
            }
            "state" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    filter.states.push(JobState::parse(s).ok_or_else(|| {
                        ServiceError::bad(
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
                        return Err(ServiceError::bad(
                            "invalid-follow",
                            "follow",
                            format!("follow must be true or false, got `{v}`"),
                        ));
                    }
                }
            }
            other => {
                return Err(ServiceError::bad(
                    "unknown-parameter",
                    other,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    if let Some(last) = last_event_id {
        filter.after = parse_cursor("Last-Event-ID", last?)?;
    }
    if !p.is_admin() {
        match p.user() {
            Some(u) => {
                filter.visible_to = Some(u.name.clone());
                filter.visible_projects = u.readable_projects();
            }
            None => access::check(p, Action::JobRead, Resource::None, "events")?,
        }
    }
    Ok(EventCursor {
        app: app.clone(),
        filter,
        follow,
        hole: None,
    })
}

impl EventCursor {
    /// Reads the next events, up to the horizon ([`horizon`]); `None` when
    /// there is nothing new (yet). A failure's message is the store's
    /// error (kind `Internal`).
    pub async fn next_batch(&mut self) -> ServiceResult<Option<Vec<EventView>>> {
        let failed = |e: trestle_store::StoreError| ServiceError::internal(e.to_string());
        let raw = self
            .app
            .store
            .events(&EventFilter {
                after: self.filter.after,
                limit: PAGE,
                ..Default::default()
            })
            .await
            .map_err(failed)?;
        let ids: Vec<i64> = raw.iter().map(|e| e.id).collect();
        let (h, hole) = horizon(self.filter.after, &ids, self.hole, Instant::now(), GAP_WAIT);
        self.hole = hole;
        if h <= self.filter.after {
            return Ok(None);
        }
        let mut f = self.filter.clone();
        f.until = Some(h);
        f.limit = PAGE;
        let events = self.app.store.events(&f).await.map_err(failed)?;
        // Everything up to the horizon has been seen, delivered or not.
        self.filter.after = h;
        Ok(Some(events))
    }

    /// Whether a reader that found nothing new should look again later:
    /// it follows the outbox, or a hole is being waited for.
    pub fn waits(&self) -> bool {
        self.follow || self.hole.is_some()
    }
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
