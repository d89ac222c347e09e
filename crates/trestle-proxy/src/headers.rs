//! What the proxy changes in the headers it forwards: Trestle's own
//! credentials and hop-by-hop headers out, `X-Forwarded-*` and the route's
//! own headers (the app's per-launch secret) in.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use trestle_core::identity::TOKEN_PREFIX;

/// Headers that describe one connection, not the message (RFC 9110 7.6.1),
/// never forwarded as they are.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The header of the portal's CSRF token: a Trestle secret too.
const CSRF_HEADER: &str = "x-csrf-token";

/// True if the request or response asks to switch protocols
/// (`Connection: upgrade` with an `Upgrade` header), as WebSockets do.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, and those `Connection` names. With
/// `keep_upgrade`, `Upgrade` stays and `Connection` becomes `upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade && let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True if an `Authorization` value carries a Trestle token, whatever
/// the scheme it is sent with (`Bearer trs_...`, `token trs_...`).
pub fn carries_trestle_token(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split_whitespace()
            .any(|part| part.starts_with(TOKEN_PREFIX))
    })
}

/// Removes Trestle's credentials: the cookie `session_cookie` (other
/// cookies stay, in one `Cookie` header), an `Authorization` header that
/// carries a Trestle token, and the portal's CSRF header.
pub fn strip_credentials(headers: &mut HeaderMap, session_cookie: &str) {
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .filter(|c| c.split('=').next().map(str::trim) != Some(session_cookie))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
    let auth: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|v| !carries_trestle_token(v))
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for v in auth {
        headers.append(header::AUTHORIZATION, v);
    }
    headers.remove(CSRF_HEADER);
}

/// Removes `Set-Cookie` headers of the app that would set or clear the
/// portal's session cookie (in path-prefix mode the app shares the
/// portal's origin).
pub fn strip_session_set_cookie(headers: &mut HeaderMap, session_cookie: &str) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            v.to_str().map_or(true, |s| {
                s.split('=').next().map(str::trim) != Some(session_cookie)
            })
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Sets `X-Forwarded-For` (appending the client), `-Host`, `-Proto` and,
/// when a prefix was stripped, `-Prefix`.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: Option<std::net::IpAddr>,
    proto: &str,
    prefix: Option<&str>,
) {
    if let Some(ip) = client {
        let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", v);
        }
    }
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert("x-forwarded-host", host);
    }
    if let Ok(v) = HeaderValue::from_str(proto) {
        headers.insert("x-forwarded-proto", v);
    }
    headers.remove("x-forwarded-prefix");
    if let Some(p) = prefix
        && let Ok(v) = HeaderValue::from_str(p)
    {
        headers.insert("x-forwarded-prefix", v);
    }
}

/// The path and query the app sees: `path_and_query` without `prefix`
/// when one is stripped (always starting with `/`).
pub fn app_path(path_and_query: &str, prefix: Option<&str>) -> String {
    let Some(prefix) = prefix.map(|p| p.trim_end_matches('/')) else {
        return path_and_query.to_string();
    };
    match path_and_query.strip_prefix(prefix) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('?') => format!("/{rest}"),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path_and_query.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn credentials_go_and_the_rest_stays() {
        let mut h = map(&[
            ("cookie", "a=1; trestle_session=SECRET; b=2"),
            ("cookie", "trestle_session=AGAIN"),
            ("cookie", "_xsrf=x"),
            ("authorization", "Bearer trs_0123"),
            ("x-csrf-token", "csrf"),
            ("accept", "text/html"),
        ]);
        strip_credentials(&mut h, "trestle_session");
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2; _xsrf=x");
        assert!(!h.contains_key("authorization"));
        assert!(!h.contains_key("x-csrf-token"));
        assert_eq!(h["accept"], "text/html");
        // Only the session cookie: no Cookie header at all.
        let mut h = map(&[
            ("cookie", "trestle_session=S"),
            ("authorization", "token trs_9"),
        ]);
        strip_credentials(&mut h, "trestle_session");
        assert!(!h.contains_key("cookie") && !h.contains_key("authorization"));
        // A cookie whose name merely contains the session's stays; an app's
        // own Authorization stays.
        let mut h = map(&[
            ("cookie", "my_trestle_session=1"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ]);
        strip_credentials(&mut h, "trestle_session");
        assert_eq!(h["cookie"], "my_trestle_session=1");
        assert_eq!(h["authorization"], "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("content-length", "3"),
        ]);
        assert!(!is_upgrade(&h));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["content-length"], "3");
        let mut ws = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade(&ws));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws["connection"], "upgrade");
        assert_eq!(ws["upgrade"], "websocket");
        assert_eq!(ws["sec-websocket-key"], "k");
    }

    #[test]
    fn session_set_cookie_is_dropped() {
        let mut h = map(&[
            ("set-cookie", "trestle_session=evil; Path=/"),
            ("set-cookie", "_xsrf=ok; Path=/ws/1/"),
        ]);
        strip_session_set_cookie(&mut h, "trestle_session");
        let v: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(v, vec!["_xsrf=ok; Path=/ws/1/"]);
    }

    #[test]
    fn forwarded_headers() {
        let mut h = map(&[
            ("host", "trestle.example.org"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-prefix", "/forged"),
        ]);
        set_forwarded(&mut h, Some([127, 0, 0, 1].into()), "https", None);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-host"], "trestle.example.org");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(!h.contains_key("x-forwarded-prefix"));
        set_forwarded(&mut h, None, "http", Some("/ws/3"));
        assert_eq!(h["x-forwarded-prefix"], "/ws/3");
    }

    #[test]
    fn prefixes_are_stripped_only_when_they_match() {
        assert_eq!(app_path("/ws/1/lab?x=1", Some("/ws/1")), "/lab?x=1");
        assert_eq!(app_path("/ws/1/lab", Some("/ws/1/")), "/lab");
        assert_eq!(app_path("/ws/1", Some("/ws/1")), "/");
        assert_eq!(app_path("/ws/1?a", Some("/ws/1")), "/?a");
        assert_eq!(app_path("/ws/10/x", Some("/ws/1")), "/ws/10/x");
        assert_eq!(app_path("/ws/1/lab", None), "/ws/1/lab");
    }
}
