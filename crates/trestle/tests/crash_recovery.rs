//! Nothing is lost when a worker or the server dies, or when `trestle up`
//! is stopped with Ctrl-C.

mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn start_worker(env: &Env, token: &str) -> Proc {
    Proc::start(
        env,
        &[
            "worker",
            "--server",
            &env.url(),
            "--token",
            token,
            "--cpus",
            "2",
            "--work-dir",
            env.path().join("scratch").to_str().unwrap(),
        ],
        "",
    )
}

#[test]
fn worker_sigkill_mid_job_loses_nothing() {
    let env = Env::new();
    // No local environment: workers are started by hand, as on a cluster.
    let (_up, token) = up(&env, "lease = \"3s\"\n[local]\nenabled = false\n");
    let token = token.unwrap();
    let id = env.ok(&[
        "submit",
        "--",
        "sh",
        "-c",
        "echo attempt $TRESTLE_ATTEMPT; sleep 2; echo finished",
    ]);
    let id = id.trim().to_string();
    let w1 = start_worker(&env, &token);
    wait_state(&env, &id, "RUNNING", T);
    // SIGKILL the worker (its job process is orphaned and ends by itself).
    unsafe {
        libc::kill(w1.pid(), libc::SIGKILL);
    }
    let j = eventually(T, "the lease to expire", || {
        let j = job(&env, &id);
        (j["attempts"][0]["state"] == "lost").then_some(j)
    });
    assert_eq!(j["state"], "RUNNABLE");
    assert_eq!(j["attempts_used"], 0, "a lost attempt does not count");
    let _w2 = start_worker(&env, &token);
    let j = wait_state(&env, &id, "SUCCEEDED", T);
    assert_eq!(j["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(j["attempts"][0]["reason"], "lost");
    assert_eq!(j["attempts"][1]["state"], "succeeded");
    let logs = env.ok(&["logs", &id]);
    assert!(
        logs.contains("attempt 2") && logs.contains("finished"),
        "{logs}"
    );
    let (_, metrics) = http("GET", &format!("{}/metrics", env.url()), None, None);
    assert!(
        metrics.contains("trestle_leases_expired_total 1"),
        "{metrics}"
    );
}

#[test]
fn server_sigkill_and_restart_loses_nothing() {
    let env = Env::new();
    let extra = "lease = \"3s\"\n[local]\nidle_exit = \"3s\"\n";
    let (mut server, _) = up(&env, extra);
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = env.ok(&[
            "submit",
            "--name",
            &format!("j{i}"),
            "--",
            "sh",
            "-c",
            "sleep 0.5; echo ok",
        ]);
        ids.push(id.trim().to_string());
    }
    eventually(T, "some jobs to run", || {
        let running = env.json(&["jobs", "--state", "RUNNING,SUCCEEDED", "--json"]);
        (!running.as_array().unwrap().is_empty()).then_some(())
    });
    // Kill only the server process: its workers are left running, orphaned.
    server.signal(libc::SIGKILL);
    assert!(server.wait_exit(Duration::from_secs(10)));
    drop(server);
    let (_server2, token) = up(&env, extra);
    assert!(
        token.is_none(),
        "the admin token is printed on first start only"
    );
    for id in &ids {
        let j = wait_state(&env, id, "SUCCEEDED", T);
        let ok = j["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "succeeded")
            .count();
        assert_eq!(ok, 1, "exactly one successful attempt: {j}");
    }
    let all = env.json(&["jobs", "--json"]);
    assert_eq!(
        all.as_array().unwrap().len(),
        ids.len(),
        "no job lost or duplicated"
    );
}

#[test]
fn ctrl_c_hands_running_jobs_back() {
    let env = Env::new();
    let (mut server, _) = up(&env, "");
    let id = env.ok(&[
        "submit",
        "--",
        "sh",
        "-c",
        "echo run $TRESTLE_ATTEMPT; sleep 3; echo done",
    ]);
    let id = id.trim().to_string();
    wait_state(&env, &id, "RUNNING", T);
    server.signal(libc::SIGINT);
    assert!(
        server.wait_exit(Duration::from_secs(30)),
        "up stops on Ctrl-C"
    );
    assert!(server.stdout().iter().any(|l| l.contains("stopped")));
    drop(server);
    let (_server2, _) = up(&env, "");
    let j = job(&env, &id);
    assert_eq!(j["attempts"][0]["reason"], "released", "{j}");
    assert_eq!(j["attempts"][0]["state"], "lost");
    let j = wait_state(&env, &id, "SUCCEEDED", T);
    assert_eq!(j["attempts_used"], 1, "a released attempt does not count");
    assert_eq!(j["attempts"].as_array().unwrap().len(), 2);
}
