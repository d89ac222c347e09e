//! Sign-in through an OpenID provider: the authorization code flow with
//! PKCE (S256), `state` and `nonce`, for the portal (the server holds the
//! PKCE verifier) and for the CLI's loopback round trip (the CLI holds
//! it and hands it in with the code).
//!
//! A pending login is kept in the database under the hash of its state,
//! so the provider's callback may reach any server sharing it, and taken
//! in one statement when the callback comes: a state, and the nonce bound
//! to it, is used once, and a replayed callback is refused. Pending logins
//! last ten minutes.

use crate::audit::AuditSlot;
use crate::error::{ServiceError, ServiceResult};
use crate::external;
use crate::oidc::{Provider, refused};
use crate::security::random_hex;
use crate::sessions::LoginOutcome;
use crate::state::Service;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use trestle_core::api::identity::NewToken;
use trestle_core::identity::oidc::{Refused, identity_from_claims, merge_userinfo};
use trestle_store::oidc::{LoginFlow, PendingLogin};

/// How long a begun login may take to come back.
pub const PENDING_TTL_MS: i64 = 10 * 60 * 1000;

/// A login begun: where to send the user, and its state.
#[derive(Debug, Clone)]
pub struct Started {
    /// The provider's authorization URL with every parameter.
    pub authorization_url: String,
    /// The login's state (the portal also binds it to the browser).
    pub state: String,
}

/// What the provider's redirect brought back.
#[derive(Debug, Clone)]
pub struct Callback {
    /// `state`.
    pub state: String,
    /// `code`.
    pub code: String,
    /// The CLI's PKCE verifier (CLI logins only).
    pub code_verifier: Option<String>,
    /// `iss`, when the provider sends it (RFC 9207): it must be the
    /// provider the login began at, against mix-ups between providers.
    pub iss: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a pending login is stored under: the state itself is never
/// stored, so reading the table does not let anyone finish a login.
fn state_key(state: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"trestle-oidc-state\0");
    h.update(state.as_bytes());
    hex::encode(h.finalize())
}

/// The S256 challenge of a PKCE verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}

/// A new PKCE verifier (43 characters of base64url, 256 random bits).
pub fn new_verifier() -> String {
    let bytes = hex::decode(random_hex(32)).unwrap_or_default();
    b64(&bytes)
}

fn bad_state() -> ServiceError {
    refused(Refused {
        code: "oidc-bad-state",
        message: "this sign-in is unknown, expired or was already used; start it again".into(),
    })
}

