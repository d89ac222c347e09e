//! Security settings (trusted proxies, sessions, login throttling, audit
//! retention, the unused-credential policy) and password hashing.

use crate::error::ServiceError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use std::net::IpAddr;
use std::time::Duration;
use trestle_core::audit::{Cidr, NamedQuery};

/// Security and audit settings (`[security]` and `[audit]` in `trestle.toml`).
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// Failed logins per user and source address before throttling.
    pub login_max_failures: u64,
    /// The window in which failures are counted (and the lock-out lasts).
    pub login_window: Duration,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// Revoke tokens and disable users unused for this long (off when
    /// `None`); admins are never disabled automatically.
    pub disable_unused_after: Option<Duration>,
    /// Saved audit queries besides the built-in ones.
    pub queries: Vec<NamedQuery>,
    /// An admin setting another user's password also revokes that user's
    /// tokens (their sessions always end).
    pub revoke_tokens_on_password_reset: bool,
    /// The address browsers use to reach the servers (`https://host[:port]`,
    /// no path), when it is not what the requests' `Host` header says (a
    /// proxy that rewrites it). An `https://` URL also makes every session
    /// cookie `Secure`.
    pub public_url: Option<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            trusted_proxies: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            audit_retention: Duration::from_secs(90 * 86_400),
            disable_unused_after: None,
            queries: Vec::new(),
            revoke_tokens_on_password_reset: true,
            public_url: None,
        }
    }
}

impl SecurityConfig {
    /// Whether a request reached the servers over HTTPS: `public_url` is
    /// an `https://` URL, or the request came from a trusted proxy whose
    /// `X-Forwarded-Proto` (its first value) is `https`. The server itself
    /// listens on plain HTTP only. Session cookies are `Secure` exactly
    /// when this holds.
    pub fn over_https(&self, peer: IpAddr, forwarded_proto: Option<&str>) -> bool {
        if self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
        {
            return true;
        }
        self.trusted_proxies.iter().any(|c| c.contains(peer))
            && forwarded_proto
                .and_then(|v| v.split(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// Whether a browser's form post comes from the portal's own pages,
    /// by its `Origin` header or, without one, its `Referer`: their
    /// `host[:port]` must be the request's `Host`, or their origin that
    /// of `public_url`. A request with neither header is no browser's
    /// cross-site post (browsers always send `Origin` on those) and is
    /// allowed, as are clients such as `curl`.
    pub fn check_origin(
        &self,
        origin: Option<&str>,
        referer: Option<&str>,
        host: Option<&str>,
    ) -> Result<(), String> {
        let Some(claimed) = origin.or(referer) else {
            return Ok(());
        };
        let Some((scheme, authority)) = origin_parts(claimed) else {
            return Err(format!("`{claimed}` is not an origin"));
        };
        let public = self.public_url.as_deref().and_then(origin_parts);
        if public.as_ref() == Some(&(scheme.clone(), authority.clone())) {
            return Ok(());
        }
        let host = host.map(|h| normalise_authority(&scheme, h));
        if host.as_deref() == Some(authority.as_str()) {
            return Ok(());
        }
        Err(format!(
            "the form was posted from `{scheme}://{authority}`, not from this server's own pages"
        ))
    }
}

/// `scheme://host[:port]` of a URL (lower case, the scheme's default port
/// dropped), or `None` when it has no scheme and host.
fn origin_parts(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((scheme.clone(), normalise_authority(&scheme, authority)))
}

fn normalise_authority(scheme: &str, authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    };
    match a.strip_suffix(default) {
        Some(short) if !default.is_empty() => short.to_string(),
        _ => a,
    }
}

/// A random secret as hex (`bytes` random bytes).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn hashing_failed(e: argon2::password_hash::Error) -> ServiceError {
    tracing::error!(error = %e, "password hashing failed");
    ServiceError::new(
        crate::ErrorKind::Internal,
        "internal",
        "password hashing failed",
    )
}

/// Hashes a password with argon2id (default parameters, random salt), off
/// the async threads.
pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(hashing_failed)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(hashing_failed)
    })
    .await
    .map_err(|_| {
        ServiceError::new(
            crate::ErrorKind::Internal,
            "internal",
            "password hashing failed",
        )
    })?
}

/// A fixed hash to verify against when the user does not exist, so that a
/// login takes as long for unknown users as for known ones.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1p1fiJ9rBdf0bZxwZqaRTRqfJYcDWjOxKdN0uVjaR7s";

/// Checks a password against a stored hash (or a decoy hash when `None`, so unknown users cost the same time).
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| DECOY_HASH.to_string());
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    ok && known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_the_public_url_or_a_trusted_proxys_word() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut c = SecurityConfig::default();
        assert!(!c.over_https(client, None));
        assert!(!c.over_https(client, Some("https")), "not a trusted proxy");
        c.trusted_proxies = vec![Cidr::parse("p", "10.0.0.0/8").unwrap()];
        assert!(c.over_https(proxy, Some("https")));
        assert!(c.over_https(proxy, Some("HTTPS, http")));
        assert!(!c.over_https(proxy, Some("http")));
        assert!(!c.over_https(proxy, None));
        assert!(!c.over_https(client, Some("https")));
        c.public_url = Some("https://trestle.example".into());
        assert!(c.over_https(client, None));
        c.public_url = Some("http://trestle.example".into());
        assert!(!c.over_https(client, None));
    }

    #[test]
    fn origins_are_the_host_or_the_public_url() {
        let mut c = SecurityConfig::default();
        let host = Some("127.0.0.1:8080");
        assert!(c.check_origin(None, None, host).is_ok(), "no browser");
        assert!(
            c.check_origin(Some("http://127.0.0.1:8080"), None, host)
                .is_ok()
        );
        let e = c
            .check_origin(Some("https://evil.example"), None, host)
            .unwrap_err();
        assert!(e.contains("evil.example"), "{e}");
        assert!(
            c.check_origin(None, Some("https://evil.example/login"), host)
                .is_err()
        );
        assert!(
            c.check_origin(None, Some("http://127.0.0.1:8080/ui/login?next=/"), host)
                .is_ok()
        );
        assert!(c.check_origin(Some("null"), None, host).is_err());
        assert!(
            c.check_origin(Some("http://127.0.0.1:8080"), None, None)
                .is_err()
        );
        assert!(
            c.check_origin(
                Some("https://Trestle.Example"),
                None,
                Some("trestle.example:443")
            )
            .is_ok()
        );
        c.public_url = Some("https://trestle.example/".into());
        assert!(
            c.check_origin(Some("https://trestle.example"), None, Some("backend:8080"))
                .is_ok()
        );
        assert!(
            c.check_origin(Some("http://trestle.example"), None, Some("backend:8080"))
                .is_err()
        );
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(h.clone())).await);
        let h2 = hash_password("correct horse battery".into()).await.unwrap();
        assert_ne!(h, h2, "salted");
        assert!(!verify_password("anything".into(), None).await);
        assert!(
            PasswordHash::new(DECOY_HASH).is_ok(),
            "the decoy hash parses"
        );
    }
}
