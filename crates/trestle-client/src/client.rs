//! The client: connection handling, failover between servers, and the JSON
//! endpoints.

use crate::error::{ClientError, error_chain};
use crate::urls;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use trestle_core::JobState;
use trestle_core::api::{
    BatchSubmit, BatchSubmitted, JobList, JobView, LeaseRequest, LeaseResponse, LogSlice,
    UpdatesRequest, UpdatesResponse, UploadCreated, WorkerRegistration, WorkerView,
};
use url::Url;

/// How long establishing a TCP (and TLS) connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit for one ordinary JSON request (not long-polls, not file
/// transfers, which have no overall limit).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Extra time a lease long-poll may take beyond its `wait_ms`.
pub const LEASE_GRACE: Duration = Duration::from_secs(10);

/// Filters for [`Client::list_jobs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only jobs in one of these states (empty: all).
    pub states: Vec<JobState>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs with an id below this one (paging: a previous page's
    /// `next_before`).
    pub before: Option<i64>,
    /// At most this many jobs.
    pub limit: Option<u32>,
    /// Only jobs with this name.
    pub name: Option<String>,
    /// Only children of this array or pipeline.
    pub parent: Option<i64>,
    /// Only the array child with this index (with `parent`).
    pub index: Option<u32>,
}

impl JobQuery {
    /// Adds the query parameters to `url`.
    pub(crate) fn apply(&self, url: &mut Url) {
        if !self.states.is_empty() {
            let states: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
            urls::add_query(url, "state", &states.join(","));
        }
        if let Some(q) = &self.queue {
            urls::add_query(url, "queue", q);
        }
        if let Some(b) = self.before {
            urls::add_query(url, "before", &b.to_string());
        }
        if let Some(n) = &self.name {
            urls::add_query(url, "name", n);
        }
        if let Some(p) = self.parent {
            urls::add_query(url, "parent", &p.to_string());
        }
        if let Some(i) = self.index {
            urls::add_query(url, "index", &i.to_string());
        }
        if let Some(l) = self.limit {
            urls::add_query(url, "limit", &l.to_string());
        }
    }
}

/// A typed client for the Trestle REST API.
///
/// Cheap to clone (clones share connections and the remembered server).
/// With several base URLs, a request that cannot connect to the current
/// server is tried on the next one, and the first that answers becomes the
/// current server. Only connection failures fail over: an error status is
/// the server's answer and is returned as is.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) bases: Arc<[Url]>,
    current: Arc<AtomicUsize>,
    request_timeout: Duration,
}

/// Whether a request may be given a per-request timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// The client's ordinary request timeout.
    Default,
    /// This one.
    Exactly(Duration),
    /// None (file transfers of any size).
    Unlimited,
}

/// True when the server closed or reset the connection before it
/// answered (not a timeout, not a bad answer).
fn dropped_before_answer(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_status() || e.is_decode() {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        if c.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        cause = c.source();
    }
    false
}

