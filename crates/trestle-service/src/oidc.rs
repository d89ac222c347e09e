//! OpenID Connect providers (`[[oidc]]`): discovery at start-up, the
//! provider's signing keys (cached; an unknown key id refetches them once,
//! so that key rotation needs no restart), the code exchange and the
//! verification of ID tokens. The sign-in flows over them are in
//! [`crate::oidc_login`]; the claim checks and the mapping to an
//! [`trestle_core::identity::external::ExternalIdentity`] are pure, in
//! [`trestle_core::identity::oidc`].

use crate::error::{ErrorKind, ServiceError, ServiceResult};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;
use trestle_core::identity::oidc::{ClaimNames, Expected, Refused, check_id_token};

/// Clock skew allowed on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 60;
/// How long a request to a provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A client secret, read from a file or the environment at start-up. It
/// is never printed: its `Debug` shows only that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> ClientSecret {
        ClientSecret(s.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(hidden)")
    }
}

/// One `[[oidc]]` provider, as configured.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Its name: users it signs in come from `oidc:NAME`.
    pub name: String,
    /// The button's text ("Sign in with Campus").
    pub display: String,
    /// The issuer URL (discovery is at `ISSUER/.well-known/openid-configuration`).
    pub issuer: String,
    /// This client's id at the provider.
    pub client_id: String,
    /// This client's secret.
    pub client_secret: ClientSecret,
    /// The scopes asked for (`openid` among them).
    pub scopes: Vec<String>,
    /// Which claims hold which attribute.
    pub claims: ClaimNames,
    /// The base of the portal's redirect URL (default: `security.public_url`,
    /// else the address the browser used).
    pub redirect_url: Option<String>,
}

/// What discovery says about a provider (the parts Trestle uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The issuer, which must be the configured one exactly.
    pub issuer: String,
    /// Where browsers are sent to sign in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// Where more claims may be read with the access token.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// The provider's signing keys.
    pub jwks_uri: String,
}

/// A provider discovered at start-up.
pub struct Provider {
    /// Its settings.
    pub settings: ProviderSettings,
    /// Its metadata.
    pub meta: Metadata,
    keys: RwLock<JwkSet>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("settings", &self.settings)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// The configured providers, in the order of the configuration.
#[derive(Debug, Default)]
pub struct OidcProviders {
    list: Vec<Arc<Provider>>,
}

impl OidcProviders {
    /// Every provider.
    pub fn all(&self) -> &[Arc<Provider>] {
        &self.list
    }

    /// The provider called `name`.
    pub fn find(&self, name: &str) -> ServiceResult<Arc<Provider>> {
        self.list
            .iter()
            .find(|p| p.settings.name == name)
            .cloned()
            .ok_or_else(|| ServiceError::not_found(format!("the identity provider `{name}`")))
    }
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let resp = http.get(url).send().await.map_err(|e| {
        let mut m = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            m = format!("{m}: {s}");
            src = s.source();
        }
        format!("{url} is unreachable: {m}")
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    resp.json::<T>()
        .await
        .map_err(|e| format!("{url} did not answer the expected JSON: {e}"))
}

/// Discovers every provider (metadata and keys); an unreachable issuer,
/// one whose metadata names another issuer, or unreadable keys are refused
/// with the setting named (`oidc[0].issuer`).
pub async fn discover(settings: &[ProviderSettings]) -> Result<OidcProviders, String> {
    let mut list = Vec::new();
    for (i, s) in settings.iter().enumerate() {
        let field = format!("oidc[{i}].issuer (provider `{}`)", s.name);
        let http = client().map_err(|e| format!("{field}: {e}"))?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            s.issuer.trim_end_matches('/')
        );
        let meta: Metadata = get_json(&http, &url)
            .await
            .map_err(|e| format!("{field}: discovery failed: {e}"))?;
        if meta.issuer != s.issuer {
            return Err(format!(
                "{field}: the provider calls itself `{}`, not `{}`",
                meta.issuer, s.issuer
            ));
        }
        let keys: JwkSet = get_json(&http, &meta.jwks_uri)
            .await
            .map_err(|e| format!("{field}: its signing keys: {e}"))?;
        list.push(Arc::new(Provider {
            settings: s.clone(),
            meta,
            keys: RwLock::new(keys),
            http,
        }));
    }
    Ok(OidcProviders { list })
}

/// A refusal of the sign-in (401 with the refusal's code).
pub fn refused(r: Refused) -> ServiceError {
    ServiceError::new(ErrorKind::Unauthenticated, r.code, r.message)
}

fn unavailable(name: &str, what: String) -> ServiceError {
    tracing::warn!(provider = name, "{what}");
    ServiceError::new(
        ErrorKind::Unavailable,
        "oidc-unavailable",
        format!("the identity provider `{name}` could not be reached; try again later"),
    )
}

/// The asymmetric algorithms a key of this type may sign with (never
/// `none` or a shared-secret HMAC).
fn algorithms_of(k: &Jwk) -> &'static [Algorithm] {
    match k.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        _ => &[],
    }
}

