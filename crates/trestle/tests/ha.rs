//! Several servers over one PostgreSQL database: both serve the same API,
//! the cluster-wide loops (reaper, resolver, autoscaler, ...) run on the
//! holder of their leader lease, and when that server is killed mid-run
//! another takes them over; every job still completes and nothing runs
//! twice to completion. Workers and the CLI fail over between server URLs.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// One server of the pair: its own scratch home and port, the shared
/// database and object storage.
struct Server {
    env: Env,
    proc: Option<Proc>,
}

fn config(env: &Env, db: &str, objects: &std::path::Path, urls: &[String]) -> std::path::PathBuf {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    env.write_config(&format!(
        "database = \"{db}\"\nobjects = \"{}\"\nlease = \"5s\"\nleader_lease = \"2s\"\n\
         advertise_urls = [{}]\n[local]\nenabled = false\n\
         [compute_environments.here]\nprovider = \"local\"\nmax_vcpus = 2\nidle_timeout = \"4s\"\n\
         shapes = [{{ name = \"c1\", vcpus = 1, memory = \"512M\" }}]\n\
         [queues.default]\ncompute_environments = [\"here\"]\n",
        objects.display(),
        list.join(", ")
    ))
}

fn start(env: &Env, cfg: &std::path::Path) -> Proc {
    Proc::start(
        env,
        &["server", "--config", cfg.to_str().unwrap()],
        "Trestle is running at",
    )
}

/// Runs the CLI against both servers (the first URL first).
fn cli(env: &Env, urls: &str, token: &str, args: &[&str]) -> String {
    let mut all = vec!["--url", urls, "--token", token];
    all.extend_from_slice(args);
    env.ok(&all)
}

