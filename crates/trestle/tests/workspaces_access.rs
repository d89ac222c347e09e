//! Getting into workspaces through the server, with the real binary: a
//! shell in a PTY returns its command's exit code; a port forward carries
//! a real HTTP request; an echo app shows that the app never receives
//! Trestle's credentials (neither the portal session cookie nor a token)
//! while its own cookies pass; only the owner gets in (others, admins
//! included, get not-found until an admin's audited assist).

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use std::time::Duration;
use support::{curl, json_as, run_as, user_with_token};

/// An app on the workspace's socket that answers every request with the
/// request line and headers it received.
const ECHO: &str = r#"exec python3 -c "
import http.server as h, socketserver as s, sys
class H(h.BaseHTTPRequestHandler):
    def address_string(self): return 'local'
    def do_GET(self):
        b = (self.requestline + '\n' + str(self.headers)).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
class S(s.ThreadingMixIn, s.UnixStreamServer): daemon_threads = True
S(sys.argv[1], H).serve_forever()
" "$1""#;

fn write(env: &Env, name: &str, text: &str) -> String {
    let p = env.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn session_cookie(base: &str, user: &str, password: &str) -> String {
    let body = serde_json::json!({"user": user, "password": password}).to_string();
    let (code, head, out) = curl(
        "POST",
        &format!("{base}/api/v1/login"),
        &["Content-Type: application/json".into()],
        Some(&body),
    );
    assert_eq!(code, 200, "{out}");
    let secret = head
        .split("trestle_session=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("a session cookie")
        .to_string();
    format!("trestle_session={secret}")
}

#[test]
fn shells_forwards_stripped_credentials_and_who_gets_in() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    let base = env.url();
    let out = support::run_with_stdin(
        env.cmd(),
        &[
            "user",
            "add",
            "ada",
            "--project",
            "default",
            "--password-stdin",
        ],
        "ada's long password\n",
    );
    assert!(out.status.success());
    let ada = env.json(&["token", "create", "--user", "ada", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = user_with_token(&env, "bob", &["--project", "default"]);
    let admin = env.json(&["token", "create", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["ws", "type", "approve", "terminal@1"]);
    env.ok(&["ws", "type", "approve", "webapp@1"]);
    let shell = write(
        &env,
        "shell.toml",
        "name = \"shell\"\ntype = \"terminal@1\"\nallow_roles = [\"researcher\"]\n",
    );
    env.ok(&["ws", "config", "set", &shell]);
    let echo = write(
        &env,
        "echo.toml",
        &format!(
            "name = \"echo\"\ntype = \"webapp@1\"\nallow_roles = [\"researcher\"]\n[params]\ncommand = '''{ECHO}'''\n"
        ),
    );
    env.ok(&["ws", "config", "set", &echo]);

    // A shell: the command's output and exit code come back.
    let t = json_as(&env, &ada, &["ws", "launch", "shell", "--wait", "--json"]);
    assert_eq!(t["state"], "RUNNING", "{t}");
    let tid = t["id"].to_string();
    let out = run_as(
        &env,
        &ada,
        &[
            "ws",
            "connect",
            &tid,
            "--",
            "sh",
            "-c",
            "echo in-the-workspace $HOME; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("in-the-workspace"), "{text}");
    let out = run_as(&env, &bob, &["ws", "connect", &tid, "--", "true"]);
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("workspace 1 does not exist"),
        "{out:?}"
    );

    // A port forward carries a real HTTP request to a port on the workspace's host.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello through the tunnel").unwrap();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let local = free_port();
    let mut fwd = env
        .cmd()
        .env("TRESTLE_TOKEN", &ada)
        .args(["ws", "forward", &tid, &format!("{local}:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = eventually(Duration::from_secs(20), "the forwarded request", || {
        let (code, _, body) = curl(
            "GET",
            &format!("http://127.0.0.1:{local}/hello.txt"),
            &[],
            None,
        );
        (code == 200).then_some(body)
    });
    assert_eq!(got, "hello through the tunnel");
    let _ = fwd.kill();
    let _ = fwd.wait();
    let _ = server.kill();
    let _ = server.wait();

    // The echo app: Trestle's credentials never reach it; its own cookie does.
    let e = json_as(&env, &ada, &["ws", "launch", "echo", "--wait", "--json"]);
    assert_eq!(e["state"], "RUNNING", "{e}");
    let eid = e["id"].to_string();
    let url = format!("{base}/ws/{eid}/anything?x=1");
    let (code, _, body) = curl(
        "GET",
        &url,
        &[
            format!("Authorization: Bearer {ada}"),
            "Cookie: theme=dark".into(),
        ],
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("GET /anything?x=1"),
        "the prefix is stripped for an app not told it: {body}"
    );
    assert!(
        !body.contains("trs_") && !body.to_lowercase().contains("authorization"),
        "{body}"
    );
    assert!(body.contains("theme=dark"), "{body}");
    let cookie = session_cookie(&base, "ada", "ada's long password");
    let (code, _, body) = curl(
        "GET",
        &url,
        &[format!("Cookie: {cookie}; theme=dark")],
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("trestle_session"), "{body}");
    assert!(body.contains("theme=dark"), "{body}");

    // Who gets in: others and admins get not-found; an admin's assist lets them in.
    for (who, token) in [("bob", &bob), ("admin", &admin)] {
        let (code, _, body) = curl(
            "GET",
            &url,
            &[format!("Authorization: Bearer {token}")],
            None,
        );
        assert_eq!(code, 404, "{who}: {body}");
    }
    let (code, _, _) = curl(
        "GET",
        &format!("{base}/ws/99999/x"),
        &[format!("Authorization: Bearer {ada}")],
        None,
    );
    assert_eq!(code, 404, "a workspace that does not exist looks the same");
    let (code, _, _) = curl("GET", &url, &[], None);
    assert_eq!(code, 401);
    env.ok(&["ws", "assist", &eid]);
    let (code, _, _) = curl(
        "GET",
        &url,
        &[format!("Authorization: Bearer {admin}")],
        None,
    );
    assert_eq!(code, 200, "an assisting admin gets in");
    eventually(
        Duration::from_secs(20),
        "the assist in the audit trail",
        || {
            let audit = env.ok(&["audit", "query", "--action", "workspace.assist", "--json"]);
            audit.contains(&format!("workspace:{eid}")).then_some(())
        },
    );
}
