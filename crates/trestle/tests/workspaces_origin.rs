//! Per-workspace origins in a real browser: with `[workspaces] origin`,
//! a workspace is served at `http://ws-{id}.localhost:PORT` (Chromium
//! resolves `*.localhost` to the loopback). Opening it from the portal
//! goes through a one-time ticket; the app sees neither the portal's
//! cookie nor its own origin's; and a script in the workspace cannot call
//! the Trestle API with the user's session.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::time::Duration;
use support::{curl, json_as, run_with_stdin};
use webdriver::Browser;

/// An app that serves a page whose script calls the Trestle API (at the
/// portal's origin, `$API`) with the user's credentials and shows what
/// came back, and that echoes the headers it received at `/echo`.
const APP: &str = r#"exec python3 -c "
import http.server as h, socketserver as s, sys, os
api = os.environ['API']
page = ('<html><body><p id=out>waiting</p><script>'
  'fetch(\"' + api + '/api/v1/whoami\", {credentials: \"include\"})'
  '.then(r => r.text().then(t => document.getElementById(\"out\").innerText = \"status \" + r.status + \" \" + t))'
  '.catch(e => document.getElementById(\"out\").innerText = \"blocked\");'
  '</script></body></html>').encode()
class H(h.BaseHTTPRequestHandler):
    def address_string(self): return 'local'
    def do_GET(self):
        b = (self.requestline + '\n' + str(self.headers)).encode() if 'echo' in self.path else page
        self.send_response(200); self.send_header('Content-Type', 'text/plain' if 'echo' in self.path else 'text/html')
        self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
class S(s.ThreadingMixIn, s.UnixStreamServer): daemon_threads = True
S(sys.argv[1], H).serve_forever()
" "$1""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_at_its_own_origin_cannot_use_the_portal_session() {
    let env = Env::new();
    let port = env.port;
    env.set_var("API", &format!("http://127.0.0.1:{port}"));
    let (_up, _admin) = up(
        &env,
        &format!("[workspaces]\norigin = \"http://ws-{{id}}.localhost:{port}\"\n"),
    );
    let base = env.url();
    let out = run_with_stdin(
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
    env.ok(&["ws", "type", "approve", "webapp@1"]);
    let cfg = env.path().join("app.toml");
    std::fs::write(&cfg, format!("name = \"app\"\ntype = \"webapp@1\"\nallow_roles = [\"researcher\"]\n[params]\ncommand = '''{APP}'''\n")).unwrap();
    env.ok(&["ws", "config", "set", cfg.to_str().unwrap()]);
    let w = json_as(&env, &ada, &["ws", "launch", "app", "--wait", "--json"]);
    assert_eq!(w["state"], "RUNNING", "{w}");
    let id = w["id"].to_string();
    assert!(
        w["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ws-open/{id}")),
        "{w}"
    );
    // In origin mode the API's own host serves no workspace paths' apps
    // to other hosts' cookies: a token still works from programs.
    let origin = format!("http://ws-{id}.localhost:{port}");
    let (code, _, body) = curl(
        "GET",
        &format!("{origin}/ws/{id}/echo"),
        &[
            format!("Authorization: Bearer {ada}"),
            format!("Host: ws-{id}.localhost:{port}"),
        ],
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("trs_"), "{body}");

    let b = Browser::start().await;
    b.goto(&format!("{base}/ui/login")).await;
    b.type_in("#user", "ada").await;
    b.type_in("#password", "ada's long password").await;
    b.click("button[type=submit]").await;
    b.wait_text("main h1", "Dashboard", Duration::from_secs(10))
        .await;
    b.goto(&format!("{base}/ws-open/{id}")).await;
    // The ticket became the origin's cookie; the page's script ran there.
    let mut out = String::new();
    for _ in 0..80 {
        out = b.try_text("#out").await.unwrap_or_default();
        if !out.is_empty() && out != "waiting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(b.url().await.starts_with(&origin), "{}", b.url().await);
    assert!(
        out == "blocked" || out.contains("status 401"),
        "the script reached the API with the user's session: {out}"
    );
    // The app saw no Trestle cookie of either origin.
    b.goto(&format!("{origin}/ws/{id}/echo")).await;
    let echo = b.text("body").await;
    assert!(echo.contains("GET /echo"), "{echo}");
    assert!(
        !echo.contains("trestle_session") && !echo.contains("trestle_ws"),
        "{echo}"
    );
    // Another origin's workspace is not this cookie's.
    let (code, _, _) = curl(
        "GET",
        &format!("http://127.0.0.1:{port}/ws/{id}/echo"),
        &[format!(
            "Host: ws-{}.localhost:{port}",
            w["id"].as_i64().unwrap() + 1
        )],
        None,
    );
    assert!(code == 401 || code == 404, "{code}");
    b.quit().await;
}
