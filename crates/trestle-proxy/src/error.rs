//! The crate's one error type and how it is answered.

use axum::body::Body;
use http::{Response, StatusCode, header};

/// Why a proxied request or relay could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The worker has no tunnel to this server (not connected yet, or gone).
    #[error("worker `{0}` has no tunnel to this server")]
    NoTunnel(String),
    /// The worker does not host this workspace (any more).
    #[error("workspace {0} is not running on its worker")]
    UnknownWorkspace(i64),
    /// The worker could not reach the app, the port or the shell.
    #[error("the workspace cannot be reached: {0}")]
    Unavailable(String),
    /// The tunnel broke or spoke nonsense.
    #[error("tunnel error: {0}")]
    Tunnel(String),
    /// The worker did not answer in time.
    #[error("the workspace did not answer in time")]
    Timeout,
    /// The request cannot be forwarded as it is.
    #[error("{0}")]
    BadRequest(String),
    /// Reading or writing a stream failed.
    #[error("tunnel IO: {0}")]
    Io(#[from] std::io::Error),
}

impl ProxyError {
    /// The status it is answered with: 400 for a bad request, 504 for a
    /// timeout, 502 otherwise (the gateway could not reach the workspace).
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The stable error code of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoTunnel(_) => "workspace-unreachable",
            ProxyError::UnknownWorkspace(_) => "workspace-not-running",
            ProxyError::Unavailable(_) | ProxyError::Tunnel(_) | ProxyError::Io(_) => {
                "workspace-unavailable"
            }
            ProxyError::Timeout => "workspace-timeout",
            ProxyError::BadRequest(_) => "upgrade-required",
        }
    }

    /// The answer in the API's error shape
    /// (`{"error":{"code","message","field"}}`).
    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({
            "error": {"code": self.code(), "message": self.to_string(), "field": null}
        });
        let mut resp = Response::new(Body::from(body.to_string()));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}
