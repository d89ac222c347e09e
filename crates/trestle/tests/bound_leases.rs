//! Security review (issue #19), over HTTP on SQLite and PostgreSQL:
//! a lease is bound to the worker it was granted to (another worker
//! holding its token can neither report for it nor upload its outputs,
//! and is answered exactly as for an unknown token), and a job's inputs
//! never change once it is submitted (its upload is sealed).

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// `trestle up` without local workers (this test plays the workers), on
/// SQLite or on a fresh PostgreSQL database.
fn server(env: &Env, postgres: Option<&str>) -> (Proc, String) {
    let mut extra = String::from("[local]\nenabled = false\n");
    if let Some(tag) = postgres {
        extra = format!("database = \"{}\"\n{extra}", fresh_postgres(tag));
    }
    let (p, admin) = up(env, &extra);
    (p, admin.expect("admin token"))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Registers a worker with its own worker credential: (id, credential).
fn register(env: &Env) -> (String, String) {
    let t = env.json(&["token", "create", "--worker", "--json"]);
    let token = t["token"].as_str().unwrap().to_string();
    let body = format!(
        r#"{{"host":"h","pid":1,"capacity":{{"cpus":1,"mem_mib":512,"gpus":0}},"version":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let (code, body) = http(
        "POST",
        &format!("{}/api/v1/workers", env.url()),
        Some(&token),
        Some(&body),
    );
    assert_eq!(code, 201, "{body}");
    (json_of(&body)["id"].as_str().unwrap().to_string(), token)
}

/// PUTs `data` at `url` with optional extra headers: (status, body).
fn put(url: &str, token: &str, headers: &[String], data: &str) -> (u16, String) {
    let mut args = vec![
        "-s".to_string(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        "PUT".into(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        "-H".into(),
        "Content-Type: application/octet-stream".into(),
        "--data-binary".into(),
        data.into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push(h.clone());
    }
    args.push(url.into());
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn updates(env: &Env, worker: &str, token: &str, body: &Value) -> (u16, Value) {
    let (code, text) = http(
        "POST",
        &format!("{}/api/v1/workers/{worker}/updates", env.url()),
        Some(token),
        Some(&body.to_string()),
    );
    (
        code,
        if text.is_empty() {
            json!({})
        } else {
            json_of(&text)
        },
    )
}

/// Reports of attempt `at`: a start, a log chunk and a successful end.
fn reports(at: &Value, text: &str) -> Value {
    let with = |extra: Value| {
        let mut v = at.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    json!({
        "heartbeat": [at],
        "updates": [
            with(json!({"kind": "started", "time": 1})),
            with(json!({"kind": "log", "seq": 1, "data": text})),
            with(json!({"kind": "finished", "reason": "success", "exit_code": 0, "time": 2})),
        ],
    })
}

fn lease_binding(postgres: Option<&str>) {
    let env = Env::new();
    let (_up, admin) = server(&env, postgres);
    let base = env.url();
    let (w1, t1) = register(&env);
    let (w2, t2) = register(&env);
    let id = env.ok(&["submit", "--", "true"]).trim().to_string();
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/workers/{w1}/lease"),
        Some(&t1),
        Some(r#"{"free":{"cpus":1,"mem_mib":512,"gpus":0},"max_jobs":1,"wait_ms":5000}"#),
    );
    assert_eq!(code, 200, "{body}");
    let lease = json_of(&body)["leases"][0].clone();
    assert_eq!(lease["job_id"].to_string(), id, "{body}");
    let at =
        json!({"job_id": lease["job_id"], "attempt": lease["attempt"], "token": lease["token"]});
    let mut unknown = at.clone();
    unknown["token"] = json!("0".repeat(32));
    let before = job(&env, &id);

    // W2 reports for W1's attempt with W1's token: stale, nothing applied,
    // and the same answer as for a token that does not exist.
    let (code, forged) = updates(&env, &w2, &t2, &reports(&at, "forged\n"));
    assert_eq!(code, 200, "{forged}");
    let (_, made_up) = updates(&env, &w2, &t2, &reports(&unknown, "forged\n"));
    assert_eq!(forged, made_up, "no oracle for a token of another worker");
    assert_eq!(
        forged["stale"],
        json!([{"job_id": lease["job_id"], "attempt": lease["attempt"]}])
    );
    let after = job(&env, &id);
    assert_eq!(after["state"], "STARTING", "{after}");
    assert_eq!(after["attempts"], before["attempts"]);
    let log = |who: &str| {
        let (code, body) = http(
            "GET",
            &format!("{base}/api/v1/jobs/{id}/log"),
            Some(who),
            None,
        );
        assert_eq!(code, 200, "{body}");
        json_of(&body)["data"].as_str().unwrap().to_string()
    };
    assert_eq!(log(&admin), "", "no log chunk stored");
    // W2's credential cannot act as W1 either (as before).
    let (code, _) = updates(&env, &w1, &t2, &reports(&at, "forged\n"));
    assert_eq!(code, 404);

    // W2 uploads an output of W1's attempt with W1's token: refused exactly
    // like an unknown token, and nothing stored.
    let out_url = format!(
        "{base}/api/v1/jobs/{id}/attempts/{}/outputs/result.txt",
        lease["attempt"]
    );
    let header = |t: &Value| vec![format!("trestle-lease-token: {}", t.as_str().unwrap())];
    let (code, forged) = put(&out_url, &t2, &header(&lease["token"]), "forged");
    assert_eq!(code, 409, "{forged}");
    assert!(forged.contains(r#""code":"stale-lease""#), "{forged}");
    let (code, made_up) = put(&out_url, &t2, &header(&unknown["token"]), "forged");
    assert_eq!((code, made_up), (409, forged));
    let outputs = || {
        let (code, body) = http(
            "GET",
            &format!(
                "{base}/api/v1/jobs/{id}/outputs?attempt={}",
                lease["attempt"]
            ),
            Some(&admin),
            None,
        );
        assert_eq!(code, 200, "{body}");
        json_of(&body)["files"].clone()
    };
    assert_eq!(outputs(), json!([]), "no output stored");

    // W1 still can.
    let (code, body) = put(&out_url, &t1, &header(&lease["token"]), "real");
    assert_eq!(code, 204, "{body}");
    let (code, out) = updates(&env, &w1, &t1, &reports(&at, "real\n"));
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["stale"], json!([]), "{out}");
    let j = wait_state(&env, &id, "SUCCEEDED", T);
    assert_eq!(j["attempts"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(log(&admin), "real\n");
    assert_eq!(outputs()[0]["path"], "result.txt");
}

#[test]
fn leases_are_bound_to_their_worker_sqlite() {
    lease_binding(None);
}

#[test]
fn leases_are_bound_to_their_worker_postgres() {
    lease_binding(Some("bound_leases"));
}

fn sealed_uploads(postgres: Option<&str>) {
    let env = Env::new();
    let (_up, admin) = server(&env, postgres);
    let base = env.url();
    // The CLI's flow: upload the folder, then submit.
    let dir = env.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.txt"), "one\n").unwrap();
    let id = env
        .ok(&[
            "submit",
            "--input",
            dir.to_str().unwrap(),
            "--",
            "cat",
            "data.txt",
        ])
        .trim()
        .to_string();
    let upload = job(&env, &id)["spec"]["inputs"]
        .as_str()
        .expect("the job names its upload")
        .to_string();
    let input = || {
        let (code, body) = http(
            "GET",
            &format!("{base}/api/v1/jobs/{id}/inputs/data.txt"),
            Some(&admin),
            None,
        );
        assert_eq!(code, 200, "{body}");
        body
    };
    assert_eq!(input(), "one\n");

    // Writing into the submitted job's upload is refused, whether the file
    // exists or is new, and the job's inputs stay as submitted.
    for path in ["data.txt", "extra.txt"] {
        let (code, body) = put(
            &format!("{base}/api/v1/uploads/{upload}/files/{path}"),
            &admin,
            &[],
            "changed\n",
        );
        assert_eq!(code, 409, "{body}");
        let err = &json_of(&body)["error"];
        assert_eq!(err["code"], "upload-sealed", "{body}");
        assert_eq!(err["field"], "id", "{body}");
    }
    assert_eq!(input(), "one\n");
    let (_, files) = http(
        "GET",
        &format!("{base}/api/v1/jobs/{id}/inputs"),
        Some(&admin),
        None,
    );
    let files = json_of(&files)["files"].clone();
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");

    // A fresh upload is written as before, and a job submitted with it
    // sees what was written.
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/uploads"),
        Some(&admin),
        Some("{}"),
    );
    assert_eq!(code, 201, "{body}");
    let fresh = json_of(&body)["id"].as_str().unwrap().to_string();
    let (code, body) = put(
        &format!("{base}/api/v1/uploads/{fresh}/files/data.txt"),
        &admin,
        &[],
        "two\n",
    );
    assert_eq!(code, 204, "{body}");
    let (code, body) = put(
        &format!("{base}/api/v1/uploads/{fresh}/files/data.txt"),
        &admin,
        &[],
        "three\n",
    );
    assert_eq!(code, 204, "an unsealed upload may be rewritten: {body}");
    let job_body = json!({"command": ["cat", "data.txt"], "inputs": fresh}).to_string();
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/jobs"),
        Some(&admin),
        Some(&job_body),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = put(
        &format!("{base}/api/v1/uploads/{fresh}/files/data.txt"),
        &admin,
        &[],
        "four\n",
    );
    assert_eq!(code, 409, "{body}");
    let second = json_of(&body);
    assert_eq!(second["error"]["code"], "upload-sealed");
    // Resubmitting the first job reuses its (sealed) upload.
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/jobs/{id}/resubmit"),
        Some(&admin),
        None,
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn submitted_inputs_are_sealed_sqlite() {
    sealed_uploads(None);
}

#[test]
fn submitted_inputs_are_sealed_postgres() {
    sealed_uploads(Some("sealed_uploads"));
}
