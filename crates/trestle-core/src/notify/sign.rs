//! The Standard Webhooks signature: `v1,` and base64 of HMAC-SHA256 over
//! `id.timestamp.body`, keyed by the secret's bytes (`whsec_` + base64),
//! and its verification with a timestamp tolerance.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a signing secret.
pub const PREFIX: &str = "whsec_";

/// The key bytes of a `whsec_...` secret; `None` if it is not one.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()
}

/// A new secret from 32 random bytes.
pub fn make_secret(random: &[u8; 32]) -> String {
    format!("{PREFIX}{}", STANDARD.encode(random))
}

/// The `webhook-signature` header value for a message.
pub fn signature(key: &[u8], id: &str, timestamp_s: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Why a received message is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The timestamp is not a number.
    BadTimestamp,
    /// The timestamp is further than the tolerance from now.
    Stale,
    /// No signature matches.
    BadSignature,
}

/// Verifies the headers of a received message (a space-separated list of
/// signatures, any `v1` one matching), with the timestamp within
/// `tolerance_s` of `now_s`.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now_s - ts).abs() > tolerance_s {
        return Err(VerifyError::Stale);
    }
    let want = signature(key, id, ts, body);
    let ok = signatures.split(' ').any(|s| {
        // Constant-time comparison.
        s.len() == want.len()
            && s.bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks libraries' test suites.
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            verify(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                &format!("v1,bad {sig}"),
                body,
                1614265331,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                &sig,
                body,
                1614265330 + 301,
                300
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&key, "msg_other", "1614265330", &sig, body, 1614265330, 300),
            Err(VerifyError::BadSignature)
        );
        assert!(secret_bytes("nope").is_none());
        assert_eq!(secret_bytes(&make_secret(&[7; 32])).unwrap(), vec![7; 32]);
    }
}
