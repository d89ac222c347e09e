//! The client's one error type.

use trestle_core::api::ErrorBody;

/// Longest server body text kept in an error message when the body is not
/// the API's JSON error shape (an HTML page from a proxy, for example).
const MAX_BODY_TEXT: usize = 2000;

/// Everything that can go wrong talking to a Trestle server.
///
/// `Display` is meant for people: a CLI can print `error: {err}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{}", fmt_api(code, message, field.as_deref()))]
    Api {
        /// HTTP status code.
        status: u16,
        /// Stable error code (`invalid-duration`, `not-found`, ...), or
        /// `http-<status>` when the body was not an API error.
        code: String,
        /// Explanation for a person.
        message: String,
        /// The offending field, when the server named one.
        field: Option<String>,
    },
    /// No server could be reached (connection refused, DNS failure, connect
    /// timeout). The message names the URL(s) tried.
    #[error("{0}")]
    Connect(String),
    /// The server answered, but with something this client cannot read.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// A transfer failed after the connection was made (reset, timeout), or a
    /// local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The client was given an unusable base URL or token.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

fn fmt_api(code: &str, message: &str, field: Option<&str>) -> String {
    match field {
        Some(f) if !f.is_empty() => format!("[{code}] {f}: {message}"),
        _ => format!("[{code}] {message}"),
    }
}

impl ClientError {
    /// The HTTP status, for [`ClientError::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API error code, for [`ClientError::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True for failures that may go away by themselves: no connection,
    /// a broken transfer, or a 5xx / 429 answer (server overloaded, a proxy
    /// in front of a restarting server). Callers that must not lose work
    /// retry these.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect(_) | ClientError::Io(_) => true,
            ClientError::Api { status, .. } => *status >= 500 || *status == 429,
            ClientError::Decode(_) | ClientError::Config(_) => false,
        }
    }

    /// Builds the error for a non-success answer from its status and body.
    ///
    /// A body of the API's shape `{"error": {"code", "message", "field"}}`
    /// gives its code, message and field; anything else gives the code
    /// `http-<status>` and the (trimmed, shortened) body text as message.
    pub fn from_response_body(status: u16, body: &[u8]) -> ClientError {
        if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
            return ClientError::Api {
                status,
                code: parsed.error.code,
                message: parsed.error.message,
                field: parsed.error.field,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("request failed")
                .to_string()
        } else {
            truncate(text, MAX_BODY_TEXT)
        };
        ClientError::Api {
            status,
            code: format!("http-{status}"),
            message,
            field: None,
        }
    }
}

/// Shortens `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The message of an error and all its sources, joined by `: ` (reqwest's
/// own message alone rarely says *why*, e.g. "Connection refused").
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_api_error_body() {
        let body = br#"{"error":{"code":"invalid-duration","message":"`soon` is not a duration","field":"timeout"}}"#;
        let e = ClientError::from_response_body(400, body);
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.code(), Some("invalid-duration"));
        assert_eq!(
            e.to_string(),
            "[invalid-duration] timeout: `soon` is not a duration"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn api_error_without_field() {
        let body = br#"{"error":{"code":"not-found","message":"no job 7"}}"#;
        let e = ClientError::from_response_body(404, body);
        assert_eq!(e.to_string(), "[not-found] no job 7");
        assert_eq!(
            e,
            ClientError::Api {
                status: 404,
                code: "not-found".into(),
                message: "no job 7".into(),
                field: None
            }
        );
    }

    #[test]
    fn unparsable_body_keeps_text() {
        let e = ClientError::from_response_body(502, b"  <html>Bad Gateway</html>\n");
        assert_eq!(e.code(), Some("http-502"));
        assert_eq!(e.to_string(), "[http-502] <html>Bad Gateway</html>");
        assert!(e.is_transient());
        let e = ClientError::from_response_body(503, b"");
        assert_eq!(e.to_string(), "[http-503] Service Unavailable");
        let long = "é".repeat(MAX_BODY_TEXT);
        let e = ClientError::from_response_body(500, long.as_bytes());
        match e {
            ClientError::Api { message, .. } => {
                assert!(message.len() <= MAX_BODY_TEXT + 3);
                assert!(message.ends_with("..."));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn other_variants() {
        let e = ClientError::Connect("cannot reach http://x: refused".into());
        assert_eq!(e.status(), None);
        assert_eq!(e.code(), None);
        assert!(e.is_transient());
        assert!(!ClientError::Decode("x".into()).is_transient());
    }
}
