//! Identity and authorization end to end through the real binary: users,
//! projects and tokens made with the CLI; every job endpoint tried by a
//! second user; token lifecycle; password logins, sessions, CSRF and
//! throttling. Worker credentials and the audit trail: `identity_audit.rs`.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::Value;
use support::*;

#[test]
fn a_second_user_gets_404_on_everything_of_the_first() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());

    env.ok(&["index", "add", "nsf-1", "--description", "a grant"]);
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

    // Indexes: each sees the index of their own projects, and only those.
    env.ok(&["index", "add", "nsf-2"]);
    env.ok(&["project", "add", "secret-lab", "--index", "nsf-2"]);
    let (code, body) = http("GET", &format!("{base}/indexes"), Some(&bob), None);
    assert_eq!(code, 200, "{body}");
    let idx: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(idx.as_array().unwrap().len(), 1, "{idx}");
    assert_eq!(idx[0]["name"], "nsf-1");
    assert_eq!(idx[0]["projects"], serde_json::json!(["physics"]), "{idx}");
    assert!(!body.contains("genomics") && !body.contains("secret-lab") && !body.contains("nsf-2"));
    let (_, body) = http("GET", &format!("{base}/indexes"), Some(&admin), None);
    assert!(
        body.contains("secret-lab") && body.contains("genomics"),
        "admins see all: {body}"
    );

    // Alice's job is charged to her default project and makes an output.
    let dir = env.path().join("case");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "input").unwrap();
    let id = ok_as(
        &env,
        &alice,
        &[
            "submit",
            "--input",
            dir.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo alice-secret; cat in.txt > out.txt",
        ],
    );
    let id = id.trim().to_string();
    assert!(run_as(&env, &alice, &["wait", &id]).status.success());
    let j = json_as(&env, &alice, &["job", "show", &id, "--json"]);
    assert_eq!(j["spec"]["project"], "genomics");
    assert_eq!(j["spec"]["owner"], "alice");
    assert!(ok_as(&env, &alice, &["logs", &id]).contains("alice-secret"));

    // Bob: every endpoint of that job is a 404, exactly like a job that does not exist.
    let paths = [
        ("GET", format!("/jobs/{id}")),
        ("GET", format!("/jobs/{id}/log")),
        ("GET", format!("/jobs/{id}/outputs")),
        ("GET", format!("/jobs/{id}/outputs/out.txt")),
        ("GET", format!("/jobs/{id}/inputs")),
        ("GET", format!("/jobs/{id}/inputs/in.txt")),
        ("POST", format!("/jobs/{id}/cancel")),
    ];
    for (m, p) in &paths {
        let (code, body) = http(m, &format!("{base}{p}"), Some(&bob), None);
        assert_eq!(code, 404, "bob {m} {p}: {body}");
        assert_eq!(code_of(&body), "not-found", "{body}");
        assert!(!body.contains("alice"), "nothing of alice's leaks: {body}");
        let ghost = p.replacen(&id, "999999", 1);
        let (code, _) = http(m, &format!("{base}{ghost}"), Some(&bob), None);
        assert_eq!(code, 404, "a missing job answers the same: {ghost}");
        // Alice herself reads everything.
        if *m == "GET" {
            let (code, body) = http(m, &format!("{base}{p}"), Some(&alice), None);
            assert_eq!(code, 200, "alice {p}: {body}");
        }
    }
    let (_, list) = http("GET", &format!("{base}/jobs"), Some(&bob), None);
    assert!(
        !list.contains("alice-secret") && !list.contains(&format!("\"id\":{id},")),
        "{list}"
    );
    // And through the CLI, with exit code 2 and a clear message.
    for args in [
        vec!["job", "show", id.as_str()],
        vec!["logs", id.as_str()],
        vec!["cancel", id.as_str()],
    ] {
        let out = run_as(&env, &bob, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("job {id} does not exist")),
            "{args:?}: {err}"
        );
    }
    let to = env.path().join("stolen");
    let out = run_as(&env, &bob, &["outputs", &id, "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!to.join("out.txt").exists());
    let jobs = json_as(&env, &bob, &["jobs", "--json"]);
    assert_eq!(jobs.as_array().unwrap().len(), 0);

    // Submitting to a project you are not a member of: 403 with a clear message.
    let out = run_as(
        &env,
        &bob,
        &["submit", "--project", "genomics", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a member of project `genomics`"), "{err}");
    let (code, body) = http(
        "POST",
        &format!("{base}/jobs"),
        Some(&bob),
        Some(r#"{"command":["true"],"project":"nowhere"}"#),
    );
    assert_eq!(
        (code, code_of(&body)),
        (403, "forbidden".to_string()),
        "an unknown project looks the same: {body}"
    );

    // Uploads belong to their creator.
    let (code, body) = http("POST", &format!("{base}/uploads"), Some(&alice), None);
    assert_eq!(code, 201);
    let up_id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = http(
        "PUT",
        &format!("{base}/uploads/{up_id}/files/a.txt"),
        Some(&alice),
        Some("x"),
    );
    assert_eq!(code, 204);
    let (code, _) = http(
        "PUT",
        &format!("{base}/uploads/{up_id}/files/b.txt"),
        Some(&bob),
        Some("x"),
    );
    assert_eq!(code, 404);
    let (code, _) = http(
        "GET",
        &format!("{base}/uploads/{up_id}/files"),
        Some(&bob),
        None,
    );
    assert_eq!(code, 404);
    let req = format!(r#"{{"command":["true"],"inputs":"{up_id}"}}"#);
    let (code, body) = http("POST", &format!("{base}/jobs"), Some(&bob), Some(&req));
    assert_eq!(
        (code, code_of(&body)),
        (400, "unknown-upload".to_string()),
        "{body}"
    );

    // A viewer of the project sees the job read-only.
    env.ok(&[
        "project",
        "add-member",
        "genomics",
        "bob",
        "--role",
        "viewer",
    ]);
    let (code, _) = http("GET", &format!("{base}/jobs/{id}/log"), Some(&bob), None);
    assert_eq!(code, 200, "project members read the project's jobs");
    let (code, body) = http(
        "POST",
        &format!("{base}/jobs/{id}/cancel"),
        Some(&bob),
        None,
    );
    assert_eq!(code, 403, "but do not manage them: {body}");
    let (code, body) = http(
        "POST",
        &format!("{base}/jobs"),
        Some(&bob),
        Some(r#"{"command":["true"],"project":"genomics"}"#),
    );
    assert_eq!(code, 403);
    assert!(body.contains("viewer"), "{body}");

    // A guest submits only where an admin allowed it, and sees only their own jobs.
    let gina = user_with_token(&env, "gina", &["--role", "guest"]);
    let (code, body) = http(
        "POST",
        &format!("{base}/jobs"),
        Some(&gina),
        Some(r#"{"command":["true"]}"#),
    );
    assert_eq!(
        (code, code_of(&body)),
        (400, "no-project".to_string()),
        "{body}"
    );
    let out = run_as(
        &env,
        &gina,
        &["submit", "--project", "genomics", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(2));
    env.ok(&["project", "add-member", "genomics", "gina"]);
    let gid = ok_as(
        &env,
        &gina,
        &["submit", "--project", "genomics", "--", "true"],
    );
    assert!(gid.trim().parse::<i64>().is_ok());
    let (code, _) = http("GET", &format!("{base}/jobs/{id}"), Some(&gina), None);
    assert_eq!(code, 404, "a guest member does not see colleagues' jobs");
    // Only admins give guests access: alice, even as a manager, cannot.
    env.ok(&[
        "project",
        "add-member",
        "genomics",
        "alice",
        "--role",
        "manager",
    ]);
    let out = run_as(
        &env,
        &alice,
        &[
            "project",
            "add-member",
            "genomics",
            "gina",
            "--role",
            "manager",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok_as(
        &env,
        &alice,
        &[
            "project",
            "add-member",
            "genomics",
            "bob",
            "--role",
            "member",
        ],
    );
    // Nor does she learn which names exist: a guest's name, a disabled
    // user's and one that does not exist get one answer.
    user_with_token(&env, "dora", &["--role", "researcher"]);
    env.ok(&["user", "disable", "dora"]);
    let add = |user: &str| {
        let (code, body) = http(
            "POST",
            &format!("{base}/projects/genomics/members"),
            Some(&alice),
            Some(&format!(r#"{{"user":"{user}"}}"#)),
        );
        (code, body.replace(user, "NAME"))
    };
    let nobody = add("nobody");
    assert_eq!(nobody.0, 400, "{}", nobody.1);
    assert_eq!(code_of(&nobody.1), "unknown-user");
    assert_eq!(add("gina"), nobody, "a guest looks like no one");
    assert_eq!(add("dora"), nobody, "a disabled user looks like no one");
    // Someone who may add nobody is told so, whatever the name.
    let (code, _) = http(
        "POST",
        &format!("{base}/projects/genomics/members"),
        Some(&gina),
        Some(r#"{"user":"nobody"}"#),
    );
    assert!(code == 403 || code == 404, "{code}");

    // Admin-only commands are refused to researchers.
    for args in [
        vec!["user", "list"],
        vec!["audit", "query"],
        vec!["project", "add", "mine"],
        vec!["index", "add", "mine"],
        vec!["token", "create", "--worker"],
    ] {
        let out = run_as(&env, &alice, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("admin"),
            "{args:?}"
        );
    }
    // The admin sees everything; `workers` works for everyone.
    let all = json_as(&env, &admin, &["jobs", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    ok_as(&env, &bob, &["workers"]);
    // Projects: members see theirs, admins all.
    let mine = json_as(&env, &gina, &["project", "list", "--json"]);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(
        json_as(&env, &admin, &["project", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        4,
        "default, genomics, physics and secret-lab"
    );
    let out = run_as(&env, &gina, &["project", "show", "physics"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tokens_logins_sessions_and_throttling() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    let out = run_with_stdin(
        env.cmd(),
        &[
            "user",
            "add",
            "carol",
            "--project",
            "default",
            "--password-stdin",
        ],
        "carol's long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `trestle login` with a password stores a token in carol's client config.
    let carol_cfg = env.path().join("carol.toml");
    let mut cmd = env.cmd();
    cmd.env("TRESTLE_CLIENT_CONFIG", &carol_cfg)
        .env("TRESTLE_URL", env.url());
    let out = run_with_stdin(
        cmd,
        &["login", "--user", "carol", "--password-stdin"],
        "carol's long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = std::fs::read_to_string(&carol_cfg).unwrap();
    let carol = cfg
        .lines()
        .find_map(|l| l.strip_prefix("token = \""))
        .and_then(|t| t.strip_suffix('"'))
        .expect("token in the config")
        .to_string();
    let me = json_as(&env, &carol, &["whoami", "--json"]);
    assert_eq!(me["user"]["name"], "carol");
    assert_eq!(me["projects"][0]["project"], "default");

    // A read-only token reads and changes nothing.
    let ro = json_as(
        &env,
        &carol,
        &[
            "token",
            "create",
            "--read-only",
            "--ttl",
            "1h",
            "--name",
            "dash",
            "--json",
        ],
    );
    let ro_token = ro["token"].as_str().unwrap().to_string();
    let ro_id = ro["info"]["id"].as_str().unwrap().to_string();
    assert_eq!(ro["info"]["scope"], "read-only");
    assert!(ro["info"]["expires_at"].as_i64().is_some());
    let (code, _) = http("GET", &format!("{base}/jobs"), Some(&ro_token), None);
    assert_eq!(code, 200);
    let (code, body) = http(
        "POST",
        &format!("{base}/jobs"),
        Some(&ro_token),
        Some(r#"{"command":["true"]}"#),
    );
    assert_eq!(code, 403);
    assert!(body.contains("read-only"), "{body}");
    let (code, _) = http(
        "POST",
        &format!("{base}/tokens"),
        Some(&ro_token),
        Some("{}"),
    );
    assert_eq!(code, 403, "a read-only token cannot mint a full one");
    // Last use and source are recorded; only the owner (and admins) see a token.
    let list = json_as(&env, &carol, &["token", "list", "--json"]);
    let t = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == ro_id.as_str())
        .unwrap()
        .clone();
    assert!(t["last_used_at"].as_i64().is_some(), "{t}");
    assert_eq!(t["last_used_ip"], "127.0.0.1");
    assert!(
        !list.to_string().contains(&ro_token),
        "secrets are shown once"
    );
    let dave = user_with_token(&env, "dave", &["--project", "default"]);
    let (code, _) = http("GET", &format!("{base}/tokens/{ro_id}"), Some(&dave), None);
    assert_eq!(code, 404);
    let (code, _) = http(
        "DELETE",
        &format!("{base}/tokens/{ro_id}"),
        Some(&dave),
        None,
    );
    assert_eq!(code, 404);
    // Revocation works at once.
    ok_as(&env, &carol, &["token", "revoke", &ro_id]);
    let (code, _) = http("GET", &format!("{base}/jobs"), Some(&ro_token), None);
    assert_eq!(code, 401);
    // Expiry.
    let short = json_as(&env, &carol, &["token", "create", "--ttl", "1s", "--json"]);
    let short = short["token"].as_str().unwrap().to_string();
    eventually(T, "the 1s token to expire", || {
        (http("GET", &format!("{base}/whoami"), Some(&short), None).0 == 401).then_some(())
    });
    let (code, body) = http(
        "POST",
        &format!("{base}/tokens"),
        Some(&carol),
        Some(r#"{"ttl":"forever"}"#),
    );
    assert_eq!(code, 400);
    assert!(body.contains("\"field\":\"ttl\""), "{body}");

    // Disabling a user revokes their tokens: enabling them again does not
    // bring the old tokens back; they get new ones.
    env.ok(&["user", "disable", "carol"]);
    assert_eq!(
        http("GET", &format!("{base}/whoami"), Some(&carol), None).0,
        401
    );
    env.ok(&["user", "enable", "carol"]);
    assert_eq!(
        http("GET", &format!("{base}/whoami"), Some(&carol), None).0,
        401,
        "a disabled user's old token stays revoked"
    );
    let carol = env.json(&["token", "create", "--user", "carol", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        http("GET", &format!("{base}/whoami"), Some(&carol), None).0,
        200
    );
    // The last admin cannot be demoted; a role change takes effect at once.
    let out = env.run(&["user", "set-role", "admin", "researcher"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("last enabled admin"));
    assert_eq!(
        http("GET", &format!("{base}/users"), Some(&carol), None).0,
        403
    );
    env.ok(&["user", "set-role", "carol", "admin"]);
    assert_eq!(
        http("GET", &format!("{base}/users"), Some(&carol), None).0,
        200
    );
    let users = json_as(&env, &admin, &["user", "list", "--json"]);
    assert_eq!(users.as_array().unwrap().len(), 3);

    // Browser sessions: an HttpOnly, SameSite cookie and a CSRF token.
    let login = r#"{"user":"carol","password":"carol's long password"}"#;
    let json_h = "Content-Type: application/json".to_string();
    let (code, head, body) = curl(
        "POST",
        &format!("{base}/login"),
        std::slice::from_ref(&json_h),
        Some(login),
    );
    assert_eq!(code, 200, "{body}");
    let set_cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    // Plain HTTP: not Secure, or browsers would not send it back
    // (identity_sessions.rs checks the HTTPS case).
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let session = set_cookie
        .split_once("trestle_session=")
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = format!("Cookie: trestle_session={session}");
    let (code, _, body) = curl(
        "GET",
        &format!("{base}/whoami"),
        std::slice::from_ref(&cookie),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = curl(
        "POST",
        &format!("{base}/uploads"),
        std::slice::from_ref(&cookie),
        None,
    );
    assert_eq!(
        (code, code_of(&body)),
        (403, "csrf".to_string()),
        "no CSRF token: {body}"
    );
    let (code, _, _) = curl(
        "POST",
        &format!("{base}/uploads"),
        &[cookie.clone(), "x-csrf-token: wrong".into()],
        None,
    );
    assert_eq!(code, 403);
    let (code, _, body) = curl(
        "POST",
        &format!("{base}/uploads"),
        &[cookie.clone(), format!("x-csrf-token: {csrf}")],
        None,
    );
    assert_eq!(code, 201, "{body}");
    // A form post carries the token as a field.
    let form = "Content-Type: application/x-www-form-urlencoded".to_string();
    let (code, _, _) = curl(
        "POST",
        &format!("{base}/logout"),
        &[cookie.clone(), form.clone()],
        Some("a=b"),
    );
    assert_eq!(code, 403);
    let (code, head, _) = curl(
        "POST",
        &format!("{base}/logout"),
        &[cookie.clone(), form],
        Some(&format!("csrf_token={csrf}")),
    );
    assert_eq!(code, 204);
    assert!(head.contains("Max-Age=0"), "{head}");
    let (code, _, _) = curl("GET", &format!("{base}/whoami"), &[cookie], None);
    assert_eq!(code, 401, "the session ended");

    // Throttling per user and source: five failures, then 429 even with the right password.
    let wrong = r#"{"user":"carol","password":"not the password"}"#;
    for _ in 0..5 {
        let (code, _, body) = curl(
            "POST",
            &format!("{base}/login"),
            std::slice::from_ref(&json_h),
            Some(wrong),
        );
        assert_eq!(
            (code, code_of(&body)),
            (401, "invalid-credentials".to_string())
        );
    }
    let (code, head, body) = curl(
        "POST",
        &format!("{base}/login"),
        std::slice::from_ref(&json_h),
        Some(login),
    );
    assert_eq!(
        (code, code_of(&body)),
        (429, "too-many-attempts".to_string()),
        "{body}"
    );
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    // Another user from the same address is not locked out; unknown users fail alike.
    let out = run_with_stdin(
        env.cmd(),
        &["user", "set-password", "dave"],
        "dave's long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, _) = curl(
        "POST",
        &format!("{base}/login"),
        std::slice::from_ref(&json_h),
        Some(r#"{"user":"dave","password":"dave's long password"}"#),
    );
    assert_eq!(code, 200);
    let (code, _, body) = curl(
        "POST",
        &format!("{base}/login"),
        std::slice::from_ref(&json_h),
        Some(r#"{"user":"nobody","password":"whatever it is"}"#),
    );
    assert_eq!(
        (code, code_of(&body)),
        (401, "invalid-credentials".to_string())
    );
    // Bad input names its field.
    let (code, _, body) = curl(
        "POST",
        &format!("{base}/login"),
        std::slice::from_ref(&json_h),
        Some(r#"{"user":"carol"}"#),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(
        "POST",
        &format!("{base}/users"),
        Some(&admin),
        Some(r#"{"name":"Bad Name"}"#),
    );
    assert_eq!(code, 400);
    assert!(body.contains("\"field\":\"name\""), "{body}");
    let (code, body) = http(
        "POST",
        &format!("{base}/users"),
        Some(&admin),
        Some(r#"{"name":"eve","role":"root"}"#),
    );
    assert_eq!(code, 400);
    assert!(body.contains("\"field\":\"role\""), "{body}");
    let (code, body) = http(
        "POST",
        &format!("{base}/users"),
        Some(&admin),
        Some(r#"{"name":"eve","password":"short"}"#),
    );
    assert_eq!(code, 400);
    assert!(body.contains("\"field\":\"password\""), "{body}");
}

/// Operations that decide who may call them before they read the request
/// refuse a caller who may not, whatever the caller sent: a malformed body
/// (or path) is reported only to those who may.
#[test]
fn refusals_come_before_malformed_requests() {
    let env = Env::new();
    let (_up, admin) = up(&env, "[local]\nenabled = false\n");
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    let alice = user_with_token(&env, "alice", &["--project", "default"]);
    let w = env.json(&["token", "create", "--worker", "--json"]);
    let worker = w["token"].as_str().unwrap().to_string();
    let bad = Some("{not json");
    let invalid = (400, "invalid-json".to_string());
    for (method, path) in [
        ("POST", "/users"),
        ("POST", "/indexes"),
        ("POST", "/projects"),
        ("POST", "/compute-environments"),
        ("PUT", "/compute-environments/ce1"),
        ("POST", "/queues"),
        ("PUT", "/queues/q1"),
    ] {
        let url = format!("{base}{path}");
        let (code, body) = http(method, &url, Some(&alice), bad);
        assert_eq!(code, 403, "{method} {path}: {body}");
        let (code, body) = http(method, &url, Some(&admin), bad);
        assert_eq!((code, code_of(&body)), invalid, "{method} {path}: {body}");
    }
    // Workers: registering, leasing and reporting are for worker credentials.
    let (code, body) = http("POST", &format!("{base}/workers"), Some(&alice), bad);
    assert_eq!(code, 403, "{body}");
    let (code, body) = http("POST", &format!("{base}/workers"), Some(&worker), bad);
    assert_eq!((code, code_of(&body)), invalid, "{body}");
    for op in ["lease", "updates"] {
        let url = format!("{base}/workers/w-000000000000/{op}");
        let (code, body) = http("POST", &url, Some(&alice), bad);
        assert_eq!(code, 403, "{op}: {body}");
        // Another credential's worker (here: none) might as well not exist.
        let (code, body) = http("POST", &url, Some(&worker), bad);
        assert_eq!(code, 404, "{op}: {body}");
    }
    // Output uploads: the path is read only for worker credentials.
    let url = format!("{base}/jobs/x/attempts/y/outputs/f");
    let (code, body) = http("PUT", &url, Some(&alice), Some("data"));
    assert_eq!(code, 403, "{body}");
    let (code, body) = http("PUT", &url, Some(&worker), Some("data"));
    assert_eq!(
        (code, code_of(&body)),
        (400, "invalid-id".to_string()),
        "{body}"
    );
}
