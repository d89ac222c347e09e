//! A newcomer's first hour: each problem a researcher new to Trestle hit,
//! with the command that showed it, checked through the real binary.

mod common;

use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn script(env: &Env, name: &str, body: &str) {
    let p = env.path().join(name);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(&p, body).unwrap();
}

/// Every documented exit code: 0, 1 (a job failed), 2 (bad usage or input
/// rejected), 3 (server unreachable).
#[test]
fn exit_codes_are_as_documented() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let code = |args: &[&str]| env.run(args).status.code();
    assert_eq!(code(&["submit", "--", "true"]), Some(0));
    assert_eq!(code(&["submit", "--wait", "--", "false"]), Some(1));
    // Bad usage: a typo in an option, a job file that is missing or not
    // JSON, a batch script that does not exist.
    assert_eq!(code(&["submit", "--atempts", "3", "--", "true"]), Some(2));
    assert_eq!(code(&["submit", "--file", "missing.json"]), Some(2));
    std::fs::write(env.path().join("bad.json"), "{\"command\": ").unwrap();
    let o = env.run(&["submit", "--file", "bad.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not valid JSON"), "{}", stderr(&o));
    let o = env.run(&["sbatch", "nonexist.sh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`nonexist.sh` does not exist"),
        "{}",
        stderr(&o)
    );
    // Rejected by the server.
    assert_eq!(code(&["submit", "--cpus", "0", "--", "true"]), Some(2));
    // Unreachable.
    assert_eq!(
        code(&["--url", "http://127.0.0.1:1", "jobs"]),
        Some(3),
        "server unreachable"
    );
}

/// Arrays: `ID_INDEX` everywhere, the index beside the id, filters and
/// paging, the parent explaining itself, fail fast, re-running failures.
#[test]
fn arrays_are_easy_to_inspect() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    script(
        &env,
        "sweep.sh",
        "#!/bin/sh\ncase $TRESTLE_ARRAY_INDEX in 3|17|40|41|42) echo \"bad $TRESTLE_ARRAY_INDEX\"; exit 1;; esac\necho \"ok $TRESTLE_ARRAY_INDEX\"\n",
    );
    // `./sweep.sh` names a file here: it is uploaded with the job.
    let id = env
        .ok(&["submit", "--array", "0-49%10", "--", "./sweep.sh"])
        .trim()
        .to_string();
    wait_state(&env, &id, "FAILED", T);
    // logs and job show take ID_INDEX.
    assert_eq!(env.ok(&["logs", &format!("{id}_17")]), "bad 17\n");
    let show = env.ok(&["job", "show", &format!("{id}_17")]);
    assert!(show.contains(&format!("({id}_17)")), "{show}");
    // The table shows each child's index beside its id; filters combine.
    let failed = env.ok(&["jobs", "--array", &id, "--state", "FAILED"]);
    assert!(failed.lines().next().unwrap().contains("ARRAY"), "{failed}");
    for i in [3, 17, 40, 41, 42] {
        assert!(failed.contains(&format!("{id}_{i} ")), "{failed}");
    }
    assert_eq!(failed.lines().count(), 6, "header and 5 failed: {failed}");
    // The parent: what it is, children per state, the failed indices.
    for cmd in [
        vec!["logs", id.as_str()],
        vec!["outputs", id.as_str(), "--to", "out"],
    ] {
        let o = env.run(&cmd);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let e = stderr(&o);
        assert!(e.contains("is an array"), "{e}");
        assert!(e.contains("45 SUCCEEDED, 5 FAILED"), "{e}");
        assert!(e.contains("failed indices: 3,17,40-42"), "{e}");
    }
    // A child that does not exist says why.
    let o = env.run(&["cancel", &format!("{id}_999")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("has no index 999: its indices are 0-49"),
        "{}",
        stderr(&o)
    );
    // Re-run the failures only, as a new array of the same script.
    let again = env.ok(&["resubmit", &id, "--failed"]).trim().to_string();
    let v = wait_state(&env, &again, "FAILED", T);
    assert_eq!(v["spec"]["array"]["segments"].as_array().unwrap().len(), 3);
    assert_eq!(v["children"]["total"], 5, "{v}");
    assert_eq!(env.ok(&["logs", &format!("{again}_40")]), "bad 40\n");
}

