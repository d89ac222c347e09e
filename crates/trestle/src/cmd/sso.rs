//! `trestle login --sso`: sign in through an OpenID provider with a
//! browser round trip to a loopback port. The CLI makes the PKCE verifier
//! and keeps it; the server begins the login (state and nonce, kept in its
//! database) and gives the provider's URL, which the CLI opens or prints;
//! the provider redirects the browser to `http://127.0.0.1:PORT/callback`,
//! where the CLI receives the code and hands it with the verifier to the
//! server, which exchanges it, verifies the ID token and issues a Trestle
//! token.

use anyhow::{Context, Result, bail};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trestle_client::{Client, Method};
use trestle_core::api::identity::{LoginResponse, NewToken};
use trestle_core::api::oidc::{OidcBegin, OidcFinish, OidcProviderView, OidcStarted};
use trestle_service::oidc_login::{new_verifier, pkce_challenge};

/// How long the CLI waits for the browser to come back.
const WAIT: Duration = Duration::from_secs(300);

fn page(message: &str) -> String {
    let body = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Trestle</title></head><body><p>{message}</p></body></html>"
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The query of the first `GET /callback?...` the browser sends.
async fn wait_for_callback(listener: tokio::net::TcpListener) -> Result<Vec<(String, String)>> {
    loop {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut n = 0;
        // Read the request head (the request line is all we need).
        while n < buf.len() {
            let m = s.read(&mut buf[n..]).await?;
            if m == 0 {
                break;
            }
            n += m;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let Some(query) = target.strip_prefix("/callback?") else {
            let _ = s
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let msg = if pairs.iter().any(|(k, _)| k == "error") {
            "The sign-in failed; see the terminal."
        } else {
            "Signed in to Trestle. You may close this window and go back to the terminal."
        };
        let _ = s.write_all(page(msg).as_bytes()).await;
        let _ = s.shutdown().await;
        return Ok(pairs);
    }
}

fn open_browser(url: &str) {
    let graphical =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let program = std::env::var("BROWSER").ok().or_else(|| {
        graphical.then(|| {
            if cfg!(target_os = "macos") {
                "open".to_string()
            } else {
                "xdg-open".to_string()
            }
        })
    });
    if let Some(p) = program {
        let _ = std::process::Command::new(p)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// Signs in at `provider` (or the only provider the server has) and
/// returns the new Trestle token with who it belongs to.
pub async fn sso_token(
    urls: Vec<String>,
    provider: Option<&str>,
    port: u16,
    token: NewToken,
) -> Result<LoginResponse> {
    let c = Client::new(urls, None)?;
    let providers: Vec<OidcProviderView> = c
        .call::<(), _>(Method::GET, &["login", "oidc"], &[], None)
        .await?;
    let names = || {
        providers
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = match provider {
        Some(p) if providers.iter().any(|v| v.name == p) => p.to_string(),
        Some(p) => bail!(
            "--provider: the server has no identity provider `{p}` (it has: {})",
            if providers.is_empty() {
                "none".into()
            } else {
                names()
            }
        ),
        None => match providers.as_slice() {
            [one] => one.name.clone(),
            [] => bail!("--sso: the server has no identity provider configured ([[oidc]])"),
            _ => bail!("--sso: choose one with --provider: {}", names()),
        },
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("--port: cannot listen on 127.0.0.1:{port}"))?;
    let redirect_uri = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let verifier = new_verifier();
    let begin = OidcBegin {
        redirect_uri,
        code_challenge: pkce_challenge(&verifier),
    };
    let started: OidcStarted = c
        .call(
            Method::POST,
            &["login", "oidc", &name, "begin"],
            &[],
            Some(&begin),
        )
        .await?;
    eprintln!("To sign in, open this address in a browser:");
    eprintln!("open: {}", started.authorization_url);
    open_browser(&started.authorization_url);
    let pairs = tokio::time::timeout(WAIT, wait_for_callback(listener))
        .await
        .context("the browser did not come back within 5 minutes")??;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(e) = get("error") {
        bail!(
            "the identity provider did not sign you in: {e} {}",
            get("error_description").unwrap_or_default()
        );
    }
    let state = get("state").unwrap_or_default();
    if !trestle_core::identity::oidc::same_secret(&state, &started.state) {
        bail!("the browser came back from another sign-in (its state is not this one's)");
    }
    let finish = OidcFinish {
        state,
        code: get("code").context("the provider's redirect carried no code")?,
        code_verifier: verifier,
        iss: get("iss"),
        token: Some(token),
    };
    let resp: LoginResponse = c
        .call(Method::POST, &["login", "oidc", &name], &[], Some(&finish))
        .await?;
    Ok(resp)
}
