//! Tasks on one host cannot reach each other or their worker (issue 12),
//! end to end with `trestle up`: the worker's credential is out of every
//! task's reach, jobs have a home of their own.

mod common;

use common::*;
/// The log of job `id` once it has ended.
fn finished_log(env: &Env, id: &str) -> String {
    let _ = env.run(&["wait", id]);
    env.ok(&["logs", id])
}

#[test]
fn the_workers_credential_is_in_no_environment_and_jobs_have_their_own_home() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let id = env.ok(&[
        "submit",
        "--",
        "sh",
        "-c",
        "echo ppid=$PPID; echo home=$HOME; echo scratch=$TRESTLE_SCRATCH; \
         env | grep -c '^TRESTLE_TOKEN' || true; \
         tr '\\0' '\\n' < /proc/$PPID/environ | grep -c trs_ || true",
    ]);
    let log = finished_log(&env, id.trim());
    let field = |k: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {log}"))
            .to_string()
    };
    assert_eq!(
        field("home"),
        field("scratch"),
        "HOME is the job's own: {log}"
    );
    assert_ne!(field("home"), env.path().display().to_string());
    assert!(!log.contains("trs_"), "{log}");
    // Neither the job's environment nor the worker's holds the token.
    let counts: Vec<&str> = log.lines().filter(|l| l.trim() == "0").collect();
    assert_eq!(counts.len(), 2, "{log}");
    // The worker that ran it: its starting environment no longer shows
    // the token (read here as root, who may read any process's).
    let ppid: i32 = field("ppid").parse().unwrap();
    let environ = std::fs::read(format!("/proc/{ppid}/environ")).unwrap_or_default();
    let text = String::from_utf8_lossy(&environ);
    assert!(!text.contains("trs_"), "{text}");
    assert!(!text.contains(admin.as_str()));
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("worker"),
        "the parent is the worker"
    );
}
