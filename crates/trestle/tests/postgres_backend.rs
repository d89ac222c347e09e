//! `trestle up --database postgres://...` runs jobs end to end, and
//! `trestle bench` reports its figures.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn jobs_run_over_postgres() {
    let env = Env::new();
    let db = fresh_postgres("e2e");
    let (_up, token) = up(&env, &format!("database = \"{db}\"\n"));
    assert!(token.is_some());
    let id = env.ok(&[
        "submit",
        "--attempts",
        "2",
        "--",
        "sh",
        "-c",
        "test $TRESTLE_ATTEMPT = 2 && echo second",
    ]);
    let j = wait_state(&env, id.trim(), "SUCCEEDED", Duration::from_secs(60));
    assert_eq!(j["attempts_used"], 2);
    assert!(env.ok(&["logs", id.trim()]).contains("second"));
}

#[test]
fn bench_prints_throughput_and_latency() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let out = env.ok(&["bench", "--jobs", "300", "--latency-jobs", "20"]);
    assert!(out.contains("jobs/s"), "{out}");
    assert!(out.contains("p50") && out.contains("p99"), "{out}");
    assert!(out.contains("failed 0"), "{out}");
}
