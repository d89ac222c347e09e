//! OpenID Connect sign-in against a real OpenID provider (npm's certified
//! `oidc-provider`, started by each test from `tests/oidc/provider.mjs` on
//! a free port): the portal's "Sign in with ..." in headless Chromium, the
//! CLI's `trestle login --sso` loopback round trip, provisioning with the
//! `[identity]` rules, a replayed callback refused, a key rotation at the
//! provider, sessions new at sign-in and ended everywhere at logout, and
//! bad settings refused at start-up with the setting named. (ID tokens the
//! provider cannot be made to sign wrongly — bad signature, audience,
//! expiry, nonce — are tested with self-signed tokens in
//! `trestle-service/src/oidc.rs`.)

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{code_of, curl, json_as};
use webdriver::Browser;

const CLIENT_ID: &str = "trestle-test";
const SECRET: &str = "s3cret-of-the-test-client-0123456789";

/// `tests/oidc`, with its `node_modules` installed from the lockfile
/// (`scripts/test.sh` installs it first; a plain `cargo test` does it here).
fn provider_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if !dir.join("node_modules/oidc-provider/package.json").exists() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .expect("npm (apt-get install nodejs npm)");
            assert!(out.status.success(), "npm ci: {out:?}");
        }
    });
    dir
}

/// A running OpenID provider, killed on drop.
struct Idp {
    child: Child,
    port: u16,
}

