//! Workflow endpoints: pipelines, upstream outputs (for the worker), and
//! the event stream (server-sent events, resumable by event id).

use crate::client::{Client, Timeout, decode_json, transfer_error};
use crate::error::ClientError;
use crate::urls;
use futures::{Stream, StreamExt};
use reqwest::Method;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::api::workflow::{EventView, UpstreamList};

/// Filters for [`Client::events`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this job and its children.
    pub job: Option<i64>,
    /// Only these states.
    pub states: Vec<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Keep the stream open for new events.
    pub follow: bool,
}

/// One server-sent event as read from the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:` field.
    pub id: Option<String>,
    /// `event:` field (`message` when absent).
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// Incremental parser of a `text/event-stream` body.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if self.has_data {
                    let mut e = std::mem::take(&mut self.current);
                    if e.event.is_empty() {
                        e.event = "message".into();
                    }
                    out.push(e);
                } else {
                    self.current = SseEvent::default();
                }
                self.has_data = false;
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if text.starts_with(':') {
                continue;
            }
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (text.to_string(), String::new()),
            };
            match field.as_str() {
                "id" => self.current.id = Some(value),
                "event" => self.current.event = value,
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(&value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

impl Client {
    /// `POST /api/v1/pipelines`: submits a pipeline; returns its parent job
    /// (steps in `flow.steps`).
    pub async fn submit_pipeline(
        &self,
        pipeline: &serde_json::Value,
    ) -> Result<JobView, ClientError> {
        self.send_json(Method::POST, Timeout::Default, Some(pipeline), |b| {
            urls::api(b, &["pipelines"])
        })
        .await
    }

    /// `GET /api/v1/jobs/{id}/upstream`: outputs of the jobs `job_id`
    /// depends on.
    pub async fn upstream(&self, job_id: i64) -> Result<UpstreamList, ClientError> {
        let id = job_id.to_string();
        let resp = self
            .execute(Timeout::Default, |http, base| {
                Ok(http.get(urls::api(base, &["jobs", &id, "upstream"])))
            })
            .await?;
        decode_json(resp).await
    }

    /// Downloads one upstream file of `job_id` (from job `dep`, attempt
    /// `attempt`) to `dest`; returns its size.
    pub async fn download_upstream(
        &self,
        job_id: i64,
        dep: i64,
        attempt: u32,
        path: &str,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let (id, dep, attempt) = (job_id.to_string(), dep.to_string(), attempt.to_string());
        let resp = self
            .execute(Timeout::Unlimited, |http, base| {
                let mut u = urls::api(base, &["jobs", &id, "upstream", &dep, &attempt]);
                urls::push_file_path(&mut u, path);
                Ok(http.get(u))
            })
            .await?;
        let io = |what: &str, e: std::io::Error| {
            ClientError::Io(format!("cannot {what} {}: {e}", dest.display()))
        };
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("create the directory for", e))?;
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| io("create", e))?;
        let mut body = resp.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| transfer_error(&e))?;
            file.write_all(&chunk).await.map_err(|e| io("write", e))?;
            n += chunk.len() as u64;
        }
        file.flush().await.map_err(|e| io("write", e))?;
        Ok(n)
    }

    /// `GET /api/v1/events`: job events after `last_id` (sent as
    /// `Last-Event-ID`), as a stream. Without `follow` it ends once it has
    /// caught up; with it, it stays open (reconnect with the last id seen
    /// to resume without losing events).
    pub async fn events(
        &self,
        query: &EventQuery,
        last_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<EventView, ClientError>> + use<>, ClientError> {
        let resp = self
            .execute(Timeout::Unlimited, |http, base| {
                let mut u = urls::api(base, &["events"]);
                if let Some(j) = query.job {
                    urls::add_query(&mut u, "job", &j.to_string());
                }
                if !query.states.is_empty() {
                    let s: Vec<&str> = query.states.iter().map(|s| s.as_str()).collect();
                    urls::add_query(&mut u, "state", &s.join(","));
                }
                if let Some(q) = &query.queue {
                    urls::add_query(&mut u, "queue", q);
                }
                if query.follow {
                    urls::add_query(&mut u, "follow", "true");
                }
                let mut req = http.get(u).header("accept", "text/event-stream");
                if let Some(id) = last_id {
                    req = req.header("last-event-id", id.to_string());
                }
                Ok(req)
            })
            .await?;
        let body = resp.bytes_stream();
        let parsed = futures::stream::unfold(
            (
                body,
                SseParser::default(),
                std::collections::VecDeque::new(),
            ),
            |(mut body, mut parser, mut queue)| async move {
                loop {
                    if let Some(e) = queue.pop_front() {
                        return Some((e, (body, parser, queue)));
                    }
                    match body.next().await {
                        None => return None,
                        Some(Err(e)) => {
                            return Some((Err(transfer_error(&e)), (body, parser, queue)));
                        }
                        Some(Ok(bytes)) => {
                            for ev in parser.push(&bytes) {
                                queue.push_back(decode_event(ev));
                            }
                        }
                    }
                }
            },
        );
        Ok(parsed.filter_map(|r| async move { r.transpose() }))
    }
}

/// An SSE event as a job event; `None` for other event types.
fn decode_event(ev: SseEvent) -> Result<Option<EventView>, ClientError> {
    match ev.event.as_str() {
        "job" => serde_json::from_str(&ev.data)
            .map(Some)
            .map_err(|e| ClientError::Decode(format!("event: {e}"))),
        "error" => Err(ClientError::Io(format!(
            "the event stream failed: {}",
            ev.data
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_event_streams_across_chunks() {
        let mut p = SseParser::default();
        assert!(
            p.push(b": keep-alive\n\nid: 7\nevent: job\ndata: {\"a\"")
                .is_empty()
        );
        let got = p.push(b":1}\n\nid: 8\r\ndata: x\r\ndata: y\r\n\r\n");
        assert_eq!(
            got,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    event: "job".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: Some("8".into()),
                    event: "message".into(),
                    data: "x\ny".into()
                }
            ]
        );
        assert!(p.push(b"retry: 5\n\n").is_empty());
    }

    #[test]
    fn decodes_job_events() {
        let ev = SseEvent {
            id: Some("3".into()),
            event: "job".into(),
            data: r#"{"id":3,"job_id":9,"queue":"default","state":"SUCCEEDED","time":1}"#.into(),
        };
        let e = decode_event(ev).unwrap().unwrap();
        assert_eq!((e.id, e.job_id, e.state), (3, 9, JobState::Succeeded));
        let other = SseEvent {
            event: "message".into(),
            ..Default::default()
        };
        assert!(decode_event(other).unwrap().is_none());
        let err = SseEvent {
            event: "error".into(),
            data: "db down".into(),
            ..Default::default()
        };
        assert!(decode_event(err).is_err());
    }
}
