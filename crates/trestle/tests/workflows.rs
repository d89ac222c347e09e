//! Batch workflows end to end through the real binary: arrays,
//! dependencies, pipelines, events and "why is my job not running".
//! (`#SBATCH` scripts and drop folders: `workflows_slurm.rs`.)

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn id_of(out: &str) -> String {
    out.trim().to_string()
}

/// Every event of a job and its children, oldest first (`trestle events`).
fn events_of(env: &Env, job: &str) -> Vec<Value> {
    env.ok(&["events", "--job", job, "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect()
}

/// The most children of `parent` that held a lease at the same time,
/// replayed from the events.
fn max_concurrent(events: &[Value], parent: &str) -> usize {
    let mut running = HashSet::new();
    let mut max = 0;
    for e in events {
        if e["parent"].as_i64() != parent.parse::<i64>().ok() {
            continue;
        }
        let id = e["job_id"].as_i64().unwrap();
        match e["state"].as_str().unwrap() {
            "STARTING" | "RUNNING" => {
                running.insert(id);
            }
            _ => {
                running.remove(&id);
            }
        }
        max = max.max(running.len());
    }
    max
}

#[test]
fn arrays_run_every_index_within_the_parallel_limit() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let out = env.ok(&[
        "submit",
        "--name",
        "sweep",
        "--array",
        "0-5%2",
        "--",
        "sh",
        "-c",
        "echo $TRESTLE_ARRAY_INDEX > out_$TRESTLE_ARRAY_INDEX.txt; echo index $TRESTLE_ARRAY_INDEX of $TRESTLE_ARRAY_COUNT",
    ]);
    let parent = id_of(&out);
    let waited = env.run(&["wait", &parent]);
    assert!(waited.status.success(), "{waited:?}");
    let j = job(&env, &parent);
    assert_eq!(j["state"], "SUCCEEDED");
    assert_eq!(j["kind"], "array");
    assert_eq!(j["children"]["total"], 6);
    assert_eq!(j["children"]["counts"]["SUCCEEDED"], 6);
    let human = env.ok(&["job", "show", &parent]);
    assert!(human.contains("6 total: 6 SUCCEEDED"), "{human}");
    assert!(human.contains("0-5%2"), "{human}");

    // Every child ran its own index and produced its own output.
    let list = env.json(&["jobs", "--json", "--limit", "100"]);
    let children: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parent"].as_i64() == parent.parse::<i64>().ok())
        .collect();
    assert_eq!(children.len(), 6);
    let mut indices: Vec<i64> = children
        .iter()
        .map(|c| c["array_index"].as_i64().unwrap())
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, vec![0, 1, 2, 3, 4, 5]);
    for c in &children {
        let id = c["id"].to_string();
        let index = c["array_index"].as_i64().unwrap();
        let logs = env.ok(&["logs", &id]);
        assert_eq!(logs.trim(), format!("index {index} of 6"));
        let dir = env.path().join(format!("out-{id}"));
        env.ok(&["outputs", &id, "--to", dir.to_str().unwrap()]);
        let text = std::fs::read_to_string(dir.join(format!("out_{index}.txt"))).unwrap();
        assert_eq!(text.trim(), index.to_string());
    }
    // %2: never more than two children held at once (replayed from events).
    let events = events_of(&env, &parent);
    assert_eq!(max_concurrent(&events, &parent), 2);
    let last = events.last().unwrap();
    assert_eq!(last["job_id"].to_string(), parent);
    assert_eq!(last["state"], "SUCCEEDED");
}