fn leaders(url: &str, token: &str) -> Vec<Value> {
    let (code, body) = http("GET", &format!("{url}/api/v1/leaders"), Some(token), None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn holder_pid(l: &Value) -> i32 {
    l["holder"]
        .as_str()
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn killing_the_leader_mid_run_loses_no_job_and_runs_none_twice() {
    let db = fresh_postgres("ha_kill");
    let shared = tempfile::tempdir().unwrap();
    let objects = shared.path().join("objects");
    let a = Server {
        env: Env::new(),
        proc: None,
    };
    let b = Server {
        env: Env::new(),
        proc: None,
    };
    let urls = vec![a.env.url(), b.env.url()];
    let both = urls.join(",");
    let mut a = a;
    let mut b = b;
    a.proc = Some(start(&a.env, &config(&a.env, &db, &objects, &urls)));
    let token = a
        .proc
        .as_ref()
        .unwrap()
        .stdout()
        .iter()
        .find_map(|l| l.strip_prefix("admin token: ").map(str::to_string))
        .expect("the first server prints the admin token");
    b.proc = Some(start(&b.env, &config(&b.env, &db, &objects, &urls)));
    let b_stdout = b.proc.as_ref().unwrap().stdout();
    assert!(
        !b_stdout.iter().any(|l| l.starts_with("admin token")),
        "one admin for the cluster"
    );
    // Both serve the same API: submit through B, read through A.
    let first = cli(
        &b.env,
        &b.env.url(),
        &token,
        &["submit", "--", "echo", "via-b"],
    );
    let j = cli(
        &a.env,
        &a.env.url(),
        &token,
        &["job", "show", first.trim(), "--json"],
    );
    assert!(j.contains("via-b"), "{j}");
    // Every loop runs on exactly one server.
    let ls = eventually(T, "every loop to have a leader", || {
        let ls = leaders(&a.env.url(), &token);
        (ls.len() >= 4 && ls.iter().all(|l| l["live"] == true)).then_some(ls)
    });
    let pids = [
        a.proc.as_ref().unwrap().pid(),
        b.proc.as_ref().unwrap().pid(),
    ];
    for l in &ls {
        assert!(pids.contains(&holder_pid(l)), "{l}");
    }
    let scaler = ls.iter().find(|l| l["name"] == "autoscaler").unwrap();
    let (leader, follower) = if holder_pid(scaler) == pids[0] {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    let done = shared.path().join("done.txt");
    let script = format!("sleep 0.4; echo $TRESTLE_JOB_ID >> {}", done.display());
    let mut ids = vec![first.trim().to_string()];
    for _ in 0..24 {
        let id = cli(
            &follower.env,
            &both,
            &token,
            &["submit", "--", "sh", "-c", &script],
        );
        ids.push(id.trim().to_string());
    }
    // Mid-run: kill the leader (only the server; the workers it started
    // keep running and move to the other server).
    eventually(T, "a few jobs to finish", || {
        let n = std::fs::read_to_string(&done)
            .unwrap_or_default()
            .lines()
            .count();
        (n >= 3).then_some(())
    });
    leader.proc.as_ref().unwrap().signal(libc::SIGKILL);
    let dead = leader.proc.as_ref().unwrap().pid();
    // The CLI fails over to the survivor (the dead server's URL first).
    let dead_first = format!("{},{}", leader.env.url(), follower.env.url());
    for id in &ids {
        eventually(T, &format!("job {id} to succeed"), || {
            let j: Value = serde_json::from_str(&cli(
                &follower.env,
                &dead_first,
                &token,
                &["job", "show", id, "--json"],
            ))
            .unwrap();
            (j["state"] == "SUCCEEDED").then_some(())
        });
    }
    // Nothing ran twice to completion.
    let text = std::fs::read_to_string(&done).unwrap();
    let mut runs: BTreeMap<&str, u32> = BTreeMap::new();
    for l in text.lines() {
        *runs.entry(l.trim()).or_default() += 1;
    }
    assert_eq!(runs.len(), ids.len() - 1, "{text}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
    for id in &ids {
        let j: Value = serde_json::from_str(&cli(
            &follower.env,
            &dead_first,
            &token,
            &["job", "show", id, "--json"],
        ))
        .unwrap();
        let ok = j["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "succeeded")
            .count();
        assert_eq!(ok, 1, "{j}");
    }
    // Every loop moved to the survivor.
    let survivor = follower.proc.as_ref().unwrap().pid();
    eventually(T, "the survivor to lead every loop", || {
        let ls = leaders(&follower.env.url(), &token);
        ls.iter()
            .all(|l| holder_pid(l) == survivor && l["live"] == true)
            .then_some(())
    });
    assert_ne!(dead, survivor);
    // Its autoscaler works: once the dead server's workers have gone idle
    // and left, new jobs get new workers from the survivor.
    eventually(T, "the old workers to leave", || {
        let w: Value = serde_json::from_str(&cli(
            &follower.env,
            &dead_first,
            &token,
            &["workers", "--json"],
        ))
        .unwrap();
        w.as_array().unwrap().is_empty().then_some(())
    });
    let late = cli(
        &follower.env,
        &dead_first,
        &token,
        &["submit", "--", "echo", "late"],
    );
    eventually(T, "a job after the failover", || {
        let j: Value = serde_json::from_str(&cli(
            &follower.env,
            &dead_first,
            &token,
            &["job", "show", late.trim(), "--json"],
        ))
        .unwrap();
        (j["state"] == "SUCCEEDED").then_some(())
    });
}

#[test]
fn workers_and_the_cli_fail_over_between_urls() {
    let env = Env::new();
    let (_up, token) = up(&env, "[local]\nenabled = false\n");
    let token = token.unwrap();
    // Nothing listens on the first URL.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let urls = format!("{dead},{}", env.url());
    let worker_token = cli(
        &env,
        &urls,
        &token,
        &["token", "create", "--worker", "--ttl", "1h"],
    );
    let worker_token = worker_token
        .split_whitespace()
        .find(|w| w.starts_with("trs_"))
        .expect("a worker token")
        .to_string();
    let _w = Proc::start(
        &env,
        &[
            "worker",
            "--server",
            &urls,
            "--token",
            &worker_token,
            "--cpus",
            "1",
            "--work-dir",
            env.path().join("scratch").to_str().unwrap(),
        ],
        "",
    );
    let id = cli(
        &env,
        &urls,
        &token,
        &["submit", "--", "echo", "failed-over"],
    );
    eventually(T, "the job to run", || {
        let j: Value = serde_json::from_str(&cli(
            &env,
            &urls,
            &token,
            &["job", "show", id.trim(), "--json"],
        ))
        .unwrap();
        (j["state"] == "SUCCEEDED").then_some(())
    });
    assert!(cli(&env, &urls, &token, &["logs", id.trim()]).contains("failed-over"));
    // With no server reachable, the CLI says so and exits 3.
    let out = env.run(&["--url", &dead, "--token", &token, "jobs"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}
