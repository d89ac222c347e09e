//! An array's page in a real browser (headless Chromium over WebDriver):
//! its children with their `ID_INDEX` beside each id, the failed ones in
//! one click, paging past the first page, the failed indices as a
//! compressed range, and a button that runs just those again. A
//! screenshot goes to docs/screenshots/array.png.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use support::{add_user_with_password, ok_as};
use webdriver::Browser;

const W: Duration = Duration::from_secs(10);
const T: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_page_in_a_browser() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let base = env.url();
    add_user_with_password(
        &env,
        &[
            "user",
            "add",
            "ada",
            "--role",
            "admin",
            "--project",
            "default",
            "--password-stdin",
        ],
        "ada's long password",
    );
    // 120 children; indices 7, 8, 9 and 60 fail.
    let id = env
        .ok(&[
            "submit",
            "--name",
            "sweep",
            "--array",
            "0-119",
            "--",
            "sh",
            "-c",
            "case $TRESTLE_ARRAY_INDEX in 7|8|9|60) exit 1;; esac",
        ])
        .trim()
        .to_string();
    wait_state(&env, &id, "FAILED", T);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;
    b.login(&base, "ada", "ada's long password").await;
    b.goto(&format!("{base}/ui/jobs/{id}")).await;
    b.wait_text("#children-h", "Children (120)", W).await;
    assert_eq!(b.text("#failed-indices code").await, "7-9,60");
    // The first page: 50 children, each with its array task.
    let table = b.text("#children-h ~ div.scroll table").await;
    assert!(table.contains("Array task"), "{table}");
    assert!(table.contains(&format!("{id}_119")), "{table}");
    assert!(
        !table.contains(&format!("{id}_60 ")),
        "not on the first page"
    );
    b.screenshot(&shots.join("array.png")).await;
    // Paging reaches the rest.
    b.click("#children-next").await;
    b.wait_text("#children-h ~ div.scroll table", &format!("{id}_60"), W)
        .await;
    b.click("#children-next").await;
    b.wait_text("#children-h ~ div.scroll table", &format!("{id}_0"), W)
        .await;
    // Failed only, in one click.
    b.click("#children-failed").await;
    let failed = b
        .wait_text("#children-h ~ div.scroll table", &format!("{id}_60"), W)
        .await;
    for i in [7, 8, 9] {
        assert!(failed.contains(&format!("{id}_{i}")), "{failed}");
    }
    assert!(!failed.contains(&format!("{id}_10")), "{failed}");
    assert!(
        b.try_text("#children-next").await.is_none(),
        "one page of failures"
    );
    // Run the four failed again: a new array of just those.
    let before = b.url().await;
    b.click("#resubmit-failed").await;
    let mut url = b.url().await;
    for _ in 0..100 {
        if url != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        url = b.url().await;
    }
    let again = url
        .rsplit('/')
        .next()
        .unwrap()
        .split(['?', '#'])
        .next()
        .unwrap()
        .to_string();
    assert_ne!(again, id, "{url}");
    let v = wait_state(&env, &again, "FAILED", T);
    assert_eq!(v["children"]["total"], 4, "{v}");

    // The dashboard counts come from the store, not from a page of the
    // listing: ada's 1,200-child array and its parent all show.
    let ada = env.json(&["token", "create", "--user", "ada", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let big = ok_as(&env, &ada, &["submit", "--array", "0-1199", "--", "true"])
        .trim()
        .to_string();
    wait_state(&env, &big, "SUCCEEDED", Duration::from_secs(300));
    b.goto(&format!("{base}/")).await;
    let counts = b.wait_text("#mine-h ~ ul.counts", "1201", W).await;
    assert!(counts.contains("SUCCEEDED"), "{counts}");
    // The workers page does not say "free" and "all in use" at once.
    b.goto(&format!("{base}/ui/workers")).await;
    let page = b.wait_text("main", "Compute environments", W).await;
    assert!(!page.contains("CPUs in use"), "{page}");
    assert!(page.contains("started as workers"), "{page}");
    // The submit form names commands that exist.
    b.goto(&format!("{base}/ui/submit")).await;
    let form = b.wait_text("main", "Submit", W).await;
    assert!(!form.contains("trestle upload"), "{form}");
    b.quit().await;
}
