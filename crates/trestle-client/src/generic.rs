//! Generic JSON calls for the API's smaller resources (users, tokens,
//! projects, audit), whose wire types live in `trestle-core`.

use crate::client::{Client, Timeout};
use crate::error::ClientError;
use crate::urls;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Client {
    /// Sends `method` to `/api/v1/SEGMENTS?QUERY` with an optional JSON body
    /// and decodes the JSON answer.
    pub async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.send_json(method, Timeout::Default, body, |b| {
            let mut u = urls::api(b, segments);
            for (k, v) in query {
                urls::add_query(&mut u, k, v);
            }
            u
        })
        .await
    }

    /// Like [`Client::call`] for answers without a body (204).
    pub async fn call_empty(&self, method: Method, segments: &[&str]) -> Result<(), ClientError> {
        self.send_empty(method, |b| urls::api(b, segments)).await
    }
}
