//! The security review's items on logins, sessions and passwords (issue
//! 19), each with the request that showed it, against a real server on
//! SQLite and on PostgreSQL: parallel wrong passwords are throttled
//! atomically; a password change needs the current password (throttled
//! alike) and ends sessions; an admin's reset ends the user's sessions,
//! revokes their tokens and is audited; cross-site login posts are
//! refused; the session cookie is `Secure` only over HTTPS.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::Value;
use support::*;

const JSON: &str = "Content-Type: application/json";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

/// The `Set-Cookie` line of a response, if any.
fn set_cookie(head: &str) -> Option<String> {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| l.trim().to_string())
}

/// A password login over the API: (status, headers, body).
fn login(base: &str, user: &str, password: &str, extra: &[String]) -> (u16, String, String) {
    let mut h = vec![JSON.to_string()];
    h.extend_from_slice(extra);
    let body = serde_json::json!({"user": user, "password": password}).to_string();
    curl("POST", &format!("{base}/api/v1/login"), &h, Some(&body))
}

/// A browser session: (cookie header, CSRF token).
fn session(base: &str, user: &str, password: &str) -> (String, String) {
    let (code, head, body) = login(base, user, password, &[]);
    assert_eq!(code, 200, "{body}");
    let c = set_cookie(&head).expect("a session cookie");
    let secret = c
        .split_once("trestle_session=")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    (format!("Cookie: trestle_session={secret}"), csrf)
}

fn whoami_session(base: &str, cookie: &str) -> u16 {
    curl(
        "GET",
        &format!("{base}/api/v1/whoami"),
        &[cookie.to_string()],
        None,
    )
    .0
}

/// `PATCH /api/v1/users/NAME` with `headers` (a token or a session).
fn patch_user(base: &str, name: &str, headers: &[String], body: &Value) -> (u16, String) {
    let mut h = vec![JSON.to_string()];
    h.extend_from_slice(headers);
    let (code, _, body) = curl(
        "PATCH",
        &format!("{base}/api/v1/users/{name}"),
        &h,
        Some(&body.to_string()),
    );
    (code, body)
}

