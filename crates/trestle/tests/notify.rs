//! Notifications end to end, against real receivers started here: a
//! webhook receiver that verifies the Standard Webhooks signature, and
//! aiosmtpd for email. An outage (refused, then HTTP 500s, then too slow)
//! with a server restart in the middle loses nothing and keeps order; an
//! array's failures are one message; dead letters retry; bad targets and
//! rules are refused with a 4xx naming the field; secrets are stored
//! encrypted, never shown, and survive a key rotation.

mod common;

use common::*;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trestle_core::notify::sign;

const T: Duration = Duration::from_secs(90);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Fast ticks and retries, and a short send timeout for the "too slow"
/// phase.
const NOTIFY: &str = "[notify]\ntick = \"50ms\"\nretry_first = \"100ms\"\nretry_max = \"400ms\"\nsend_timeout = \"800ms\"\n";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Fail,
    Slow,
}

/// A message the receiver accepted (or took in while too slow).
#[derive(Clone, Debug)]
struct Got {
    path: String,
    id: String,
    body: serde_json::Value,
    at: std::time::Instant,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    got: Arc<Mutex<Vec<Got>>>,
    bad: Arc<Mutex<u32>>,
}

fn handle(mut s: std::net::TcpStream, r: Receiver) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let mode = *r.mode.lock().unwrap();
    let status = match mode {
        Mode::Fail => "500 Internal Server Error",
        // Slack and Teams webhooks are not signed.
        _ if path != "/hook" => {
            r.got.lock().unwrap().push(Got {
                path,
                id: headers.get("webhook-id").cloned().unwrap_or_default(),
                body: serde_json::from_slice(&body).unwrap(),
                at: std::time::Instant::now(),
            });
            "200 OK"
        }
        _ => {
            let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
            let now = trestle_core::clock::now_ms() / 1000;
            let key = sign::secret_bytes(SECRET).unwrap();
            match sign::verify(
                &key,
                &h("webhook-id"),
                &h("webhook-timestamp"),
                &h("webhook-signature"),
                &body,
                now,
                300,
            ) {
                Ok(()) => {
                    if mode == Mode::Slow {
                        // Takes it in, but answers after the sender gave up.
                        std::thread::sleep(Duration::from_millis(1500));
                    }
                    r.got.lock().unwrap().push(Got {
                        path: path.clone(),
                        id: h("webhook-id"),
                        body: serde_json::from_slice(&body).unwrap(),
                        at: std::time::Instant::now(),
                    });
                    "204 No Content"
                }
                Err(_) => {
                    *r.bad.lock().unwrap() += 1;
                    "401 Unauthorized"
                }
            }
        }
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

/// Starts receiving on `port`.
fn receiver(port: u16, mode: Mode) -> Receiver {
    let r = Receiver {
        mode: Arc::new(Mutex::new(mode)),
        got: Arc::default(),
        bad: Arc::default(),
    };
    let l = TcpListener::bind(("127.0.0.1", port)).expect("receiver port");
    let r2 = r.clone();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let r = r2.clone();
            std::thread::spawn(move || handle(s, r));
        }
    });
    r
}

/// Every event key the receiver got, in first-arrival order, and the
/// number of messages.
fn keys(r: &Receiver) -> (Vec<String>, usize) {
    let got = r.got.lock().unwrap();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut ids = BTreeSet::new();
    for g in got.iter() {
        ids.insert(g.id.clone());
        for e in g.body["data"]["events"].as_array().unwrap() {
            let k = e["key"].as_str().unwrap().to_string();
            if seen.insert(k.clone()) {
                order.push(k);
            }
        }
    }
    (order, ids.len())
}

fn add_hook(env: &Env, name: &str, port: u16, extra: &[&str]) {
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut args = vec![
        "notify",
        "targets",
        "add",
        name,
        "--kind",
        "webhook",
        "--webhook-url",
        &url,
        "--signing-secret",
        SECRET,
        "--allow-loopback",
    ];
    args.extend_from_slice(extra);
    env.ok(&args);
}

