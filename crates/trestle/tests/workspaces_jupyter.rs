//! JupyterLab through the proxy in a real browser (headless Chromium over
//! WebDriver): a notebook cell runs on the kernel over the proxied
//! WebSockets and its result is read from the page; another user gets
//! not-found, a browser without a session the login page, and a direct
//! connection to the app's socket without the per-launch secret is
//! refused. With the tab left open and no one acting, the workspace stops
//! as idle; the notebook survives stop and start; terminate removes it.
//! An echo app shows that the app never receives Trestle's credentials.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use support::{curl, json_as, run_with_stdin, user_with_token};
use webdriver::Browser;

fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&d).expect("screenshots dir");
    d
}

fn jupyter_path() -> String {
    let bin = std::env::var("TRESTLE_TEST_JUPYTER_BIN").expect(
        "TRESTLE_TEST_JUPYTER_BIN names the bin directory of a JupyterLab install (scripts/test.sh installs one)",
    );
    format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
}

fn write(env: &Env, name: &str, text: &str) -> String {
    let p = env.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn show(env: &Env, id: &str) -> Value {
    env.json(&["ws", "show", id, "--json"])
}

fn admin_token(env: &Env) -> String {
    env.json(&["token", "create", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The app's socket on this host (the worker's scratch under the data dir).
fn find_socket(dir: &std::path::Path) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.ends_with(".trestle-ws/app.sock") {
            return Some(p);
        }
        if e.file_type().ok()?.is_dir()
            && let Some(s) = find_socket(&p)
        {
            return Some(s);
        }
    }
    None
}

/// Waits for `needle` in `css` for at most `limit`; `None` if it never shows.
async fn wait_for_text(b: &Browser, css: &str, needle: &str, limit: Duration) -> Option<String> {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if let Some(t) = b.try_text(css).await
            && t.contains(needle)
        {
            return Some(t);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jupyterlab_through_the_proxy() {
    let env = Env::new();
    env.set_var("PATH", &jupyter_path());
    let (_up, _admin) = up(&env, "");
    let base = env.url();
    let pw = run_with_stdin(
        env.cmd(),
        &[
            "user",
            "add",
            "alice",
            "--project",
            "default",
            "--password-stdin",
        ],
        "alice's long password\n",
    );
    assert!(pw.status.success());
    let alice = env.json(&["token", "create", "--user", "alice", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = user_with_token(&env, "bob", &["--project", "default"]);
    env.ok(&["ws", "type", "approve", "jupyterlab@1"]);
    let cfg = write(
        &env,
        "lab.toml",
        "name = \"lab\"\ntype = \"jupyterlab@1\"\nallow_roles = [\"researcher\"]\nmemory = \"1G\"\nidle_timeout = \"40s\"\n",
    );
    env.ok(&["ws", "config", "set", &cfg]);
    let w = json_as(&env, &alice, &["ws", "launch", "lab", "--wait", "--json"]);
    assert_eq!(w["state"], "RUNNING", "{w}");
    let id = w["id"].to_string();
    let ws = format!("{base}/ws/{id}");

    // Put a notebook in the home through the proxy (Jupyter's contents API).
    let nb = serde_json::json!({"type": "notebook", "content": {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [], "execution_count": null}], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}});
    let (code, _, body) = curl(
        "PUT",
        &format!("{ws}/api/contents/t.ipynb"),
        &[
            format!("Authorization: Bearer {alice}"),
            "Content-Type: application/json".into(),
        ],
        Some(&nb.to_string()),
    );
    assert!(code == 201 || code == 200, "{code} {body}");

    // Others: not found; no credentials: refused; the socket without the secret: refused.
    let (code, _, body) = curl(
        "GET",
        &format!("{ws}/api/status"),
        &[format!("Authorization: Bearer {bob}")],
        None,
    );
    assert_eq!(code, 404, "{body}");
    let (code, _, _) = curl(
        "GET",
        &format!("{ws}/api/status"),
        &[format!("Authorization: Bearer {}", admin_token(&env))],
        None,
    );
    assert_eq!(code, 404, "an admin does not get in without an assist");
    let (code, _, _) = curl("GET", &format!("{ws}/api/status"), &[], None);
    assert_eq!(code, 401);
    let sock = find_socket(env.path()).expect("the app's socket");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
            sock.to_str().unwrap(),
            &format!("http://localhost/ws/{id}/api/contents"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "403",
        "the app wants its secret"
    );

    let b = Browser::start().await;
    b.goto(&format!("{ws}/lab")).await;
    b.wait_text("main h1", "Log in", Duration::from_secs(10))
        .await;
    b.type_in("#user", "alice").await;
    b.type_in("#password", "alice's long password").await;
    b.click("button[type=submit]").await;
    // Signed in, the browser goes on to the workspace it asked for.
    b.find("#jp-main-dock-panel").await;
    assert!(
        b.url().await.contains(&format!("/ws/{id}/lab")),
        "{}",
        b.url().await
    );
    b.goto(&format!("{ws}/lab/tree/t.ipynb")).await;
    b.find(".jp-Notebook .jp-Cell .cm-content").await;
    // Run a cell on the kernel (over the proxied WebSockets) once it is up.
    let mut typed = false;
    for _ in 0..40 {
        if b.try_click(".jp-Notebook .jp-Cell .cm-content").await {
            let cell = b.find(".jp-Notebook .jp-Cell .cm-content").await;
            b.send_keys(&cell, "print(6 * 7)").await;
            typed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(typed, "the cell never took keys: {}", b.body().await);
    let mut out = String::new();
    for _ in 0..20 {
        b.try_click(".jp-Notebook .jp-Cell .cm-content").await;
        let cell = b.find(".jp-Notebook .jp-Cell .cm-content").await;
        b.send_keys(&cell, "\u{E008}\u{E007}\u{E000}").await;
        if let Some(t) =
            wait_for_text(&b, ".jp-OutputArea-output", "42", Duration::from_secs(6)).await
        {
            out = t;
            break;
        }
    }
    assert!(out.contains("42"), "the cell's result: {}", b.body().await);
    // Save it (Ctrl-S), so the notebook in the home has the cell.
    let cell = b.find(".jp-Notebook .jp-Cell .cm-content").await;
    b.send_keys(&cell, "\u{E009}s\u{E000}").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.screenshot(&shots().join("jupyterlab.png")).await;

    // Leave the tab open; no one acts: the workspace stops as idle.
    let w = eventually(Duration::from_secs(180), "the idle stop", || {
        let w = show(&env, &id);
        std::thread::sleep(Duration::from_secs(1));
        (w["state"] == "STOPPED").then_some(w)
    });
    assert!(w["reason"].as_str().unwrap_or("").contains("idle"), "{w}");
    b.quit().await;

    // The notebook survives stop and start.
    support::ok_as(&env, &alice, &["ws", "start", &id, "--wait"]);
    let (code, _, body) = curl(
        "GET",
        &format!("{ws}/api/contents/t.ipynb"),
        &[format!("Authorization: Bearer {alice}")],
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("6 * 7"), "the saved notebook: {body}");
    // Terminate removes everything.
    support::ok_as(&env, &alice, &["ws", "terminate", &id, "--wait"]);
    let (code, _, _) = curl(
        "GET",
        &format!("{ws}/api/contents/t.ipynb"),
        &[format!("Authorization: Bearer {alice}")],
        None,
    );
    assert_eq!(code, 404);
    assert!(
        !env.path()
            .join(format!("data/objects/workspaces/{id}/home"))
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}
