//! Test harness: starts the real `trestle` binary (`up`, `server`,
//! `worker`) in a scratch directory and runs CLI commands against it the
//! way a user would, with the client config that `trestle up` writes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_trestle")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A scratch home for one test: config, data, client config.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Extra environment variables for every command of this test.
    pub vars: std::sync::Mutex<Vec<(String, String)>>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            vars: Default::default(),
        }
    }

    /// Sets an environment variable for every later command.
    pub fn set_var(&self, key: &str, value: &str) {
        self.vars
            .lock()
            .unwrap()
            .push((key.to_string(), value.to_string()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes `trestle.toml` with a listen address, data dir and `extra`.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let p = self.path().join("trestle.toml");
        let text = format!(
            "listen = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n{extra}\n",
            self.port,
            self.path().join("data").display()
        );
        std::fs::write(&p, text).expect("write config");
        p
    }

    /// A command for the binary with this test's isolated environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.path())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env_remove("TRESTLE_URL")
            .env_remove("TRESTLE_TOKEN")
            .env_remove("TRESTLE_CLIENT_CONFIG")
            .env("TRESTLE_LOG", "warn")
            // Tests run as root, where workers run every task as its
            // owner's Unix account, and these tests' users have none:
            // `tests/isolation.rs` turns isolation on (set_var).
            .env("TRESTLE_ISOLATION", "none");
        for (k, v) in self.vars.lock().unwrap().iter() {
            c.env(k, v);
        }
        c
    }

    /// Runs a CLI command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run trestle")
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`trestle {}` failed ({:?}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a CLI command and parses its JSON stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// A running `trestle up` / `trestle server` / `trestle worker` process,
/// killed (with its process group) when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `trestle ARGS` in its own process group and waits until a
    /// stdout line contains `ready` (or panics after 60 s).
    pub fn start(env: &Env, args: &[&str], ready: &str) -> Proc {
        use std::os::unix::process::CommandExt;
        let mut c = env.cmd();
        c.args(args)
            .env("TRESTLE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(env.path().join("server.log"))
                    .expect("log file"),
            ))
            .process_group(0);
        let mut child = c.spawn().expect("spawn trestle");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = lines.clone();
        let ready_owned = ready.to_string();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line.clone());
                if !sent && line.contains(&ready_owned) {
                    let _ = tx.send(());
                    sent = true;
                }
            }
        });
        if !ready.is_empty() && rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let log = std::fs::read_to_string(env.path().join("server.log")).unwrap_or_default();
            panic!(
                "trestle {} did not become ready; stdout: {:?}\nlog:\n{log}",
                args.join(" "),
                lines.lock().unwrap()
            );
        }
        Proc {
            child,
            stdout_lines: lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to the process only.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for exit up to `limit`; true if it exited.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout_lines.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Kill the whole group: the server and any local workers and jobs.
        unsafe {
            libc::kill(-self.pid(), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Starts `trestle up` with `extra` config; returns the process and the
/// admin token it printed.
pub fn up(env: &Env, extra: &str) -> (Proc, Option<String>) {
    let cfg = env.write_config(extra);
    let p = Proc::start(
        env,
        &["up", "--config", cfg.to_str().unwrap()],
        "Trestle is running at",
    );
    let token = p
        .stdout()
        .iter()
        .find_map(|l| l.strip_prefix("admin token: ").map(str::to_string));
    (p, token)
}

/// Polls `f` every 50 ms until it returns Some, or panics after `limit`.
/// A new, empty PostgreSQL database `trestle_<tag>_<pid>` on the test
/// server (`TRESTLE_TEST_POSTGRES`, default the local one); its URL.
pub fn fresh_postgres(tag: &str) -> String {
    let admin = std::env::var("TRESTLE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let name = format!("trestle_{tag}_{}", std::process::id());
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
    let base = admin.rsplit_once('/').expect("a database URL").0;
    format!("{base}/{name}")
}

pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A job's JSON view through the CLI.
pub fn job(env: &Env, id: &str) -> serde_json::Value {
    env.json(&["job", "show", id, "--json"])
}

/// Waits until a job reaches `state`.
pub fn wait_state(env: &Env, id: &str, state: &str, limit: Duration) -> serde_json::Value {
    eventually(limit, &format!("job {id} to be {state}"), || {
        let j = job(env, id);
        (j["state"] == state).then_some(j)
    })
}

/// Raw HTTP for API-level checks: (status, body).
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "-".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        method.into(),
        url.into(),
    ];
    if let Some(t) = token {
        args.push("-H".into());
        args.push(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        args.push("-H".into());
        args.push("Content-Type: application/json".into());
        args.push("--data-binary".into());
        args.push(b.into());
    }
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