fn deliveries(env: &Env) -> Vec<serde_json::Value> {
    env.json(&["notify", "deliveries", "--json", "--limit", "500"])
        .as_array()
        .unwrap()
        .clone()
}

fn wait_error(env: &Env, what: &str) {
    eventually(T, &format!("a delivery failing with `{what}`"), || {
        deliveries(env)
            .iter()
            .any(|d| d["last_error"].as_str().is_some_and(|e| e.contains(what)))
            .then_some(())
    });
}

fn submit(env: &Env, cmd: &str) -> String {
    env.ok(&["submit", "--", "sh", "-c", cmd])
        .trim()
        .to_string()
}

#[test]
fn an_outage_with_a_restart_in_the_middle_loses_nothing_and_keeps_order() {
    let env = Env::new();
    let (up1, _) = up(&env, NOTIFY);
    let port = free_port();
    add_hook(&env, "hook", port, &[]);
    env.ok(&[
        "notify",
        "rules",
        "add",
        "all-jobs",
        "--events",
        "job.*",
        "--targets",
        "hook",
    ]);
    // Refused: nothing listens on the port.
    let mut jobs = Vec::new();
    for i in 0..4 {
        jobs.push(submit(&env, if i % 2 == 0 { "true" } else { "exit 3" }));
    }
    for j in &jobs {
        eventually(T, "jobs to end", || {
            let s = job(&env, j)["state"].clone();
            (s == "SUCCEEDED" || s == "FAILED").then_some(())
        });
    }
    wait_error(&env, "cannot connect");
    // The server dies in the middle of the outage and comes back.
    drop(up1);
    let (_up2, _) = up(&env, NOTIFY);
    for i in 0..2 {
        let j = submit(&env, if i == 0 { "exit 4" } else { "true" });
        eventually(T, "jobs to end", || {
            let s = job(&env, &j)["state"].clone();
            (s == "SUCCEEDED" || s == "FAILED").then_some(())
        });
        jobs.push(j);
    }
    // HTTP 500s, then too slow, then healthy.
    let r = receiver(port, Mode::Fail);
    wait_error(&env, "HTTP 500");
    *r.mode.lock().unwrap() = Mode::Slow;
    wait_error(&env, "timed out");
    *r.mode.lock().unwrap() = Mode::Ok;
    let want: BTreeSet<String> = jobs.iter().map(|j| format!("job:{j}")).collect();
    let order = eventually(T, "every event to arrive", || {
        let (order, _) = keys(&r);
        let subjects: BTreeSet<String> = r
            .got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|g| {
                g.body["data"]["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["subject"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        (subjects == want).then_some(order)
    });
    // None lost, each once (receivers drop duplicates by webhook-id), in
    // the order they happened.
    assert_eq!(order.len(), jobs.len(), "{order:?}");
    let ids: Vec<i64> = order
        .iter()
        .map(|k| k.strip_prefix("job:").unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "out of order: {order:?}"
    );
    assert_eq!(*r.bad.lock().unwrap(), 0, "every signature verified");
    let mut by_id: HashMap<String, Vec<String>> = HashMap::new();
    for g in r.got.lock().unwrap().iter() {
        let ks: Vec<String> = g.body["data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect();
        let prev = by_id.entry(g.id.clone()).or_insert_with(|| ks.clone());
        assert_eq!(
            prev, &ks,
            "a redelivery carries the same events under the same id"
        );
    }
    eventually(T, "every delivery delivered", || {
        deliveries(&env)
            .iter()
            .all(|d| d["state"] == "delivered")
            .then_some(())
    });
    assert!(
        deliveries(&env)
            .iter()
            .any(|d| d["events"].as_u64() > Some(1)),
        "events held up by the outage were sent as digests"
    );
}

#[test]
fn on_postgres_a_rate_limited_target_gets_every_event_in_order_as_digests() {
    let env = Env::new();
    let db = fresh_postgres("notify");
    let (_up, _) = up(&env, &format!("database = \"{db}\"\n{NOTIFY}"));
    let port = free_port();
    let r = receiver(port, Mode::Ok);
    add_hook(&env, "hook", port, &["--min-interval-ms", "500"]);
    env.ok(&[
        "notify",
        "rules",
        "add",
        "all-jobs",
        "--events",
        "job.*",
        "--targets",
        "hook",
    ]);
    let ids: Vec<String> = (0..8)
        .map(|i| submit(&env, if i % 3 == 0 { "exit 1" } else { "true" }))
        .collect();
    let want: BTreeSet<String> = ids.iter().map(|j| format!("job:{j}")).collect();
    eventually(T, "every event", || {
        let got: BTreeSet<String> = r
            .got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|g| {
                g.body["data"]["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["subject"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        (got == want).then_some(())
    });
    let (order, messages) = keys(&r);
    assert_eq!(order.len(), ids.len());
    let n: Vec<i64> = order
        .iter()
        .map(|k| k.strip_prefix("job:").unwrap().parse().unwrap())
        .collect();
    assert!(n.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(
        messages < ids.len(),
        "a burst became digests ({messages} messages)"
    );
    let got = r.got.lock().unwrap().clone();
    for w in got.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(gap >= Duration::from_millis(400), "messages {gap:?} apart");
    }
}

#[test]
fn an_array_failure_is_one_message_and_dead_letters_retry() {
    let env = Env::new();
    let (_up, _) = up(&env, &format!("{NOTIFY}give_up_after = \"1s\"\n"));
    let port = free_port();
    let down = free_port();
    let r = receiver(port, Mode::Ok);
    add_hook(&env, "hook", port, &[]);
    add_hook(&env, "down", down, &[]);
    for kind in ["slack", "teams"] {
        let url = format!("http://127.0.0.1:{port}/{kind}");
        env.ok(&[
            "notify",
            "targets",
            "add",
            kind,
            "--kind",
            kind,
            "--webhook-url",
            &url,
            "--allow-loopback",
        ]);
    }
    env.ok(&[
        "notify",
        "rules",
        "add",
        "failures",
        "--events",
        "job.failed",
        "--targets",
        "hook,down,slack,teams",
    ]);
    let id = env
        .ok(&["submit", "--array", "0-19", "--", "sh", "-c", "exit 3"])
        .trim()
        .to_string();
    eventually(T, "the array to fail", || {
        (job(&env, &id)["state"] == "FAILED").then_some(())
    });
    for _ in 0..100 {
        if r.got.lock().unwrap().len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        r.got.lock().unwrap().len() >= 3,
        "the array's messages: {}\n{}\n{}",
        env.ok(&["notify", "deliveries"]),
        env.ok(&["notify", "rules"]),
        std::fs::read_to_string(env.path().join("server.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::thread::sleep(Duration::from_millis(800));
    let all = r.got.lock().unwrap().clone();
    let slack: Vec<&Got> = all.iter().filter(|g| g.path == "/slack").collect();
    let teams: Vec<&Got> = all.iter().filter(|g| g.path == "/teams").collect();
    assert_eq!((slack.len(), teams.len()), (1, 1), "{all:?}");
    trestle_core::notify::render::check_slack(&slack[0].body).unwrap();
    assert!(
        slack[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Array job")
    );
    assert_eq!(
        teams[0].body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let got: Vec<Got> = all.into_iter().filter(|g| g.path == "/hook").collect();
    assert_eq!(got.len(), 1, "one message for 20 failed children: {got:?}");
    let events = got[0].body["data"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["subject"], format!("job:{id}"));
    assert!(
        events[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("Array job")
    );
    // The unreachable target's delivery dies after `give_up_after`...
    let dead = eventually(T, "a dead letter", || {
        env.json(&["notify", "deliveries", "--state", "dead", "--json"])
            .as_array()
            .unwrap()
            .first()
            .cloned()
    });
    assert_eq!(dead["target"], "down");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );
    let listed = env.ok(&["notify", "deliveries"]);
    assert!(listed.contains("trestle notify retry"), "{listed}");
    // ... and is delivered when retried once the receiver is back.
    let back = receiver(down, Mode::Ok);
    let id = dead["id"].as_str().unwrap();
    env.ok(&["notify", "retry", id]);
    eventually(T, "the retried delivery", || {
        back.got
            .lock()
            .unwrap()
            .iter()
            .any(|g| g.id == id)
            .then_some(())
    });
}

struct Smtpd {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    if let Ok(p) = std::env::var("TRESTLE_TEST_AIOSMTPD_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

fn smtpd() -> Smtpd {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir.path().join("mail"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python with aiosmtpd (scripts/test.sh installs it)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Smtpd { child, port, dir };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("aiosmtpd did not start");
}

fn mailbox(d: &Smtpd) -> Vec<serde_json::Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../trestle-notify/tests/data/smtp_mailbox.py"
    );
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(d.dir.path().join("mail"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn personal_email_reaches_users_who_have_an_address() {
    let env = Env::new();
    let (_up, _) = up(&env, NOTIFY);
    let d = smtpd();
    let port = d.port.to_string();
    env.ok(&[
        "notify",
        "targets",
        "add",
        "email",
        "--kind",
        "email",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-tls",
        "none",
        "--from",
        "trestle@uni.example",
        "--allow-loopback",
    ]);
    // Without an address nothing can reach the user, and they are told.
    let s = env.json(&["notify", "subscriptions", "--json"]);
    assert_eq!(s["reachable"], false);
    assert!(s["warning"].as_str().unwrap().contains("no email address"));
    let text = env.ok(&["notify", "subscriptions"]);
    assert!(text.contains("warning: nothing can reach you"), "{text}");
    let s = env.json(&["notify", "address", "admin", "admin@uni.example", "--json"]);
    assert_eq!(s["reachable"], true);
    assert_eq!(s["email_source"], "admin");
    // Job events are opt-in: subscribe to one's failures.
    env.ok(&["notify", "subscribe", "--events", "job.failed"]);
    let ok = submit(&env, "true");
    let bad = submit(&env, "exit 5");
    wait_state(&env, &ok, "SUCCEEDED", T);
    wait_state(&env, &bad, "FAILED", T);
    let msgs = eventually(T, "the email", || {
        let m = mailbox(&d);
        (!m.is_empty()).then_some(m)
    });
    std::thread::sleep(Duration::from_millis(500));
    let msgs = if mailbox(&d).len() > msgs.len() {
        mailbox(&d)
    } else {
        msgs
    };
    assert_eq!(msgs.len(), 1, "only the failure: {msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["to"][0], "admin@uni.example");
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("[Trestle] Job {bad}")) && subject.ends_with("failed"),
        "{subject}"
    );
    let types: Vec<&str> = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert!(
        m["parts"][0]["body"]
            .as_str()
            .unwrap()
            .contains("exit code 5")
    );
    // A test message reaches the caller's address now.
    let t = env.json(&["notify", "test", "email", "--json"]);
    assert_eq!(t["delivered"], true, "{t}");
    eventually(T, "the test email", || {
        (mailbox(&d).len() == 2).then_some(())
    });
    // `#SBATCH --mail-type` subscribes the owner to that job.
    let script = env.path().join("fail.sh");
    std::fs::write(&script, "#!/bin/sh\n#SBATCH --mail-type=END\nexit 7\n").unwrap();
    let sb = env
        .ok(&["sbatch", "--parsable", script.to_str().unwrap()])
        .trim()
        .to_string();
    wait_state(&env, &sb, "FAILED", T);
    let s = env.json(&["notify", "subscriptions", "--json"]);
    assert!(
        s["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |x| x["job"].as_i64().map(|j| j.to_string()).as_deref() == Some(sb.as_str())
                    && x["events"][0] == "job.finished"
            ),
        "{s}"
    );
    eventually(T, "the sbatch job's email", || {
        mailbox(&d)
            .iter()
            .any(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|x| x.contains(&format!("Job {sb} ")))
            })
            .then_some(())
    });
    // Muting a domain takes it out of the defaults.
    env.ok(&["notify", "unsubscribe", "--events", "workspace.*"]);
    let s = env.json(&["notify", "subscriptions", "--json"]);
    assert!(
        !s["defaults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "workspace.ready")
    );
    assert!(
        s["defaults"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "alarm.fired")
    );
}

fn token(env: &Env) -> String {
    let cfg = std::fs::read_to_string(env.path().join("config/trestle/client.toml"))
        .or_else(|_| {
            // Wherever `trestle up` wrote it.
            let out = env.run(&["token", "create", "--json"]);
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .unwrap();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&cfg) {
        return v["token"].as_str().unwrap().to_string();
    }
    cfg.lines()
        .find_map(|l| l.strip_prefix("token = "))
        .map(|t| t.trim_matches('"').to_string())
        .expect("a token")
}

fn post(env: &Env, tok: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (code, text) = http(
        "POST",
        &format!("{}/api/v1{path}", env.url()),
        Some(tok),
        Some(body),
    );
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn bad_targets_and_rules_are_refused_and_secrets_never_shown() {
    let env = Env::new();
    let (_up, _) = up(&env, NOTIFY);
    let admin = token(&env);
    let refused = |body: &str, status: u16, field: &str| {
        let (code, v) = post(&env, &admin, "/notify/targets", body);
        assert_eq!(code, status, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
        v
    };
    refused(
        r#"{"name":"a","kind":"webhook","url":"not a url"}"#,
        400,
        "url",
    );
    refused(
        r#"{"name":"a","kind":"slack","url":"http://hooks.example.org/x"}"#,
        400,
        "url",
    );
    refused(
        r#"{"name":"a","kind":"webhook","url":"http://127.0.0.1:9/x"}"#,
        400,
        "url",
    );
    refused(
        r#"{"name":"a","kind":"webhook","url":"https://169.254.169.254/latest"}"#,
        400,
        "url",
    );
    refused(
        r#"{"name":"a","kind":"webhook","url":"https://10.1.2.3/x"}"#,
        400,
        "url",
    );
    refused(
        r#"{"name":"a","kind":"webhook","url":"https://[fe80::1]/x"}"#,
        400,
        "url",
    );
    refused(
        r#"{"name":"a","kind":"pager","url":"https://e.example/x"}"#,
        400,
        "kind",
    );
    let big = format!(
        r#"{{"name":"a","kind":"slack","url":"https://hooks.example.org/x","template":"{}"}}"#,
        "x".repeat(5000)
    );
    refused(&big, 400, "template");
    refused(
        r#"{"name":"a","kind":"slack","url":"https://hooks.example.org/x","colour":"red"}"#,
        400,
        "colour",
    );
    // A researcher may not let a target reach loopback.
    env.ok(&["user", "add", "bob", "--role", "researcher"]);
    let bob = env.json(&["token", "create", "--user", "bob", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = post(
        &env,
        &bob,
        "/notify/targets",
        r#"{"name":"b","kind":"webhook","url":"http://127.0.0.1:9/x","allow_loopback":true}"#,
    );
    assert_eq!(
        (code, v["error"]["field"].as_str()),
        (403, Some("allow_loopback")),
        "{v}"
    );
    // Bob's own target is his; the admin's shared ones look missing to him.
    let secret_path = "/services/T0001/B0001/s3cr3tp4th";
    let (code, v) = post(
        &env,
        &admin,
        "/notify/targets",
        &format!(r#"{{"name":"ops","kind":"slack","url":"https://hooks.slack.com{secret_path}"}}"#),
    );
    assert_eq!(code, 201, "{v}");
    let (code, _) = http(
        "GET",
        &format!("{}/api/v1/notify/targets/ops", env.url()),
        Some(&bob),
        None,
    );
    assert_eq!(code, 404);
    let (code, v) = post(
        &env,
        &bob,
        "/notify/targets",
        r#"{"name":"bobs","kind":"webhook","url":"https://hooks.example.org/b"}"#,
    );
    assert_eq!(code, 201, "{v}");
    assert!(
        v["signing_secret"].as_str().unwrap().starts_with("whsec_"),
        "made up, shown once"
    );
    assert_eq!(v["target"]["owner"], "bob");
    let (_, shown) = http(
        "GET",
        &format!("{}/api/v1/notify/targets/bobs", env.url()),
        Some(&bob),
        None,
    );
    assert!(!shown.contains(v["signing_secret"].as_str().unwrap()));
    assert!(shown.contains("********"), "{shown}");
    // Rules: unknown event types and targets are refused.
    for (body, field) in [
        (
            r#"{"name":"r","events":["job.exploded"],"targets":["ops"]}"#,
            "events",
        ),
        (
            r#"{"name":"r","events":["job.*"],"targets":["nope"]}"#,
            "targets",
        ),
        (r#"{"name":"r","events":[],"targets":["ops"]}"#, "events"),
    ] {
        let (code, v) = post(&env, &admin, "/notify/rules", body);
        assert_eq!(
            (code, v["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}: {v}"
        );
    }
    let (code, v) = post(
        &env,
        &bob,
        "/notify/rules",
        r#"{"name":"r","events":["job.*"],"targets":["bobs"]}"#,
    );
    assert_eq!(code, 403, "{v}");
    // Secrets are never shown and not stored in the clear.
    let list = env.ok(&["notify", "targets", "--json"]);
    assert!(!list.contains("s3cr3tp4th"), "{list}");
    assert!(list.contains("https://hooks.slack.com/ser…"), "{list}");
    let db = std::fs::read(env.path().join("data/trestle.db")).unwrap();
    let wal = std::fs::read(env.path().join("data/trestle.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(10).any(|w| w == b"s3cr3tp4th"),
            "a secret is stored in the clear"
        );
    }
    // Every change to a secret is audited (the audit writer batches its
    // records, so they appear shortly after the request).
    eventually(Duration::from_secs(20), "the audit record", || {
        let (_, audit) = http(
            "GET",
            &format!("{}/api/v1/audit?action=notify.target.create", env.url()),
            Some(&admin),
            None,
        );
        audit.contains("notify.target.create").then_some(())
    });
    // A name that resolves to loopback passes when saved (it is a name)
    // and is refused when connecting.
    let port = free_port();
    let r = receiver(port, Mode::Ok);
    let (code, v) = post(
        &env,
        &admin,
        "/notify/targets",
        &format!(
            r#"{{"name":"rebind","kind":"webhook","url":"https://localhost:{port}/hook","signing_secret":"{SECRET}"}}"#
        ),
    );
    assert_eq!(code, 201, "{v}");
    let out = env.run(&["notify", "test", "rebind", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a failed test exits 1");
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["delivered"], false);
    assert!(t["error"].as_str().unwrap().contains("loopback"), "{t}");
    assert!(r.got.lock().unwrap().is_empty());
    // Key rotation: a new key in the keyring (still 0600), every secret
    // re-sealed under it, and they still work.
    add_hook(&env, "hook", port, &[]);
    let ring = env.path().join("data/keyring");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&ring).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = env.json(&["notify", "targets", "show", "hook", "--json"])["key_id"].clone();
    let rot = env.json(&["secrets", "rotate-key", "--json"]);
    assert_ne!(rot["key_id"], before);
    assert_eq!(rot["resealed"], 4, "{rot}");
    assert_eq!(
        std::fs::read_to_string(&ring)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count(),
        2
    );
    assert_eq!(
        std::fs::metadata(&ring).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let after = env.json(&["notify", "targets", "show", "hook", "--json"]);
    assert_eq!(after["key_id"], rot["key_id"]);
    let t = env.json(&["notify", "test", "hook", "--json"]);
    assert_eq!(t["delivered"], true, "{t}");
    assert_eq!(r.got.lock().unwrap().len(), 1);
}
