//! Sign-in against an LDAP directory and the directory sync (issue 11),
//! against a real OpenLDAP (a private slapd with users and groups the test
//! loads), on SQLite and PostgreSQL: a password sign-in through the API
//! and the CLI provisions the user with their email and uid, groups map
//! to a role and a project, a user no rule matches is a guest with no
//! project, wrong and empty passwords answer like a wrong local password
//! and are throttled alike, a local account is never taken over, a user
//! removed from a group loses the membership at the next sync, and a user
//! deleted from the directory is disabled with their tokens refused.
//! StartTLS and LDAPS with a CA file; bad `[ldap]` settings stop the
//! server at start with the setting named.

mod common;
#[path = "support/slapd.rs"]
mod slapd;

use common::*;
use serde_json::{Value, json};
use slapd::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `cmd` with `stdin` as its standard input.
fn with_stdin(cmd: &mut std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}

/// Loads the users and groups of the tests.
fn load(dir: &Slapd) {
    dir.add_user("ada", 12001, "ada's password");
    dir.add_user("bob", 12002, "bob's password");
    dir.add_user("carol", 12003, "carol's password");
    // A directory user named like the local admin account.
    dir.add_user("admin", 12004, "directory admin password");
    dir.add_group("hpc-users", &["ada", "carol"]);
    dir.add_group("chess-club", &["bob"]);
}

/// `[identity]` rules and `[ldap]` pointing at `dir`; `groups` says where
/// groups come from.
fn config(env: &Env, url: &str, groups: &str, extra: &str) -> String {
    let pw = env.path().join("ldap-password");
    std::fs::write(&pw, format!("{SERVICE_PW}\n")).unwrap();
    format!(
        "[identity]\n[[identity.rules]]\ngroup = \"hpc-users\"\nrole = \"researcher\"\nprojects = {{ genomics = \"member\" }}\n\n\
         [ldap]\nname = \"campus\"\nurl = \"{url}\"\nbind_dn = \"{SERVICE_DN}\"\nbind_password_file = \"ldap-password\"\n\
         user_base = \"ou=people,{SUFFIX}\"\nuser_filter = \"(&(objectClass=posixAccount)(uid={{username}}))\"\n\
         sync_interval = \"1h\"\n{groups}\n{extra}\n"
    )
}