#[test]
fn max_failures_stops_an_array() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    // Every child fails; all 200 are created at once (no `%` limit) and
    // the local workers run a few at a time, so most are still waiting
    // when the third failure stops the array.
    let id = env
        .ok(&[
            "submit",
            "--array",
            "0-199",
            "--max-failures",
            "3",
            "--",
            "sh",
            "-c",
            "exit 1",
        ])
        .trim()
        .to_string();
    let v = wait_state(&env, &id, "FAILED", T);
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.starts_with("max-failures"), "{reason}");
    let failed = v["children"]["counts"]["FAILED"].as_u64().unwrap();
    let cancelled = v["children"]["counts"]["CANCELLED"].as_u64().unwrap();
    assert!(
        (3..=10).contains(&failed),
        "a few ran alongside the third: {v}"
    );
    assert_eq!(failed + cancelled, 200, "{v}");
    let cancelled_child = env.json(&[
        "jobs",
        "--array",
        &id,
        "--state",
        "CANCELLED",
        "--limit",
        "1",
        "--json",
    ]);
    let r = cancelled_child[0]["reason"].as_str().unwrap_or("");
    assert!(r.starts_with("max-failures"), "{cancelled_child}");
    // Without an array it is refused, naming the fix.
    let o = env.run(&["submit", "--max-failures", "3", "--", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--array"), "{}", stderr(&o));
}

#[test]
fn listings_page_past_a_thousand() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let id = env
        .ok(&["submit", "--array", "0-1199", "--", "true"])
        .trim()
        .to_string();
    wait_state(&env, &id, "SUCCEEDED", Duration::from_secs(300));
    let all = env.json(&["jobs", "--array", &id, "--limit", "1500", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 1200);
    let mut idx: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["array_index"].as_u64().unwrap())
        .collect();
    idx.sort();
    idx.dedup();
    assert_eq!(idx.len(), 1200, "every child once");
    let first = env.json(&["jobs", "--limit", "1000", "--json"]);
    assert_eq!(first.as_array().unwrap().len(), 1000);
}

/// Messages that say what is wrong and what would be right.
#[test]
fn messages_that_help() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    script(&env, "simulate.sh", "#!/bin/sh\necho DONE\n");
    script(&env, "proj/analyze.py", "import sys\nprint('hi')\n");
    let cases: &[(&[&str], &str)] = &[
        (
            &["submit", "./simulate.sh"],
            "is a file; to run it: trestle submit [OPTIONS] -- ./simulate.sh",
        ),
        (
            &["submit", "echo", "hello"],
            "a command goes after `--`: trestle submit [OPTIONS] -- echo hello",
        ),
        (&["jobs", "--state", "RUNING"], "did you mean RUNNING?"),
        (
            &["jobs", "--state", "RUNING"],
            "SUBMITTED, PENDING, RUNNABLE",
        ),
        (
            &["submit", "proj", "--run", "analyze.py"],
            "add `#!/usr/bin/env python3` as its first line",
        ),
        (&["logs", "1_x"], "is not a job id (12, or 12_3"),
    ];
    for (args, want) in cases {
        let o = env.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let help = env.ok(&["ce", "delete", "--help"]);
    assert!(help.contains("Delete a compute environment"), "{help}");
    // sbatch --wrap runs the command as the script.
    let id = env.ok(&["sbatch", "--parsable", "--wrap", "echo wrapped $((6*7))"]);
    let id = id.trim();
    wait_state(&env, id, "SUCCEEDED", T);
    assert_eq!(env.ok(&["logs", id]), "wrapped 42\n");
    assert_eq!(job(&env, id)["name"], "wrap");
}

