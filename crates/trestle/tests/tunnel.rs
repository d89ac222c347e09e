//! The workspace tunnel with the real binary: a worker dials out to the
//! server and keeps its tunnel (`GET /api/v1/workers` says `tunnel: true`),
//! only its own credential may open it, and it comes back after the server
//! is killed and started again.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// `GET url` asking to upgrade to the tunnel protocol, as `token`:
/// (status, body). The 101 case is left to the worker.
fn tunnel_request(url: &str, token: &str, upgrade: bool) -> (u16, String) {
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        url.into(),
    ];
    if upgrade {
        args.extend([
            "-H".into(),
            "Connection: upgrade".into(),
            "-H".into(),
            "Upgrade: trestle-tunnel".into(),
            "--max-time".into(),
            "5".into(),
        ]);
    }
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn workers(env: &Env, token: &str) -> Vec<Value> {
    let (code, body) = http(
        "GET",
        &format!("{}/api/v1/workers", env.url()),
        Some(token),
        None,
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn worker_token(env: &Env) -> String {
    env.json(&["token", "create", "--worker", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn workers_keep_a_tunnel_that_only_they_may_open_and_that_survives_a_server_restart() {
    let env = Env::new();
    let extra = "[local]\nenabled = false\n";
    let (server, admin) = up(&env, extra);
    let admin = admin.unwrap();
    let token = worker_token(&env);
    let _worker = Proc::start(
        &env,
        &[
            "worker",
            "--server",
            &env.url(),
            "--token",
            &token,
            "--cpus",
            "1",
            "--work-dir",
            env.path().join("scratch").to_str().unwrap(),
        ],
        "",
    );
    let id = eventually(T, "the worker's tunnel", || {
        workers(&env, &admin)
            .into_iter()
            .find(|w| w["tunnel"] == true)
            .map(|w| w["id"].as_str().unwrap().to_string())
    });

    // Only the worker's own credential opens its tunnel: not an admin (the
    // tunnel would receive other users' workspace traffic), and another
    // worker's credential finds nothing.
    let url = format!("{}/api/v1/workers/{id}/tunnel", env.url());
    let (code, body) = tunnel_request(&url, &admin, true);
    assert_eq!(code, 403, "{body}");
    let other = worker_token(&env);
    let (code, body) = tunnel_request(&url, &other, true);
    assert_eq!(code, 404, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "not-found");
    // Its own credential without the upgrade: a 400 that names it.
    let (code, body) = tunnel_request(&url, &token, false);
    assert_eq!(code, 400, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["field"], "upgrade");
    // The connections are audited under their own action.
    eventually(T, "the tunnel's audit records", || {
        let audit = env.ok(&["audit", "query", "--action", "worker.tunnel", "--json"]);
        (audit.contains("403") && audit.contains("404")).then_some(())
    });

    // A worker told not to keep one has none.
    let _plain = Proc::start(
        &env,
        &[
            "worker",
            "--server",
            &env.url(),
            "--token",
            &worker_token(&env),
            "--cpus",
            "1",
            "--no-tunnel",
            "--work-dir",
            env.path().join("scratch2").to_str().unwrap(),
        ],
        "",
    );
    let plain = eventually(T, "the second worker", || {
        workers(&env, &admin).into_iter().find(|w| w["id"] != id)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has_tunnel(&env, &admin, plain["id"].as_str().unwrap()));

    // Kill the server and start it again: the worker (still running)
    // reconnects its tunnel.
    drop(server);
    let cfg = env.write_config(extra);
    let _server = Proc::start(
        &env,
        &["up", "--config", cfg.to_str().unwrap()],
        "Trestle is running at",
    );
    eventually(T, "the tunnel after the restart", || {
        has_tunnel(&env, &admin, &id).then_some(())
    });
}

/// `trestle server` over the shared database and object store.
fn server_config(env: &Env, db: &str, objects: &std::path::Path) -> std::path::PathBuf {
    env.write_config(&format!(
        "database = \"{db}\"\nobjects = \"{}\"\n[local]\nenabled = false\n",
        objects.display()
    ))
}

fn start_server(env: &Env, cfg: &std::path::Path) -> Proc {
    Proc::start(
        env,
        &["server", "--config", cfg.to_str().unwrap()],
        "Trestle is running at",
    )
}

fn has_tunnel(env: &Env, token: &str, id: &str) -> bool {
    workers(env, token)
        .iter()
        .any(|w| w["id"] == id && w["tunnel"] == true)
}

#[test]
fn with_two_servers_the_worker_keeps_a_tunnel_to_each() {
    let db = fresh_postgres("tunnel_two");
    let shared = tempfile::tempdir().unwrap();
    let objects = shared.path().join("objects");
    let (a, b) = (Env::new(), Env::new());
    let (cfg_a, cfg_b) = (
        server_config(&a, &db, &objects),
        server_config(&b, &db, &objects),
    );
    let server_a = start_server(&a, &cfg_a);
    let admin = server_a
        .stdout()
        .iter()
        .find_map(|l| l.strip_prefix("admin token: ").map(str::to_string))
        .expect("the first server prints the admin token");
    let _server_b = start_server(&b, &cfg_b);
    let out = a.ok(&[
        "--url",
        &a.url(),
        "--token",
        &admin,
        "token",
        "create",
        "--worker",
        "--json",
    ]);
    let token = serde_json::from_str::<Value>(&out).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let both = format!("{},{}", a.url(), b.url());
    let _worker = Proc::start(
        &a,
        &[
            "worker",
            "--server",
            &both,
            "--token",
            &token,
            "--cpus",
            "1",
            "--work-dir",
            a.path().join("scratch").to_str().unwrap(),
        ],
        "",
    );
    // Each server knows only its own tunnels, and both have one: a request
    // for a workspace arriving at either finds the worker.
    let id = eventually(T, "a tunnel to the first server", || {
        workers(&a, &admin)
            .into_iter()
            .find(|w| w["tunnel"] == true)
            .map(|w| w["id"].as_str().unwrap().to_string())
    });
    eventually(T, "a tunnel to the second server", || {
        has_tunnel(&b, &admin, &id).then_some(())
    });
    // Killing one server leaves the other's tunnel alone; started again,
    // it gets its own back.
    drop(server_a);
    assert!(has_tunnel(&b, &admin, &id));
    let _server_a = start_server(&a, &cfg_a);
    eventually(T, "the first server's tunnel again", || {
        has_tunnel(&a, &admin, &id).then_some(())
    });
    assert!(has_tunnel(&b, &admin, &id));
}
