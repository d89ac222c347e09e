//! Studies end to end through the real binary on SQLite: the CLI's
//! create, upload (a folder, one version), ls, download (checked), grant
//! and revoke; the permission matrix over the API for users of other
//! projects, guests, write-only and read-only grants and the three
//! categories; the audit query "who read study X"; bad input that names
//! its field and writes nothing; a large upload in parts resumed after an
//! interruption, with a corrupted part refused; an exceeded quota; two
//! writers on one path and on different paths.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(20);

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

struct World {
    env: Env,
    _up: Proc,
    admin: String,
    alice: String,
    bob: String,
    carol: String,
    gina: String,
}

/// Alice and Carol research in `genomics` (org `uni`), Bob in `physics`
/// (org `elsewhere`), Gina is a guest member of `genomics`.
fn world() -> World {
    let env = Env::new();
    let (up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    env.ok(&["index", "add", "nsf-1"]);
    env.ok(&[
        "project", "add", "genomics", "--index", "nsf-1", "--org", "uni",
    ]);
    env.ok(&[
        "project",
        "add",
        "physics",
        "--index",
        "nsf-1",
        "--org",
        "elsewhere",
    ]);
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
    let gina = user_with_token(&env, "gina", &["--role", "guest", "--project", "genomics"]);
    World {
        env,
        _up: up,
        admin,
        alice,
        bob,
        carol,
        gina,
    }
}

fn api(w: &World, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let (code, text) = http(
        method,
        &format!("{}/api/v1{path}", w.env.url()),
        Some(token),
        body,
    );
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn fails_as(env: &Env, token: &str, args: &[&str]) -> String {
    let out = run_as(env, token, args);
    assert!(
        !out.status.success(),
        "`trestle {}` succeeded",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_round_trip_permissions_and_the_audit_of_readers() {
    let w = world();
    let env = &w.env;
    let data = env.path().join("data-set");
    std::fs::create_dir_all(data.join("raw")).unwrap();
    std::fs::write(data.join("README"), "genomes of mice\n").unwrap();
    std::fs::write(data.join("raw/a.fastq"), "ACGT".repeat(1000)).unwrap();
    let created = json_as(
        env,
        &w.alice,
        &[
            "study",
            "create",
            "genomes",
            "--description",
            "mouse genomes",
            "--json",
        ],
    );
    assert_eq!(
        created["project"], "genomics",
        "charged to her default project"
    );
    assert_eq!(created["permission"], "admin");
    assert_eq!(created["category"], "personal");
    let v = json_as(
        env,
        &w.alice,
        &[
            "study",
            "upload",
            "genomes",
            data.to_str().unwrap(),
            "--to",
            "v1",
            "--json",
        ],
    );
    assert_eq!(
        (v["version"].as_u64(), v["files"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    let ls = json_as(env, &w.alice, &["study", "ls", "genomes", "--json"]);
    let paths: Vec<&str> = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["v1/README", "v1/raw/a.fastq"]);
    assert_eq!(ls["files"][0]["sha256"], sha(b"genomes of mice\n"));

    // Bob (another project and organisation) sees nothing of it.
    let (code, body) = api(&w, "GET", "/studies/genomes", &w.bob, None);
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error"]["code"], "not-found");
    let (_, list) = api(&w, "GET", "/studies", &w.bob, None);
    assert_eq!(list, json!([]));
    // Read-only for Bob: he downloads (checked) but cannot write.
    ok_as(
        env,
        &w.alice,
        &["study", "grant", "genomes", "bob", "read-only"],
    );
    let dest = env.path().join("bob-copy");
    let d = json_as(
        env,
        &w.bob,
        &[
            "study",
            "download",
            "genomes",
            "v1",
            "--to",
            dest.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(
        (d["version"].as_u64(), d["files"].as_u64()),
        (Some(1), Some(2)),
        "{d}"
    );
    assert_eq!(
        std::fs::read(dest.join("v1/raw/a.fastq")).unwrap(),
        "ACGT".repeat(1000).as_bytes()
    );
    let err = fails_as(
        env,
        &w.bob,
        &["study", "upload", "genomes", data.to_str().unwrap()],
    );
    assert!(err.contains("only read"), "{err}");
    let (code, _) = api(&w, "GET", "/studies/genomes/grants", &w.bob, None);
    assert_eq!(code, 403);
    let (code, _) = api(&w, "DELETE", "/studies/genomes", &w.bob, None);
    assert_eq!(code, 403);
    // Write-only (a deposit box): adds files, never reads or replaces them.
    ok_as(
        env,
        &w.alice,
        &["study", "grant", "genomes", "bob", "write-only"],
    );
    let drop = env.path().join("deposit.txt");
    std::fs::write(&drop, "from bob").unwrap();
    let v = json_as(
        env,
        &w.bob,
        &[
            "study",
            "upload",
            "genomes",
            drop.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(v["version"], 2);
    let (code, body) = api(&w, "GET", "/studies/genomes/files", &w.bob, None);
    assert_eq!(code, 403, "{body}");
    let (code, body) = api(
        &w,
        "GET",
        "/studies/genomes/files/deposit.txt",
        &w.bob,
        None,
    );
    assert_eq!(code, 403, "{body}");
    let err = fails_as(
        env,
        &w.bob,
        &["study", "upload", "genomes", drop.to_str().unwrap()],
    );
    assert!(
        err.contains("read-write"),
        "replacing needs read-write: {err}"
    );
    let (_, s) = api(&w, "GET", "/studies/genomes", &w.bob, None);
    assert_eq!(s["permission"], "write-only");
    assert!(s.get("files").is_none(), "{s}");
    // Revoked: a 404 again.
    ok_as(env, &w.alice, &["study", "revoke", "genomes", "bob"]);
    let (code, _) = api(&w, "GET", "/studies/genomes", &w.bob, None);
    assert_eq!(code, 404);
    // The last admin cannot be removed.
    let (code, body) = api(
        &w,
        "DELETE",
        "/studies/genomes/grants/alice",
        &w.alice,
        None,
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("last-admin"))
    );

    // Categories: Carol (same project) reads an Organization study, Gina
    // (a guest in it) does not; everyone reads Open Data, only its admins
    // write it; guests create nothing.
    ok_as(
        env,
        &w.alice,
        &["study", "create", "lab", "--category", "organization"],
    );
    ok_as(
        env,
        &w.alice,
        &["study", "create", "census", "--category", "open"],
    );
    let (code, _) = api(&w, "GET", "/studies/lab/files", &w.carol, None);
    assert_eq!(code, 200);
    let (code, _) = api(&w, "GET", "/studies/lab", &w.gina, None);
    assert_eq!(code, 404);
    let (code, _) = api(&w, "GET", "/studies/lab", &w.bob, None);
    assert_eq!(code, 404);
    for t in [&w.bob, &w.gina, &w.carol] {
        let (code, _) = api(&w, "GET", "/studies/census/files", t, None);
        assert_eq!(code, 200);
        let (code, _) = api(
            &w,
            "PUT",
            &format!("/studies/census/objects/{}", sha(b"")),
            t,
            Some(""),
        );
        assert_eq!(code, 403);
    }
    let cats = json_as(env, &w.carol, &["study", "list", "--json"]);
    let names: Vec<&str> = cats
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["census", "lab"]);
    let open = json_as(
        env,
        &w.carol,
        &["study", "list", "--category", "open", "--json"],
    );
    assert_eq!(open.as_array().unwrap().len(), 1);
    let err = fails_as(env, &w.gina, &["study", "create", "mine"]);
    assert!(err.contains("guests"), "{err}");
    let (code, body) = api(
        &w,
        "POST",
        "/studies",
        &w.bob,
        Some(r#"{"name":"x","category":"personal","project":"genomics"}"#),
    );
    assert_eq!(code, 403, "not a member of genomics: {body}");
    // Admins do everything.
    let (code, _) = api(&w, "GET", "/studies/genomes/grants", &w.admin, None);
    assert_eq!(code, 200);

    // Who read study `genomes`, and when: Bob's two downloads, nothing else.
    let q = eventually(T, "the readers of genomes in the audit trail", || {
        let v = json_as(
            env,
            &w.admin,
            &[
                "audit",
                "query",
                "study-readers",
                "--param",
                "study=genomes",
                "--json",
            ],
        );
        (v["records"].as_array().map(Vec::len) == Some(2)).then_some(v)
    });
    for r in q["records"].as_array().unwrap() {
        assert_eq!(r["user"], "bob", "{r}");
        assert_eq!(r["action"], "study.read.download", "{r}");
        assert!(r["at"].as_i64().unwrap() > 0);
    }
    // Permission changes and uploads are audited too.
    let changes = eventually(T, "the grants in the audit trail", || {
        let v = json_as(
            env,
            &w.admin,
            &[
                "audit",
                "query",
                "--resource",
                "study:genomes",
                "--action",
                "study.grant",
                "--json",
            ],
        );
        (v["records"].as_array().map(Vec::len) == Some(2)).then_some(v)
    });
    assert_eq!(changes["records"][0]["user"], "alice");

    // The study is deleted with its files.
    ok_as(env, &w.alice, &["study", "rm", "genomes", "--study"]);
    let (code, _) = api(&w, "GET", "/studies/genomes", &w.alice, None);
    assert_eq!(code, 404);
}

#[test]
fn bad_input_names_the_field_and_writes_nothing() {
    let w = world();
    let env = &w.env;
    ok_as(env, &w.alice, &["study", "create", "s1"]);
    let content = b"hello";
    let h = sha(content);
    let body = env.path().join("hello");
    std::fs::write(&body, content).unwrap();
    let url = format!("{}/api/v1/studies/s1/objects/{h}", env.url());
    let auth = format!("Authorization: Bearer {}", w.alice);
    let (code, _, _) = curl(
        "PUT",
        &url,
        std::slice::from_ref(&auth),
        Some(&format!("@{}", body.display())),
    );
    assert_eq!(code, 200);
    // The content does not match its declared SHA-256: refused, not stored.
    let wrong = sha(b"other");
    let (code, _, text) = curl(
        "PUT",
        &format!("{}/api/v1/studies/s1/objects/{wrong}", env.url()),
        std::slice::from_ref(&auth),
        Some(&format!("@{}", body.display())),
    );
    assert_eq!(
        (code, code_of(&text)),
        (400, "checksum-mismatch".into()),
        "{text}"
    );
    let (code, _, text) = curl(
        "PUT",
        &format!("{}/api/v1/studies/s1/objects/..%2F..%2Fetc", env.url()),
        std::slice::from_ref(&auth),
        Some("x"),
    );
    assert_eq!(code, 400, "{text}");
    let put =
        |path: &str| json!({"changes": [{"op": "put", "path": path, "size": 5, "sha256": h}]});
    let ok = put("caf\u{e9}.txt");
    let (code, body) = api(
        &w,
        "POST",
        "/studies/s1/versions",
        &w.alice,
        Some(&ok.to_string()),
    );
    assert_eq!(code, 201, "{body}");
    let long = "n".repeat(256);
    let cases: Vec<(Value, &str, &str)> = vec![
        (put("../escape"), "invalid-path", "changes[0].path"),
        (put("/etc/passwd"), "invalid-path", "changes[0].path"),
        (put("a\u{0}b"), "invalid-path", "changes[0].path"),
        (put("bell\u{7}"), "invalid-path", "changes[0].path"),
        (put(&long), "invalid-path", "changes[0].path"),
        (put("cafe\u{301}.txt"), "name-collision", "changes[0].path"),
        (
            json!({"changes": [
                {"op": "put", "path": "d", "size": 5, "sha256": h},
                {"op": "put", "path": "./d", "size": 5, "sha256": h}]}),
            "duplicate-path",
            "changes[1].path",
        ),
        (
            json!({"changes": [{"op": "put", "path": "x", "size": 5, "sha256": sha(b"never")}]}),
            "not-uploaded",
            "changes[0].sha256",
        ),
        (
            json!({"changes": [{"op": "put", "path": "x", "size": 6, "sha256": h}]}),
            "size-mismatch",
            "changes[0].size",
        ),
        (
            json!({"changes": [], "colour": 1}),
            "invalid-json",
            "colour",
        ),
    ];
    for (body, code, field) in cases {
        let (status, got) = api(
            &w,
            "POST",
            "/studies/s1/versions",
            &w.alice,
            Some(&body.to_string()),
        );
        assert_eq!(status, 400, "{body}: {got}");
        assert_eq!(got["error"]["code"], code, "{body}: {got}");
        assert_eq!(got["error"]["field"], field, "{body}: {got}");
    }
    let (status, got) = api(
        &w,
        "POST",
        "/studies",
        &w.alice,
        Some(r#"{"name":"Bad Name","category":"personal"}"#),
    );
    assert_eq!(
        (status, got["error"]["field"].as_str()),
        (400, Some("name"))
    );
    let (status, got) = api(
        &w,
        "POST",
        "/studies",
        &w.alice,
        Some(r#"{"name":"s2","category":"secret"}"#),
    );
    assert_eq!(
        (status, got["error"]["field"].as_str()),
        (400, Some("category"))
    );
    let (status, got) = api(
        &w,
        "PUT",
        "/studies/s1/grants/alice",
        &w.alice,
        Some(r#"{"permission":"owner"}"#),
    );
    assert_eq!(
        (status, got["error"]["field"].as_str()),
        (400, Some("permission"))
    );
    let (status, got) = api(
        &w,
        "PUT",
        "/studies/s1/grants/nobody",
        &w.alice,
        Some(r#"{"permission":"read-only"}"#),
    );
    assert_eq!(
        (status, got["error"]["field"].as_str()),
        (400, Some("user"))
    );
    // Only the one good version exists, and nothing was written outside
    // the study's prefix.
    let v = json_as(env, &w.alice, &["study", "show", "s1", "--json"]);
    assert_eq!(v["versions"].as_array().unwrap().len(), 1, "{v}");
    let data = env.path().join("data");
    let mut stray = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(&data).unwrap().to_string_lossy().to_string();
                if rel.contains("escape") || rel.contains("passwd") || rel.contains("etc") {
                    stray.push(rel);
                }
            }
        }
    }
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn large_uploads_resume_corrupt_parts_are_refused_and_quotas_hold() {
    let w = world();
    let env = &w.env;
    ok_as(env, &w.alice, &["study", "create", "big"]);
    // 40 MiB: three parts of 16 MiB (the last smaller).
    let part = 16usize << 20;
    let mut data = Vec::with_capacity(40 << 20);
    let mut x: u32 = 7;
    while data.len() < 40 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.extend_from_slice(&x.to_le_bytes());
    }
    let file = env.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let whole = sha(&data);
    let auth = format!("Authorization: Bearer {}", w.alice);
    let part_url = |n: u32| format!("{}/api/v1/studies/big/parts/{whole}/{n}", env.url());
    // The first part arrives, then the transfer is interrupted.
    let p0 = env.path().join("p0");
    std::fs::write(&p0, &data[..part]).unwrap();
    let (code, _, text) = curl(
        "PUT",
        &part_url(0),
        &[
            auth.clone(),
            "Expect:".to_string(),
            format!("x-trestle-sha256: {}", sha(&data[..part])),
        ],
        Some(&format!("@{}", p0.display())),
    );
    assert_eq!(code, 200, "{text}");
    // A part corrupted on the way is refused by its checksum.
    let p1 = env.path().join("p1");
    let mut bad = data[part..2 * part].to_vec();
    bad[100] ^= 0xff;
    std::fs::write(&p1, &bad).unwrap();
    let (code, _, text) = curl(
        "PUT",
        &part_url(1),
        &[
            auth.clone(),
            "Expect:".to_string(),
            format!("x-trestle-sha256: {}", sha(&data[part..2 * part])),
        ],
        Some(&format!("@{}", p1.display())),
    );
    assert_eq!(
        (code, code_of(&text)),
        (400, "checksum-mismatch".into()),
        "{text}"
    );
    let (_, parts) = api(
        &w,
        "GET",
        &format!("/studies/big/parts/{whole}"),
        &w.alice,
        None,
    );
    assert_eq!(
        parts["parts"],
        json!([[0, part]]),
        "only the good part is kept"
    );
    // Completing early names what is missing.
    let (code, body) = api(
        &w,
        "POST",
        &format!("/studies/big/parts/{whole}/complete"),
        &w.alice,
        Some(&json!({"count": 3, "size": data.len()}).to_string()),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("missing-parts")),
        "{body}"
    );
    // The CLI resumes: it sends the parts the server lacks, then commits.
    let v = json_as(
        env,
        &w.alice,
        &["study", "upload", "big", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(v["bytes"].as_u64(), Some(data.len() as u64), "{v}");
    let sent = eventually(T, "the part uploads in the audit trail", || {
        let q = json_as(
            env,
            &w.admin,
            &[
                "audit",
                "query",
                "--resource",
                "study:big",
                "--action",
                "study.upload",
                "--json",
            ],
        );
        let paths: Vec<String> = q["records"]
            .as_array()?
            .iter()
            .filter(|r| r["status"] == 200)
            .filter_map(|r| r["path"].as_str().map(str::to_string))
            .collect();
        (paths.len() >= 4).then_some(paths)
    });
    let part0 = sent
        .iter()
        .filter(|p| p.ends_with(&format!("{whole}/0")))
        .count();
    assert_eq!(part0, 1, "part 0 was not sent again: {sent:?}");
    let dest = env.path().join("back");
    ok_as(
        env,
        &w.alice,
        &["study", "download", "big", "--to", dest.to_str().unwrap()],
    );
    assert_eq!(sha(&std::fs::read(dest.join("big.bin")).unwrap()), whole);

    // Quotas: a study of at most 1 KiB, every version kept counting.
    ok_as(
        env,
        &w.alice,
        &["study", "create", "small", "--quota", "1K"],
    );
    let f = env.path().join("f600");
    std::fs::write(&f, vec![b'a'; 600]).unwrap();
    ok_as(
        env,
        &w.alice,
        &["study", "upload", "small", f.to_str().unwrap()],
    );
    std::fs::write(&f, vec![b'b'; 600]).unwrap();
    let err = fails_as(
        env,
        &w.alice,
        &["study", "upload", "small", f.to_str().unwrap()],
    );
    assert!(
        err.contains("quota")
            && err.contains("study `small`")
            && err.contains("every version kept"),
        "{err}"
    );
    // A project quota counts all its studies.
    ok_as(env, &w.admin, &["study", "quota", "genomics", "41M"]);
    std::fs::write(&f, vec![b'c'; 2 << 20]).unwrap();
    ok_as(env, &w.carol, &["study", "create", "more"]);
    let err = fails_as(
        env,
        &w.carol,
        &["study", "upload", "more", f.to_str().unwrap()],
    );
    assert!(err.contains("project `genomics`"), "{err}");
    let err = fails_as(env, &w.alice, &["study", "quota", "genomics", "1T"]);
    assert!(err.contains("admins"), "{err}");
}

#[test]
fn two_writers_merge_on_different_paths_and_conflict_on_one() {
    let w = world();
    let env = &w.env;
    ok_as(
        env,
        &w.alice,
        &["study", "create", "shared", "--category", "organization"],
    );
    ok_as(
        env,
        &w.alice,
        &["study", "grant", "shared", "carol", "read-write"],
    );
    let up = |token: &str, content: &[u8]| {
        let h = sha(content);
        let (code, _, text) = curl(
            "PUT",
            &format!("{}/api/v1/studies/shared/objects/{h}", env.url()),
            &[format!("Authorization: Bearer {token}")],
            Some(std::str::from_utf8(content).unwrap()),
        );
        assert_eq!(code, 200, "{text}");
        h
    };
    let commit = |token: &str, base: u64, path: &str, h: &str| {
        let body = json!({"base_version": base, "changes": [{"op": "put", "path": path, "size": 3, "sha256": h}]});
        api(
            &w,
            "POST",
            "/studies/shared/versions",
            token,
            Some(&body.to_string()),
        )
    };
    let a = up(&w.alice, b"aaa");
    let c = up(&w.carol, b"ccc");
    // Both started from version 0; different paths both apply.
    assert_eq!(commit(&w.alice, 0, "alice/out", &a).0, 201);
    let (code, v) = commit(&w.carol, 0, "carol/out", &c);
    assert_eq!((code, v["version"].as_u64()), (201, Some(2)), "{v}");
    // Both from version 2 on one path: the second is refused, whole.
    assert_eq!(commit(&w.alice, 2, "result", &a).0, 201);
    let (code, e) = commit(&w.carol, 2, "result", &c);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (409, Some("study-conflict")),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("result"));
    let ls = json_as(env, &w.carol, &["study", "ls", "shared", "--json"]);
    assert_eq!(ls["version"], 3);
    assert_eq!(ls["files"].as_array().unwrap().len(), 3);
    let result = ls["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "result")
        .unwrap();
    assert_eq!(result["sha256"], a.as_str(), "Alice's write stands");

    // Retention: versions replaced more than a second ago go (the current
    // one stays); their rows say they were deleted.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let p = json_as(
        env,
        &w.alice,
        &["study", "prune", "shared", "--keep", "1s", "--json"],
    );
    assert_eq!(p["versions"], json!([1, 2]), "{p}");
    assert_eq!(p["objects"], 0, "every object is still in version 3: {p}");
    let (code, body) = api(&w, "GET", "/studies/shared/files?version=1", &w.alice, None);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("version-deleted")),
        "{body}"
    );
    let show = json_as(env, &w.alice, &["study", "show", "shared", "--json"]);
    assert!(
        show["versions"][0]["deleted_at"].as_i64().is_some(),
        "{show}"
    );
    let (code, _) = api(
        &w,
        "POST",
        "/studies/shared/prune",
        &w.carol,
        Some(r#"{"keep": "1s"}"#),
    );
    assert_eq!(code, 403, "only the study's admins prune");
}
