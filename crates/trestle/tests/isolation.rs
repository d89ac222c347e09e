//! Tasks on one host cannot reach each other or their worker (issue 12),
//! end to end with `trestle up` (the tests run as root): the worker's
//! credential is out of every task's reach, each task runs as its owner's
//! Unix account and/or in the bubblewrap sandbox, and cgroups limit its
//! memory and processes.

mod common;
#[path = "support/identity.rs"]
mod identity;

use common::*;
use identity::ok_as;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// The log of job `id` once it has ended.
fn finished_log(env: &Env, id: &str) -> String {
    let _ = env.run(&["wait", id]);
    env.ok(&["logs", id])
}

/// Unix accounts made for one test (`useradd`), removed when dropped.
struct UnixUsers(Vec<String>);

impl UnixUsers {
    fn new(tags: &[&str]) -> UnixUsers {
        let names: Vec<String> = tags
            .iter()
            .map(|t| format!("trs{}{t}", std::process::id()))
            .collect();
        for n in &names {
            let _ = std::process::Command::new("userdel")
                .args(["-r", n])
                .output();
            let out = std::process::Command::new("useradd")
                .args(["--no-create-home", "--shell", "/bin/sh", n])
                .output()
                .expect("useradd");
            assert!(out.status.success(), "useradd {n}: {out:?}");
        }
        UnixUsers(names)
    }

    fn uid(&self, i: usize) -> u32 {
        let out = std::process::Command::new("id")
            .args(["-u", &self.0[i]])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for UnixUsers {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-u", n])
                .output();
            let _ = std::process::Command::new("userdel").arg(n).output();
        }
    }
}

/// Adds Trestle user `name` (project `default`) and returns a token.
fn add_user(env: &Env, name: &str) -> String {
    env.ok(&["user", "add", name, "--project", "default"]);
    env.json(&["token", "create", "--user", name, "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn field(log: &str, k: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{k}=")))
        .unwrap_or_else(|| panic!("no {k}= in {log}"))
        .to_string()
}

/// Alice's job keeps a secret in its scratch and runs until told; Bob's
/// job tries everything the issue lists. Returns Bob's log and the owner
/// and mode of Alice's scratch while her job ran.
fn neighbours(env: &Env, alice: &str, bob: &str, marker: &str) -> (String, (u32, u32)) {
    let a = ok_as(
        env,
        alice,
        &[
            "submit",
            "--",
            "sh",
            "-c",
            &format!(
                "echo alice-secret > private.txt; mkdir -p out; echo out > out/result.txt; \
                 echo scratch=$TRESTLE_SCRATCH; sleep 120; true # {marker}"
            ),
        ],
    );
    let a = a.trim().to_string();
    let scratch = eventually(T, "alice's job to print its scratch", || {
        let log = env.ok(&["logs", &a]);
        log.contains("scratch=").then(|| field(&log, "scratch"))
    });
    // Alice's process as the host sees it.
    let pid = eventually(T, "alice's process", || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &format!("sleep 120; true # {marker}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(str::to_string)
    });
    let data = env.path().join("data");
    let client = env.path().join("config/trestle/client.toml");
    let script = format!(
        "cat {scratch}/private.txt; cat {scratch}/out/result.txt; ls {scratch}; \
         echo ls-parent; ls {scratch}/..; echo ls-data; ls {data}; \
         cat {client}; \
         env | grep TRESTLE_TOKEN; \
         tr '\\0' '\\n' < /proc/$PPID/environ; \
         for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done 2>/dev/null | grep TRESTLE_TOKEN; \
         echo ps; ps ax -o pid,user,args | grep -c '[{first}]{rest}'; \
         if kill -0 {pid} 2>/dev/null; then echo signal=yes; else echo signal=no; fi; \
         echo done=1",
        data = data.display(),
        client = client.display(),
        first = &marker[..1],
        rest = &marker[1..],
    );
    let b = ok_as(env, bob, &["submit", "--", "sh", "-c", &script]);
    let log = finished_log(env, b.trim());
    let meta = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&scratch).expect("alice's scratch");
        (m.uid(), m.mode() & 0o777)
    };
    env.ok(&["cancel", &a]);
    (log, meta)
}

