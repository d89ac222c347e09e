//! The OpenID Connect part of the OpenID document: the CLI's sign-in
//! (merged by [`crate::openapi::document`] and
//! [`crate::openapi_schemas::schemas`]).

use serde_json::{Value, json};

/// Answer schemas and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    ("OidcProviderView", &["name", "display"]),
    ("OidcStarted", &["authorization_url", "state"]),
];

/// The request schemas, by name.
pub fn request_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "OidcBegin",
            json!({"type": "object", "additionalProperties": false,
                "required": ["redirect_uri", "code_challenge"], "properties": {
                "redirect_uri": {"type": "string", "format": "uri",
                    "pattern": "^http://(127\\.[0-9.]+|\\[::1\\]|localhost):[0-9]+(/.*)?$",
                    "description": "the CLI's loopback listener"},
                "code_challenge": {"type": "string", "minLength": 43, "maxLength": 43,
                    "pattern": "^[A-Za-z0-9_-]+$", "description": "base64url SHA-256 of the PKCE verifier"}
            }}),
        ),
        (
            "OidcFinish",
            json!({"type": "object", "additionalProperties": false,
                "required": ["state", "code", "code_verifier"], "properties": {
                "state": {"type": "string", "minLength": 1, "maxLength": 512},
                "code": {"type": "string", "minLength": 1, "maxLength": 4096},
                "code_verifier": {"type": "string", "minLength": 43, "maxLength": 128, "pattern": "^[A-Za-z0-9._~-]+$"},
                "iss": {"type": "string", "description": "the redirect's `iss` (RFC 9207), when the provider sent one"},
                "token": {"$ref": "#/components/schemas/NewToken"}
            }}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_service::oidc_login::{is_loopback_redirect, is_pkce_challenge, is_pkce_verifier};

    fn schema(name: &str) -> Value {
        request_schemas()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    /// The schema's length bounds and character class, applied by hand.
    fn challenge_schema_accepts(s: &str) -> bool {
        let c = &schema("OidcBegin")["properties"]["code_challenge"];
        let (min, max) = (
            c["minLength"].as_u64().unwrap(),
            c["maxLength"].as_u64().unwrap(),
        );
        assert_eq!(c["pattern"], "^[A-Za-z0-9_-]+$");
        let n = s.chars().count() as u64;
        n >= min
            && n <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn the_challenge_schema_is_the_validator() {
        let good = trestle_service::oidc_login::pkce_challenge("x".repeat(43).as_str());
        for s in [
            good.as_str(),
            "",
            &"a".repeat(42),
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &format!("{}+", "a".repeat(42)),
            &"A-_9".repeat(11)[..43],
        ] {
            assert_eq!(challenge_schema_accepts(s), is_pkce_challenge(s), "{s}");
        }
    }

    #[test]
    fn the_verifier_schema_is_the_validator() {
        let v = &schema("OidcFinish")["properties"]["code_verifier"];
        assert_eq!(v["pattern"], "^[A-Za-z0-9._~-]+$");
        let (min, max) = (
            v["minLength"].as_u64().unwrap(),
            v["maxLength"].as_u64().unwrap(),
        );
        for s in [
            "a".repeat(42),
            "a".repeat(43),
            "a".repeat(128),
            "a".repeat(129),
            format!("{}~._-", "a".repeat(40)),
            format!("{}+", "a".repeat(43)),
        ] {
            let n = s.len() as u64;
            let by_schema = n >= min
                && n <= max
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
            assert_eq!(by_schema, is_pkce_verifier(&s), "{s}");
        }
    }

    #[test]
    fn the_redirect_schema_names_only_loopback_addresses() {
        let pattern = schema("OidcBegin")["properties"]["redirect_uri"]["pattern"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(pattern.starts_with("^http://"));
        for (uri, ok) in [
            ("http://127.0.0.1:5050/callback", true),
            ("http://[::1]:5050/", true),
            ("http://localhost:1/", true),
            ("https://127.0.0.1:5050/", false),
            ("http://evil.example:5050/", false),
        ] {
            assert_eq!(is_loopback_redirect(uri), ok, "{uri}");
            let schema_ok = ["127.", "[::1]", "localhost:"]
                .iter()
                .any(|h| uri.starts_with(&format!("http://{h}")));
            assert_eq!(schema_ok, ok, "{uri}");
        }
    }
}
