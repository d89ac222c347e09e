//! The web portal in a real browser: headless Chromium driven over
//! WebDriver logs in, submits a job through the form and watches it
//! succeed with its log, cancels a running job, uploads an input folder,
//! meets a 404 page for another user's job, and saves screenshots of the
//! main pages under docs/screenshots/.

mod common;
#[path = "support/identity.rs"]
mod support;
mod webdriver;

use common::*;
use std::path::PathBuf;
use std::time::Duration;
use support::{add_user_with_password, curl};
use webdriver::Browser;

fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&d).expect("screenshots dir");
    d
}

async fn logout(b: &Browser) {
    b.click("header form button").await;
    b.wait_text("main h1", "Log in", Duration::from_secs(10))
        .await;
}

/// Submits the form; returns the new job's id from the job page's URL.
async fn submit(b: &Browser, base: &str) -> String {
    b.click("#submit").await;
    b.wait_text("main h1", "Job ", Duration::from_secs(10))
        .await;
    let url = b.url().await;
    let id = url.rsplit('/').next().unwrap_or("").to_string();
    assert!(
        id.parse::<i64>().is_ok(),
        "redirected to a job page: {url} ({base})"
    );
    id
}

/// Re-opens `url` until `css` shows `needle` (pages without live updates).
async fn wait_reload(b: &Browser, url: &str, css: &str, needle: &str) {
    for _ in 0..120 {
        b.goto(url).await;
        if b.text(css).await.contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{url}: `{css}` never showed `{needle}`: {}", b.body().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_in_a_browser() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    let base = env.url();
    env.ok(&["index", "add", "grant-1"]);
    env.ok(&["project", "add", "physics", "--index", "grant-1"]);
    add_user_with_password(
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
    add_user_with_password(
        &env,
        &["user", "set-password", "admin"],
        "the admin's password",
    );
    let shots = shots();
    let b = Browser::start().await;

    // Not logged in: the portal asks for a login; a wrong password says so.
    b.goto(&format!("{base}/ui/jobs")).await;
    b.wait_text("main h1", "Log in", Duration::from_secs(10))
        .await;
    b.type_in("#user", "alice").await;
    b.type_in("#password", "wrong").await;
    b.click("button[type=submit]").await;
    b.wait_text(
        "main",
        "Wrong user name or password",
        Duration::from_secs(10),
    )
    .await;
    b.screenshot(&shots.join("login.png")).await;
    b.login(&base, "alice", "alice's long password").await;
    let header = b.text("header").await;
    assert!(
        header.contains("alice") && header.contains("researcher"),
        "{header}"
    );

    // Server-side validation: messages next to the fields.
    b.goto(&format!("{base}/ui/submit")).await;
    b.type_in("#cpus", "two").await;
    b.click("#submit").await;
    b.wait_text("#command-error", "Enter a command", Duration::from_secs(10))
        .await;
    b.wait_text("#cpus-error", "not a whole number", Duration::from_secs(5))
        .await;

    // Submit through the form; the page follows it to SUCCEEDED with its log.
    b.type_in("#command", "echo portal-hello; sleep 2; echo portal-bye")
        .await;
    b.type_in("#cpus", "1").await;
    b.type_in("#name", "hello-job").await;
    let ok_id = submit(&b, &base).await;
    b.wait_text("#job-state", "SUCCEEDED", Duration::from_secs(60))
        .await;
    let log = b
        .wait_text("#log", "portal-bye", Duration::from_secs(10))
        .await;
    assert!(log.contains("portal-hello"), "{log}");
    b.screenshot(&shots.join("job.png")).await;
    // Resubmit makes a new job with the same specification.
    b.click("#resubmit").await;
    b.wait_text("main h1", "hello-job", Duration::from_secs(10))
        .await;
    let again = b.url().await;
    assert!(!again.ends_with(&format!("/{ok_id}")), "a new job: {again}");
    b.wait_text("#job-state", "SUCCEEDED", Duration::from_secs(60))
        .await;

    // A running job is cancelled with its button.
    b.goto(&format!("{base}/ui/submit")).await;
    b.type_in("#command", "echo started; sleep 600").await;
    let long_id = submit(&b, &base).await;
    b.wait_text("#job-state", "RUNNING", Duration::from_secs(60))
        .await;
    b.wait_text("#log", "started", Duration::from_secs(20))
        .await;
    b.click("#cancel").await;
    b.wait_text("#job-state", "CANCELLED", Duration::from_secs(30))
        .await;
    assert_eq!(job(&env, &long_id)["state"], "CANCELLED");

    // A job no worker can fit says why it is not running.
    b.goto(&format!("{base}/ui/submit")).await;
    b.type_in("#command", "true").await;
    b.type_in("#cpus", "512").await;
    let big = submit(&b, &base).await;
    let why = b
        .wait_text("#job-reason", "not running", Duration::from_secs(10))
        .await;
    assert!(why.contains("512") || why.contains("CPU"), "{why}");
    b.click("#cancel").await;
    b.wait_text("#job-state", "CANCELLED", Duration::from_secs(30))
        .await;
    assert_eq!(job(&env, &big)["state"], "CANCELLED");

    // An input folder uploaded from the form, used by a job.
    let dir = env.path().join("case");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("in.txt"), "input-from-folder\n").unwrap();
    std::fs::write(dir.join("sub/more.txt"), "nested-input\n").unwrap();
    b.goto(&format!("{base}/ui/submit")).await;
    let folder = b.find("#folder").await;
    b.send_keys(&folder, dir.to_str().unwrap()).await;
    b.wait_text(
        "#upload-status",
        "Uploaded 2 files",
        Duration::from_secs(30),
    )
    .await;
    let upload = b.prop("#inputs", "value").await;
    assert!(upload.starts_with('u'), "upload id filled in: {upload}");
    b.type_in("#command", "cat in.txt sub/more.txt").await;
    b.screenshot(&shots.join("submit.png")).await;
    let in_id = submit(&b, &base).await;
    b.wait_text("#job-state", "SUCCEEDED", Duration::from_secs(60))
        .await;
    b.wait_text("#log", "nested-input", Duration::from_secs(10))
        .await;

    // An array through the form: its page counts children per state and lists them.
    b.goto(&format!("{base}/ui/submit")).await;
    b.type_in("#command", "echo index $TRESTLE_ARRAY_INDEX")
        .await;
    b.type_in("#name", "sweep").await;
    b.type_in("#array", "0-3").await;
    let arr = submit(&b, &base).await;
    let arr_url = format!("{base}/ui/jobs/{arr}");
    wait_reload(&b, &arr_url, "#job-state", "SUCCEEDED").await;
    let children = b.text("#children-h").await;
    assert!(children.contains("Children (4)"), "{children}");
    let main = b.text("main").await;
    assert!(
        main.matches("sweep").count() >= 5,
        "the children are listed: {main}"
    );

    // Form posts need the session's CSRF token; without a session they log in first.
    let (code, head, _) = curl(
        "POST",
        &format!("{base}/ui/jobs/{long_id}/cancel"),
        &[],
        Some("x=1"),
    );
    assert!(code == 303 && head.contains("/ui/login"), "{head}");
    let (_, head, _) = curl(
        "POST",
        &format!("{base}/ui/login"),
        &[],
        Some("user=alice&password=alice%27s+long+password"),
    );
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let (code, _, body) = curl(
        "POST",
        &format!("{base}/ui/submit"),
        &[format!("Cookie: {cookie}")],
        Some("command=echo+forged&csrf_token=wrong"),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("security token"), "{body}");

    // Lists and the dashboard.
    b.goto(&format!("{base}/ui/jobs?state=SUCCEEDED")).await;
    let list = b.text("table").await;
    assert!(
        list.contains("hello-job") && list.contains(&in_id),
        "{list}"
    );
    assert!(!list.contains("CANCELLED"), "the filter holds: {list}");
    b.screenshot(&shots.join("jobs.png")).await;
    b.goto(&format!("{base}/ui/jobs?name=HELLO&since=1h")).await;
    let list = b.text("table").await;
    assert!(
        list.contains("hello-job") && !list.contains("sweep"),
        "{list}"
    );
    b.goto(&format!("{base}/ui/jobs?state=nope")).await;
    b.wait_text("main", "is not a job state", Duration::from_secs(5))
        .await;
    b.goto(&format!("{base}/")).await;
    b.wait_text("main", "My jobs by state", Duration::from_secs(5))
        .await;
    b.screenshot(&shots.join("dashboard.png")).await;
    b.size(390, 844).await;
    b.screenshot(&shots.join("dashboard-phone.png")).await;
    b.size(1200, 900).await;
    // Admin pages are not alice's.
    b.goto(&format!("{base}/ui/workers")).await;
    b.wait_text("main h1", "Not allowed", Duration::from_secs(5))
        .await;
    logout(&b).await;

    // Bob meets a 404 for alice's job, exactly like a job that does not exist.
    b.login(&base, "bob", "bob's long password").await;
    b.goto(&format!("{base}/ui/jobs/{ok_id}")).await;
    b.wait_text("main h1", "Not found", Duration::from_secs(5))
        .await;
    let page = b.body().await;
    assert!(
        page.contains(&format!("job {ok_id} does not exist")),
        "{page}"
    );
    assert!(!page.contains("portal-hello"), "nothing of alice's leaks");
    b.screenshot(&shots.join("not-found.png")).await;
    b.goto(&format!("{base}/ui/no-such-page")).await;
    b.wait_text("main h1", "Not found", Duration::from_secs(5))
        .await;
    b.goto(&format!("{base}/ui/jobs/abc")).await;
    b.wait_text("main", "is not a job id", Duration::from_secs(5))
        .await;
    b.goto(&format!("{base}/ui/jobs")).await;
    assert!(
        !b.body().await.contains("hello-job"),
        "bob's list has no alice jobs"
    );
    logout(&b).await;

    // The admin's pages.
    b.login(&base, "admin", "the admin's password").await;
    b.goto(&format!("{base}/ui/workers")).await;
    b.wait_text("main", "Workers", Duration::from_secs(5)).await;
    b.screenshot(&shots.join("workers.png")).await;
    b.goto(&format!("{base}/ui/audit?query=&principal=alice"))
        .await;
    b.wait_text("main table", "portal.job.cancel", Duration::from_secs(10))
        .await;
    b.screenshot(&shots.join("audit.png")).await;

    // A pipeline's page draws its steps as a graph.
    let file = env.path().join("p.toml");
    std::fs::write(
        &file,
        "name = \"cfd\"\n[[steps]]\nname = \"mesh\"\ncommand = \"echo mesh\"\n\
         [[steps]]\nname = \"solve\"\nafter = [\"mesh\"]\ncommand = \"echo solve\"\n\
         [[steps]]\nname = \"plot\"\nafter = [\"mesh\"]\ncommand = \"echo plot\"\n\
         [[steps]]\nname = \"report\"\nafter = [\"solve\", \"plot\"]\ncommand = \"echo report\"\n",
    )
    .unwrap();
    let out = env.ok(&["submit", "--pipeline", file.to_str().unwrap()]);
    let pipe: String = out.chars().filter(char::is_ascii_digit).collect();
    let pipe_url = format!("{base}/ui/jobs/{pipe}");
    wait_reload(&b, &pipe_url, "#job-state", "SUCCEEDED").await;
    let graph = b.text("svg.graph").await;
    for step in ["mesh", "solve", "plot", "report"] {
        assert!(graph.contains(step), "{step} in the graph: {graph}");
    }
    b.screenshot(&shots.join("pipeline.png")).await;
    b.quit().await;
}
