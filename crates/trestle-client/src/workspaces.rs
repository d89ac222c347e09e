//! The hosting worker's calls for workspace sessions: reports, and the
//! home saved and restored as a tar archive (streamed, never held whole).

use crate::client::{Client, Timeout};
use crate::error::ClientError;
use crate::urls;
use reqwest::Method;
use std::path::Path;
use trestle_core::api::workspace::SessionReport;
use trestle_core::api::{AttemptRef, LEASE_TOKEN_HEADER};

impl Client {
    /// `POST /api/v1/workers/{id}/sessions`.
    pub async fn session_report(&self, worker: &str, r: &SessionReport) -> Result<(), ClientError> {
        let body = serde_json::to_vec(r).map_err(|e| ClientError::Io(e.to_string()))?;
        self.execute(Timeout::Default, |http, b| {
            Ok(http
                .request(Method::POST, urls::api(b, &["workers", worker, "sessions"]))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone()))
        })
        .await?;
        Ok(())
    }

    /// `PUT /api/v1/workers/{id}/sessions/{job}/home?attempt=N`: sends the
    /// home archive at `file`.
    pub async fn save_home(
        &self,
        worker: &str,
        at: &AttemptRef,
        file: &Path,
    ) -> Result<(), ClientError> {
        let job = at.job_id.to_string();
        let attempt = at.attempt.to_string();
        self.put_file(
            |b| {
                let mut u = urls::api(b, &["workers", worker, "sessions", &job, "home"]);
                urls::add_query(&mut u, "attempt", &attempt);
                u
            },
            Some(&at.token),
            file,
            None,
        )
        .await
    }

    /// `GET /api/v1/workers/{id}/sessions/{job}/home?attempt=N`: writes the
    /// saved home archive to `dest`; its size.
    pub async fn restore_home(
        &self,
        worker: &str,
        at: &AttemptRef,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let job = at.job_id.to_string();
        let attempt = at.attempt.to_string();
        let token = at.token.clone();
        let response = self
            .execute(Timeout::Unlimited, |http, b| {
                let mut u = urls::api(b, &["workers", worker, "sessions", &job, "home"]);
                urls::add_query(&mut u, "attempt", &attempt);
                Ok(http.get(u).header(LEASE_TOKEN_HEADER, token.as_str()))
            })
            .await?;
        crate::files::Download { response }.save(dest).await
    }
}
