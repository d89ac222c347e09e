//! Per-workspace origins: each workspace served at a host of its own
//! (`https://ws-{id}.trestle.example.org`), so that its scripts cannot
//! act with the portal's cookie. The template is checked once; the host
//! of each request is matched against it.

use crate::error::{Result, ValidationError};

/// A checked origin template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginTemplate {
    scheme: String,
    before: String,
    after: String,
}

impl OriginTemplate {
    /// Parses `https://ws-{id}.example.org` (a port may follow the host;
    /// nothing else may).
    pub fn parse(field: &str, t: &str) -> Result<OriginTemplate> {
        let bad = |m: &str| ValidationError::new("invalid-origin", field, format!("`{t}`: {m}"));
        let (scheme, rest) = t
            .split_once("://")
            .filter(|(s, _)| *s == "http" || *s == "https")
            .ok_or_else(|| bad("starts with https:// (or http://)"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') {
            return Err(bad(
                "is an origin: a scheme and a host with `{id}`, no path",
            ));
        }
        let (before, after) = rest
            .split_once("{id}")
            .ok_or_else(|| bad("names the workspace with `{id}` in its host"))?;
        if after.contains("{id}") || before.contains(':') || !after.starts_with('.') {
            return Err(bad(
                "puts `{id}` once in the first label of the host (`ws-{id}.example.org`)",
            ));
        }
        let host_ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
        };
        if !host_ok(before) || !host_ok(after) {
            return Err(bad("is not a host name"));
        }
        Ok(OriginTemplate {
            scheme: scheme.to_string(),
            before: before.to_ascii_lowercase(),
            after: after.to_ascii_lowercase(),
        })
    }

    /// Workspace `id`'s origin (`https://ws-7.example.org`).
    pub fn url(&self, id: i64) -> String {
        format!("{}://{}{id}{}", self.scheme, self.before, self.after)
    }

    /// True for `https`.
    pub fn secure(&self) -> bool {
        self.scheme == "https"
    }

    /// The workspace a request's `Host` names, if it is one of these.
    pub fn workspace_of(&self, host: &str) -> Option<i64> {
        let h = host.trim().to_ascii_lowercase();
        let id = h.strip_prefix(&self.before)?.strip_suffix(&self.after)?;
        if id.is_empty()
            || id.len() > 18
            || !id.bytes().all(|b| b.is_ascii_digit())
            || id.starts_with('0')
        {
            return None;
        }
        id.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_hosts() {
        let t = OriginTemplate::parse("origin", "https://ws-{id}.trestle.example.org").unwrap();
        assert_eq!(t.url(7), "https://ws-7.trestle.example.org");
        assert_eq!(t.workspace_of("WS-7.trestle.example.org"), Some(7));
        assert_eq!(t.workspace_of("ws-7.trestle.example.org.evil"), None);
        assert_eq!(t.workspace_of("ws-07.trestle.example.org"), None);
        assert_eq!(t.workspace_of("ws-.trestle.example.org"), None);
        assert_eq!(t.workspace_of("trestle.example.org"), None);
        let l = OriginTemplate::parse("origin", "http://ws-{id}.localhost:8080/").unwrap();
        assert_eq!(l.workspace_of("ws-12.localhost:8080"), Some(12));
        assert_eq!(l.workspace_of("ws-12.localhost:9090"), None);
        assert!(!l.secure());
        for bad in [
            "ftp://ws-{id}.x",
            "https://ws.x",
            "https://x/{id}",
            "https://ws-{id}-{id}.x",
            "https://x.{id}",
            "https://ws-{id}.x/path",
        ] {
            assert!(OriginTemplate::parse("origin", bad).is_err(), "{bad}");
        }
    }
}