#[test]
fn a_huge_array_is_stored_compactly_and_other_jobs_still_run() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let parent = id_of(&env.ok(&["submit", "--array", "0-99999", "--", "sh", "-c", "sleep 2"]));
    let j = job(&env, &parent);
    assert_eq!(j["children"]["total"], 100_000);
    let created = j["children"]["created"].as_u64().unwrap();
    assert!(created <= 1000, "children are created lazily: {created}");
    // Another job submitted after the array still gets a worker.
    let other = id_of(&env.ok(&["submit", "--priority", "10", "--", "echo", "me too"]));
    wait_state(&env, &other, "SUCCEEDED", T);
    // Cancelling the array cancels what has not finished.
    let c = env.ok(&["cancel", &parent]);
    assert!(c.contains(&parent), "{c}");
    let j = wait_state(&env, &parent, "CANCELLED", T);
    let counts = &j["children"]["counts"];
    let cancelled = counts["CANCELLED"].as_u64().unwrap();
    let succeeded = counts["SUCCEEDED"].as_u64().unwrap_or(0);
    assert_eq!(cancelled + succeeded, 100_000, "{counts}");
    assert!(cancelled > 98_000, "{counts}");
    let running = env.json(&["jobs", "--state", "RUNNABLE,STARTING,RUNNING", "--json"]);
    assert_eq!(running.as_array().unwrap().len(), 0, "{running}");
}

