//! URL building: base URL parsing and per-segment percent-encoding.

use crate::error::ClientError;
use url::Url;

/// Parses a server base URL such as `http://127.0.0.1:8080`.
///
/// Lenient about what people type: a missing scheme means `http://`, and a
/// trailing `/` or `/api/v1` is dropped. A path prefix (a server behind a
/// reverse proxy at `https://host/trestle`) is kept.
pub fn parse_base(text: &str) -> Result<Url, ClientError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ClientError::Config("empty server URL".into()));
    }
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let mut url = Url::parse(&with_scheme)
        .map_err(|e| ClientError::Config(format!("server URL `{text}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::Config(format!(
            "server URL `{text}` must start with http:// or https://"
        )));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(ClientError::Config(format!(
            "server URL `{text}` has no host"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v1").unwrap_or(path).to_string();
    url.set_path(&path);
    Ok(url)
}

/// `base` plus the given path segments, each percent-encoded on its own (a
/// `/` inside a segment becomes `%2F`).
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.pop_if_empty().extend(segments);
    }
    url
}

/// `base/api/v1/<segments>`.
pub fn api(base: &Url, segments: &[&str]) -> Url {
    let mut all = Vec::with_capacity(segments.len() + 2);
    all.extend_from_slice(&["api", "v1"]);
    all.extend_from_slice(segments);
    join(base, &all)
}

/// Appends a relative file path: split on `/`, every segment encoded on its
/// own, empty and `.` segments dropped (`..` is dropped too; the server
/// rejects such paths anyway, so they never reach a useful place).
pub fn push_file_path(url: &mut Url, rel_path: &str) {
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.pop_if_empty()
            .extend(rel_path.split('/').filter(|s| !s.is_empty() && *s != "."));
    }
}

/// Appends `key=value` to the query.
pub fn add_query(url: &mut Url, key: &str, value: &str) {
    url.query_pairs_mut().append_pair(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Url {
        parse_base(s).unwrap()
    }

    #[test]
    fn parses_bases() {
        assert_eq!(
            base("http://127.0.0.1:8080").as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(base("http://h:1/").as_str(), "http://h:1/");
        assert_eq!(base("h:8080").as_str(), "http://h:8080/");
        assert_eq!(base("http://h/api/v1/").as_str(), "http://h/");
        assert_eq!(base("https://h/trestle/").as_str(), "https://h/trestle");
        assert!(parse_base("").is_err());
        assert!(parse_base("ftp://h").is_err());
        assert!(matches!(parse_base("http://"), Err(ClientError::Config(_))));
    }

    #[test]
    fn builds_api_urls() {
        let b = base("http://h:8080");
        assert_eq!(api(&b, &["jobs"]).as_str(), "http://h:8080/api/v1/jobs");
        assert_eq!(
            api(&b, &["jobs", "12", "cancel"]).as_str(),
            "http://h:8080/api/v1/jobs/12/cancel"
        );
        let prefixed = base("https://h/trestle");
        assert_eq!(
            api(&prefixed, &["workers"]).as_str(),
            "https://h/trestle/api/v1/workers"
        );
        assert_eq!(join(&b, &["healthz"]).as_str(), "http://h:8080/healthz");
    }

    #[test]
    fn encodes_each_segment() {
        let b = base("http://h");
        let u = api(&b, &["workers", "a/b c"]);
        assert_eq!(u.as_str(), "http://h/api/v1/workers/a%2Fb%20c");
        let mut u = api(&b, &["jobs", "3", "outputs"]);
        push_file_path(&mut u, "dir/sub dir/x?y#z%.txt");
        assert_eq!(
            u.path(),
            "/api/v1/jobs/3/outputs/dir/sub%20dir/x%3Fy%23z%25.txt"
        );
        assert_eq!(u.query(), None);
        let mut u = api(&b, &["uploads", "u1", "files"]);
        push_file_path(&mut u, "./a//b/../ü.bin");
        assert_eq!(u.path(), "/api/v1/uploads/u1/files/a/b/%C3%BC.bin");
    }

    #[test]
    fn adds_query_pairs() {
        let b = base("http://h");
        let mut u = api(&b, &["jobs"]);
        add_query(&mut u, "state", "RUNNING,FAILED");
        add_query(&mut u, "queue", "a b&c");
        assert_eq!(u.query(), Some("state=RUNNING%2CFAILED&queue=a+b%26c"));
    }
}
