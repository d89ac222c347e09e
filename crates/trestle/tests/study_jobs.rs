//! Studies attached to jobs, end to end through the real binary: the
//! version read is pinned at submission and recorded on the job; the
//! study appears at `TRESTLE_STUDY_<NAME>`; the second job on the host is
//! served from the content cache (its log says so); a job that writes
//! into a read-only study fails and the study is unchanged; a read-write
//! study gets one new version from a successful job and none from a
//! failed one; attaches are authorized for the submitter and audited
//! once each.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::Value;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(30);

fn submit(env: &Env, token: &str, args: &[&str]) -> String {
    let mut all = vec!["submit"];
    all.extend_from_slice(args);
    ok_as(env, token, &all).trim().to_string()
}

fn finish(env: &Env, token: &str, id: &str) -> Value {
    let _ = run_as(env, token, &["wait", id]);
    eventually(T, &format!("job {id} to end"), || {
        let j = json_as(env, token, &["job", "show", id, "--json"]);
        matches!(j["state"].as_str(), Some("SUCCEEDED" | "FAILED")).then_some(j)
    })
}

fn log(env: &Env, token: &str, id: &str) -> String {
    ok_as(env, token, &["logs", id])
}

fn version(env: &Env, token: &str, study: &str) -> u64 {
    json_as(env, token, &["study", "show", study, "--json"])["study"]["version"]
        .as_u64()
        .unwrap()
}

