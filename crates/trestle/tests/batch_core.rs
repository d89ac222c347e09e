//! The batch core end to end through the real binary: `trestle up`, then
//! the CLI as a user runs it.

mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn up_submit_logs_show_list_and_system_endpoints() {
    let env = Env::new();
    let (_up, token) = up(&env, "");
    let token = token.expect("first start prints the admin token");
    assert!(token.starts_with("trs_"));

    // No flags needed: `up` wrote the client config.
    let id = env.ok(&[
        "submit",
        "--name",
        "hello",
        "--",
        "sh",
        "-c",
        "echo hello $TRESTLE_JOB_ID; echo oops >&2",
    ]);
    let id = id.trim();
    assert!(id.parse::<i64>().is_ok(), "submit prints the id: {id}");
    let waited = env.run(&["wait", id]);
    assert!(waited.status.success(), "{waited:?}");
    let logs = env.ok(&["logs", id]);
    assert!(logs.contains(&format!("hello {id}")), "{logs}");
    assert!(logs.contains("oops"), "stderr is in the log: {logs}");

    let j = job(&env, id);
    assert_eq!(j["state"], "SUCCEEDED");
    assert_eq!(j["name"], "hello");
    assert_eq!(j["attempts"][0]["exit_code"], 0);
    assert_eq!(j["attempts"][0]["state"], "succeeded");
    assert!(
        j["attempts"][0]["worker"]
            .as_str()
            .unwrap()
            .starts_with("w-")
    );
    assert!(j["started_at"].as_i64().unwrap() >= j["submitted_at"].as_i64().unwrap());

    let human = env.ok(&["job", "show", id]);
    assert!(
        human.contains("SUCCEEDED") && human.contains("ATTEMPT"),
        "{human}"
    );

    let list = env.json(&["jobs", "--json"]);
    assert_eq!(list[0]["id"].to_string(), id);
    let filtered = env.json(&["jobs", "--state", "FAILED", "--json"]);
    assert_eq!(filtered.as_array().unwrap().len(), 0);
    let table = env.ok(&["jobs"]);
    assert!(
        table.starts_with("ID") && table.contains("hello"),
        "{table}"
    );

    // Workers: the local environment started one on demand.
    let ws = env.json(&["workers", "--json"]);
    assert!(!ws.as_array().unwrap().is_empty());
    assert_eq!(ws[0]["compute_env"], "local");

    // System endpoints.
    let base = env.url();
    assert_eq!(http("GET", &format!("{base}/healthz"), None, None).0, 200);
    assert_eq!(http("GET", &format!("{base}/readyz"), None, None).0, 200);
    let (code, metrics) = http("GET", &format!("{base}/metrics"), None, None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("trestle_jobs{queue=\"default\",state=\"SUCCEEDED\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trestle_submit_to_start_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("trestle_leases_expired_total 0"));
    let (code, doc) = http("GET", &format!("{base}/api/v1/openapi.json"), None, None);
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["paths"]["/api/v1/jobs/{id}/cancel"]["post"].is_object());

    // The same through REST with the printed token.
    let (code, body) = http(
        "GET",
        &format!("{base}/api/v1/jobs/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(code, 200);
    assert!(body.contains("\"SUCCEEDED\""));
}

#[test]
fn retries_success_string_and_timeout() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let fail = env.ok(&[
        "submit",
        "--attempts",
        "2",
        "--",
        "sh",
        "-c",
        "echo try $TRESTLE_ATTEMPT; exit 3",
    ]);
    let missing = env.ok(&["submit", "--success-string", "DONE", "--", "echo", "nope"]);
    let found = env.ok(&[
        "submit",
        "--success-string",
        "hello wor",
        "--",
        "echo",
        "hello world",
    ]);
    let timeout = env.ok(&[
        "submit",
        "--timeout",
        "1s",
        "--",
        "sh",
        "-c",
        "sleep 30 & sleep 30",
    ]);
    let out = env.run(&[
        "wait",
        fail.trim(),
        missing.trim(),
        found.trim(),
        timeout.trim(),
    ]);
    assert_eq!(out.status.code(), Some(1), "wait exits 1 when a job failed");

    let j = job(&env, fail.trim());
    assert_eq!(j["state"], "FAILED");
    assert_eq!(j["reason"], "exit-code");
    assert_eq!(j["attempts_used"], 2);
    assert_eq!(j["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(j["attempts"][1]["exit_code"], 3);
    assert_eq!(j["attempts"][0]["reason"], "exit-code");
    let logs = env.ok(&["logs", fail.trim(), "--attempt", "1"]);
    assert!(logs.contains("try 1"), "{logs}");
    let logs = env.ok(&["logs", fail.trim()]);
    assert!(logs.contains("try 2"), "latest attempt by default: {logs}");

    let j = job(&env, missing.trim());
    assert_eq!(j["state"], "FAILED");
    assert_eq!(j["reason"], "success-string-missing");
    assert_eq!(j["attempts"][0]["exit_code"], 0);

    assert_eq!(job(&env, found.trim())["state"], "SUCCEEDED");

    let j = job(&env, timeout.trim());
    assert_eq!(j["state"], "FAILED");
    assert_eq!(j["reason"], "timeout");
    let a = &j["attempts"][0];
    let ran = a["ended_at"].as_i64().unwrap() - a["started_at"].as_i64().unwrap();
    assert!(
        ran < 20_000,
        "the timeout killed the process group ({ran} ms)"
    );
}

#[test]
fn seed_job_json_and_native_file() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    // The seed's example format, trailing comma included.
    let seed = env.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{
    "job_id": "jobId_0",
    "retry": "1",
    "job_success_string": "Hello",
    "ssm_document": "AWS-RunShellScript",
    "commands":
        [
            "echo Hello World",
            "echo second line"
        ],
  }"#,
    )
    .unwrap();
    let id = env.ok(&["submit", "--file", seed.to_str().unwrap(), "--wait"]);
    assert!(id.contains("SUCCEEDED"), "{id}");
    let list = env.json(&["jobs", "--json"]);
    let j = &list[0];
    assert_eq!(j["name"], "jobId_0");
    assert_eq!(j["max_attempts"], 2, "retry: 1 means two attempts");
    assert_eq!(j["spec"]["key"], "jobId_0");
    let logs = env.ok(&["logs", &j["id"].to_string()]);
    assert!(logs.contains("Hello World\nsecond line"), "{logs}");

    // The same job_id again is a clear conflict, not an overwrite.
    let dup = env.run(&["submit", "--file", seed.to_str().unwrap()]);
    assert_eq!(dup.status.code(), Some(2));
    let err = String::from_utf8_lossy(&dup.stderr);
    assert!(err.contains("conflict") && err.contains("jobId_0"), "{err}");

    // A PowerShell document cannot run here: a clear error naming the field.
    let ps = env.path().join("ps.json");
    std::fs::write(
        &ps,
        r#"{"job_id":"p","retry":"3","job_success_string":" ","ssm_document":"AWS-RunPowerShellScript","commands":["dir"]}"#,
    )
    .unwrap();
    let out = env.run(&["submit", "--file", ps.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported-document") && err.contains("ssm_document"),
        "{err}"
    );

    // The native format.
    let native = env.path().join("job.json");
    std::fs::write(
        &native,
        r#"{"name":"native","command":"echo $GREETING","env":{"GREETING":"hi there"},"cpus":1,"memory":"64M","timeout":"1m"}"#,
    )
    .unwrap();
    let out = env.ok(&["submit", "-f", native.to_str().unwrap(), "--wait", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["state"], "SUCCEEDED");
    assert_eq!(v[0]["spec"]["resources"]["mem_mib"], 64);
    let logs = env.ok(&["logs", &v[0]["id"].to_string()]);
    assert_eq!(logs.trim(), "hi there");
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let env = Env::new();
    let (_up, token) = up(&env, "");
    let token = token.unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["submit", "--timeout", "soon", "--", "true"],
            "invalid-duration",
        ),
        (&["submit", "--mem", "lots", "--", "true"], "invalid-memory"),
        (&["submit", "--cpus", "0", "--", "true"], "invalid-cpus"),
        (
            &["submit", "--attempts", "0", "--", "true"],
            "invalid-attempts",
        ),
        (
            &["submit", "--queue", "bad queue", "--", "true"],
            "invalid-queue",
        ),
        (
            // A typo is refused, naming the queues there are.
            &["submit", "--queue", "defualt", "--", "true"],
            "queue `defualt` does not exist (queues: default)",
        ),
        (
            &["submit", "--env", "1X=y", "--", "true"],
            "not a valid environment variable",
        ),
        (&["submit"], "nothing to run"),
        (&["job", "show", "999999"], "not-found"),
        (&["jobs", "--state", "DONE"], "not a job state"),
    ];
    for (args, needle) in cases {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(
        env.json(&["jobs", "--json"]).as_array().unwrap().len(),
        0,
        "nothing was stored"
    );

    let api = format!("{}/api/v1", env.url());
    let t = Some(token.as_str());
    let check = |method: &str,
                 path: &str,
                 tok: Option<&str>,
                 body: Option<&str>,
                 status: u16,
                 code: &str| {
        let (s, b) = http(method, &format!("{api}{path}"), tok, body);
        assert_eq!(s, status, "{method} {path}: {b}");
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {b}"));
        assert_eq!(v["error"]["code"], code, "{method} {path}: {b}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        v
    };
    check("GET", "/jobs", None, None, 401, "unauthorized");
    check("GET", "/jobs", Some("trs_wrong"), None, 401, "unauthorized");
    check("POST", "/jobs", t, Some("{not json"), 400, "invalid-json");
    check("POST", "/jobs", t, Some("[1]"), 400, "invalid-json");
    let v = check(
        "POST",
        "/jobs",
        t,
        Some(r#"{"command":["x"],"cpus":"many"}"#),
        400,
        "invalid-field",
    );
    assert_eq!(v["error"]["field"], "cpus");
    let v = check(
        "POST",
        "/jobs",
        t,
        Some(r#"{"command":["x"],"colour":"red"}"#),
        400,
        "invalid-field",
    );
    assert_eq!(v["error"]["field"], "colour");
    let v = check(
        "POST",
        "/jobs",
        t,
        Some(r#"{"command":["x"],"inputs":"unope"}"#),
        400,
        "unknown-upload",
    );
    assert_eq!(v["error"]["field"], "inputs");
    check(
        "POST",
        "/jobs/batch",
        t,
        Some(r#"{"jobs":[{"command":["x"]},{"command":[]}]}"#),
        400,
        "missing-command",
    );
    check("GET", "/jobs/abc", t, None, 400, "invalid-id");
    check("GET", "/jobs/424242", t, None, 404, "not-found");
    check("POST", "/jobs/424242/cancel", t, None, 404, "not-found");
    check("GET", "/jobs?limit=0", t, None, 400, "invalid-limit");
    check("GET", "/jobs?colour=1", t, None, 400, "unknown-parameter");
    check("GET", "/nope", t, None, 404, "not-found");
    check("DELETE", "/jobs", t, None, 405, "method-not-allowed");
    check(
        "PUT",
        "/uploads/u1/files/..%2F..%2Fescape",
        t,
        Some("x"),
        400,
        "invalid-path",
    );
    check(
        "PUT",
        "/uploads/u1/files/%2Fetc%2Fpasswd",
        t,
        Some("x"),
        400,
        "invalid-path",
    );
    check(
        "PUT",
        "/jobs/1/attempts/1/outputs/x",
        t,
        Some("x"),
        400,
        "missing-token",
    );
    check(
        "POST",
        "/workers/w-nope/lease",
        t,
        Some(r#"{"free":{"cpus":1,"mem_mib":1,"gpus":0},"max_jobs":1}"#),
        404,
        "not-found",
    );
    // The batch with one bad job stored nothing.
    assert_eq!(env.json(&["jobs", "--json"]).as_array().unwrap().len(), 0);
}

#[test]
fn folder_inputs_and_outputs() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let dir = env.path().join("case1");
    std::fs::create_dir_all(dir.join("mesh")).unwrap();
    std::fs::write(
        dir.join("run.sh"),
        "#!/bin/sh\nset -e\ncat mesh/data.txt > out.txt\nmkdir -p res\necho 42 > res/answer\necho ran in $PWD\n",
    )
    .unwrap();
    std::fs::write(dir.join("mesh/data.txt"), "input data\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), &big).unwrap();

    let out = env.ok(&["submit", dir.to_str().unwrap(), "--run", "run.sh", "--wait"]);
    assert!(out.contains("SUCCEEDED"), "{out}");
    let id = out.split_whitespace().next().unwrap().to_string();
    let dest = env.path().join("results");
    env.ok(&["outputs", &id, "--to", dest.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(dest.join("out.txt")).unwrap(),
        "input data\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("res/answer")).unwrap(),
        "42\n"
    );
    assert!(
        !dest.join("big.bin").exists(),
        "unchanged inputs are not outputs"
    );
    assert!(!dest.join("mesh/data.txt").exists());

    // --input with a plain command; inputs staged byte for byte.
    let id = env.ok(&[
        "submit",
        "--input",
        dir.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "cksum < big.bin > sum.txt",
    ]);
    env.ok(&["wait", id.trim()]);
    let dest2 = env.path().join("results2");
    env.ok(&["outputs", id.trim(), "--to", dest2.to_str().unwrap()]);
    let local = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("cksum < {}", dir.join("big.bin").display()))
        .output()
        .unwrap();
    assert_eq!(std::fs::read(dest2.join("sum.txt")).unwrap(), local.stdout);

    // Every attempt gets a fresh scratch directory.
    let id = env.ok(&[
        "submit",
        "--attempts",
        "2",
        "--",
        "sh",
        "-c",
        "test ! -e marker || exit 9; touch marker; exit 1",
    ]);
    env.run(&["wait", id.trim()]);
    let j = job(&env, id.trim());
    assert_eq!(
        j["attempts"][1]["exit_code"], 1,
        "the second attempt did not see the first one's file"
    );
}

#[test]
fn cancel_running_job_and_follow_logs() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let id = env.ok(&[
        "submit",
        "--",
        "sh",
        "-c",
        "echo started; sleep 60; echo never",
    ]);
    let id = id.trim().to_string();
    wait_state(&env, &id, "RUNNING", T);
    let mut follow = env
        .cmd()
        .args(["logs", "-f", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(T, "the log to show the first line", || {
        env.ok(&["logs", &id]).contains("started").then_some(())
    });
    let out = env.ok(&["cancel", &id]);
    assert!(out.contains("cancel requested"), "{out}");
    let j = wait_state(&env, &id, "CANCELLED", T);
    assert_eq!(j["attempts"][0]["state"], "cancelled");
    assert_eq!(j["reason"], "cancelled");
    let status = follow.wait().unwrap();
    assert!(status.success());
    let mut text = String::new();
    std::io::Read::read_to_string(follow.stdout.as_mut().unwrap(), &mut text).unwrap();
    assert!(
        text.contains("started") && !text.contains("never"),
        "{text}"
    );

    // Cancelling a queued job is immediate; cancelling again is harmless.
    let q = env.ok(&["submit", "--cpus", "4096", "--", "true"]);
    let out = env.ok(&["cancel", q.trim()]);
    assert!(out.contains("cancelled"), "{out}");
    assert_eq!(job(&env, q.trim())["state"], "CANCELLED");
    let out = env.ok(&["cancel", q.trim()]);
    assert!(out.contains("already finished"), "{out}");
}