fn authorization_url(
    p: &Provider,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    challenge: &str,
) -> ServiceResult<String> {
    let mut url = url::Url::parse(&p.meta.authorization_endpoint).map_err(|_| {
        ServiceError::internal("the provider's authorization endpoint is not a URL")
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.settings.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &p.settings.scopes.join(" "))
        .append_pair("state", state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Logins one source address may begin in `security.login_window`.
pub const BEGINS_PER_WINDOW: u64 = 60;

/// Counts a begun login against its source address: beginning one stores
/// a row without any credentials, so a flood of them is refused (429).
async fn throttle(app: &Service, ip: IpAddr) -> ServiceResult<()> {
    // A space: no user name's login-attempt key looks like this one.
    let key = format!("oidc begin|{ip}");
    let window = app.security.login_window.as_millis() as i64;
    let n = app
        .store
        .reserve_login_attempt(&key, crate::now_ms(), window)
        .await?;
    if n > BEGINS_PER_WINDOW {
        return Err(ServiceError::new(
            crate::error::ErrorKind::TooMany,
            "too-many-attempts",
            format!(
                "too many sign-ins begun from {ip}; try again in {} minutes",
                app.security.login_window.as_secs().div_ceil(60)
            ),
        ));
    }
    Ok(())
}

async fn begin(
    app: &Service,
    p: &Provider,
    flow: LoginFlow,
    redirect_uri: String,
    pkce: String,
    challenge: &str,
    next: Option<String>,
) -> ServiceResult<Started> {
    let state = random_hex(32);
    let nonce = random_hex(16);
    let now = crate::now_ms();
    let url = authorization_url(p, &redirect_uri, &state, &nonce, challenge)?;
    app.store
        .put_oidc_login(
            &state_key(&state),
            &PendingLogin {
                provider: p.settings.name.clone(),
                flow,
                nonce,
                pkce,
                redirect_uri,
                next,
                created_at: now,
                expires_at: now + PENDING_TTL_MS,
            },
        )
        .await?;
    Ok(Started {
        authorization_url: url,
        state,
    })
}

/// The portal's callback URL at the provider: under `[[oidc]]
/// redirect_url`, else `security.public_url`, else `origin` (the address
/// the browser used).
pub fn portal_redirect_uri(app: &Service, p: &Provider, origin: &str) -> String {
    let base = p
        .settings
        .redirect_url
        .as_deref()
        .or(app.security.public_url.as_deref())
        .unwrap_or(origin);
    format!(
        "{}/ui/login/oidc/{}/callback",
        base.trim_end_matches('/'),
        p.settings.name
    )
}

/// Begins a portal sign-in at provider `name`; `origin` is the address
/// the browser used (`http://host:port`), `next` the local path to go to
/// afterwards.
pub async fn begin_portal(
    app: &Service,
    name: &str,
    origin: &str,
    next: &str,
    ip: IpAddr,
) -> ServiceResult<Started> {
    let p = app.oidc.find(name)?;
    let verifier = new_verifier();
    let challenge = pkce_challenge(&verifier);
    let redirect = portal_redirect_uri(app, &p, origin);
    throttle(app, ip).await?;
    begin(
        app,
        &p,
        LoginFlow::Portal,
        redirect,
        verifier,
        &challenge,
        Some(next.to_string()),
    )
    .await
}

/// Whether `uri` is a loopback redirect a CLI may listen on
/// (`http://127.0.0.1:PORT/...`, `[::1]` or `localhost`).
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    loopback
        && u.scheme() == "http"
        && u.port().is_some()
        && u.username().is_empty()
        && u.password().is_none()
        && u.fragment().is_none()
}

/// Whether `s` is a PKCE verifier (RFC 7636: 43-128 unreserved characters).
pub fn is_pkce_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `s` has the form of an S256 challenge: 43 characters of
/// base64url.
pub fn is_pkce_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Begins a CLI sign-in at provider `name`: the CLI listens on the
/// loopback `redirect_uri` and holds the verifier of `code_challenge`.
pub async fn begin_cli(
    app: &Service,
    name: &str,
    redirect_uri: &str,
    code_challenge: &str,
    ip: IpAddr,
) -> ServiceResult<Started> {
    let p = app.oidc.find(name)?;
    if !is_loopback_redirect(redirect_uri) {
        return Err(ServiceError::bad(
            "invalid-redirect",
            "redirect_uri",
            "a CLI sign-in redirects to http://127.0.0.1:PORT/ (or [::1], localhost) only",
        ));
    }
    if !is_pkce_challenge(code_challenge) {
        return Err(ServiceError::bad(
            "invalid-code-challenge",
            "code_challenge",
            "the PKCE challenge is the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    throttle(app, ip).await?;
    begin(
        app,
        &p,
        LoginFlow::Cli,
        redirect_uri.to_string(),
        code_challenge.to_string(),
        code_challenge,
        None,
    )
    .await
}

/// Finishes a sign-in at provider `name`: takes the pending login of the
/// callback's state (once), exchanges the code, verifies the ID token,
/// merges the userinfo claims, maps them to a user and signs them in
/// (provisioned just in time). Returns the outcome (a session for the
/// portal, the token asked for the CLI) and the portal path to go to.
pub async fn finish(
    app: &Service,
    name: &str,
    flow: LoginFlow,
    cb: Callback,
    token: Option<NewToken>,
    ip: IpAddr,
    slot: &AuditSlot,
) -> ServiceResult<(LoginOutcome, Option<String>)> {
    let p = app.oidc.find(name)?;
    if cb.state.is_empty() || cb.state.len() > 512 {
        return Err(bad_state());
    }
    if cb.code.is_empty() || cb.code.len() > 4096 {
        return Err(ServiceError::bad(
            "invalid-code",
            "code",
            "the authorization code is 1-4096 characters",
        ));
    }
    let now = crate::now_ms();
    let pending = app
        .store
        .take_oidc_login(&state_key(&cb.state), now)
        .await?
        .filter(|l| l.provider == name && l.flow == flow)
        .ok_or_else(bad_state)?;
    if cb.iss.as_ref().is_some_and(|i| *i != p.meta.issuer) {
        return Err(refused(Refused {
            code: "oidc-wrong-issuer",
            message: "the sign-in came back from another identity provider than it began at".into(),
        }));
    }
    let verifier = match flow {
        LoginFlow::Portal => pending.pkce.clone(),
        LoginFlow::Cli => {
            let v = cb.code_verifier.unwrap_or_default();
            if !is_pkce_verifier(&v) {
                return Err(ServiceError::bad(
                    "invalid-code-verifier",
                    "code_verifier",
                    "a PKCE verifier is 43-128 characters of A-Z a-z 0-9 - . _ ~",
                ));
            }
            if !trestle_core::identity::oidc::same_secret(&pkce_challenge(&v), &pending.pkce) {
                return Err(refused(Refused {
                    code: "oidc-bad-verifier",
                    message: "the PKCE verifier does not match the challenge of this sign-in"
                        .into(),
                }));
            }
            v
        }
    };
    let (id_token, access) = p
        .exchange(&cb.code, &pending.redirect_uri, &verifier)
        .await?;
    let mut claims = p.verify(&id_token, &pending.nonce, now / 1000).await?;
    if let Some(at) = access
        && let Some(more) = p.userinfo(&at).await?
    {
        merge_userinfo(&mut claims, more).map_err(refused)?;
    }
    let who = identity_from_claims(name, &p.settings.claims, &claims).map_err(refused)?;
    tracing::info!(provider = name, user = %who.username, flow = flow.as_str(), "OpenID Connect sign-in");
    let outcome = external::sign_in(app, &who, token, ip, slot).await?;
    Ok((outcome, pending.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = new_verifier();
        assert_eq!(v.len(), 43);
        assert_ne!(v, new_verifier());
    }

    #[test]
    fn only_loopback_redirects_for_the_cli() {
        assert!(is_loopback_redirect("http://127.0.0.1:5050/callback"));
        assert!(is_loopback_redirect("http://[::1]:5050/"));
        assert!(is_loopback_redirect("http://localhost:5050/cb"));
        assert!(!is_loopback_redirect("http://127.0.0.1/cb"), "a port");
        assert!(!is_loopback_redirect("https://evil.example:5050/cb"));
        assert!(!is_loopback_redirect("http://10.0.0.1:5050/cb"));
        assert!(!is_loopback_redirect("http://localhost.evil.example:5050/"));
        assert!(!is_loopback_redirect("not a url"));
    }
}