/// What Bob's job must not have got.
fn assert_contained(log: &str, admin: &str) {
    assert!(log.contains("done=1"), "{log}");
    assert!(!log.contains("alice-secret"), "read alice's scratch: {log}");
    assert!(!log.contains("\nout\n"), "read alice's outputs: {log}");
    assert!(!log.contains("trs_"), "saw a token: {log}");
    assert!(!log.contains(admin), "saw the admin token: {log}");
    assert!(
        !log.contains("trestle.db"),
        "listed the data directory: {log}"
    );
    assert!(log.contains("signal=no"), "could signal alice's job: {log}");
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
    assert_eq!(
        field(&log, "home"),
        field(&log, "scratch"),
        "HOME is the job's own: {log}"
    );
    assert_ne!(field(&log, "home"), env.path().display().to_string());
    assert!(!log.contains("trs_"), "{log}");
    // Neither the job's environment nor the worker's holds the token.
    let counts: Vec<&str> = log.lines().filter(|l| l.trim() == "0").collect();
    assert_eq!(counts.len(), 2, "{log}");
    // The worker that ran it: its starting environment no longer shows
    // the token (read here as root, who may read any process's).
    let ppid: i32 = field(&log, "ppid").parse().unwrap();
    let environ = std::fs::read(format!("/proc/{ppid}/environ")).unwrap_or_default();
    let text = String::from_utf8_lossy(&environ);
    assert!(!text.contains("trs_"), "{text}");
    assert!(!text.contains(admin.as_str()));
    let cmdline = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("worker"),
        "the parent is the worker"
    );
    cpus_as_requested(&env, None);
}

/// A `--cpus 1` job runs on one CPU (when the host has more) and its
/// numeric libraries are told so.
fn cpus_as_requested(env: &Env, token: Option<&str>) {
    let host_cpus = std::thread::available_parallelism().unwrap().get();
    let args = [
        "submit",
        "--cpus",
        "1",
        "--",
        "sh",
        "-c",
        "grep Cpus_allowed_list /proc/self/status; echo omp=$OMP_NUM_THREADS",
    ];
    let id = match token {
        Some(t) => ok_as(env, t, &args),
        None => env.ok(&args),
    };
    let log = finished_log(env, id.trim());
    assert!(log.contains("omp=1"), "{log}");
    let list = log
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("{log}"))
        .trim()
        .to_string();
    if host_cpus > 1 {
        assert!(list.parse::<usize>().is_ok(), "one CPU, not {list}: {log}");
    }
}

/// Per-user execution on a root worker, with `isolation` (`user`, or
/// `auto`: per-user in the sandbox).
fn per_user(isolation: &str) {
    let users = UnixUsers::new(&["a", "b"]);
    let env = Env::new();
    env.set_var("TRESTLE_ISOLATION", isolation);
    let (_up, admin) = up(
        &env,
        &format!(
            "[isolation]\nusers = {{ alice = \"{}\", bob = \"{}\" }}\n",
            users.0[0], users.0[1]
        ),
    );
    let admin = admin.expect("admin token");
    let alice = add_user(&env, "alice");
    let bob = add_user(&env, "bob");
    let carol = add_user(&env, "carol");

    let who = ok_as(&env, &alice, &["submit", "--", "sh", "-c", "id -u; id -G"]);
    let log = finished_log(&env, who.trim());
    assert!(
        log.lines().any(|l| l.trim() == users.uid(0).to_string()),
        "alice's job runs as her account: {log}"
    );
    let ws = env.json(&["workers", "--json"]);
    let mode = if isolation == "auto" {
        "user+sandbox"
    } else {
        "user"
    };
    assert_eq!(ws[0]["isolation"]["mode"], mode, "{ws}");

    let marker = format!("iso-{isolation}-{}", std::process::id());
    let (log, scratch) = neighbours(&env, &alice, &bob, &marker);
    assert_contained(&log, &admin);
    if isolation == "user" {
        assert!(log.contains("Permission denied"), "{log}");
    } else {
        let after_ps = log.split("\nps\n").nth(1).unwrap_or_default();
        assert!(after_ps.starts_with("0\n"), "saw alice's job: {log}");
    }
    assert_eq!(
        scratch,
        (users.uid(0), 0o700),
        "alice's scratch is hers only"
    );

    // No account: never run as root. `user` refuses the job; `auto` runs
    // it as `nobody` (so that a root `trestle up` runs jobs unmapped).
    let c = ok_as(&env, &carol, &["submit", "--", "id", "-u"]);
    if isolation == "user" {
        let j = wait_state(&env, c.trim(), "FAILED", T);
        let logs = env.ok(&["logs", c.trim()]);
        assert!(
            logs.contains("no Unix account for user carol"),
            "{logs} {j}"
        );
    } else {
        wait_state(&env, c.trim(), "SUCCEEDED", T);
        let logs = env.ok(&["logs", c.trim()]);
        assert_eq!(logs.trim(), "65534", "carol's job runs as nobody: {logs}");
    }
}

#[test]
fn on_a_root_worker_each_task_runs_as_its_owner_and_cannot_reach_its_neighbour() {
    per_user("user");
}

