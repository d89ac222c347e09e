//! Workspaces in the portal, in a real browser (headless Chromium over
//! WebDriver): an admin approves a type version on the workspace admin
//! page, a researcher launches a configuration from the catalogue, sees
//! it RUNNING in "my workspaces", stops and starts it; screenshots of the
//! pages go to docs/screenshots/.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use support::run_with_stdin;
use webdriver::Browser;

fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&d).expect("screenshots dir");
    d
}

fn password(env: &Env, args: &[&str], password: &str) {
    let out = run_with_stdin(env.cmd(), args, &format!("{password}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn wait_reload(b: &Browser, url: &str, needle: &str) {
    for _ in 0..120 {
        b.goto(url).await;
        if b.text("main").await.contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{url} never showed `{needle}`: {}", b.body().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_in_the_portal() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    let base = env.url();
    password(
        &env,
        &["user", "set-password", "admin"],
        "the admin's password",
    );
    password(
        &env,
        &[
            "user",
            "add",
            "alice",
            "--project",
            "default",
            "--password-stdin",
        ],
        "alice's long password",
    );
    let cfg = env.path().join("web.toml");
    std::fs::write(
        &cfg,
        "name = \"files\"\ndescription = \"A file server over your workspace's home\"\ntype = \"webapp@1\"\nallow_roles = [\"researcher\"]\ncost_per_hour = 0.12\nidle_timeout = \"1h\"\nmax_lifetime = \"8h\"\n",
    )
    .unwrap();
    env.ok(&["ws", "config", "set", cfg.to_str().unwrap()]);
    let shots = shots();
    let b = Browser::start().await;

    // The admin approves the type version on the admin page.
    b.login(&base, "admin", "the admin's password").await;
    b.goto(&format!("{base}/ui/admin/workspaces")).await;
    b.wait_text("main", "webapp@1", Duration::from_secs(10))
        .await;
    b.click("form[action='/ui/admin/workspace-types/webapp/1/approve'] button")
        .await;
    b.wait_text("main", "approved", Duration::from_secs(10))
        .await;
    b.screenshot(&shots.join("workspace-admin.png")).await;
    b.click("header form button").await;
    b.wait_text("main h1", "Log in", Duration::from_secs(10))
        .await;

    // A researcher launches it from the catalogue.
    b.login(&base, "alice", "alice's long password").await;
    b.goto(&format!("{base}/ui/workspaces")).await;
    let main = b.wait_text("main", "files", Duration::from_secs(10)).await;
    assert!(
        main.contains("0.12 per hour"),
        "the estimated cost is shown: {main}"
    );
    b.screenshot(&shots.join("workspaces-catalogue.png")).await;
    b.type_in("#name-files", "my-files").await;
    b.click("#cfg-files ~ form button[type=submit]").await;
    b.wait_text("main", "launched", Duration::from_secs(10))
        .await;
    wait_reload(&b, &format!("{base}/ui/workspaces"), "RUNNING").await;
    let main = b.text("main").await;
    assert!(main.contains("my-files") && main.contains("Open"), "{main}");
    b.screenshot(&shots.join("workspaces.png")).await;

    // Stop, then start again.
    b.click("form[action$='/stop'] button").await;
    wait_reload(&b, &format!("{base}/ui/workspaces"), "STOPPED").await;
    b.click("form[action$='/start'] button").await;
    wait_reload(&b, &format!("{base}/ui/workspaces"), "RUNNING").await;
    b.quit().await;
}
