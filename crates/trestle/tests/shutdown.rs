//! Shutdown (issue #19): once `trestle up` is asked to stop, the
//! autoscaler launches nothing, even with work queued. SIGINT goes to the
//! `up` process only (not its process group, as a terminal's Ctrl-C
//! would), so the local workers hear of the shutdown only from the server:
//! they hand their jobs back, which makes fresh demand the autoscaler must
//! not answer.

mod common;

use common::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

/// The autoscaler's lines in the server log (`kind="launched"` events).
fn launches(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("trestle::autoscaler") && l.contains("launched"))
        .count()
}

#[test]
fn sigint_to_up_launches_no_worker_and_stops_at_once() {
    let env = Env::new();
    // Two one-CPU workers at most, each running one job: the other jobs
    // stay queued while the signal arrives.
    let (mut server, _) = up(
        &env,
        "[local]\nmax_vcpus = 2\nworker_cpus = 1\nworker_memory = \"512M\"\nprefetch = 0\n",
    );
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = env.ok(&["submit", "--cpus", "1", "--", "sleep", "30"]);
        ids.push(id.trim().to_string());
    }
    wait_state(&env, &ids[0], "RUNNING", T);
    let log_path = env.path().join("server.log");
    let before = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        launches(&before) >= 1,
        "a local worker was launched: {before}"
    );
    let signalled = Instant::now();
    server.signal(libc::SIGINT);
    assert!(
        server.wait_exit(Duration::from_secs(40)),
        "up stops on SIGINT"
    );
    let took = signalled.elapsed();
    assert!(server.stdout().iter().any(|l| l.contains("stopped")));
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let after = &log[before.len().min(log.len())..];
    assert_eq!(
        launches(after),
        0,
        "no worker is launched once shutdown began:\n{after}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
    drop(server);
    // Nothing ran to completion during the shutdown: every job is still
    // to do, and its first attempt was handed back, not finished.
    let db = env.path().join("data");
    assert!(db.exists());
    let (_server2, _) = up(&env, "[local]\nenabled = false\n");
    for id in &ids {
        let j = job(&env, id);
        assert_ne!(j["state"], "SUCCEEDED", "{j}");
        for a in j["attempts"].as_array().unwrap() {
            assert_eq!(a["state"], "lost", "{j}");
        }
    }
}
