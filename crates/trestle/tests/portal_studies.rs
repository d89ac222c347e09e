//! The study pages in a real browser (headless Chromium over WebDriver):
//! the three shelves, a study's files, an upload through the page's file
//! input (hashed in the browser, checked by the server, one new version),
//! the permissions page for the study's admin (grant and revoke), and a
//! 404 page for a user who may not see the study. Screenshots of the
//! pages go to docs/screenshots/.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use support::{add_user_with_password, ok_as, user_with_token};
use webdriver::Browser;

const W: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn study_pages_in_a_browser() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    let base = env.url();
    env.ok(&["index", "add", "grant-1"]);
    env.ok(&[
        "project", "add", "genomics", "--index", "grant-1", "--org", "uni",
    ]);
    env.ok(&["project", "add", "physics", "--index", "grant-1"]);
    add_user_with_password(
        &env,
        &[
            "user",
            "add",
            "alice",
            "--project",
            "genomics",
            "--password-stdin",
        ],
        "alice's long password",
    );
    add_user_with_password(
        &env,
        &[
            "user",
            "add",
            "bob",
            "--project",
            "physics",
            "--password-stdin",
        ],
        "bob's long password",
    );
    let alice = {
        let t = env.json(&["token", "create", "--user", "alice", "--json"]);
        t["token"].as_str().unwrap().to_string()
    };
    let _carol = user_with_token(&env, "carol", &["--project", "genomics"]);
    let data = env.path().join("mice");
    std::fs::create_dir_all(data.join("raw")).unwrap();
    std::fs::write(data.join("README.md"), "Mouse genomes, 2026 cohort\n").unwrap();
    std::fs::write(data.join("raw/sample-1.fastq"), "ACGT".repeat(5000)).unwrap();
    ok_as(
        &env,
        &alice,
        &[
            "study",
            "create",
            "mouse-genomes",
            "--description",
            "Mouse genomes, 2026 cohort",
            "--quota",
            "10G",
        ],
    );
    ok_as(
        &env,
        &alice,
        &["study", "upload", "mouse-genomes", data.to_str().unwrap()],
    );
    ok_as(
        &env,
        &alice,
        &[
            "study",
            "create",
            "lab-protocols",
            "--category",
            "organization",
        ],
    );
    ok_as(
        &env,
        &alice,
        &[
            "study",
            "create",
            "census-2020",
            "--category",
            "open",
            "--description",
            "Public census extract",
        ],
    );

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;
    b.login(&base, "alice", "alice's long password").await;

    // The shelves.
    b.goto(&format!("{base}/ui/studies")).await;
    b.wait_text("main h1", "Studies", W).await;
    let t = b.text("table").await;
    assert!(
        t.contains("mouse-genomes") && !t.contains("census-2020"),
        "{t}"
    );
    b.screenshot(&shots.join("studies.png")).await;
    b.goto(&format!("{base}/ui/studies?category=open")).await;
    let t = b.text("table").await;
    assert!(
        t.contains("census-2020") && !t.contains("mouse-genomes"),
        "{t}"
    );
    b.goto(&format!("{base}/ui/studies?category=organization"))
        .await;
    assert!(b.text("table").await.contains("lab-protocols"));

    // One study: files with download links, versions; upload a file.
    b.goto(&format!("{base}/ui/studies/mouse-genomes")).await;
    b.wait_text("main h1", "Study mouse-genomes", W).await;
    let files = b.text("main").await;
    assert!(
        files.contains("raw/sample-1.fastq") && files.contains("README.md"),
        "{files}"
    );
    let extra = env.path().join("notes.txt");
    std::fs::write(&extra, "lab notes from the browser\n").unwrap();
    let input = b.find("#study-files").await;
    b.send_keys(&input, extra.to_str().unwrap()).await;
    b.wait_text("#upload-status", "Saved as version 2", W).await;
    b.wait_text("main", "notes.txt", W).await;
    b.screenshot(&shots.join("study.png")).await;
    let ls = support::json_as(&env, &alice, &["study", "ls", "mouse-genomes", "--json"]);
    assert_eq!(ls["version"], 2, "{ls}");
    assert!(ls.to_string().contains("notes.txt"), "{ls}");

    // Permissions: grant Bob read-only, then revoke.
    b.goto(&format!("{base}/ui/studies/mouse-genomes/permissions"))
        .await;
    b.wait_text("main h1", "Permissions of mouse-genomes", W)
        .await;
    b.type_in("#grant-user", "bob").await;
    b.click("form:not(.inline) button[type=submit]").await;
    b.wait_text("table", "bob", W).await;
    let t = b.text("table").await;
    assert!(t.contains("read-only"), "{t}");
    b.screenshot(&shots.join("study-permissions.png")).await;

    // Bob sees it now, read-only (no upload zone).
    b.click("header form button").await;
    b.wait_text("main h1", "Log in", W).await;
    b.login(&base, "bob", "bob's long password").await;
    b.goto(&format!("{base}/ui/studies/mouse-genomes")).await;
    b.wait_text("main", "read-only", W).await;
    assert!(!b.body().await.contains("study-dropzone"));
    // And a study he has nothing on looks like one that does not exist.
    b.goto(&format!("{base}/ui/studies/lab-protocols")).await;
    b.wait_text("main h1", "Not found", W).await;
    b.goto(&format!("{base}/ui/studies/mouse-genomes/permissions"))
        .await;
    b.wait_text("main h1", "Not allowed", W).await;
    b.quit().await;
}