/// A token login over the API: (status, body).
fn login(env: &Env, user: &str, password: &str) -> (u16, Value) {
    let body = json!({"user": user, "password": password, "token": {"name": "cli"}}).to_string();
    let (code, text) = http(
        "POST",
        &format!("{}/api/v1/login", env.url()),
        None,
        Some(&body),
    );
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn token_of(env: &Env, user: &str, password: &str) -> String {
    let (code, body) = login(env, user, password);
    assert_eq!(code, 200, "{user}: {body}");
    body["token"]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

/// A sign-in through the portal's form: (status, response headers).
fn portal_login(env: &Env, user: &str, password: &str) -> (u16, String) {
    let enc = |v: &str| v.replace('%', "%25").replace('\'', "%27").replace(' ', "+");
    let form = format!("user={}&password={}&next=%2F", enc(user), enc(password));
    let out = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST"])
        .args(["-H", "Content-Type: application/x-www-form-urlencoded"])
        .args(["--data-binary", &form])
        .arg(format!("{}/ui/login", env.url()))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head)
}

fn get(env: &Env, token: &str, path: &str) -> (u16, Value) {
    let (code, text) = http(
        "GET",
        &format!("{}/api/v1/{path}", env.url()),
        Some(token),
        None,
    );
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn members(env: &Env, admin: &str) -> Vec<String> {
    let (code, p) = get(env, admin, "projects/genomics");
    assert_eq!(code, 200, "{p}");
    p["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn sync(env: &Env) -> Value {
    env.json(&["identity", "sync", "--json"])
}

fn sign_in_and_sync(db: Option<String>, groups: &str) {
    let dir = Slapd::start(false);
    load(&dir);
    let env = Env::new();
    let db = db
        .map(|d| format!("database = \"{d}\"\n"))
        .unwrap_or_default();
    let (_server, admin) = up(
        &env,
        &format!("{db}{}", config(&env, &dir.url(), groups, "")),
    );
    let admin = admin.expect("admin token");
    env.ok(&["index", "add", "nsf-1", "--description", "a grant"]);
    env.ok(&["project", "add", "genomics", "--index", "nsf-1"]);

    // A wrong local password, for comparison.
    let out = with_stdin(
        env.cmd().args(["user", "add", "lena", "--password-stdin"]),
        "lena's long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (local_code, local_wrong) = login(&env, "lena", "not lena's password");
    assert_eq!(local_code, 401);

    // ada: provisioned at first sign-in, email and uid kept, hpc-users
    // gives researcher and a genomics membership.
    let ada = token_of(&env, "ada", "ada's password");
    let (_, u) = get(&env, &admin, "users/ada");
    assert_eq!(u["role"], "researcher", "{u}");
    let a = &u["attributes"];
    assert_eq!(a["source"], "ldap:campus", "{u}");
    assert_eq!(a["subject"], user_dn("ada"));
    assert_eq!(a["email"], "ada@uni.example");
    assert_eq!(a["uid"], 12001);
    assert_eq!(a["unix_name"], "ada");
    assert!(
        a["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("hpc-users")),
        "{u}"
    );
    assert!(members(&env, &admin).contains(&"ada".to_string()));
    let (code, me) = get(&env, &ada, "whoami");
    assert_eq!((code, me["user"]["name"].clone()), (200, json!("ada")));
    // Her password is the directory's: no local one, not even by an admin.
    for who in [&ada, &admin] {
        let (code, body) = http(
            "PATCH",
            &format!("{}/api/v1/users/ada", env.url()),
            Some(who),
            Some(r#"{"password":"a local password 123"}"#),
        );
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("external-user"), "{body}");
    }

    // Wrong, empty and unknown: exactly like a wrong local password.
    for (user, pw) in [("ada", "wrong"), ("ada", ""), ("nobody", "whatever")] {
        let (code, body) = login(&env, user, pw);
        assert_eq!((code, &body), (401, &local_wrong), "{user}/{pw:?}");
    }
    // The local admin is never taken over by the directory's `admin`.
    let (code, body) = login(&env, "admin", "directory admin password");
    assert_eq!((code, &body), (401, &local_wrong));
    let (_, u) = get(&env, &admin, "users/admin");
    assert_eq!(u["attributes"]["source"], "local", "{u}");

    // bob: no rule matches chess-club, so the default role and nothing more.
    token_of(&env, "bob", "bob's password");
    let (_, u) = get(&env, &admin, "users/bob");
    assert_eq!(u["role"], "guest", "{u}");
    assert!(!members(&env, &admin).contains(&"bob".to_string()));

    // And through the portal's form: a session cookie; a wrong password
    // is the form again.
    let (code, head) = portal_login(&env, "bob", "bob's password");
    assert_eq!(code, 303, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("set-cookie: trestle_session="),
        "{head}"
    );
    assert_eq!(portal_login(&env, "ada", "not ada's").0, 422);

    // carol signs in with the CLI, which stores a token as it does for
    // local accounts.
    let carol_cfg = env.path().join("carol-client.toml");
    let out = with_stdin(
        env.cmd()
            .env("TRESTLE_CLIENT_CONFIG", &carol_cfg)
            .env("TRESTLE_URL", env.url())
            .args(["login", "--user", "carol", "--password-stdin"]),
        "carol's password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&carol_cfg).unwrap();
    let carol: String = text
        .lines()
        .find_map(|l| l.strip_prefix("token = "))
        .expect("a stored token")
        .trim_matches('"')
        .to_string();
    assert_eq!(get(&env, &carol, "whoami").0, 200);

    // Only admins sync.
    let (code, _) = http(
        "POST",
        &format!("{}/api/v1/admin/identity/sync", env.url()),
        Some(&ada),
        None,
    );
    assert_eq!(code, 403);

    // ada leaves hpc-users: the next sync takes the role and membership.
    dir.remove_member("hpc-users", "ada");
    let s = sync(&env);
    assert_eq!(s["source"], "ldap:campus");
    assert_eq!(s["changed"], json!(["ada"]), "{s}");
    assert_eq!(s["deprovisioned"], json!([]), "{s}");
    let (_, u) = get(&env, &admin, "users/ada");
    assert_eq!(u["role"], "guest", "{u}");
    assert!(!members(&env, &admin).contains(&"ada".to_string()));
    assert!(members(&env, &admin).contains(&"carol".to_string()));
    assert_eq!(get(&env, &ada, "whoami").0, 200, "ada is still a user");

    // carol is deleted from the directory: disabled, her token refused,
    // and she cannot sign in again.
    dir.delete(&user_dn("carol"));
    let s = sync(&env);
    assert_eq!(s["deprovisioned"], json!(["carol"]), "{s}");
    let (_, u) = get(&env, &admin, "users/carol");
    assert_eq!(u["disabled"], true, "{u}");
    assert_eq!(get(&env, &carol, "whoami").0, 401);
    assert_eq!(login(&env, "carol", "carol's password").0, 401);
    // A second sync changes nothing.
    let s = sync(&env);
    assert_eq!(s["deprovisioned"], json!([]), "{s}");
    // The audit trail has the provisioning and the deprovisioning.
    eventually(Duration::from_secs(30), "audit records of carol", || {
        let (_, log) = get(&env, &admin, "audit?resource=user:carol");
        let actions: Vec<String> = log["records"]
            .as_array()?
            .iter()
            .filter_map(|r| r["action"].as_str().map(str::to_string))
            .collect();
        (actions.iter().any(|a| a == "user.provision")
            && actions.iter().any(|a| a == "user.deprovision"))
        .then_some(())
    });

    // Directory attempts are throttled like local ones: five wrong
    // passwords, then even the right one is refused.
    for i in 0..5 {
        assert_eq!(login(&env, "bob", &format!("wrong {i}")).0, 401);
    }
    assert_eq!(login(&env, "bob", "bob's password").0, 429);

    // A directory that suddenly lists none of several users (a service
    // account that lost its read rights looks alike) deprovisions nobody.
    dir.delete(&user_dn("ada"));
    dir.delete(&user_dn("bob"));
    let out = env.run(&["identity", "sync"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nobody was deprovisioned"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&env, &ada, "whoami").0, 200);

    // With the directory down, sign-ins answer 503 and a sync changes
    // nobody.
    drop(dir);
    let (code, body) = login(&env, "ada", "ada's password");
    assert_eq!(
        (code, body["error"]["code"].clone()),
        (503, json!("directory-unavailable"))
    );
    assert!(!env.run(&["identity", "sync"]).status.success());
    assert_eq!(get(&env, &ada, "whoami").0, 200);
}

#[test]
fn directory_sign_in_and_sync_on_sqlite_with_a_group_search() {
    sign_in_and_sync(
        None,
        &format!("group_base = \"ou=groups,{SUFFIX}\"\ngroup_filter = \"(member={{dn}})\""),
    );
}

#[test]
fn directory_sign_in_and_sync_on_postgres_with_member_of() {
    let db = fresh_postgres("ldap");
    sign_in_and_sync(Some(db), "member_of_attr = \"memberOf\"");
}

/// Runs `trestle server` with `cfg`; it must exit (the config is refused)
/// within 60 s; returns its stderr.
fn refused(env: &Env, cfg: &str) -> String {
    let path = env.path().join("trestle.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n{cfg}\n",
            env.port,
            env.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = env
        .cmd()
        .args(["server", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(!st.success());
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return err;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the server started with a bad [ldap]:\n{cfg}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tls_and_bad_settings_are_refused_at_start_with_the_setting_named() {
    let dir = Slapd::start(true);
    load(&dir);
    let env = Env::new();
    let ca = format!("ca_file = \"{}\"", dir.ca_file().display());
    let groups = format!("group_base = \"ou=groups,{SUFFIX}\"");

    // StartTLS and LDAPS with the test CA sign users in.
    let starttls = config(&env, &dir.url(), &groups, &format!("starttls = true\n{ca}"));
    let (server, _) = up(&env, &starttls);
    token_of(&env, "ada", "ada's password");
    assert_eq!(login(&env, "ada", "wrong").0, 401);
    drop(server);
    let ldaps = format!("ldaps://127.0.0.1:{}", dir.ldaps_port.unwrap());
    let env = Env::new();
    let (server, _) = up(&env, &config(&env, &ldaps, &groups, &ca));
    token_of(&env, "bob", "bob's password");
    drop(server);

    let env = Env::new();
    let secret_leak = "hunter2-never-echoed";
    let cases: Vec<(String, &str)> = vec![
        // A server whose certificate is not trusted (no ca_file).
        (config(&env, &ldaps, &groups, ""), "ldap.url"),
        // Nothing listens there.
        (
            config(
                &env,
                &format!("ldap://127.0.0.1:{}", free_port()),
                &groups,
                "",
            ),
            "ldap.url",
        ),
        // The service account's password is wrong.
        (
            config(&env, &dir.url(), &groups, "").replace(
                "bind_password_file = \"ldap-password\"",
                "bind_password_file = \"wrong-password\"",
            ),
            "ldap.bind_dn",
        ),
        (
            config(&env, &dir.url(), &groups, "").replace("(uid={username}))", "(uid={username})"),
            "ldap.user_filter",
        ),
        (
            config(
                &env,
                &dir.url(),
                &groups,
                "group_filter = \"member={dn})(\"",
            ),
            "ldap.group_filter",
        ),
        (
            config(&env, &dir.url(), &groups, "").replace(
                "bind_password_file = \"ldap-password\"",
                &format!("bind_password = \"{secret_leak}\""),
            ),
            "ldap.bind_password",
        ),
        (
            config(&env, &dir.url(), &groups, "").replace(
                "bind_password_file = \"ldap-password\"",
                "bind_password_env = \"TRESTLE_TEST_NO_SUCH_VARIABLE\"",
            ),
            "ldap.bind_password_env",
        ),
        (
            config(&env, "ldap://ldap.uni.example", &groups, ""),
            "ldap.starttls",
        ),
    ];
    std::fs::write(env.path().join("wrong-password"), "not the password\n").unwrap();
    for (cfg, field) in cases {
        let err = refused(&env, &cfg);
        assert!(
            err.contains(field),
            "expected {field} in:\n{err}\nfor:\n{cfg}"
        );
        assert!(
            !err.contains(secret_leak) && !err.contains(SERVICE_PW),
            "{err}"
        );
    }
}
