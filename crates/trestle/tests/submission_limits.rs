//! What a user sends is bounded and what others see of it is limited
//! (issue: a 60 MB command made every listing 60 MB; `sbatch` copied
//! `DATABASE_URL` and `GH_PAT` into a spec any project member could read;
//! job keys were global; any user could set any priority; a job's 100 MB of
//! output went into the database whole). Each scenario runs on SQLite and
//! on PostgreSQL.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::Value;
use std::time::Duration;
use support::*;

fn post(base: &str, token: &str, body: &str) -> (u16, Value) {
    let (code, text) = http("POST", &format!("{base}/jobs"), Some(token), Some(body));
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (code, v)
}

fn get(base: &str, token: &str, path: &str) -> (u16, String) {
    http("GET", &format!("{base}{path}"), Some(token), None)
}

/// 2,000 entries named `{prefix}N`.
fn many(prefix: &str) -> serde_json::Map<String, Value> {
    (0..2000)
        .map(|i| (format!("{prefix}{i}"), Value::from("v")))
        .collect()
}

/// PUTs `size` bytes into upload `upload` at `name`, plain or chunked:
/// the status (0: the server closed the connection) and the body.
fn put(
    env: &Env,
    base: &str,
    token: &str,
    upload: &str,
    name: &str,
    size: usize,
    chunked: bool,
) -> (u16, String) {
    let file = env.path().join("payload.bin");
    std::fs::write(&file, vec![b'p'; size]).unwrap();
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-X", "PUT", "-H"])
        .arg(format!("Authorization: Bearer {token}"));
    if chunked {
        cmd.args(["-H", "Transfer-Encoding: chunked"]);
    }
    let out = cmd
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("{base}/uploads/{upload}/files/{name}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs `script` as `token`'s job to success: its id and log.
fn run_script(env: &Env, token: &str, script: &str) -> (String, String) {
    let id = ok_as(env, token, &["submit", "--", "sh", "-c", script]);
    let id = id.trim().to_string();
    wait_state(env, &id, "SUCCEEDED", Duration::from_secs(60));
    let log = ok_as(env, token, &["logs", &id]);
    (id, log)
}

fn scenario(db: Option<String>) {
    let env = Env::new();
    let mut extra = String::from(
        "[queues.default]\nlog_limit = \"1M\"\nfull_log = true\n[queues.urgent]\nmax_user_priority = 100\n\
         [storage]\nupload_file_limit = \"4M\"\nproject_quota = \"12M\"\n",
    );
    if let Some(db) = db {
        extra = format!("database = \"{db}\"\n{extra}");
    }
    let (_up, admin) = up(&env, &extra);
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    env.ok(&["project", "add", "genomics"]);
    env.ok(&["project", "add", "physics"]);
    let alice = user_with_token(
        &env,
        "alice",
        &["--role", "researcher", "--project", "genomics"],
    );
    let carol = user_with_token(
        &env,
        "carol",
        &["--role", "researcher", "--project", "genomics"],
    );
    let bob = user_with_token(
        &env,
        "bob",
        &["--role", "researcher", "--project", "physics"],
    );

    // Sizes: each refused with its field named.
    let cases = [
        (
            format!(r#"{{"command":"echo {}"}}"#, "y".repeat(2 << 20)),
            "command",
        ),
        (
            format!(r#"{{"command":["echo","{}"]}}"#, "y".repeat(2 << 20)),
            "command",
        ),
        (
            serde_json::json!({"command": "true", "env": many("V")}).to_string(),
            "env",
        ),
        (
            serde_json::json!({"command": "true", "tags": many("t")}).to_string(),
            "tags",
        ),
        (
            format!(r#"{{"command":"true","name":"{}"}}"#, "n".repeat(300)),
            "name",
        ),
        (
            r#"{"command":"true","priority":2000000000}"#.to_string(),
            "priority",
        ),
    ];
    for (body, field) in &cases {
        let file = env.path().join("req.json");
        std::fs::write(&file, body).unwrap();
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "-H"])
            .arg("Content-Type: application/json")
            .arg("-H")
            .arg(format!("Authorization: Bearer {alice}"))
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{base}/jobs"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        assert_eq!(code, "400", "{field}: {body}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["field"], *field, "{body}");
    }

    // A long command and an environment: whole in the job, abridged in
    // listings.
    let long = format!("echo {}", "z".repeat(10_000));
    let (code, j) = post(
        &base,
        &alice,
        &serde_json::json!({"command": long, "env": {"COLOR": "blue"}}).to_string(),
    );
    assert_eq!(code, 201, "{j}");
    let long_id = j["id"].as_i64().unwrap();
    let (code, list) = get(&base, &alice, "/jobs?limit=50");
    assert_eq!(code, 200);
    assert!(
        list.len() < 8_000,
        "a listing of one long job is {} bytes",
        list.len()
    );
    let list: Value = serde_json::from_str(&list).unwrap();
    let row = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == long_id)
        .unwrap();
    assert_eq!(row["abridged"], true, "{row}");
    assert!(row["spec"]["env"].as_object().unwrap().is_empty(), "{row}");
    assert!(
        row["spec"]["command"]["shell"]
            .as_str()
            .unwrap()
            .ends_with('…')
    );
    let (_, one) = get(&base, &alice, &format!("/jobs/{long_id}"));
    let one: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(one["spec"]["command"]["shell"], long);
    assert_eq!(one["spec"]["env"]["COLOR"], "blue");

    // The review's sbatch: the job gets the real values; every view masks
    // them, and only the owner and admins see the environment at all. (The
    // script, which the job view shows, spells the values in pieces.)
    let script = env.path().join("sb.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n#SBATCH --job-name=secrets\n\
         test \"$GH_PAT\" = ghp_\"\"secret123 && test \"$DATABASE_URL\" = postgres://user:hun\"\"ter2@db/x && echo real-values-arrived\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .env("TRESTLE_TOKEN", &alice)
        .env("DATABASE_URL", "postgres://user:hunter2@db/x")
        .env("GH_PAT", "ghp_secret123")
        .args(["sbatch", "--parsable", script.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    wait_state(&env, &id, "SUCCEEDED", Duration::from_secs(60));
    assert!(ok_as(&env, &alice, &["logs", &id]).contains("real-values-arrived"));
    for who in [&alice, &admin] {
        let (code, body) = get(&base, who, &format!("/jobs/{id}"));
        assert_eq!(code, 200, "{body}");
        assert!(
            !body.contains("hunter2") && !body.contains("ghp_secret123"),
            "{body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["spec"]["env"]["GH_PAT"], "********");
        assert_eq!(
            v["spec"]["env"]["DATABASE_URL"],
            "postgres://user:********@db/x"
        );
    }
    let (code, body) = get(&base, &carol, &format!("/jobs/{id}"));
    assert_eq!(code, 200, "a project member reads the job: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["env_hidden"], true, "{body}");
    assert!(v["spec"]["env"].as_object().unwrap().is_empty(), "{body}");
    for who in [&alice, &carol, &admin] {
        let (_, body) = get(&base, who, "/jobs?limit=100");
        assert!(
            !body.contains("hunter2")
                && !body.contains("ghp_secret123")
                && !body.contains("GH_PAT")
        );
    }

    // Keys are per owner: another user's key neither blocks nor reveals.
    let (code, j) = post(&base, &alice, r#"{"command":"true","key":"nightly"}"#);
    assert_eq!(code, 201, "{j}");
    let (code, j) = post(&base, &bob, r#"{"command":"true","key":"nightly"}"#);
    assert_eq!(code, 201, "bob's key is his own: {j}");
    let (code, j) = post(&base, &alice, r#"{"command":"true","key":"nightly"}"#);
    assert_eq!(code, 409, "{j}");
    assert_eq!(j["error"]["field"], "key");

    // Priorities: users lower their own; higher needs a role or the queue.
    let (code, j) = post(&base, &alice, r#"{"command":"true","priority":5}"#);
    assert_eq!(code, 400, "{j}");
    assert_eq!(j["error"]["code"], "priority-not-allowed");
    assert_eq!(j["error"]["field"], "priority");
    let (code, j) = post(&base, &alice, r#"{"command":"true","priority":-5}"#);
    assert_eq!(code, 201, "{j}");
    let (code, j) = post(
        &base,
        &alice,
        r#"{"command":"true","priority":50,"queue":"urgent"}"#,
    );
    assert_eq!(code, 201, "the queue allows up to 100: {j}");
    let (code, j) = post(
        &base,
        &alice,
        r#"{"command":"true","priority":101,"queue":"urgent"}"#,
    );
    assert_eq!(code, 400, "{j}");
    let (code, j) = post(&base, &admin, r#"{"command":"true","priority":500}"#);
    assert_eq!(code, 201, "admins may: {j}");

    // Uploads: a file over the limit, plain or chunked, is refused and
    // nothing of it kept; the project's quota holds across uploads.
    let (_, body) = http("POST", &format!("{base}/uploads"), Some(&alice), None);
    let upload = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for chunked in [false, true] {
        let (code, body) = put(&env, &base, &alice, &upload, "big.bin", 5 << 20, chunked);
        assert!(
            code == 413 || (chunked && code == 0),
            "chunked {chunked}: {code} {body}"
        );
        if code == 413 {
            assert_eq!(code_of(&body), "file-too-large", "{body}");
        }
    }
    let (_, list) = get(&base, &alice, &format!("/uploads/{upload}/files"));
    assert!(
        !list.contains("big.bin"),
        "nothing of a refused file is kept: {list}"
    );
    for i in 0..3 {
        let (code, body) = put(
            &env,
            &base,
            &alice,
            &upload,
            &format!("part{i}.bin"),
            3_500_000,
            i == 1,
        );
        assert_eq!(code, 204, "{body}");
    }
    // Writing a file again counts its new size, not both.
    let (code, body) = put(&env, &base, &alice, &upload, "part0.bin", 3_500_000, false);
    assert_eq!(code, 204, "{body}");
    let (code, body) = put(&env, &base, &alice, &upload, "part3.bin", 3_500_000, false);
    assert_eq!(code, 413, "{body}");
    assert_eq!(code_of(&body), "quota-exceeded", "{body}");
    assert!(body.contains("genomics"), "{body}");
    // Another project's quota is its own.
    let (_, body) = http("POST", &format!("{base}/uploads"), Some(&bob), None);
    let theirs = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = put(&env, &base, &bob, &theirs, "a.bin", 3_500_000, false);
    assert_eq!(code, 204, "{body}");

    // A job printing 3 MB keeps the newest 1 MiB, with a marker.
    let (id, log) = run_script(
        &env,
        &alice,
        "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo the-last-line",
    );
    assert!(
        log.len() <= (1 << 20) + 65 * 1024,
        "{} bytes kept",
        log.len()
    );
    assert!(
        log.trim_end().ends_with("the-last-line"),
        "the newest output is kept"
    );
    assert!(log.starts_with("[trestle: ") && log.contains("bytes of earlier output were dropped"));
    // The queue keeps the whole output in object storage too.
    let (_, outs) = get(&base, &alice, &format!("/jobs/{id}/outputs"));
    let outs: Value = serde_json::from_str(&outs).unwrap();
    let full = outs["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "trestle-full.log")
        .unwrap_or_else(|| panic!("no full log in {outs}"));
    assert!(full["size"].as_u64().unwrap() > 3_000_000, "{full}");

    // An output file over the limit is left out, said in the log; the
    // job's other outputs are kept and it still succeeds.
    let (id, log) = run_script(
        &env,
        &alice,
        "head -c 5000000 /dev/zero > big.out; echo small > small.out",
    );
    assert!(log.contains("output not uploaded: big.out"), "{log}");
    let (_, outs) = get(&base, &alice, &format!("/jobs/{id}/outputs"));
    assert!(
        outs.contains("small.out") && !outs.contains("big.out"),
        "{outs}"
    );
}

#[test]
fn submissions_are_bounded_on_sqlite() {
    scenario(None);
}

#[test]
fn submissions_are_bounded_on_postgres() {
    scenario(Some(fresh_postgres("limits")));
}
