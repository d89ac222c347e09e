//! `GET /api/v1/events`: job state changes as server-sent events, read
//! from the event outbox through [`trestle_service::events`]. Each event's
//! SSE id is its outbox id, so a client that reconnects with
//! `Last-Event-ID` resumes exactly after the last event it saw. Filters:
//! `job` (the job or its children), `state`, `queue`; `follow=true` keeps
//! the stream open for new events.

use crate::error::ApiResult;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;
use trestle_service::events::{self as svc, EventCursor};
use trestle_service::{Principal, Service, ServiceError};

/// How often an open stream looks for new events.
const POLL: Duration = Duration::from_millis(200);

/// An open stream: the service's cursor and the events read but not sent.
struct Cursor {
    events: EventCursor,
    buffer: std::collections::VecDeque<Event>,
    done: bool,
}

impl Cursor {
    /// Reads the next batch into the buffer; false when there is nothing
    /// new (yet).
    async fn fill(&mut self) -> Result<bool, String> {
        let Some(events) = self.events.next_batch().await.map_err(|e| e.message)? else {
            return Ok(false);
        };
        for e in &events {
            let data = serde_json::to_string(e).map_err(|e| e.to_string())?;
            self.buffer.push_back(
                Event::default()
                    .id(e.id.to_string())
                    .event("job")
                    .data(data),
            );
        }
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
    let last = headers.get("last-event-id").map(|v| {
        v.to_str().map_err(|_| {
            ServiceError::bad("invalid-last-event-id", "Last-Event-ID", "not an event id")
        })
    });
    let cursor = Cursor {
        events: svc::open(&app, &p, &q, last).await?,
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
                Ok(false) if !c.events.waits() => return None,
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
