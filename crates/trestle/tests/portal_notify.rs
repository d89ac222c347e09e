//! The portal's notification settings in a real browser: a researcher
//! without an email address is told that nothing can reach them, mutes an
//! event type, adds a webhook target of their own (its URL masked from
//! then on), a bad URL is refused next to the form, and a test message
//! that cannot be delivered says why. Saves
//! docs/screenshots/notifications.png.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::time::Duration;
use support::run_with_stdin;
use webdriver::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_settings_in_a_browser() {
    let env = Env::new();
    let (_up, _) = up(&env, "[notify]\ntick = \"50ms\"\n");
    let base = env.url();
    let out = run_with_stdin(
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
    assert!(out.status.success());
    let b = Browser::start().await;
    b.goto(&format!("{base}/ui/login")).await;
    b.type_in("#user", "alice").await;
    b.type_in("#password", "alice's long password").await;
    b.click("button[type=submit]").await;
    b.wait_text("main h1", "Dashboard", Duration::from_secs(10))
        .await;
    b.click("header nav a[href='/ui/settings/notifications']")
        .await;
    b.wait_text("main h1", "Notifications", Duration::from_secs(10))
        .await;
    let warn = b.text("#unreachable").await;
    assert!(warn.contains("Nothing can reach you"), "{warn}");

    // Mute one type: it leaves the defaults.
    b.click("form[action$='/mute'] button").await;
    b.wait_text("main table", "muted", Duration::from_secs(10))
        .await;

    // A plain-HTTP URL elsewhere is refused, next to the form.
    b.type_in("#t-name", "mine").await;
    b.type_in("#t-url", "http://hooks.example.org/x").await;
    b.click("#add-target button").await;
    b.wait_text("main .error", "plain HTTP", Duration::from_secs(10))
        .await;

    // A target of her own; its URL is never shown again.
    b.type_in("#t-name", "mine").await;
    b.type_in("#t-url", "https://hooks.example.org/services/s3cr3t")
        .await;
    b.click("#add-target button").await;
    b.wait_text("main", "hooks.example.org/ser", Duration::from_secs(10))
        .await;
    assert!(!b.body().await.contains("s3cr3t"), "the URL is masked");
    b.size(1280, 1400).await;
    b.screenshot(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/screenshots/notifications.png"),
    )
    .await;
    // Testing it fails (the host does not resolve here), and says so.
    b.click("form[action$='/test'] button").await;
    b.wait_text("main .error", "was not delivered", Duration::from_secs(20))
        .await;
    b.quit().await;
}