#[test]
fn jobs_read_pinned_versions_through_the_cache_and_write_only_on_success() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    env.ok(&["index", "add", "nsf-1"]);
    env.ok(&[
        "project", "add", "genomics", "--index", "nsf-1", "--org", "uni",
    ]);
    env.ok(&["project", "add", "physics", "--index", "nsf-1"]);
    let alice = user_with_token(
        &env,
        "alice",
        &["--role", "researcher", "--project", "genomics"],
    );
    let bob = user_with_token(
        &env,
        "bob",
        &["--role", "researcher", "--project", "physics"],
    );
    let data = env.path().join("ref");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "hello study\n").unwrap();
    std::fs::write(data.join("sub/b.txt"), "inner\n").unwrap();
    ok_as(&env, &alice, &["study", "create", "ref"]);
    ok_as(
        &env,
        &alice,
        &["study", "upload", "ref", data.to_str().unwrap()],
    );

    // A read-only attach: the file is there, the version is recorded.
    let read = [
        "--study",
        "ref",
        "--",
        "sh",
        "-c",
        "cat \"$TRESTLE_STUDY_REF/a.txt\"",
    ];
    let first = submit(&env, &alice, &read);
    let j = finish(&env, &alice, &first);
    assert_eq!(j["state"], "SUCCEEDED", "{j}");
    assert_eq!(j["spec"]["studies"][0]["version"], 1, "{j}");
    let l = log(&env, &alice, &first);
    assert!(l.contains("hello study"), "{l}");
    assert!(l.contains("2 files, 0 from this host's cache"), "{l}");
    // The second job on the host fetches nothing again.
    let second = submit(&env, &alice, &read);
    assert_eq!(finish(&env, &alice, &second)["state"], "SUCCEEDED");
    let l = log(&env, &alice, &second);
    assert!(l.contains("2 files, 2 from this host's cache"), "{l}");
    // A subset at a path of the job's choosing.
    let sub = submit(
        &env,
        &alice,
        &[
            "--study",
            "ref/sub=data",
            "--",
            "sh",
            "-c",
            "cat data/b.txt; test ! -e data/a.txt",
        ],
    );
    assert_eq!(
        finish(&env, &alice, &sub)["state"],
        "SUCCEEDED",
        "{}",
        log(&env, &alice, &sub)
    );

    // Writing into a read-only study fails the job; the study is unchanged.
    let bad = submit(
        &env,
        &alice,
        &[
            "--study",
            "ref",
            "--",
            "sh",
            "-c",
            "echo changed >> \"$TRESTLE_STUDY_REF/a.txt\"",
        ],
    );
    let j = finish(&env, &alice, &bad);
    assert_eq!(j["state"], "FAILED", "{j}");
    assert!(
        log(&env, &alice, &bad).contains("read-only"),
        "{}",
        log(&env, &alice, &bad)
    );
    assert_eq!(version(&env, &alice, "ref"), 1);
    // ... and the next job reads the original content, not the changed one.
    let again = submit(&env, &alice, &read);
    assert_eq!(finish(&env, &alice, &again)["state"], "SUCCEEDED");
    let l = log(&env, &alice, &again);
    assert!(l.contains("hello study") && !l.contains("changed"), "{l}");

    // Read-write: a failed job leaves the study as it was ...
    let fail = submit(
        &env,
        &alice,
        &[
            "--study",
            "ref:rw",
            "--",
            "sh",
            "-c",
            "echo x > \"$TRESTLE_STUDY_REF/new.txt\"; exit 3",
        ],
    );
    assert_eq!(finish(&env, &alice, &fail)["state"], "FAILED");
    assert_eq!(version(&env, &alice, "ref"), 1);
    // ... a successful one makes one new version, recording the job.
    let ok = submit(
        &env,
        &alice,
        &[
            "--study",
            "ref:rw",
            "--",
            "sh",
            "-c",
            "echo result > \"$TRESTLE_STUDY_REF/new.txt\"; rm \"$TRESTLE_STUDY_REF/sub/b.txt\"",
        ],
    );
    let j = finish(&env, &alice, &ok);
    assert_eq!(j["state"], "SUCCEEDED", "{}", log(&env, &alice, &ok));
    let show = json_as(&env, &alice, &["study", "show", "ref", "--json"]);
    assert_eq!(show["study"]["version"], 2, "{show}");
    assert_eq!(
        show["versions"][1]["job_id"].as_i64().unwrap().to_string(),
        ok
    );
    let ls = json_as(&env, &alice, &["study", "ls", "ref", "--json"]);
    let paths: Vec<&str> = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a.txt", "new.txt"]);

    // Attaches are the submitter's: Bob may not attach Alice's study, a
    // read-only grant does not attach read-write.
    let (code, body) = http(
        "POST",
        &format!("{}/api/v1/jobs", env.url()),
        Some(&bob),
        Some(r#"{"command": ["true"], "studies": [{"study": "ref"}]}"#),
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("studies[0]"), "{body}");
    ok_as(&env, &alice, &["study", "grant", "ref", "bob", "read-only"]);
    let (code, body) = http(
        "POST",
        &format!("{}/api/v1/jobs", env.url()),
        Some(&bob),
        Some(r#"{"command": ["true"], "studies": [{"study": "ref", "mode": "rw"}]}"#),
    );
    assert_eq!(code, 403, "{body}");
    let (code, _) = http(
        "POST",
        &format!("{}/api/v1/jobs", env.url()),
        Some(&bob),
        Some(r#"{"command": ["true"], "studies": [{"study": "ref", "version": 9}]}"#),
    );
    assert_eq!(code, 400);

    // Carol shares Alice's project and may read her jobs, but not the
    // study: the job's attach does not open it to her.
    let carol = user_with_token(
        &env,
        "carol",
        &["--role", "researcher", "--project", "genomics"],
    );
    let (code, _) = http(
        "GET",
        &format!("{}/api/v1/jobs/{first}", env.url()),
        Some(&carol),
        None,
    );
    assert_eq!(code, 200, "project members read each other's jobs");
    let (code, body) = http(
        "GET",
        &format!("{}/api/v1/jobs/{first}/studies/ref/files", env.url()),
        Some(&carol),
        None,
    );
    assert_eq!(code, 404, "{body}");

    // One audit record per attach (seven jobs attached it), not per file.
    let q = eventually(T, "the attaches in the audit trail", || {
        let v = json_as(
            &env,
            &admin,
            &[
                "audit",
                "query",
                "study-readers",
                "--param",
                "study=ref",
                "--json",
            ],
        );
        let attaches = v["records"]
            .as_array()?
            .iter()
            .filter(|r| r["action"] == "study.read.attach")
            .count();
        (attaches == 7).then_some(v)
    });
    assert!(
        q["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["user"] == "alice"),
        "{q}"
    );
}

#[test]
fn concurrent_read_write_jobs_merge_different_paths_and_conflict_on_one() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    env.ok(&["index", "add", "nsf-1"]);
    env.ok(&["project", "add", "genomics", "--index", "nsf-1"]);
    let alice = user_with_token(
        &env,
        "alice",
        &["--role", "researcher", "--project", "genomics"],
    );
    let base = env.path().join("base.txt");
    std::fs::write(&base, "base\n").unwrap();
    ok_as(&env, &alice, &["study", "create", "shared"]);
    ok_as(
        &env,
        &alice,
        &["study", "upload", "shared", base.to_str().unwrap()],
    );
    // All three are pinned to version 1 when submitted.
    let write = |file: &str, text: &str| {
        submit(
            &env,
            &alice,
            &[
                "--study",
                "shared:rw",
                "--",
                "sh",
                "-c",
                &format!("sleep 1; echo {text} > \"$TRESTLE_STUDY_SHARED/{file}\""),
            ],
        )
    };
    let a = write("result", "A");
    let b = write("result", "B");
    let c = write("c-only", "C");
    let states: Vec<(String, Value)> = [&a, &b, &c]
        .iter()
        .map(|id| (id.to_string(), finish(&env, &alice, id)))
        .collect();
    assert_eq!(states[2].1["state"], "SUCCEEDED", "another path merges");
    let ab: Vec<&str> = states[..2]
        .iter()
        .map(|(_, j)| j["state"].as_str().unwrap())
        .collect();
    assert!(
        ab.contains(&"SUCCEEDED") && ab.contains(&"FAILED"),
        "one writer of `result` wins, the other conflicts: {ab:?}"
    );
    let (loser, _) = states[..2]
        .iter()
        .find(|(_, j)| j["state"] == "FAILED")
        .unwrap();
    let l = log(&env, &alice, loser);
    assert!(
        l.contains("changed since your base version") && l.contains("result"),
        "{l}"
    );
    // Two versions came of it; nothing of the loser was applied.
    assert_eq!(version(&env, &alice, "shared"), 3);
    let ls = json_as(&env, &alice, &["study", "ls", "shared", "--json"]);
    let paths: Vec<&str> = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["base.txt", "c-only", "result"]);
}
