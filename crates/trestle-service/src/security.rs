//! Security settings (trusted proxies, sessions, login throttling, audit
//! retention, the unused-credential policy) and password hashing.

use crate::error::ServiceError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
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
        }
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
