//! The store survives what users do to it, in a real browser: Resubmit on
//! a failed task of a 200-task array resubmits that one task (the click
//! that once corrupted every job listing), and a row corrupted on purpose
//! in the database is skipped by every listing, the scheduler and the
//! dashboard, and shown to the admins.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::time::Duration;
use support::run_with_stdin;
use webdriver::Browser;

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Ids in `trestle jobs --json` (the last 1000).
fn listed(env: &Env, extra: &[&str]) -> Vec<i64> {
    let mut args = vec!["jobs", "--json", "--limit", "1000"];
    args.extend_from_slice(extra);
    env.json(&args)
        .as_array()
        .expect("a list")
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmitting_an_array_task_and_a_damaged_row() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let base = env.url();
    let out = run_with_stdin(
        env.cmd(),
        &["user", "set-password", "admin"],
        "the admin's password\n",
    );
    assert!(out.status.success(), "{out:?}");

    // A 200-task array whose task 133 fails until it is fixed.
    let fixed = env.path().join("fixed");
    let script = format!(
        "echo task $TRESTLE_ARRAY_INDEX; test $TRESTLE_ARRAY_INDEX != 133 || test -e {}",
        fixed.display()
    );
    let arr = digits(&env.ok(&[
        "submit", "--array", "0-199", "--name", "sweep", "--", "sh", "-c", &script,
    ]));
    wait_state(&env, &arr, "FAILED", Duration::from_secs(180));
    let failed = env.json(&["jobs", "--json", "--state", "FAILED", "--limit", "1000"]);
    let child = failed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["parent"].as_i64() == arr.parse().ok() && j["array_index"] == 133)
        .unwrap_or_else(|| panic!("task 133 of {arr} failed: {failed}"))["id"]
        .to_string();
    std::fs::write(&fixed, "").unwrap();
    let before = listed(&env, &[]).len();

    // The portal's Resubmit on that child: one new job, running task 133.
    let b = Browser::start().await;
    b.goto(&format!("{base}/ui/login")).await;
    b.type_in("#user", "admin").await;
    b.type_in("#password", "the admin's password").await;
    b.click("button[type=submit]").await;
    b.wait_text("main h1", "Dashboard", Duration::from_secs(10))
        .await;
    b.goto(&format!("{base}/ui/jobs/{child}")).await;
    b.wait_text("#job-state", "FAILED", Duration::from_secs(10))
        .await;
    b.click("#resubmit").await;
    b.wait_text("main h1", "sweep", Duration::from_secs(10))
        .await;
    let url = b.url().await;
    let again = url.rsplit('/').next().unwrap().to_string();
    assert_ne!(again, child, "a new job: {url}");
    b.wait_text("#job-state", "SUCCEEDED", Duration::from_secs(60))
        .await;
    b.wait_text("#log", "task 133", Duration::from_secs(10))
        .await;
    let j = job(&env, &again);
    assert!(j["kind"].is_null(), "a plain job, not a new array: {j}");
    assert!(j["parent"].is_null(), "not counted in the array: {j}");
    assert_eq!(j["spec"]["array_task"]["index"], 133, "{j}");
    assert_eq!(listed(&env, &[]).len(), before + 1, "one job, not 200");

    // Every listing still answers, and new work still runs at once.
    env.ok(&["jobs"]);
    env.ok(&["jobs", "--format", "slurm"]);
    env.ok(&["jobs", "--state", "CANCELLED"]);
    let echo = digits(&env.ok(&["submit", "--", "echo", "after"]));
    wait_state(&env, &echo, "SUCCEEDED", Duration::from_secs(20));
    b.goto(&format!("{base}/ui/jobs")).await;
    let page = b.text("main").await;
    assert!(
        page.contains("sweep") && !page.contains("unavailable"),
        "{page}"
    );
    b.goto(&format!("{base}/")).await;
    let dash = b.text("main").await;
    assert!(!dash.contains("no jobs yet"), "{dash}");

    // The CLI has the same operation, with Slurm's `ARRAY_INDEX` names;
    // an array itself is not resubmitted.
    let cli = digits(&env.ok(&["resubmit", &format!("{arr}_133")]));
    let j = wait_state(&env, &cli, "SUCCEEDED", Duration::from_secs(30));
    assert_eq!(j["spec"]["array_task"]["index"], 133, "{j}");
    let out = env.run(&["resubmit", &arr]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("resubmit one of its children"), "{err}");

    // A row corrupted on purpose in the database.
    let db = env.path().join("data/trestle.db");
    {
        use sqlx::Executor;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        pool.execute(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET spec = '{{\"name\":\"x\",\"name\":\"y\"}}' WHERE id = {echo}"
        )))
        .await
        .unwrap();
        pool.close().await;
    }
    let ids = listed(&env, &[]);
    assert!(
        !ids.contains(&echo.parse().unwrap()) && ids.len() > 200,
        "the damaged job is skipped, the rest listed"
    );
    env.ok(&["jobs", "--format", "slurm"]);
    let out = env.run(&["job", "show", &echo]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be read"), "{err}");
    let fresh = digits(&env.ok(&["submit", "--", "echo", "still-running"]));
    wait_state(&env, &fresh, "SUCCEEDED", Duration::from_secs(20));
    b.goto(&format!("{base}/")).await;
    b.wait_text("main", "My jobs by state", Duration::from_secs(5))
        .await;
    b.goto(&format!("{base}/ui/workers")).await;
    let damaged = b
        .wait_text("#damaged", "Damaged jobs (1)", Duration::from_secs(10))
        .await;
    assert!(
        damaged.contains(&echo) && damaged.contains("duplicate field"),
        "{damaged}"
    );
    b.screenshot(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/screenshots/damaged-jobs.png"),
    )
    .await;
    b.quit().await;
    let (code, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    assert_eq!(code, 200);
    assert!(metrics.contains("trestle_damaged_jobs 1"), "{metrics}");
    let (code, body) = http(
        "GET",
        &format!("{base}/api/v1/admin/damaged-jobs"),
        Some(&admin),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jobs"][0]["job_id"].to_string(), echo, "{v}");
}
