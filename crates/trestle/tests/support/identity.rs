//! Helpers of the identity tests: the CLI as a given user, raw HTTP with
//! headers (cookies, CSRF tokens, `X-Forwarded-For`).
#![allow(dead_code)]

use crate::common::*;
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Patience for anything asynchronous.
pub const T: Duration = Duration::from_secs(60);

/// Runs the CLI as the holder of `token`.
pub fn run_as(env: &Env, token: &str, args: &[&str]) -> Output {
    env.cmd()
        .env("TRESTLE_TOKEN", token)
        .args(args)
        .output()
        .expect("run trestle")
}

pub fn ok_as(env: &Env, token: &str, args: &[&str]) -> String {
    let out = run_as(env, token, args);
    assert!(
        out.status.success(),
        "`trestle {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json_as(env: &Env, token: &str, args: &[&str]) -> Value {
    let out = ok_as(env, token, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Runs `trestle ARGS` (a `user add ... --password-stdin`) with
/// `password` on standard input; it must succeed.
pub fn add_user_with_password(env: &Env, args: &[&str], password: &str) {
    let out = run_with_stdin(env.cmd(), args, &format!("{password}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the CLI with `stdin` as standard input.
pub fn run_with_stdin(mut cmd: Command, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trestle");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Creates a user with the admin's CLI and returns a token for them.
pub fn user_with_token(env: &Env, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["user", "add", name];
    args.extend_from_slice(extra);
    env.ok(&args);
    let t = env.json(&["token", "create", "--user", name, "--json"]);
    t["token"].as_str().expect("token").to_string()
}

/// Raw HTTP with extra headers: (status, response headers, body).
pub fn curl(
    method: &str,
    url: &str,
    headers: &[String],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut args = vec![
        "-s".to_string(),
        "-D".into(),
        "-".into(),
        "-o".into(),
        "/dev/stderr".into(),
        "-X".into(),
        method.into(),
        url.into(),
    ];
    for h in headers {
        args.push("-H".into());
        args.push(h.clone());
    }
    if let Some(b) = body {
        args.push("--data-binary".into());
        args.push(b.into());
    }
    let out = Command::new("curl").args(&args).output().expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        head,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn code_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .map(|v| v["error"]["code"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}