fn field_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .map(|v| v["error"]["field"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn bearer(t: &str) -> String {
    format!("Authorization: Bearer {t}")
}

fn add_user(env: &Env, name: &str, password: &str) -> String {
    let out = run_with_stdin(
        env.cmd(),
        &[
            "user",
            "add",
            name,
            "--project",
            "default",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = env.json(&["token", "create", "--user", name, "--json"]);
    t["token"].as_str().expect("token").to_string()
}

/// Item 3: `n` wrong passwords for `user` at once; their statuses, sorted.
fn parallel_wrong_logins(base: &str, user: &str, n: usize) -> Vec<u16> {
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let base = base.to_string();
            let user = user.to_string();
            std::thread::spawn(move || login(&base, &user, &format!("wrong password {i}"), &[]).0)
        })
        .collect();
    let mut codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    codes.sort_unstable();
    codes
}

/// Every item on one server; `extra` is its configuration.
fn review(env: &Env, extra: &str) {
    let (_up, admin) = up(
        env,
        &format!("{extra}\n[security]\ntrusted_proxies = [\"127.0.0.1\"]\n"),
    );
    let admin = admin.expect("admin token");
    let base = env.url();

    // 3. 40 parallel wrong passwords: exactly login_max_failures (5) are
    // checked (401), the rest refused unchecked (429); then even the right
    // password is refused.
    add_user(env, "tina", "tina's long password");
    let codes = parallel_wrong_logins(&base, "tina", 40);
    let n401 = codes.iter().filter(|c| **c == 401).count();
    let n429 = codes.iter().filter(|c| **c == 429).count();
    assert_eq!((n401, n429), (5, 35), "{codes:?}");
    let (code, _, body) = login(&base, "tina", "tina's long password", &[]);
    assert_eq!(
        (code, code_of(&body)),
        (429, "too-many-attempts".to_string())
    );

    // 5. Over plain HTTP the cookie has no Secure flag (so the portal works
    // at http://HOST:8080); through a trusted proxy saying https, it has.
    let (code, head, _) = login(&base, "admin", "x", &[]);
    assert_eq!(code, 401, "the admin has no password yet: {head}");
    add_user(env, "olga", "olga's first password");
    let (_, head, _) = login(&base, "olga", "olga's first password", &[]);
    let c = set_cookie(&head).expect("cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    assert!(!c.contains("Secure"), "plain HTTP: {c}");
    let (_, head, _) = login(
        &base,
        "olga",
        "olga's first password",
        &["X-Forwarded-Proto: https".into()],
    );
    let c = set_cookie(&head).expect("cookie");
    assert!(c.contains("; Secure;"), "behind a TLS proxy: {c}");
    let (cookie, csrf) = session(&base, "olga", "olga's first password");
    let (code, head, _) = curl(
        "POST",
        &format!("{base}/api/v1/logout"),
        &[cookie.clone(), format!("x-csrf-token: {csrf}")],
        None,
    );
    assert_eq!(code, 204);
    let c = set_cookie(&head).expect("cookie");
    assert!(c.contains("Max-Age=0") && !c.contains("Secure"), "{c}");

    // 2. A user's own password: a token alone no longer sets it.
    let olga = env.json(&["token", "create", "--user", "olga", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s1, csrf1) = session(&base, "olga", "olga's first password");
    let (s2, _) = session(&base, "olga", "olga's first password");
    let new_pw = serde_json::json!({"password": "olga's second password"});
    let (code, body) = patch_user(&base, "olga", &[bearer(&olga)], &new_pw);
    assert_eq!(
        (code, code_of(&body), field_of(&body)),
        (
            400,
            "current-password-required".into(),
            "current_password".into()
        ),
        "{body}"
    );
    let wrong = serde_json::json!({"password": "olga's second password", "current_password": "not it at all"});
    let (code, body) = patch_user(&base, "olga", &[bearer(&olga)], &wrong);
    assert_eq!(
        (code, code_of(&body), field_of(&body)),
        (
            403,
            "wrong-current-password".into(),
            "current_password".into()
        ),
        "{body}"
    );
    let (code, _, _) = login(&base, "olga", "olga's second password", &[]);
    assert_eq!(code, 401, "unchanged");
    // 1. Changed through session 1 with the current password: session 1
    // stays, session 2 ends, the token stays.
    let right = serde_json::json!({"password": "olga's second password", "current_password": "olga's first password"});
    let (code, body) = patch_user(
        &base,
        "olga",
        &[s1.clone(), format!("x-csrf-token: {csrf1}")],
        &right,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        whoami_session(&base, &s1),
        200,
        "the session that changed it"
    );
    assert_eq!(whoami_session(&base, &s2), 401, "the other session ended");
    let (code, _) = http("GET", &format!("{base}/api/v1/whoami"), Some(&olga), None);
    assert_eq!(code, 200, "tokens survive one's own change");
    assert_eq!(login(&base, "olga", "olga's first password", &[]).0, 401);
    assert_eq!(login(&base, "olga", "olga's second password", &[]).0, 200);
    // Changed with a token: every session ends.
    let (code, body) = patch_user(
        &base,
        "olga",
        &[bearer(&olga)],
        &serde_json::json!({"password": "olga's third password", "current_password": "olga's second password"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(whoami_session(&base, &s1), 401);
    // The CLI sends the current password (first line) for one's own.
    let out = run_with_stdin(
        {
            let mut c = env.cmd();
            c.env("TRESTLE_TOKEN", &olga);
            c
        },
        &["user", "set-password", "olga"],
        "olga's third password\nolga's fourth password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login(&base, "olga", "olga's fourth password", &[]).0, 200);
    let out = run_with_stdin(
        {
            let mut c = env.cmd();
            c.env("TRESTLE_TOKEN", &olga);
            c
        },
        &["user", "set-password", "olga"],
        "olga's fifth password\n",
    );
    assert!(!out.status.success(), "no current password given");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("current_password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Wrong current passwords go through the login throttle: five are
    // checked, the sixth (even a right one) and logins are refused.
    for i in 0..5 {
        let (code, body) = patch_user(
            &base,
            "olga",
            &[bearer(&olga)],
            &serde_json::json!({"password": "olga's fifth password", "current_password": format!("guess {i}")}),
        );
        assert_eq!(code, 403, "{body}");
    }
    let (code, body) = patch_user(
        &base,
        "olga",
        &[bearer(&olga)],
        &serde_json::json!({"password": "olga's fifth password", "current_password": "olga's fourth password"}),
    );
    assert_eq!(
        (code, code_of(&body)),
        (429, "too-many-attempts".into()),
        "{body}"
    );
    assert_eq!(login(&base, "olga", "olga's fourth password", &[]).0, 429);

    // 2. An admin resets someone else's password: no current password;
    // that user's sessions end and their tokens are revoked; audited.
    let rita = add_user(env, "rita", "rita's first password");
    let (rs, _) = session(&base, "rita", "rita's first password");
    let (code, body) = patch_user(
        &base,
        "rita",
        &[bearer(&admin)],
        &serde_json::json!({"password": "rita's reset password"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(whoami_session(&base, &rs), 401, "her session ended");
    let (code, _) = http("GET", &format!("{base}/api/v1/whoami"), Some(&rita), None);
    assert_eq!(code, 401, "her token was revoked");
    assert_eq!(login(&base, "rita", "rita's reset password", &[]).0, 200);
    let rec = eventually(T, "the reset in the audit trail", || {
        let (_, body) = http(
            "GET",
            &format!("{base}/api/v1/audit?action=user.password-reset"),
            Some(&admin),
            None,
        );
        let v: Value = serde_json::from_str(&body).ok()?;
        v["records"].as_array()?.first().cloned()
    });
    assert_eq!(rec["user"], "admin", "{rec}");
    assert_eq!(rec["resource"], "user:rita", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");
    let own = eventually(T, "olga's changes in the audit trail", || {
        let (_, body) = http(
            "GET",
            &format!("{base}/api/v1/audit?action=user.password-change"),
            Some(&admin),
            None,
        );
        let v: Value = serde_json::from_str(&body).ok()?;
        let recs = v["records"].as_array()?.clone();
        (recs.len() >= 3).then_some(recs)
    });
    assert!(own.iter().all(|r| r["resource"] == "user:olga"), "{own:?}");

    // 4. A cross-site post to the portal's login is refused with a page
    // saying why, and sets no cookie; so is one to the API's.
    let form = "user=rita&password=rita%27s+reset+password&next=%2F";
    for h in [
        "Origin: https://evil.example".to_string(),
        "Referer: https://evil.example/trap.html".to_string(),
    ] {
        let (code, head, body) = curl(
            "POST",
            &format!("{base}/ui/login"),
            &[FORM.into(), h.clone()],
            Some(form),
        );
        assert_eq!(code, 403, "{h}: {body}");
        assert!(set_cookie(&head).is_none(), "{h}: {head}");
        assert!(
            body.contains("was not sent from this server") && body.contains("evil.example"),
            "{body}"
        );
    }
    let (code, head, body) = login(
        &base,
        "rita",
        "rita's reset password",
        &["Origin: https://evil.example".into()],
    );
    assert_eq!(
        (code, code_of(&body)),
        (403, "cross-site-login".to_string())
    );
    assert!(set_cookie(&head).is_none(), "{head}");
    // A same-origin post, and one with neither header (not a browser's
    // cross-site post), sign in.
    for h in [
        vec![
            FORM.to_string(),
            format!("Origin: http://127.0.0.1:{}", env.port),
        ],
        vec![
            FORM.to_string(),
            format!("Referer: http://127.0.0.1:{}/ui/login", env.port),
        ],
        vec![FORM.to_string()],
    ] {
        let (code, head, body) = curl("POST", &format!("{base}/ui/login"), &h, Some(form));
        assert_eq!(code, 303, "{h:?}: {body}");
        assert!(set_cookie(&head).is_some(), "{h:?}: {head}");
    }
}

#[test]
fn logins_sessions_and_passwords_on_sqlite() {
    review(&Env::new(), "");
}

#[test]
fn logins_sessions_and_passwords_on_postgres() {
    let db = fresh_postgres("identity_sessions");
    review(&Env::new(), &format!("database = \"{db}\""));
}

/// With `revoke_tokens_on_password_reset = false` an admin's reset ends
/// the user's sessions but keeps their tokens; and a server listening
/// beyond loopback over plain HTTP warns at start (one on loopback does
/// not).
#[test]
fn reset_can_keep_tokens_and_plain_http_beyond_loopback_is_warned_about() {
    let env = Env::new();
    let cfg = env.path().join("trestle.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"0.0.0.0:{}\"\ndata_dir = \"{}\"\n[security]\nrevoke_tokens_on_password_reset = false\n",
            env.port,
            env.path().join("data").display()
        ),
    )
    .unwrap();
    let p = Proc::start(
        &env,
        &["up", "--config", cfg.to_str().unwrap()],
        "Trestle is running at",
    );
    let admin = p
        .stdout()
        .iter()
        .find_map(|l| l.strip_prefix("admin token: ").map(str::to_string))
        .expect("admin token");
    let base = env.url();
    let log = std::fs::read_to_string(env.path().join("server.log")).unwrap();
    assert!(
        log.contains("served over plain HTTP") && log.contains(&format!("0.0.0.0:{}", env.port)),
        "{log}"
    );
    let sam = add_user(&env, "sam", "sam's first password");
    let (s, _) = session(&base, "sam", "sam's first password");
    let (code, body) = patch_user(
        &base,
        "sam",
        &[bearer(&admin)],
        &serde_json::json!({"password": "sam's reset password"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(whoami_session(&base, &s), 401, "the session ended");
    let (code, _) = http("GET", &format!("{base}/api/v1/whoami"), Some(&sam), None);
    assert_eq!(code, 200, "the token was kept");
    drop(p);

    let env = Env::new();
    let _up = up(&env, "");
    let log = std::fs::read_to_string(env.path().join("server.log")).unwrap();
    assert!(log.contains("server listening"), "{log}");
    assert!(!log.contains("plain HTTP"), "loopback: {log}");
}