#[test]
fn per_user_in_the_sandbox_by_default_on_a_root_worker() {
    per_user("auto");
}

#[test]
fn in_the_sandbox_a_task_sees_only_its_own_scratch_and_processes() {
    let env = Env::new();
    env.set_var("TRESTLE_ISOLATION", "sandbox");
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let alice = add_user(&env, "alice");
    let bob = add_user(&env, "bob");
    let marker = format!("iso-sandbox-{}", std::process::id());
    let (log, scratch) = neighbours(&env, &alice, &bob, &marker);
    assert_eq!(scratch.1, 0o700, "private scratch");
    assert_contained(&log, &admin);
    // Only its own processes: the shell, ps, grep (and the sandbox's init).
    let after_ps = log.split("\nps\n").nth(1).unwrap_or_default();
    assert!(after_ps.starts_with("0\n"), "saw alice's job: {log}");
    // The worker says how it isolates (cgroup v1 on the test machine).
    let table = env.ok(&["workers"]);
    assert!(table.contains("ISOLATION"), "{table}");
    assert!(table.contains("sandbox, cgroup"), "{table}");
    let ws = env.json(&["workers", "--json"]);
    assert_eq!(ws[0]["isolation"]["mode"], "sandbox", "{ws}");
    assert!(
        ws[0]["isolation"]["limits"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{ws}"
    );
    // Its /tmp is its own.
    let t = env.ok(&[
        "submit",
        "--",
        "sh",
        "-c",
        "touch /tmp/mine; ls /tmp | wc -l",
    ]);
    let log = finished_log(&env, t.trim());
    assert!(log.lines().any(|l| l.trim() == "1"), "{log}");
}

#[test]
fn limits_out_of_memory_and_a_fork_bomb_stop_at_their_limit() {
    let users = UnixUsers::new(&["m"]);
    let env = Env::new();
    env.set_var("TRESTLE_ISOLATION", "auto");
    env.set_var("TRESTLE_TASK_PIDS_MAX", "64");
    let (_up, _admin) = up(
        &env,
        &format!("[isolation]\nusers = {{ alice = \"{}\" }}\n", users.0[0]),
    );
    let alice = add_user(&env, "alice");
    cpus_as_requested(&env, Some(&alice));
    let neighbour = ok_as(
        &env,
        &alice,
        &[
            "submit",
            "--mem",
            "64M",
            "--",
            "sh",
            "-c",
            "sleep 4; echo neighbour-ok",
        ],
    );
    let hog = ok_as(
        &env,
        &alice,
        &[
            "submit",
            "--mem",
            "64M",
            "--",
            "perl",
            "-e",
            "$x = 'x' x (400 * 1024 * 1024); print length($x), \"\\n\"",
        ],
    );
    let j = wait_state(&env, hog.trim(), "FAILED", T);
    assert_eq!(j["attempts"][0]["reason"], "out-of-memory", "{j}");
    assert_eq!(j["reason"], "out-of-memory", "{j}");
    assert_eq!(j["attempts"].as_array().unwrap().len(), 1, "no retry: {j}");
    let slurm = env.ok(&["jobs", "--format", "slurm"]);
    let row = slurm
        .lines()
        .find(|l| l.split_whitespace().next() == Some(hog.trim()))
        .unwrap_or_else(|| panic!("{slurm}"));
    assert!(row.contains(" OOM "), "{slurm}");
    let n = wait_state(&env, neighbour.trim(), "SUCCEEDED", T);
    assert_eq!(n["attempts"][0]["reason"], "success");

    // At most 64 processes: the rest of the 200 cannot start.
    let many = ok_as(
        &env,
        &alice,
        &[
            "submit",
            "--",
            "perl",
            "-e",
            "my $n = 0; for (1..200) { my $p = fork; last unless defined $p; \
             if ($p == 0) { sleep 30; exit } $n++ } print \"n=$n\\n\"",
        ],
    );
    let log = finished_log(&env, many.trim());
    let n: u32 = field(&log, "n").trim().parse().unwrap();
    assert!(n > 0 && n < 64, "{n} processes: {log}");
    // A real fork bomb, ended by its timeout; the worker lives on.
    let bomb = ok_as(
        &env,
        &alice,
        &[
            "submit",
            "--timeout",
            "5s",
            "--",
            "sh",
            "-c",
            "b() { b | b & }; b; sleep 60",
        ],
    );
    wait_state(&env, bomb.trim(), "FAILED", T);
    let after = ok_as(&env, &alice, &["submit", "--", "echo", "still-here"]);
    wait_state(&env, after.trim(), "SUCCEEDED", T);
}
