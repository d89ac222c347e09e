//! Break-glass recovery (issue: an admin who revoked their own last admin
//! token was locked out for good): `trestle admin recover` on the server
//! host makes a fresh admin token from the database, audited, on SQLite and
//! PostgreSQL.

mod common;

use common::*;
use serde_json::Value;

/// Runs `trestle admin recover --config CFG ARGS...`: the JSON answer, or
/// `None` when it failed.
fn recover(env: &Env, cfg: &std::path::Path, args: &[&str]) -> Option<Value> {
    let out = env
        .cmd()
        .args([
            "admin",
            "recover",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn scenario(db: Option<String>) {
    let env = Env::new();
    let extra = db
        .map(|d| format!("database = \"{d}\"\n"))
        .unwrap_or_default();
    let (_up, admin) = up(&env, &extra);
    let admin = admin.expect("admin token");
    let base = format!("{}/api/v1", env.url());
    let cfg = env.path().join("trestle.toml");

    // The admin revokes every admin token there is: locked out.
    let tokens = env.json(&["token", "list", "--all", "--json"]);
    for t in tokens.as_array().unwrap() {
        if t["user"] == "admin" {
            env.ok(&["token", "revoke", t["id"].as_str().unwrap()]);
        }
    }
    let (code, _) = http("GET", &format!("{base}/users"), Some(&admin), None);
    assert_eq!(code, 401, "the old token is dead");

    // Recovery on the server host, with the server still running.
    let r = recover(&env, &cfg, &[]).expect("recovery");
    assert_eq!(r["user"], "admin");
    let fresh = r["token"].as_str().unwrap().to_string();
    let (code, body) = http("GET", &format!("{base}/users"), Some(&fresh), None);
    assert_eq!(code, 200, "{body}");

    // Recovering a named admin that does not exist creates one.
    let r = recover(&env, &cfg, &["--user", "ops"]).expect("recovery of ops");
    assert_eq!(r["created"], true);
    let (code, body) = http("GET", &format!("{base}/users/ops"), Some(&fresh), None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""role":"admin""#), "{body}");

    // Both recoveries are in the audit trail.
    let out = env
        .cmd()
        .env("TRESTLE_TOKEN", &fresh)
        .args(["audit", "query", "--action", "admin.recover", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("user:admin") && text.contains("user:ops"),
        "{text}"
    );

    // A bad user name is refused with the field named.
    assert!(recover(&env, &cfg, &["--user", "Not A Name"]).is_none());
}

#[test]
fn a_locked_out_admin_recovers_on_sqlite() {
    scenario(None);
}

#[test]
fn a_locked_out_admin_recovers_on_postgres() {
    scenario(Some(fresh_postgres("recover")));
}

#[test]
fn a_malformed_mapping_rule_stops_the_server_with_the_rule_named() {
    let env = Env::new();
    let cfg = env.write_config("[[identity.rules]]\ngroup = \"hpc-users\"\n");
    let out = env
        .cmd()
        .args(["server", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("identity.rules[0]"), "{err}");
    assert!(err.contains("neither a role nor a project"), "{err}");
}
