//! `trestle up --database postgres://...` runs jobs end to end, and
//! `trestle bench` reports its figures.

mod common;

use common::*;
use std::time::Duration;

fn fresh_database() -> String {
    let admin = std::env::var("TRESTLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let name = format!("trestle_e2e_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        let out = std::process::Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-c", &sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{sql}: {out:?}");
    }
    let base = admin.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

#[test]
fn jobs_run_over_postgres() {
    let env = Env::new();
    let db = fresh_database();
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