impl Client {
    /// A client for the servers at `base_urls` (such as
    /// `http://127.0.0.1:8080`, without `/api/v1`), sending `token` as a
    /// bearer token when given.
    pub fn new(base_urls: Vec<String>, token: Option<String>) -> Result<Client, ClientError> {
        if base_urls.is_empty() {
            return Err(ClientError::Config("no server URL given".into()));
        }
        let bases = base_urls
            .iter()
            .map(|u| urls::parse_base(u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = HeaderMap::new();
        if let Some(token) = token.filter(|t| !t.trim().is_empty()) {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .map_err(|_| ClientError::Config("the token contains invalid characters".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .default_headers(headers)
            .user_agent(concat!("trestle/", env!("CARGO_PKG_VERSION")));
        if bases.iter().all(|b| b.scheme() == "http") {
            // No TLS to verify: skip loading the system's certificate store,
            // which costs milliseconds per process (every `sbatch` and
            // `squeue` of the Slurm drop-in is one process).
            builder = builder.tls_certs_only(Vec::<reqwest::Certificate>::new());
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(error_chain(&e)))?;
        Ok(Client {
            http,
            bases: bases.into(),
            current: Arc::new(AtomicUsize::new(0)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// The same client with another limit for ordinary JSON requests.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Client {
        self.request_timeout = timeout;
        self
    }

    /// The base URL requests currently go to.
    pub fn current_base(&self) -> &Url {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Sends the request `build` makes for a base URL, failing over to the
    /// next base URL on connection errors, and turns error statuses into
    /// [`ClientError::Api`].
    pub(crate) async fn execute<F>(
        &self,
        timeout: Timeout,
        build: F,
    ) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client, &Url) -> Result<RequestBuilder, ClientError>,
    {
        let n = self.bases.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let base = &self.bases[idx];
            let mut req = build(&self.http, base)?;
            match timeout {
                Timeout::Default => req = req.timeout(self.request_timeout),
                Timeout::Exactly(t) => req = req.timeout(t),
                Timeout::Unlimited => {}
            }
            let request = req.build().map_err(|e| transfer_error(&e))?;
            // A read may go to the next server when this one went away
            // before answering (it was killed with the request in flight);
            // a change may not, since it may have been made.
            let idempotent = matches!(*request.method(), Method::GET | Method::HEAD);
            match self.http.execute(request).await {
                Ok(resp) => {
                    if idx != start {
                        self.current.store(idx, Ordering::Relaxed);
                    }
                    return check_status(resp).await;
                }
                Err(e) if e.is_connect() || (idempotent && dropped_before_answer(&e)) => {
                    failures.push(format!("{}: {}", display_base(base), connect_reason(&e)));
                }
                Err(e) => return Err(transfer_error(&e)),
            }
        }
        Err(ClientError::Connect(format!(
            "cannot reach the Trestle server ({})",
            failures.join("; ")
        )))
    }

    /// Sends a request without a body to `url_of(base)` and decodes JSON.
    async fn get_json<T: DeserializeOwned>(
        &self,
        url_of: impl Fn(&Url) -> Url,
    ) -> Result<T, ClientError> {
        let resp = self
            .execute(Timeout::Default, |http, base| Ok(http.get(url_of(base))))
            .await?;
        decode_json(resp).await
    }

    /// Sends `method` with a JSON body (or none) and decodes a JSON answer.
    pub(crate) async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        timeout: Timeout,
        body: Option<&B>,
        url_of: impl Fn(&Url) -> Url,
    ) -> Result<T, ClientError> {
        let bytes = match body {
            Some(b) => Some(bytes::Bytes::from(
                serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?,
            )),
            None => None,
        };
        let resp = self
            .execute(timeout, |http, base| {
                let req = http.request(method.clone(), url_of(base));
                Ok(match &bytes {
                    Some(b) => req
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(b.clone()),
                    None => req,
                })
            })
            .await?;
        decode_json(resp).await
    }

    /// Sends a request whose answer has no body worth reading.
    pub(crate) async fn send_empty(
        &self,
        method: Method,
        url_of: impl Fn(&Url) -> Url,
    ) -> Result<(), ClientError> {
        self.execute(Timeout::Default, |http, base| {
            Ok(http.request(method.clone(), url_of(base)))
        })
        .await?;
        Ok(())
    }

    // ----- jobs -----

    /// `POST /api/v1/jobs`: submits one job (native `JobRequest` JSON or the
    /// seed's job JSON).
    pub async fn submit_job(&self, job: &serde_json::Value) -> Result<JobView, ClientError> {
        self.send_json(Method::POST, Timeout::Default, Some(job), |b| {
            urls::api(b, &["jobs"])
        })
        .await
    }

    /// `POST /api/v1/jobs/batch`: submits several jobs, all or nothing.
    pub async fn submit_batch(
        &self,
        jobs: Vec<serde_json::Value>,
    ) -> Result<BatchSubmitted, ClientError> {
        let body = BatchSubmit { jobs };
        self.send_json(Method::POST, Timeout::Default, Some(&body), |b| {
            urls::api(b, &["jobs", "batch"])
        })
        .await
    }

    /// `GET /api/v1/jobs`: a page of jobs, newest first.
    pub async fn list_jobs(&self, query: &JobQuery) -> Result<JobList, ClientError> {
        self.get_json(|b| {
            let mut u = urls::api(b, &["jobs"]);
            query.apply(&mut u);
            u
        })
        .await
    }

    /// `GET /api/v1/jobs/{id}`: one job with its attempts.
    pub async fn get_job(&self, id: i64) -> Result<JobView, ClientError> {
        let id = id.to_string();
        self.get_json(|b| urls::api(b, &["jobs", &id])).await
    }

    /// `POST /api/v1/jobs/{id}/cancel`.
    pub async fn cancel_job(&self, id: i64) -> Result<JobView, ClientError> {
        let id = id.to_string();
        self.send_json::<(), _>(Method::POST, Timeout::Default, None, |b| {
            urls::api(b, &["jobs", &id, "cancel"])
        })
        .await
    }

    /// `POST /api/v1/jobs/{id}/resubmit`: the job's work again as a new job.
    pub async fn resubmit_job(&self, id: i64) -> Result<JobView, ClientError> {
        let id = id.to_string();
        self.send_json::<(), _>(Method::POST, Timeout::Default, None, |b| {
            urls::api(b, &["jobs", &id, "resubmit"])
        })
        .await
    }

    /// `POST /api/v1/jobs/{id}/resubmit?failed=true`: an array's failed
    /// children again, as a new array of those indices.
    pub async fn resubmit_failed(&self, id: i64) -> Result<JobView, ClientError> {
        let id = id.to_string();
        self.send_json::<(), _>(Method::POST, Timeout::Default, None, |b| {
            let mut u = urls::api(b, &["jobs", &id, "resubmit"]);
            urls::add_query(&mut u, "failed", "true");
            u
        })
        .await
    }

    /// `GET /api/v1/jobs/{id}/log`: output of `attempt` (default: the
    /// latest) after chunk `after` (0: from the start).
    pub async fn job_log(
        &self,
        id: i64,
        attempt: Option<u32>,
        after: u32,
    ) -> Result<LogSlice, ClientError> {
        let id = id.to_string();
        self.get_json(|b| {
            let mut u = urls::api(b, &["jobs", &id, "log"]);
            if let Some(a) = attempt {
                urls::add_query(&mut u, "attempt", &a.to_string());
            }
            urls::add_query(&mut u, "after", &after.to_string());
            u
        })
        .await
    }

    // ----- uploads -----

    /// `POST /api/v1/uploads`: a new, empty input folder.
    pub async fn create_upload(&self) -> Result<UploadCreated, ClientError> {
        self.send_json::<(), _>(Method::POST, Timeout::Default, None, |b| {
            urls::api(b, &["uploads"])
        })
        .await
    }

    // ----- workers -----

    /// `GET /api/v1/workers`.
    pub async fn list_workers(&self) -> Result<Vec<WorkerView>, ClientError> {
        self.get_json(|b| urls::api(b, &["workers"])).await
    }

    /// `POST /api/v1/workers`: registers a worker.
    pub async fn register_worker(
        &self,
        registration: &WorkerRegistration,
    ) -> Result<WorkerView, ClientError> {
        self.send_json(Method::POST, Timeout::Default, Some(registration), |b| {
            urls::api(b, &["workers"])
        })
        .await
    }

    /// `DELETE /api/v1/workers/{id}`: the server hands the worker's
    /// unfinished attempts back to their queues.
    pub async fn deregister_worker(&self, worker_id: &str) -> Result<(), ClientError> {
        self.send_empty(Method::DELETE, |b| urls::api(b, &["workers", worker_id]))
            .await
    }

    /// `POST /api/v1/workers/{id}/lease`: jobs that fit `request.free`.
    /// Long-polls up to `request.wait_ms`; the request may take that long
    /// plus [`LEASE_GRACE`].
    pub async fn lease(
        &self,
        worker_id: &str,
        request: &LeaseRequest,
    ) -> Result<LeaseResponse, ClientError> {
        let timeout = Duration::from_millis(request.wait_ms) + LEASE_GRACE;
        self.send_json(
            Method::POST,
            Timeout::Exactly(timeout),
            Some(request),
            |b| urls::api(b, &["workers", worker_id, "lease"]),
        )
        .await
    }

    /// `POST /api/v1/workers/{id}/updates`: heartbeats and reports.
    pub async fn updates(
        &self,
        worker_id: &str,
        request: &UpdatesRequest,
    ) -> Result<UpdatesResponse, ClientError> {
        self.send_json(Method::POST, Timeout::Default, Some(request), |b| {
            urls::api(b, &["workers", worker_id, "updates"])
        })
        .await
    }

    // ----- system -----

    /// `GET /healthz`: true when a server answers with a success status.
    pub async fn healthz(&self) -> bool {
        self.probe("healthz").await
    }

    /// `GET /readyz`: true when a server answers that its database is
    /// reachable.
    pub async fn readyz(&self) -> bool {
        self.probe("readyz").await
    }

    async fn probe(&self, path: &str) -> bool {
        self.execute(Timeout::Exactly(CONNECT_TIMEOUT), |http, base| {
            Ok(http.get(urls::join(base, &[path])))
        })
        .await
        .is_ok()
    }

    /// GETs a text resource by its path below the base URL, such as
    /// `/metrics` or `/api/v1/openapi.json`.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let resp = self
            .execute(Timeout::Default, |http, base| {
                Ok(http.get(urls::join(base, &segments)))
            })
            .await?;
        resp.text().await.map_err(|e| transfer_error(&e))
    }
}

/// Passes success answers through; reads the body of others into an error.
async fn check_status(resp: Response) -> Result<Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(ClientError::from_response_body(status.as_u16(), &body))
}

/// Reads and decodes a JSON answer.
pub(crate) async fn decode_json<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let url = resp.url().path().to_string();
    let body = resp.bytes().await.map_err(|e| transfer_error(&e))?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("{url}: {e}")))
}

/// A reqwest error after the connection was made.
pub(crate) fn transfer_error(e: &reqwest::Error) -> ClientError {
    if e.is_timeout() {
        let url = e.url().map(|u| u.as_str().to_string()).unwrap_or_default();
        return ClientError::Io(format!("request to {url} timed out"));
    }
    if e.is_decode() {
        return ClientError::Decode(error_chain(e));
    }
    ClientError::Io(error_chain(e))
}

/// The innermost reason of a connect error ("Connection refused").
pub(crate) fn connect_reason(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() {
            reason = text;
        }
        source = s.source();
    }
    reason
}