impl Idp {
    fn start(port: u16, redirect_uris: &[String], kid: &str) -> Idp {
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .env("OIDC_PORT", port.to_string())
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", SECRET)
            .env("OIDC_REDIRECT_URIS", redirect_uris.join(","))
            .env("OIDC_KEY_ID", kid)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("node");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if l.contains("oidc-provider ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the OpenID provider did not start");
        Idp { child, port }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The `[[oidc]]` and `[identity]` settings of the tests.
fn settings(env: &Env, issuer: &str) -> String {
    settings_with(env, issuer, "")
}

/// The settings with more `[[oidc]]` keys.
fn settings_with(env: &Env, issuer: &str, more: &str) -> String {
    let secret = env.path().join("campus.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    format!(
        r#"
[[oidc]]
name = "campus"
display = "Sign in with Campus"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret_file = "{}"
scopes = ["openid", "profile", "email", "groups", "unix"]
uid_claim = "uid_number"
{more}

[identity]
[[identity.rules]]
group = "hpc-users"
role = "researcher"
projects = {{ genomics = "member" }}
[[identity.rules]]
group = "genomics-pis"
projects = {{ genomics = "manager" }}
"#,
        secret.display()
    )
}

fn redirects(env: &Env) -> Vec<String> {
    vec![
        format!("{}/ui/login/oidc/campus/callback", env.url()),
        "http://127.0.0.1/callback".to_string(),
    ]
}

/// Goes through the provider's own login and consent pages (whichever it
/// shows) until the page shows `done`.
async fn at_provider(b: &Browser, login: &str, done: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    let mut typed = false;
    loop {
        let body = b.body().await;
        if body.contains(done) {
            return;
        }
        let url = b.url().await;
        if !typed && url.contains("/interaction/") && body.contains("Sign-in") {
            b.type_in("input[name=login]", login).await;
            b.type_in("input[name=password]", "any password").await;
            b.click("button[type=submit]").await;
            typed = true;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        if url.contains("/interaction/") && body.contains("Continue") && !body.contains("Sign-in") {
            b.click("button[type=submit]").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        assert!(
            Instant::now() < end,
            "never reached `{done}`: {url}\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn session_of(b: &[(String, String)]) -> String {
    b.iter()
        .find(|(n, _)| n == "trestle_session")
        .map(|(_, v)| v.clone())
        .expect("a session cookie")
}

fn whoami_with_cookie(env: &Env, session: &str) -> u16 {
    curl(
        "GET",
        &format!("{}/api/v1/whoami", env.url()),
        &[format!("Cookie: trestle_session={session}")],
        None,
    )
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_sign_in_provisions_the_user_with_a_new_session() {
    let env = Env::new();
    let idp = Idp::start(free_port(), &redirects(&env), "key-1");
    let (_up, admin) = up(&env, &settings(&env, &idp.issuer()));
    let admin = admin.expect("admin token");
    env.ok(&["index", "add", "grant-1"]);
    env.ok(&["project", "add", "genomics", "--index", "grant-1"]);
    let base = env.url();

    let b = Browser::start().await;
    b.goto(&format!("{base}/ui/login?next=/ui/jobs")).await;
    b.wait_text(
        "a.sso-button",
        "Sign in with Campus",
        Duration::from_secs(10),
    )
    .await;
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    b.screenshot(&shots.join("login-sso.png")).await;
    b.click("a.sso-button").await;
    at_provider(&b, "ada-4711", "Jobs").await;
    b.wait_text("main h1", "Jobs", Duration::from_secs(10))
        .await;
    assert!(b.url().await.ends_with("/ui/jobs"), "{}", b.url().await);
    let first = session_of(&b.cookies().await);
    assert_eq!(whoami_with_cookie(&env, &first), 200);

    // Provisioned just in time: email, uid and groups from the claims
    // (groups through userinfo), role and memberships from the rules.
    let u = json_as(&env, &admin, &["user", "show", "ada", "--json"]);
    assert_eq!(u["role"], "researcher", "{u}");
    assert_eq!(u["attributes"]["source"], "oidc:campus", "{u}");
    assert_eq!(u["attributes"]["subject"], "ada-4711", "{u}");
    assert_eq!(u["attributes"]["email"], "ada@uni.example", "{u}");
    assert_eq!(u["attributes"]["uid"], 12001, "{u}");
    assert_eq!(
        u["attributes"]["groups"],
        serde_json::json!(["hpc-users", "genomics-pis"])
    );
    let p: Value = json_as(&env, &admin, &["project", "show", "genomics", "--json"]);
    assert!(
        p["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user"] == "ada" && m["role"] == "manager"),
        "{p}"
    );

    // Signing in again gives a new session id and ends the old one.
    b.goto(&format!("{base}/ui/login")).await;
    b.click("a.sso-button").await;
    at_provider(&b, "ada-4711", "Dashboard").await;
    let second = session_of(&b.cookies().await);
    assert_ne!(first, second, "the session id is new at every sign-in");
    assert_eq!(whoami_with_cookie(&env, &first), 401, "the old one ended");
    assert_eq!(whoami_with_cookie(&env, &second), 200);
    // Logging out ends it in the database, not only in this browser.
    b.click("header form button").await;
    b.wait_text("main h1", "Log in", Duration::from_secs(10))
        .await;
    assert_eq!(whoami_with_cookie(&env, &second), 401);

    // A callback this browser did not begin (no state cookie, or another
    // state) is refused without a session.
    let (status, head, body) = curl(
        "GET",
        &format!("{base}/ui/login/oidc/campus/callback?code=abc&state=forged"),
        &[],
        None,
    );
    assert_eq!(status, 401, "{body}");
    assert!(!head.contains("trestle_session="), "{head}");
    let (status, _, _) = curl(
        "GET",
        &format!("{base}/ui/login/oidc/campus/callback?code=abc&state=forged"),
        &["Cookie: trestle_oidc_state=forged".to_string()],
        None,
    );
    assert_eq!(
        status, 401,
        "a state cookie is not enough: the state is stored"
    );
    // A provider's refusal is shown, not a crash.
    let (status, _, body) = curl(
        "GET",
        &format!("{base}/ui/login/oidc/campus/callback?error=access_denied"),
        &[],
        None,
    );
    assert_eq!(status, 401);
    assert!(body.contains("access_denied"), "{body}");
    let (status, _, _) = curl("GET", &format!("{base}/ui/login/oidc/nope"), &[], None);
    assert_eq!(status, 404);
    b.quit().await;
    drop(idp);
}

/// Starts `trestle login --sso`, returns the process and the provider URL
/// it printed.
fn start_cli_login(
    env: &Env,
    extra: &[&str],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut cmd = env.cmd();
    cmd.args(["login", "--sso"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("trestle login --sso");
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let end = Instant::now() + Duration::from_secs(20);
    let url = loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(l) => {
                if let Some(u) = l.strip_prefix("open: ") {
                    break Some(u.to_string());
                }
            }
            Err(_) => break None,
        }
    };
    match url {
        Some(u) => (child, u, rx),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the CLI printed no provider URL");
        }
    }
}

fn wait_ok(mut child: Child, rx: std::sync::mpsc::Receiver<String>) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let rest: Vec<String> = rx.try_iter().collect();
            assert!(st.success(), "trestle login --sso failed: {rest:?}");
            return rest.join("\n");
        }
        assert!(Instant::now() < end, "trestle login --sso did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sign_in_stores_a_token_and_survives_a_key_rotation() {
    let env = Env::new();
    let idp_port = free_port();
    let idp = Idp::start(idp_port, &redirects(&env), "key-1");
    let (_up, admin) = up(&env, &settings(&env, &idp.issuer()));
    let admin = admin.expect("admin token");
    let base = env.url();
    let b = Browser::start().await;

    // Ada: the browser round trip to the CLI's loopback port.
    let (child, url, rx) = start_cli_login(&env, &["--provider", "campus"]);
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("nonce="), "{url}");
    b.goto(&url).await;
    at_provider(&b, "ada-4711", "Signed in to Trestle").await;
    let callback = b.url().await;
    let said = wait_ok(child, rx);
    assert!(said.contains("signed in as ada (researcher)"), "{said}");
    let me = env.json(&["whoami", "--json"]);
    assert_eq!(me["user"]["name"], "ada", "{me}");
    assert!(
        !std::fs::read_to_string(env.path().join("server.log"))
            .unwrap()
            .contains(SECRET),
        "the client secret is never logged"
    );

    // The same callback handed in again is refused: the state was used.
    let q: Vec<(String, String)> = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let replay = serde_json::json!({"state": get("state"), "code": get("code"),
        "code_verifier": "x".repeat(43)});
    let (status, _, body) = curl(
        "POST",
        &format!("{base}/api/v1/login/oidc/campus"),
        &["Content-Type: application/json".to_string()],
        Some(&replay.to_string()),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(code_of(&body), "oidc-bad-state", "{body}");

    // A wrong PKCE verifier is refused before the code is exchanged.
    let begin = serde_json::json!({"redirect_uri": "http://127.0.0.1:9/callback",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"});
    let (status, _, body) = curl(
        "POST",
        &format!("{base}/api/v1/login/oidc/campus/begin"),
        &["Content-Type: application/json".to_string()],
        Some(&begin.to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let started: Value = serde_json::from_str(&body).unwrap();
    let wrong = serde_json::json!({"state": started["state"], "code": "whatever",
        "code_verifier": "not-the-verifier-of-that-challenge-0123456789"});
    let (status, _, body) = curl(
        "POST",
        &format!("{base}/api/v1/login/oidc/campus"),
        &["Content-Type: application/json".to_string()],
        Some(&wrong.to_string()),
    );
    assert_eq!(
        (status, code_of(&body)),
        (401, "oidc-bad-verifier".into()),
        "{body}"
    );
    // A code that comes back naming another issuer (RFC 9207) is refused.
    let (_, _, body) = curl(
        "POST",
        &format!("{base}/api/v1/login/oidc/campus/begin"),
        &["Content-Type: application/json".to_string()],
        Some(&begin.to_string()),
    );
    let started: Value = serde_json::from_str(&body).unwrap();
    let mixed = serde_json::json!({"state": started["state"], "code": "whatever",
        "code_verifier": "x".repeat(43), "iss": "https://another-provider.example"});
    let (status, _, body) = curl(
        "POST",
        &format!("{base}/api/v1/login/oidc/campus"),
        &["Content-Type: application/json".to_string()],
        Some(&mixed.to_string()),
    );
    assert_eq!(
        (status, code_of(&body)),
        (401, "oidc-wrong-issuer".into()),
        "{body}"
    );
    // Only loopback redirects for the CLI.
    let evil = serde_json::json!({"redirect_uri": "https://evil.example/cb",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"});
    let (status, _, body) = curl(
        "POST",
        &format!("{base}/api/v1/login/oidc/campus/begin"),
        &["Content-Type: application/json".to_string()],
        Some(&evil.to_string()),
    );
    assert_eq!(status, 400, "{body}");

    // The provider rotates its signing key (a restart with a new key id):
    // Trestle refetches the keys on the unknown id, and the sign-in works.
    drop(idp);
    let _idp = Idp::start(idp_port, &redirects(&env), "key-2");
    let b2 = Browser::start().await;
    let (child, url, rx) = start_cli_login(&env, &[]);
    b2.goto(&url).await;
    // Eve: no rule gives her a role, so she gets the default, and no more.
    at_provider(&b2, "eve-0001", "Signed in to Trestle").await;
    let said = wait_ok(child, rx);
    assert!(said.contains("signed in as eve (guest)"), "{said}");
    let log = std::fs::read_to_string(env.path().join("server.log")).unwrap();
    assert!(
        log.contains("refetched the provider's signing keys"),
        "{log}"
    );
    let eve = json_as(&env, &admin, &["user", "show", "eve", "--json"]);
    assert_eq!(eve["role"], "guest");
    assert_eq!(
        eve["attributes"]["origins"]["role"], "default role",
        "{eve}"
    );
    let me = env.json(&["whoami", "--json"]);
    assert_eq!(me["user"]["name"], "eve", "{me}");
    assert_eq!(me["projects"], serde_json::json!([]), "{me}");
    // Beginning a login needs no credentials, so a source address may
    // begin only so many in a window: four so far, 56 more, then 429.
    let http = reqwest::Client::new();
    let mut codes = Vec::new();
    for _ in 0..57 {
        let r = http
            .post(format!("{base}/api/v1/login/oidc/campus/begin"))
            .header("content-type", "application/json")
            .body(begin.to_string())
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert!(codes[..56].iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(codes[56], 429, "{codes:?}");
    b.quit().await;
    b2.quit().await;
}

#[test]
fn bad_settings_are_refused_at_start_up_with_the_setting_named() {
    let env = Env::new();
    // An issuer nothing listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cfg = env.write_config(&settings(&env, &dead));
    let out = env.run(&["server", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("oidc[0].issuer"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    // A missing secret.
    let text = settings(&env, &dead).replace(
        &format!(
            "client_secret_file = \"{}\"",
            env.path().join("campus.secret").display()
        ),
        "client_secret_env = \"TRESTLE_TEST_NO_SUCH_SECRET\"",
    );
    let cfg = env.write_config(&text);
    let out = env.run(&["server", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("oidc[0].client_secret_env"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_pending_logins_and_end_sessions_everywhere() {
    let db = fresh_postgres("oidc_two");
    let shared = tempfile::tempdir().unwrap();
    let (a, b) = (Env::new(), Env::new());
    // The provider's redirect comes back to B although A began the login,
    // as behind a load balancer.
    let idp = Idp::start(
        free_port(),
        &[format!("{}/ui/login/oidc/campus/callback", b.url())],
        "key-1",
    );
    let start = |env: &Env| {
        let text = format!(
            "database = \"{db}\"\nobjects = \"{}\"\n[local]\nenabled = false\n{}",
            shared.path().join("objects").display(),
            settings_with(
                env,
                &idp.issuer(),
                &format!("redirect_url = \"{}\"", b.url())
            )
        );
        let cfg = env.write_config(&text);
        Proc::start(
            env,
            &["server", "--config", cfg.to_str().unwrap()],
            "Trestle is running at",
        )
    };
    let _pa = start(&a);
    let _pb = start(&b);
    let br = Browser::start().await;
    br.goto(&format!("{}/ui/login", a.url())).await;
    br.click("a.sso-button").await;
    at_provider(&br, "ada-4711", "Dashboard").await;
    assert!(br.url().await.starts_with(&b.url()), "{}", br.url().await);
    let session = session_of(&br.cookies().await);
    assert_eq!(whoami_with_cookie(&a, &session), 200, "A knows B's session");
    assert_eq!(whoami_with_cookie(&b, &session), 200);
    // Logging out on B ends the session on A too.
    br.click("header form button").await;
    br.wait_text("main h1", "Log in", Duration::from_secs(10))
        .await;
    assert_eq!(whoami_with_cookie(&a, &session), 401);
    assert_eq!(whoami_with_cookie(&b, &session), 401);
    br.quit().await;
}
