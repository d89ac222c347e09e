//! The costs page in a real browser (headless Chromium over WebDriver):
//! an admin sees every project's charges as daily stacked bars, the top
//! users and the budgets; a researcher sees only their own usage and the
//! budget of their project; the job page shows what the job cost. A
//! screenshot of the page goes to docs/screenshots/costs.png.

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
const T: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_costs_page_in_a_browser() {
    let env = Env::new();
    let (_up, admin) = up(
        &env,
        "[local]\nworker_cpus = 2\nworker_memory = \"2G\"\nmax_vcpus = 2\nprice_per_hour = 7.2\n\
         [costs]\nunit = \"USD\"\nmeter_interval = \"200ms\"\nbudget_interval = \"300ms\"\n",
    );
    let admin = admin.unwrap();
    let base = env.url();
    env.ok(&["project", "add", "genomics"]);
    add_user_with_password(
        &env,
        &["user", "add", "ada", "--role", "admin", "--password-stdin"],
        "ada's long password",
    );
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
    let alice = env.json(&["token", "create", "--user", "alice", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut mine = Vec::new();
    for _ in 0..2 {
        mine.push(
            ok_as(
                &env,
                &alice,
                &[
                    "submit",
                    "--project",
                    "genomics",
                    "--cpus",
                    "1",
                    "--",
                    "sleep",
                    "1",
                ],
            )
            .trim()
            .to_string(),
        );
    }
    let theirs = env
        .ok(&["submit", "--cpus", "2", "--", "sleep", "1"])
        .trim()
        .to_string();
    for id in mine.iter().chain([&theirs]) {
        wait_state(&env, id, "SUCCEEDED", T);
    }
    // Metered: the admin's report has both projects.
    eventually(T, "the jobs to be metered", || {
        let r = env.json(&["costs", "--json"]);
        (r["rows"].as_array().unwrap().len() == 2
            && r["rows"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["records"] != 0))
        .then_some(())
    });
    env.ok(&[
        "budget",
        "set",
        "--project",
        "genomics",
        "--amount",
        "5",
        "--enforce",
        "block",
    ]);

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;
    b.login(&base, "ada", "ada's long password").await;
    b.goto(&format!("{base}/ui/costs")).await;
    b.wait_text("main h1", "Costs", W).await;
    let groups = b.text("#cost-groups").await;
    assert!(
        groups.contains("genomics") && groups.contains("default"),
        "{groups}"
    );
    let users = b.text("#top-users").await;
    assert!(
        users.contains("alice") && users.contains("admin"),
        "{users}"
    );
    assert!(b.text("#cost-total").await.contains("USD"));
    assert!(b.text("#budgets").await.contains("genomics"));
    let bars = b.body().await;
    assert!(bars.contains("Budgets"), "{bars}");
    assert!(
        b.prop("figure.chart svg rect", "tagName")
            .await
            .eq_ignore_ascii_case("rect"),
        "the chart draws bars"
    );
    b.screenshot(&shots.join("costs.png")).await;
    // Grouped by user.
    b.goto(&format!("{base}/ui/costs?by=user")).await;
    let groups = b.wait_text("#cost-groups", "alice", W).await;
    assert!(groups.contains("admin"), "{groups}");
    // The job page shows what it cost.
    b.goto(&format!("{base}/ui/jobs/{theirs}")).await;
    b.wait_text("#job-cost", "USD", W).await;
    b.try_click("form[action='/ui/logout'] button").await;

    // A researcher: only their own usage, and their project's budget.
    b.login(&base, "alice", "alice's long password").await;
    b.goto(&format!("{base}/ui/costs")).await;
    b.wait_text("main h1", "Costs", W).await;
    let groups = b.text("#cost-groups").await;
    assert!(
        groups.contains("genomics") && !groups.contains("default"),
        "{groups}"
    );
    let users = b.text("#top-users").await;
    assert!(
        users.contains("alice") && !users.contains("admin"),
        "{users}"
    );
    assert!(b.text("#budgets").await.contains("genomics"));
    // The API agrees: the admin's usage is not hers to see.
    let (code, body) = http(
        "GET",
        &format!("{base}/api/v1/costs?by=user"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 200);
    assert!(!body.contains("\"admin\""), "{body}");
    let (code, _) = http("GET", &format!("{base}/api/v1/costs"), Some(&admin), None);
    assert_eq!(code, 200);
    b.quit().await;
}