#[test]
fn dependencies_wait_release_and_fail() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let go = env.path().join("GO");
    let gate = format!(
        "while [ ! -f {} ]; do sleep 0.1; done; echo gate open",
        go.display()
    );
    let a = id_of(&env.ok(&["submit", "--name", "gate", "--", "sh", "-c", &gate]));
    let ok = id_of(&env.ok(&["submit", "--after-ok", &a, "--", "echo", "after a"]));
    let started = id_of(&env.ok(&["submit", "--after", &a, "--", "echo", "a started"]));
    let notok = id_of(&env.ok(&["submit", "--after-notok", &a, "--", "true"]));
    let j = job(&env, &ok);
    assert_eq!(j["state"], "PENDING");
    let reason = j["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("waiting on dependency {a} (after-ok")),
        "{reason}"
    );
    let human = env.ok(&["job", "show", &ok]);
    assert!(human.contains(&format!("after-ok {a}")), "{human}");
    // `after` is met once the gate job runs.
    wait_state(&env, &started, "SUCCEEDED", T);
    assert_eq!(job(&env, &ok)["state"], "PENDING");
    std::fs::write(&go, "").unwrap();
    wait_state(&env, &ok, "SUCCEEDED", T);
    assert_eq!(env.ok(&["logs", &ok]).trim(), "after a");
    let j = wait_state(&env, &notok, "CANCELLED", T);
    assert_eq!(j["reason"], "dependency-never-satisfied");

    // A failure cancels after-ok dependents (and theirs); after-any runs.
    let f = id_of(&env.ok(&["submit", "--", "sh", "-c", "exit 4"]));
    let b = id_of(&env.ok(&["submit", "--after-ok", &f, "--", "true"]));
    let c = id_of(&env.ok(&["submit", "--after-ok", &b, "--", "true"]));
    let any = id_of(&env.ok(&[
        "submit",
        "--after-any",
        &f,
        "--after-notok",
        &f,
        "--",
        "echo",
        "cleanup",
    ]));
    assert_eq!(
        wait_state(&env, &b, "CANCELLED", T)["reason"],
        "dependency-failed"
    );
    assert_eq!(
        wait_state(&env, &c, "CANCELLED", T)["reason"],
        "dependency-failed"
    );
    wait_state(&env, &any, "SUCCEEDED", T);
    // An array can be depended on as a whole.
    let arr = id_of(&env.ok(&["submit", "--array", "1-3", "--", "true"]));
    let post = id_of(&env.ok(&["submit", "--after-ok", &arr, "--", "echo", "post"]));
    wait_state(&env, &post, "SUCCEEDED", T);
    assert_eq!(job(&env, &arr)["state"], "SUCCEEDED");

    // Unknown dependencies and bad arrays are clear 4xx errors.
    let out = env.run(&["submit", "--after-ok", "999999", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("after") && err.contains("999999"), "{err}");
    let out = env.run(&["submit", "--array", "5-1", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid-array") && err.contains("array"),
        "{err}"
    );
}

#[test]
fn pipelines_pass_outputs_along_and_show_a_graph() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let case = env.path().join("case");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("geometry.txt"), "wing\n").unwrap();
    let file = env.path().join("cfd.toml");
    std::fs::write(
        &file,
        r#"
name = "cfd"

[[steps]]
name = "preprocess"
inputs = "case"
command = "tr a-z A-Z < geometry.txt > clean.txt"

[[steps]]
name = "mesh"
after = ["preprocess"]
command = "(cat clean.txt; echo meshed) > mesh.txt"

[[steps]]
name = "simulate"
after = ["mesh"]
command = "(cat mesh.txt; echo simulated) > result.txt"

[[steps]]
name = "postprocess"
after = ["simulate"]
command = "wc -l < result.txt > lines.txt; cat result.txt"
"#,
    )
    .unwrap();
    let id = id_of(&env.ok(&["submit", "--pipeline", file.to_str().unwrap()]));
    let out = env.run(&["wait", &id]);
    assert!(out.status.success(), "{out:?}");
    let j = job(&env, &id);
    assert_eq!(j["kind"], "pipeline");
    assert_eq!(j["name"], "cfd");
    let steps = j["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().all(|s| s["state"] == "SUCCEEDED"));
    let post = steps[3]["id"].to_string();
    assert_eq!(
        env.ok(&["logs", &post]),
        "WING\nmeshed\nsimulated\n",
        "each step saw the outputs of the one before"
    );
    let human = env.ok(&["job", "show", &id]);
    assert!(
        human.contains(
            "preprocess (SUCCEEDED) -> mesh (SUCCEEDED) -> simulate (SUCCEEDED) -> postprocess (SUCCEEDED)"
        ),
        "{human}"
    );

    // A failing step cancels what depends on it; the pipeline fails.
    std::fs::write(
        &file,
        r#"
[[steps]]
name = "a"
command = "echo fine"
[[steps]]
name = "b"
command = "exit 3"
after = ["a"]
[[steps]]
name = "c"
command = "true"
after = ["b"]
[[steps]]
name = "d"
command = "true"
after = ["a"]
"#,
    )
    .unwrap();
    let id = id_of(&env.ok(&["submit", "--pipeline", file.to_str().unwrap()]));
    let out = env.run(&["wait", &id]);
    assert_eq!(out.status.code(), Some(1));
    let j = job(&env, &id);
    assert_eq!(j["state"], "FAILED");
    let states: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        vec!["SUCCEEDED", "FAILED", "CANCELLED", "SUCCEEDED"]
    );
    assert_eq!(j["steps"][2]["reason"], "dependency-failed");
    let human = env.ok(&["job", "show", &id]);
    assert!(
        human.contains("<- b"),
        "a DAG is listed step by step: {human}"
    );

    // A cycle is a clear error naming the field.
    std::fs::write(
        &file,
        "[[steps]]\nname = \"a\"\ncommand = \"true\"\nafter = [\"b\"]\n[[steps]]\nname = \"b\"\ncommand = \"true\"\nafter = [\"a\"]\n",
    )
    .unwrap();
    let out = env.run(&["submit", "--pipeline", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cycle") && err.contains("steps"), "{err}");
}

#[test]
fn events_stream_every_change_and_resume_without_loss() {
    let env = Env::new();
    let (_up, token) = up(&env, "");
    let token = token.unwrap();
    env.ok(&["submit", "--wait", "--", "echo", "one"]);
    let all: Vec<Value> = env
        .ok(&["events", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&str> = all.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]);
    let done = env.ok(&["events", "--state", "SUCCEEDED,FAILED"]);
    assert_eq!(done.lines().count(), 1, "{done}");
    assert!(done.contains("SUCCEEDED"), "{done}");

    // Follow, disconnect, let more happen, resume: nothing lost or repeated.
    let mut child = env
        .cmd()
        .args(["events", "-f", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let b = id_of(&env.ok(&["submit", "--", "echo", "two"]));
    let mut seen = Vec::new();
    loop {
        let l = rx.recv_timeout(T).expect("events -f keeps printing");
        let e: Value = serde_json::from_str(&l).unwrap();
        let end = e["job_id"].as_i64() == b.parse::<i64>().ok() && e["state"] == "SUCCEEDED";
        seen.push(e);
        if end {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen.len(), 8, "the history, then job {b} live: {seen:?}");
    let last = seen.last().unwrap()["id"].as_i64().unwrap();
    env.ok(&["submit", "--wait", "--", "echo", "three"]);
    let resumed: Vec<Value> = env
        .ok(&["events", "--json", "--after", &last.to_string()])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(resumed.len(), 4, "{resumed:?}");
    assert!(resumed.iter().all(|e| e["id"].as_i64().unwrap() > last));
    let everything = env.ok(&["events", "--json"]).lines().count();
    assert_eq!(everything, seen.len() + resumed.len());

    // Raw SSE with Last-Event-ID, as any client would resume.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            &format!("Last-Event-ID: {last}"),
            &format!("{}/api/v1/events", env.url()),
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(body.matches("event: job").count(), 4, "{body}");
    assert!(body.contains(&format!("id: {}", last + 1)), "{body}");
    let (code, body) = http(
        "GET",
        &format!("{}/api/v1/events?state=BOGUS", env.url()),
        Some(&token),
        None,
    );
    assert_eq!(code, 400);
    assert!(body.contains("\"field\":\"state\""), "{body}");
    let (code, doc) = http(
        "GET",
        &format!("{}/api/v1/openapi.json", env.url()),
        None,
        None,
    );
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["paths"]["/api/v1/events"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/pipelines"]["post"].is_object());
}

#[test]
fn every_waiting_job_says_why() {
    let env = Env::new();
    let (_up, _) = up(
        &env,
        // No prefetch: a job the busy worker leased ahead would be STARTING,
        // with no reason to show (the test raced on that).
        "[local]\nworker_cpus = 1\nmax_vcpus = 1\nprefetch = 0\n\n[queues.gpu]\nenabled = false\n",
    );
    let huge = id_of(&env.ok(&["submit", "--cpus", "64", "--", "true"]));
    let j = job(&env, &huge);
    assert_eq!(j["state"], "RUNNABLE");
    assert_eq!(
        j["reason"],
        "needs 64 CPUs; the largest environment or worker offers 1"
    );
    let off = id_of(&env.ok(&["submit", "--queue", "gpu", "--", "true"]));
    let j = wait_state(&env, &off, "PENDING", T);
    assert!(
        j["reason"]
            .as_str()
            .unwrap()
            .contains("queue `gpu` is disabled"),
        "{j}"
    );
    let go = env.path().join("GO");
    let gate = format!("while [ ! -f {} ]; do sleep 0.1; done", go.display());
    let busy = id_of(&env.ok(&["submit", "--", "sh", "-c", &gate]));
    wait_state(&env, &busy, "RUNNING", T);
    let queued = id_of(&env.ok(&["submit", "--", "true"]));
    let r = job(&env, &queued)["reason"].as_str().unwrap().to_string();
    assert!(
        r.starts_with("no capacity in any compute environment"),
        "{r}"
    );
    let arr = id_of(&env.ok(&["submit", "--array", "0-3%1", "--", "sh", "-c", &gate]));
    let r = eventually(T, "the array's reason", || {
        let j = job(&env, &arr);
        let r = j["reason"].as_str().unwrap_or("").to_string();
        r.starts_with("array parallel limit").then_some(r)
    });
    assert!(r.contains("%1"), "{r}");
    let table = env.ok(&["jobs", "--format", "slurm"]);
    assert!(table.starts_with("JOBID"), "{table}");
    assert!(table.contains("(needs 64 CPUs"), "{table}");
    assert!(table.contains(&format!("{arr}_[0-3%1]")), "{table}");
    std::fs::write(&go, "").unwrap();
    wait_state(&env, &arr, "SUCCEEDED", T);
}
