//! Upgraded connections (`Connection: upgrade`): a worker's tunnel, and the
//! CLI's shells and port forwards.

use crate::client::{Client, connect_reason, transfer_error};
use crate::error::ClientError;
use reqwest::StatusCode;
use reqwest::header::{CONNECTION, HeaderValue, UPGRADE};
use std::time::Duration;
use url::Url;

/// An upgraded connection: raw bytes both ways.
pub use reqwest::Upgraded;

/// The longest wait for a server to answer an upgrade request.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// Every base URL this client was given, in order.
    pub fn bases(&self) -> &[Url] {
        &self.bases
    }

    /// `GET {base}/api/v1/{segments}` asking to switch to `protocol`, on
    /// that one server (no fail-over: a worker keeps a tunnel to each).
    /// Returns the upgraded connection once the server answers 101; an
    /// error status is [`ClientError::Api`], no connection
    /// [`ClientError::Connect`].
    pub async fn upgrade(
        &self,
        base: &Url,
        segments: &[&str],
        protocol: &str,
    ) -> Result<Upgraded, ClientError> {
        self.upgrade_with(base, segments, &[], protocol).await
    }

    /// [`Client::upgrade`] with query parameters.
    pub async fn upgrade_with(
        &self,
        base: &Url,
        segments: &[&str],
        query: &[(&str, &str)],
        protocol: &str,
    ) -> Result<Upgraded, ClientError> {
        let value = HeaderValue::from_str(protocol)
            .map_err(|_| ClientError::Config(format!("bad upgrade protocol `{protocol}`")))?;
        let mut url = crate::urls::api(base, segments);
        for (k, v) in query {
            crate::urls::add_query(&mut url, k, v);
        }
        let send = self
            .http
            .get(url)
            .header(CONNECTION, HeaderValue::from_static("upgrade"))
            .header(UPGRADE, value)
            .send();
        let resp = match tokio::time::timeout(UPGRADE_TIMEOUT, send).await {
            Err(_) => return Err(ClientError::Io("the upgrade request timed out".into())),
            Ok(Err(e)) if e.is_connect() => {
                return Err(ClientError::Connect(format!(
                    "cannot reach the Trestle server ({}: {})",
                    base.as_str().trim_end_matches('/'),
                    connect_reason(&e)
                )));
            }
            Ok(Err(e)) => return Err(transfer_error(&e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            if status.is_success() {
                return Err(ClientError::Decode(format!(
                    "the server answered {status} instead of switching to `{protocol}`"
                )));
            }
            let body = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::from_response_body(status.as_u16(), &body));
        }
        resp.upgrade().await.map_err(|e| transfer_error(&e))
    }
}