/// The claims of `token` if one of `keys` (the one its `kid` names, or
/// any when it names none) signed it; `None` when no key fits.
pub fn verify_signature(keys: &JwkSet, token: &str) -> Result<Option<Map<String, Value>>, Refused> {
    let bad = |m: &str| Refused {
        code: "oidc-bad-signature",
        message: m.to_string(),
    };
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| bad("the ID token is not a signed JWT"))?;
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .filter(|k| algorithms_of(k).contains(&header.alg))
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    for k in candidates {
        let Ok(key) = DecodingKey::from_jwk(k) else {
            continue;
        };
        let mut v = Validation::new(header.alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        if let Ok(data) = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v) {
            return Ok(Some(data.claims));
        }
    }
    Err(bad(
        "the ID token's signature is not the identity provider's",
    ))
}

/// What the token endpoint answered.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Provider {
    /// Verifies an ID token: its signature against the provider's keys
    /// (refetched once when its key id is unknown: the provider rotated
    /// its keys), then its claims (issuer, audience, expiry, nonce).
    pub async fn verify(
        &self,
        token: &str,
        nonce: &str,
        now_secs: i64,
    ) -> ServiceResult<Map<String, Value>> {
        let first = verify_signature(&*self.keys.read().await, token).map_err(refused)?;
        let claims = match first {
            Some(c) => c,
            None => {
                let fresh: JwkSet = get_json(&self.http, &self.meta.jwks_uri)
                    .await
                    .map_err(|e| unavailable(&self.settings.name, e))?;
                tracing::info!(
                    provider = %self.settings.name,
                    keys = fresh.keys.len(),
                    "refetched the provider's signing keys (unknown key id)"
                );
                let again = verify_signature(&fresh, token);
                *self.keys.write().await = fresh;
                again.map_err(refused)?.ok_or_else(|| {
                    refused(Refused {
                        code: "oidc-bad-signature",
                        message: "the ID token was signed with a key the identity provider does not publish".into(),
                    })
                })?
            }
        };
        check_id_token(
            &claims,
            &Expected {
                issuer: &self.meta.issuer,
                client_id: &self.settings.client_id,
                nonce,
                now_secs,
                leeway_secs: LEEWAY_SECS,
            },
        )
        .map_err(refused)?;
        Ok(claims)
    }

    /// Exchanges `code` (with the PKCE verifier and this client's secret,
    /// sent as HTTP Basic) for the ID token and the access token.
    pub async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> ServiceResult<(String, Option<String>)> {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", verifier)
            .finish();
        let resp = self
            .http
            .post(&self.meta.token_endpoint)
            .basic_auth(
                enc(&self.settings.client_id),
                Some(enc(self.settings.client_secret.expose())),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(&self.settings.name, format!("token endpoint: {e}")))?;
        let status = resp.status();
        let answer: TokenAnswer = resp.json().await.map_err(|e| {
            unavailable(
                &self.settings.name,
                format!("token endpoint answered {status} without JSON: {e}"),
            )
        })?;
        if let Some(err) = answer.error {
            let why = answer.error_description.unwrap_or_default();
            tracing::info!(provider = %self.settings.name, error = %err, "the provider refused a code: {why}");
            return Err(ServiceError::new(
                ErrorKind::Unauthenticated,
                "oidc-code-refused",
                format!("the identity provider refused the sign-in: {err} {why}")
                    .trim_end()
                    .to_string(),
            ));
        }
        let id = answer.id_token.ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Unauthenticated,
                "oidc-bad-token",
                "the identity provider answered without an ID token (is `openid` among the scopes?)",
            )
        })?;
        Ok((id, answer.access_token))
    }

    /// The userinfo endpoint's claims (none without an endpoint or an
    /// access token, or when it answers with something else than JSON).
    pub async fn userinfo(&self, access_token: &str) -> ServiceResult<Option<Map<String, Value>>> {
        let Some(url) = &self.meta.userinfo_endpoint else {
            return Ok(None);
        };
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable(&self.settings.name, format!("userinfo: {e}")))?;
        if !resp.status().is_success() {
            tracing::info!(provider = %self.settings.name, status = %resp.status(), "userinfo refused");
            return Ok(None);
        }
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"));
        if !is_json {
            return Ok(None);
        }
        Ok(resp.json::<Map<String, Value>>().await.ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    /// A P-256 test key: its private half as a signing key, its public
    /// half as a JWK with `kid`.
    fn key(kid: &str) -> (EncodingKey, Value) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn sign(k: &EncodingKey, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, k).unwrap()
    }

    fn set(keys: &[&Value]) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    #[test]
    fn signatures_are_checked_against_the_published_keys() {
        let (good, good_jwk) = key("k1");
        let (evil, _) = key("k1");
        let keys = set(&[&good_jwk]);
        let claims = json!({"sub": "u1", "nonce": "n"});
        let ok = verify_signature(&keys, &sign(&good, "k1", &claims)).unwrap();
        assert_eq!(ok.unwrap()["sub"], "u1");
        // Same key id, another key: a forged signature.
        let e = verify_signature(&keys, &sign(&evil, "k1", &claims)).unwrap_err();
        assert_eq!(e.code, "oidc-bad-signature");
        // An unknown key id: no key fits (the caller refetches the keys).
        assert!(
            verify_signature(&keys, &sign(&good, "k2", &claims))
                .unwrap()
                .is_none()
        );
        // A tampered payload.
        let t = sign(&good, "k1", &claims);
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"admin","nonce":"n"}"#);
        parts[1] = &other;
        assert!(verify_signature(&keys, &parts.join(".")).is_err());
        assert!(verify_signature(&keys, "not-a-jwt").is_err());
    }

    #[test]
    fn hmac_and_unsigned_tokens_never_pass() {
        let (_, jwk) = key("k1");
        let keys = set(&[&jwk]);
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        let t = jsonwebtoken::encode(
            &h,
            &json!({"sub": "u1"}),
            &EncodingKey::from_secret(jwk["x"].as_str().unwrap().as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verify_signature(&keys, &t).unwrap().is_none());
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"u1"}"#));
        assert!(!matches!(verify_signature(&keys, &none), Ok(Some(_))));
    }

    fn provider(keys: JwkSet) -> Provider {
        Provider {
            settings: ProviderSettings {
                name: "campus".into(),
                display: "Campus".into(),
                issuer: "https://idp.example".into(),
                client_id: "trestle".into(),
                client_secret: ClientSecret::new("s"),
                scopes: vec!["openid".into()],
                claims: ClaimNames::default(),
                redirect_url: None,
            },
            meta: Metadata {
                issuer: "https://idp.example".into(),
                authorization_endpoint: "https://idp.example/auth".into(),
                token_endpoint: "https://idp.example/token".into(),
                userinfo_endpoint: None,
                // Unreachable: a refetch in this test would fail loudly.
                jwks_uri: "http://127.0.0.1:9/jwks".into(),
            },
            keys: RwLock::new(keys),
            http: client().unwrap(),
        }
    }

    #[tokio::test]
    async fn id_tokens_with_a_wrong_audience_expiry_or_nonce_are_refused() {
        let (k, jwk) = key("k1");
        let p = provider(set(&[&jwk]));
        let now = 1_900_000_000;
        let claims = |f: &dyn Fn(&mut Value)| {
            let mut c = json!({"iss": "https://idp.example", "aud": "trestle", "sub": "u1",
                "iat": now - 5, "exp": now + 300, "nonce": "n-1"});
            f(&mut c);
            sign(&k, "k1", &c)
        };
        assert!(p.verify(&claims(&|_| {}), "n-1", now).await.is_ok());
        for (f, want) in [
            (
                Box::new(|c: &mut Value| c["aud"] = json!("someone-else"))
                    as Box<dyn Fn(&mut Value)>,
                "oidc-wrong-audience",
            ),
            (
                Box::new(|c: &mut Value| c["exp"] = json!(now - 600)),
                "oidc-expired",
            ),
            (
                Box::new(|c: &mut Value| c["nonce"] = json!("replayed")),
                "oidc-bad-nonce",
            ),
            (
                Box::new(|c: &mut Value| c["iss"] = json!("https://evil")),
                "oidc-wrong-issuer",
            ),
        ] {
            let e = p.verify(&claims(&*f), "n-1", now).await.unwrap_err();
            assert_eq!(e.code, want);
            assert_eq!(e.kind, ErrorKind::Unauthenticated);
        }
        // A token signed by a key the provider does not publish, under a
        // key id it does not know: the keys are refetched once, and the
        // refetch failing is an outage, not a sign-in.
        let (other, _) = key("k9");
        let t = sign(&other, "k9", &json!({"sub": "u1"}));
        assert_eq!(
            p.verify(&t, "n-1", now).await.unwrap_err().code,
            "oidc-unavailable"
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = ClientSecret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