/// Figures that agree with each other and with Slurm's formats.
#[test]
fn figures_that_agree() {
    let env = Env::new();
    let (up_proc, _) = up(&env, "");
    // A running job counts the attempt it is in.
    let id = env.ok(&["submit", "--", "sleep", "30"]).trim().to_string();
    wait_state(&env, &id, "RUNNING", T);
    let table = env.ok(&["jobs"]);
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap();
    assert!(row.contains(" 1/1 "), "{table}");
    // squeue's TIME column: M:SS.
    let sq = env.ok(&["jobs", "--format", "slurm"]);
    let line = sq
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap();
    let time = line.split_whitespace().nth(5).unwrap();
    assert!(
        time.len() >= 4 && time.contains(':') && !time.contains('s'),
        "{sq}"
    );
    env.ok(&["cancel", &id]);
    // Shell quoting survives in job show.
    let q = env
        .ok(&["submit", "--", "sh", "-c", "for i in 1 2; do echo $i; done"])
        .trim()
        .to_string();
    let show = env.ok(&["job", "show", &q]);
    assert!(
        show.contains("sh -c 'for i in 1 2; do echo $i; done'"),
        "{show}"
    );
    // submit --export passes the caller's variables, as sbatch does.
    let mut c = env.cmd();
    c.env("MYVAR", "from-my-shell").args([
        "submit",
        "--export",
        "MYVAR",
        "--",
        "sh",
        "-c",
        "echo MYVAR=$MYVAR",
    ]);
    let o = c.output().unwrap();
    let e = stdout(&o).trim().to_string();
    wait_state(&env, &e, "SUCCEEDED", T);
    assert_eq!(env.ok(&["logs", &e]), "MYVAR=from-my-shell\n");
    // The default queue is listed.
    let queues = env.ok(&["queue", "list"]);
    assert!(
        queues.lines().any(|l| l.starts_with("default ")),
        "{queues}"
    );
    // Durations read as hours and days.
    let unused = env.ok(&["audit", "unused", "--days", "90"]);
    assert!(
        unused.contains("90d") && !unused.contains("129600m"),
        "{unused}"
    );
    // The audit view: people's changes, newest first, without workers'.
    let changes = env.eventually_json(&["audit", "query", "changes", "--json"], |v| {
        v["records"].as_array().is_some_and(|r| r.len() >= 3)
    });
    let recs = changes["records"].as_array().unwrap();
    assert!(
        recs.iter()
            .all(|r| !r["action"].as_str().unwrap().starts_with("worker.")),
        "{changes}"
    );
    let at: Vec<i64> = recs.iter().map(|r| r["at"].as_i64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    let with = env.json(&[
        "audit",
        "query",
        "changes",
        "--param",
        "workers=true",
        "--json",
    ]);
    assert!(
        with["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"].as_str().unwrap().starts_with("worker.")),
        "workers=true shows workers' traffic"
    );
    // Failed sign-ins are counted by the account tried, too.
    let (code, _) = http(
        "POST",
        &format!("{}/api/v1/login", env.url()),
        None,
        Some(r#"{"user":"mallory","password":"not the password"}"#),
    );
    assert_eq!(code, 401);
    let by_user = env.eventually_json(
        &["audit", "query", "failed-logins-by-user", "--json"],
        |v| v["groups"].as_array().is_some_and(|g| !g.is_empty()),
    );
    assert_eq!(by_user["groups"][0]["key"], "user:mallory", "{by_user}");
    // No colour codes in up's log when it goes to a file.
    drop(up_proc);
    let log = std::fs::read_to_string(env.path().join("server.log")).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI codes in the log: {log}");
}

trait Eventually {
    fn eventually_json(
        &self,
        args: &[&str],
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value;
}

impl Eventually for Env {
    /// The command's JSON once `ok` holds (audit records are written
    /// asynchronously).
    fn eventually_json(
        &self,
        args: &[&str],
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually(T, "audit records", || {
            let v = self.json(args);
            ok(&v).then_some(v)
        })
    }
}

/// `sbatch` runs a script in its submit directory on a worker that shares
/// it (here: the same host), so it reads its inputs there and writes its
/// `--output` file next to it; a directory of another account is refused
/// with the reason, because tasks here do not run as their owner.
#[test]
fn sbatch_runs_in_the_submit_directory() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let proj = env.path().join("proj");
    script(&env, "proj/input.txt", "forty two\n");
    script(
        &env,
        "proj/job.sh",
        "#!/bin/sh\n#SBATCH --output=run-%j.out\ncat input.txt\necho done > result.txt\n",
    );
    let mut c = env.cmd();
    c.current_dir(&proj)
        .args(["sbatch", "--parsable", "job.sh"]);
    let id = stdout(&c.output().unwrap()).trim().to_string();
    wait_state(&env, &id, "SUCCEEDED", T);
    let out = std::fs::read_to_string(proj.join(format!("run-{id}.out"))).unwrap();
    assert_eq!(out, "forty two\n", "the output file is next to the script");
    assert_eq!(
        std::fs::read_to_string(proj.join("result.txt")).unwrap(),
        "done\n"
    );
    // A directory that belongs to another account.
    let theirs = env.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    let me = std::fs::metadata(env.path()).unwrap().uid();
    std::os::unix::fs::chown(&theirs, Some(me + 4242), None).unwrap();
    let mut c = env.cmd();
    c.current_dir(&proj).args([
        "sbatch",
        "--parsable",
        "-D",
        theirs.to_str().unwrap(),
        "job.sh",
    ]);
    let id = stdout(&c.output().unwrap()).trim().to_string();
    let v = wait_state(&env, &id, "FAILED", T);
    let log = env.ok(&["logs", &id]);
    assert!(log.contains("belongs to another account"), "{log} {v}");
    assert!(
        std::fs::read_dir(&theirs).unwrap().next().is_none(),
        "nothing written"
    );
}
