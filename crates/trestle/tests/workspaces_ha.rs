//! A workspace with two servers over PostgreSQL: the worker keeps a
//! tunnel to each, so the workspace is reached through either; killing
//! and restarting the server that launched it does not stop it.

mod common;
#[path = "support/identity.rs"]
mod support;

use common::*;
use serde_json::Value;
use std::time::Duration;
use support::curl;

const T: Duration = Duration::from_secs(60);

fn start_server(env: &Env, cfg: &std::path::Path) -> Proc {
    Proc::start(
        env,
        &["server", "--config", cfg.to_str().unwrap()],
        "Trestle is running at",
    )
}

#[test]
fn a_workspace_is_reached_through_either_server_and_outlives_a_restart() {
    let db = fresh_postgres("ws_two");
    let shared = tempfile::tempdir().unwrap();
    let objects = shared.path().join("objects");
    let (a, b) = (Env::new(), Env::new());
    let cfg = |e: &Env| {
        e.write_config(&format!(
            "database = \"{db}\"\nobjects = \"{}\"\n[local]\nenabled = false\n",
            objects.display()
        ))
    };
    let (cfg_a, cfg_b) = (cfg(&a), cfg(&b));
    let server_a = start_server(&a, &cfg_a);
    let admin = server_a
        .stdout()
        .iter()
        .find_map(|l| l.strip_prefix("admin token: ").map(str::to_string))
        .expect("the first server prints the admin token");
    let _server_b = start_server(&b, &cfg_b);
    let cli = |e: &Env, args: &[&str]| -> String {
        let mut all = vec!["--url", "", "--token", &admin];
        let url = e.url();
        all[1] = &url;
        all.extend_from_slice(args);
        e.ok(&all)
    };
    let token = serde_json::from_str::<Value>(&cli(&a, &["token", "create", "--worker", "--json"]))
        .unwrap()["token"]
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
    cli(&a, &["ws", "type", "approve", "webapp@1"]);
    let web = a.path().join("web.toml");
    std::fs::write(
        &web,
        "name = \"web\"\ntype = \"webapp@1\"\nallow_roles = [\"admin\"]\n",
    )
    .unwrap();
    cli(&a, &["ws", "config", "set", web.to_str().unwrap()]);
    let w: Value =
        serde_json::from_str(&cli(&a, &["ws", "launch", "web", "--wait", "--json"])).unwrap();
    assert_eq!(w["state"], "RUNNING", "{w}");
    let id = w["id"].to_string();
    let get = |e: &Env| {
        curl(
            "GET",
            &format!("{}/ws/{id}/", e.url()),
            &[format!("Authorization: Bearer {admin}")],
            None,
        )
        .0
    };
    for e in [&a, &b] {
        eventually(T, "the workspace through each server", || {
            (get(e) == 200).then_some(())
        });
    }
    // The server that launched it goes away: the workspace keeps running
    // and answers through the other; back, it answers through it again.
    drop(server_a);
    assert_eq!(get(&b), 200);
    let _server_a = start_server(&a, &cfg_a);
    eventually(T, "the restarted server's tunnel", || {
        (get(&a) == 200).then_some(())
    });
    let w: Value = serde_json::from_str(&cli(&b, &["ws", "show", &id, "--json"])).unwrap();
    assert_eq!(w["state"], "RUNNING", "{w}");
}
