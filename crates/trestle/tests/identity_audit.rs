//! Worker credentials and the audit trail end to end through the real
//! binary: what a worker credential may and may not do, and audit records
//! of every action with named and ad-hoc queries.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::Value;
use support::*;

#[test]
fn worker_credentials_lease_and_report_only() {
    let env = Env::new();
    let (_up, admin) = up(&env, "[local]\nenabled = false\n");
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    let alice = user_with_token(&env, "alice", &["--project", "default"]);
    let id = ok_as(
        &env,
        &alice,
        &["submit", "--", "sh", "-c", "echo from-a-worker"],
    );
    let id = id.trim().to_string();

    // A user's token cannot act as a worker; an admin makes a worker credential.
    let reg = format!(
        r#"{{"host":"h","pid":1,"capacity":{{"cpus":1,"mem_mib":512,"gpus":0}},"version":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let reg = reg.as_str();
    let (code, body) = http("POST", &format!("{base}/workers"), Some(&alice), Some(reg));
    assert_eq!(code, 403, "{body}");
    let w = env.json(&["token", "create", "--worker", "--json"]);
    let wtok = w["token"].as_str().unwrap().to_string();
    assert_eq!(w["info"]["kind"], "worker");
    let expires =
        w["info"]["expires_at"].as_i64().unwrap() - w["info"]["created_at"].as_i64().unwrap();
    assert_eq!(expires, 3_600_000, "short-lived by default");
    let (code, body) = http(
        "POST",
        &format!("{base}/tokens"),
        Some(&admin),
        Some(r#"{"worker":true,"ttl":"90d"}"#),
    );
    assert_eq!(code, 400, "{body}");

    // What a worker credential may not do.
    for (m, p, b) in [
        ("GET", "/jobs".to_string(), None),
        ("POST", "/jobs".to_string(), Some(r#"{"command":["true"]}"#)),
        ("GET", format!("/jobs/{id}"), None),
        ("GET", format!("/jobs/{id}/log"), None),
        ("GET", format!("/jobs/{id}/outputs"), None),
        ("POST", format!("/jobs/{id}/cancel"), None),
        ("GET", "/workers".to_string(), None),
        ("GET", "/users".to_string(), None),
        ("POST", "/users".to_string(), Some(r#"{"name":"x"}"#)),
        ("GET", "/audit".to_string(), None),
        ("POST", "/tokens".to_string(), Some("{}")),
        ("POST", "/uploads".to_string(), None),
    ] {
        let (code, body) = http(m, &format!("{base}{p}"), Some(&wtok), b);
        assert_eq!(code, 403, "worker {m} {p}: {body}");
    }
    // The inputs of a job it holds no lease on are hidden, as if the job
    // did not exist.
    let (code, body) = http(
        "GET",
        &format!("{base}/jobs/{id}/inputs"),
        Some(&wtok),
        None,
    );
    assert_eq!(code, 404, "{body}");

    // A real worker runs the job with the credential.
    let mut worker = Proc::start(
        &env,
        &[
            "worker",
            "--server",
            &env.url(),
            "--token",
            &wtok,
            "--idle-exit",
            "60s",
            "--cpus",
            "1",
        ],
        "",
    );
    let j = wait_state(&env, &id, "SUCCEEDED", T);
    let wid = j["attempts"][0]["worker"].as_str().unwrap().to_string();
    assert!(ok_as(&env, &alice, &["logs", &id]).contains("from-a-worker"));
    worker.signal(libc::SIGTERM);
    assert!(worker.wait_exit(T), "the worker stops on SIGTERM");

    // Another credential cannot lease or report as that worker.
    let (code, body) = http("POST", &format!("{base}/workers"), Some(&wtok), Some(reg));
    assert_eq!(code, 201, "{body}");
    let mine = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let w2 = env.json(&["token", "create", "--worker", "--ttl", "10m", "--json"]);
    let w2 = w2["token"].as_str().unwrap().to_string();
    let lease = r#"{"free":{"cpus":1,"mem_mib":512,"gpus":0},"max_jobs":1,"wait_ms":0}"#;
    let (code, _) = http(
        "POST",
        &format!("{base}/workers/{mine}/lease"),
        Some(&w2),
        Some(lease),
    );
    assert_eq!(code, 404);
    let (code, _) = http(
        "POST",
        &format!("{base}/workers/{mine}/updates"),
        Some(&w2),
        Some("{}"),
    );
    assert_eq!(code, 404);
    let (code, _) = http("DELETE", &format!("{base}/workers/{mine}"), Some(&w2), None);
    assert_eq!(code, 404);
    let (code, body) = http(
        "POST",
        &format!("{base}/workers/{mine}/lease"),
        Some(&wtok),
        Some(lease),
    );
    assert_eq!(code, 200, "{body}");
    // Staging reads only the inputs of jobs the credential's workers hold;
    // another job answers exactly as one that does not exist.
    let (code, held_elsewhere) = http("GET", &format!("{base}/jobs/{id}/inputs"), Some(&w2), None);
    assert_eq!(code, 404, "{held_elsewhere}");
    let (code, missing) = http(
        "GET",
        &format!("{base}/jobs/999999/inputs"),
        Some(&w2),
        None,
    );
    assert_eq!(code, 404, "{missing}");
    assert_eq!(
        held_elsewhere.replace(&format!("job {id} "), "job N "),
        missing.replace("job 999999 ", "job N "),
        "the same answer for both"
    );
    // A researcher's view of workers hides jobs that are not theirs.
    let ws = json_as(&env, &alice, &["workers", "--json"]);
    assert!(
        ws.as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == wid.as_str() || w["id"] == mine.as_str())
    );
    // Revoking the credential stops it at once.
    let wid_tok = w["info"]["id"].as_str().unwrap().to_string();
    env.ok(&["token", "revoke", &wid_tok]);
    let (code, _) = http(
        "POST",
        &format!("{base}/workers/{mine}/lease"),
        Some(&wtok),
        Some(lease),
    );
    assert_eq!(code, 401);
}

#[test]
fn every_request_is_audited_and_queryable() {
    let env = Env::new();
    let (mut up_proc, admin) = up(&env, "[security]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    let alice = user_with_token(&env, "alice", &["--project", "default"]);
    let bob = user_with_token(&env, "bob", &["--project", "default", "--role", "guest"]);
    let id = ok_as(&env, &alice, &["submit", "--", "sleep", "30"])
        .trim()
        .to_string();
    ok_as(&env, &alice, &["cancel", &id]);
    let (code, _) = http("GET", &format!("{base}/jobs/{id}/log"), Some(&bob), None);
    assert_eq!(code, 404);
    // Failed logins from a client behind the trusted proxy (127.0.0.1).
    for _ in 0..2 {
        let (code, _, _) = curl(
            "POST",
            &format!("{base}/login"),
            &[
                "Content-Type: application/json".into(),
                "X-Forwarded-For: 6.6.6.6, 203.0.113.7".into(),
            ],
            Some(r#"{"user":"alice","password":"wrong password!"}"#),
        );
        assert_eq!(code, 401);
    }

    // All actions on the job, with principal, address, status, user agent.
    let q = eventually(T, "the audit records of the job", || {
        let v = json_as(
            &env,
            &admin,
            &[
                "audit",
                "query",
                "job",
                "--param",
                &format!("id={id}"),
                "--json",
            ],
        );
        // Records are written in batches: wait until every expected one is in.
        let has = |action: &str| {
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == action)
        };
        (has("job.submit") && has("job.cancel") && has("job.log")).then_some(v.clone())
    });
    let recs = q["records"].as_array().unwrap();
    let find = |action: &str| {
        recs.iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("{action} in {q}"))
            .clone()
    };
    let submit = find("job.submit");
    assert_eq!(submit["user"], "alice");
    assert_eq!(submit["status"], 201);
    assert_eq!(submit["method"], "POST");
    assert_eq!(submit["path"], "/api/v1/jobs");
    assert_eq!(submit["source_ip"], "127.0.0.1");
    assert!(submit["token"].as_str().unwrap().starts_with("tok-"));
    assert!(
        submit["user_agent"]
            .as_str()
            .unwrap()
            .starts_with("trestle/")
    );
    assert!(submit["latency_us"].as_i64().is_some());
    let cancel = find("job.cancel");
    assert_eq!(
        (cancel["user"].clone(), cancel["status"].clone()),
        (Value::from("alice"), Value::from(200))
    );
    let denied = find("job.log");
    assert_eq!(
        (denied["user"].clone(), denied["status"].clone()),
        (Value::from("bob"), Value::from(404))
    );

    // Failed logins by source address: the client behind the proxy, not a forged hop.
    // (Records are written in batches: wait for both.)
    let fl = eventually(T, "both failed logins in the audit trail", || {
        let v = json_as(&env, &admin, &["audit", "query", "failed-logins", "--json"]);
        (v["groups"][0]["count"] == 2).then_some(v)
    });
    assert_eq!(fl["groups"].as_array().unwrap().len(), 1, "{fl}");
    assert_eq!(
        fl["groups"][0]["key"], "203.0.113.7",
        "the client behind the proxy, not a forged hop"
    );
    // Ad-hoc filters: a principal's changes, by status class, as a table.
    let changes = json_as(
        &env,
        &admin,
        &[
            "audit",
            "query",
            "--principal",
            "alice",
            "--changes",
            "--json",
        ],
    );
    let actions: Vec<&str> = changes["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["job.cancel", "job.submit"], "{changes}");
    let denied = json_as(
        &env,
        &admin,
        &[
            "audit",
            "query",
            "--status",
            "4xx",
            "--principal",
            "bob",
            "--json",
        ],
    );
    assert_eq!(denied["records"].as_array().unwrap().len(), 1);
    let table = env.ok(&["audit", "query", "--action", "user.", "--since", "1h"]);
    assert!(
        table.starts_with("TIME") && table.contains("user.create") && table.contains("user:alice"),
        "{table}"
    );
    let who = env.ok(&["audit", "query", "changes"]);
    assert!(
        who.contains("token.create") && who.contains("job.cancel"),
        "{who}"
    );
    let names = env.ok(&["audit", "queries"]);
    for n in ["changes", "failed-logins", "job", "unused-tokens", "denied"] {
        assert!(names.contains(n), "{names}");
    }
    let out = env.run(&["audit", "query", "job"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--param id="));
    let out = env.run(&["audit", "query", "--status", "6xx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("status"));

    // Unused credentials: listed, then revoked and disabled, each audited.
    let idle = env.json(&[
        "token", "create", "--user", "alice", "--name", "idle", "--json",
    ]);
    let idle_id = idle["info"]["id"].as_str().unwrap().to_string();
    let report = eventually(T, "the idle token to count as unused for 1s", || {
        let r = env.json(&["audit", "unused", "--period", "1s", "--json"]);
        r["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == idle_id.as_str())
            .then_some(r)
    });
    assert!(!report["disabled"].as_bool().unwrap());
    let out = env.json(&["audit", "unused", "--period", "1s", "--disable", "--json"]);
    assert!(out["disabled"].as_bool().unwrap());
    assert!(
        out["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == idle_id.as_str())
    );
    assert!(
        out["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["role"] != "admin"),
        "admins are never disabled"
    );
    assert_eq!(
        http(
            "GET",
            &format!("{base}/whoami"),
            idle["token"].as_str(),
            None
        )
        .0,
        401
    );
    let revoked = eventually(T, "the auto-revoke audit record", || {
        let v = env.json(&["audit", "query", "--action", "token.auto-revoke", "--json"]);
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == format!("token:{idle_id}").as_str())
            .cloned()
    });
    assert_eq!(revoked["user"], "admin", "who ran the policy");

    // Records survive a clean restart (the writer flushes on shutdown).
    let before = env.json(&[
        "audit", "query", "--since", "all", "--limit", "10000", "--json",
    ]);
    let n = before["records"].as_array().unwrap().len();
    up_proc.signal(libc::SIGINT);
    assert!(up_proc.wait_exit(T));
    drop(up_proc);
    let (_up2, again) = up(&env, "[security]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    assert!(again.is_none(), "no second bootstrap token");
    let after = env.json(&[
        "audit", "query", "--since", "all", "--limit", "10000", "--json",
    ]);
    assert!(
        after["records"].as_array().unwrap().len() > n,
        "the last request before the restart is stored too"
    );
}

#[test]
fn the_unused_credential_policy_disables_on_its_own() {
    let env = Env::new();
    let (_up, admin) = up(&env, "[audit]\ndisable_unused_after = \"2s\"\n");
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    let idle = user_with_token(&env, "idle", &["--project", "default"]);
    // Nobody uses the token: the policy revokes it and disables its user.
    eventually(T, "the policy to revoke the idle token", || {
        (http("GET", &format!("{base}/whoami"), Some(&idle), None).0 == 401).then_some(())
    });
    let user = eventually(T, "the policy to disable the idle user", || {
        let u = env.json(&["user", "show", "idle", "--json"]);
        (u["disabled"] == true).then_some(u)
    });
    assert_eq!(user["name"], "idle");
    // Each action is audited as the policy's.
    let recs = eventually(T, "the policy's audit records", || {
        let v = env.json(&["audit", "query", "--principal", "policy", "--json"]);
        let r = v["records"].as_array().unwrap().clone();
        (r.iter().any(|r| r["action"] == "user.auto-disable")
            && r.iter().any(|r| r["action"] == "token.auto-revoke"))
        .then_some(r)
    });
    assert!(
        recs.iter().any(|r| r["resource"] == "user:idle"),
        "{recs:?}"
    );
    // Admins are never disabled, even when idle.
    let me = env.json(&["user", "show", "admin", "--json"]);
    assert_eq!(me["disabled"], false);
    let _ = admin;
}