/// A base URL as people wrote it (without the trailing slash `Url` adds).
fn display_base(base: &Url) -> String {
    base.as_str().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_query_parameters() {
        let base = urls::parse_base("http://h").unwrap();
        let mut u = urls::api(&base, &["jobs"]);
        JobQuery::default().apply(&mut u);
        assert_eq!(u.query(), None);
        let q = JobQuery {
            states: vec![JobState::Running, JobState::Failed],
            queue: Some("gpu".into()),
            before: Some(120),
            limit: Some(50),
            name: Some("sweep".into()),
            parent: Some(1013),
            index: Some(17),
        };
        q.apply(&mut u);
        assert_eq!(
            u.query(),
            Some(
                "state=RUNNING%2CFAILED&queue=gpu&before=120&name=sweep&parent=1013&index=17&limit=50"
            )
        );
    }

    #[test]
    fn constructor_validates() {
        assert!(matches!(
            Client::new(vec![], None),
            Err(ClientError::Config(_))
        ));
        assert!(Client::new(vec!["http://a:1".into()], Some("bad\ntoken".into())).is_err());
        let c = Client::new(
            vec!["http://a:1/".into(), "b:2".into()],
            Some("secret".into()),
        )
        .unwrap();
        assert_eq!(c.current_base().as_str(), "http://a:1/");
    }

    #[tokio::test]
    async fn connect_error_names_every_url() {
        // Port 1 on localhost: nothing listens there, connections are refused.
        let c = Client::new(
            vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            None,
        )
        .unwrap();
        let err = c.get_job(1).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Connect(_)), "{err:?}");
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(text.contains("http://127.0.0.1:2"), "{text}");
        assert!(!c.healthz().await);
    }
}
