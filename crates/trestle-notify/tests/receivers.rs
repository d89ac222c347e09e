//! The senders against real receivers started here: an HTTP receiver that
//! verifies the Standard Webhooks signature and its timestamp, checks of
//! the Slack payload against Block Kit's limits and of the Teams card
//! against Microsoft's published Adaptive Card schema (`tests/data`, with
//! Python's `jsonschema`), aiosmtpd as the SMTP server, and the address
//! checks at connect time (a name resolving to a metadata address).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trestle_core::notify::event::{Event, EventType, NewEvent};
use trestle_core::notify::render::{Message, check_slack};
use trestle_core::notify::sign;
use trestle_core::notify::target::{SmtpTls, TargetConfig, TargetSecrets, TargetSpec};
use trestle_notify::http::Lookup;
use trestle_notify::{Outgoing, SendError, Sender, SenderSettings};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// What the receiver does with the next requests (0: accept).
const FAIL: u8 = 1;
const SLOW: u8 = 2;

/// A request the receiver accepted: its headers and body.
type Received = (HeaderMap, Vec<u8>);

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    mode: Arc<AtomicU8>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    match r.mode.load(Ordering::SeqCst) {
        FAIL => return StatusCode::INTERNAL_SERVER_ERROR,
        SLOW => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    if let Some(sig) = headers.get("webhook-signature") {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let key = sign::secret_bytes(SECRET).unwrap();
        match sign::verify(
            &key,
            h("webhook-id"),
            h("webhook-timestamp"),
            sig.to_str().unwrap_or(""),
            &body,
            now,
            300,
        ) {
            Ok(()) => {}
            Err(sign::VerifyError::BadSignature) => return StatusCode::UNAUTHORIZED,
            Err(_) => return StatusCode::BAD_REQUEST,
        }
    }
    r.got.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::NO_CONTENT
}

async fn receiver() -> (Receiver, SocketAddr) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (r, addr)
}

fn event(i: i64, kind: EventType) -> Event {
    Event {
        key: format!("job:{i}"),
        event: NewEvent {
            kind,
            subject: format!("job:{i}"),
            title: format!("Job {i} (sim)"),
            owner: Some("ada".into()),
            project: Some("x".into()),
            link: Some(format!("/ui/jobs/{i}")),
            detail: Some("exit code 3".into()),
            time: 1_764_601_445_000,
        },
        parent: None,
    }
}

fn target(kind: &str, url: &str, loopback: bool) -> (TargetConfig, TargetSecrets) {
    TargetSpec {
        name: "t".into(),
        kind: kind.into(),
        url: Some(url.into()),
        signing_secret: (kind == "webhook").then(|| SECRET.into()),
        allow_loopback: loopback,
        ..Default::default()
    }
    .validate()
    .unwrap()
}

fn now_s() -> i64 {
    trestle_core::clock::now_ms() / 1000
}

fn sender() -> Sender {
    Sender::new(SenderSettings {
        timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_millis(800),
        ..Default::default()
    })
}

async fn send(
    s: &Sender,
    c: &(TargetConfig, TargetSecrets),
    events: &[Event],
    now_s: i64,
) -> Result<(), SendError> {
    s.send(&Outgoing {
        config: &c.0,
        secrets: &c.1,
        message: Message {
            id: "msg_2Xq7dT0001",
            kind: events[0].event.kind,
            events,
            base_url: Some("https://trestle.example.org"),
            template: None,
        },
        to: &[],
        now_s,
    })
    .await
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

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn webhooks_are_signed_and_the_receiver_verifies_them() {
    let (r, addr) = receiver().await;
    let s = sender();
    let t = target(
        "webhook",
        &format!("http://127.0.0.1:{}/hook", addr.port()),
        true,
    );
    let events = [
        event(1, EventType::JobFailed),
        event(2, EventType::JobFailed),
    ];
    send(&s, &t, &events, now_s()).await.unwrap();
    {
        let got = r.got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (h, body) = &got[0];
        assert_eq!(h["webhook-id"], "msg_2Xq7dT0001");
        assert!(h["webhook-signature"].to_str().unwrap().starts_with("v1,"));
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "job.failed");
        assert_eq!(v["data"]["id"], "msg_2Xq7dT0001");
        let keys: Vec<&str> = v["data"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["job:1", "job:2"]);
        assert_eq!(
            v["data"]["events"][0]["link"],
            "https://trestle.example.org/ui/jobs/1"
        );
    }
    // A timestamp outside the receiver's tolerance is refused by it.
    let err = send(&s, &t, &events, now_s() - 600).await.unwrap_err();
    assert!(
        matches!(err, SendError::Status { status: 400, .. }),
        "{err:?}"
    );
    // Signed with another secret: refused.
    let mut other = t.clone();
    other.1.signing_secret = Some(sign::make_secret(&[9; 32]));
    let err = send(&s, &other, &events, now_s()).await.unwrap_err();
    assert!(
        matches!(err, SendError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(r.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn slack_payloads_keep_block_kit_limits_and_teams_cards_match_the_schema() {
    let (r, addr) = receiver().await;
    let s = sender();
    let url = format!("http://127.0.0.1:{}/hook", addr.port());
    let one = [event(1, EventType::JobFailed)];
    let many: Vec<Event> = (0..300)
        .map(|i| {
            let mut e = event(i, EventType::JobFailed);
            e.event.detail = Some("x".repeat(4000));
            e
        })
        .collect();
    for events in [&one[..], &many[..]] {
        send(&s, &target("slack", &url, true), events, now_s())
            .await
            .unwrap();
        send(&s, &target("teams", &url, true), events, now_s())
            .await
            .unwrap();
    }
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 4);
    for (i, (h, body)) in got.iter().enumerate() {
        assert!(
            h.get("webhook-signature").is_none(),
            "only generic webhooks are signed"
        );
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        if i % 2 == 0 {
            check_slack(&v).unwrap();
            let text = v["text"].as_str().unwrap();
            assert!(text.contains("Job 0 (sim) failed") || text.contains("Job 1 (sim) failed"));
        } else {
            assert_eq!(v["type"], "message");
            let a = &v["attachments"][0];
            assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
            let card = serde_json::to_vec(&a["content"]).unwrap();
            let mut child = Command::new(python())
                .args([
                    data("validate_card.py"),
                    data("adaptive-card-1.0.schema.json"),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python with jsonschema (scripts/test.sh installs it)");
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&card).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "card does not match the schema: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    // The validator is not a rubber stamp.
    let mut child = Command::new(python())
        .args([
            data("validate_card.py"),
            data("adaptive-card-1.0.schema.json"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"type":"AdaptiveCard","version":"1.0","body":[{"type":"TextBlock","text":"x","weight":"heavy"}]}"#)
        .unwrap();
    assert!(!child.wait().unwrap().success());
}

#[tokio::test]
async fn addresses_are_checked_on_the_address_connected_to() {
    let (r, addr) = receiver().await;
    let port = addr.port();
    // A real name (resolved by the system) that is loopback: refused
    // unless loopback is allowed.
    let s = sender();
    let t = target("webhook", &format!("https://localhost:{port}/hook"), false);
    let err = send(&s, &t, &[event(1, EventType::JobFailed)], now_s())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Refused(ref m) if m.contains("loopback")),
        "{err:?}"
    );
    // A name that resolves to the metadata address (DNS rebinding: it
    // passed the check when saved, as a name).
    let table: HashMap<String, Vec<IpAddr>> = [
        (
            "metadata.rebind.test".to_string(),
            vec!["169.254.169.254".parse().unwrap()],
        ),
        (
            "private.rebind.test".to_string(),
            vec!["10.1.2.3".parse().unwrap()],
        ),
        (
            "rebind.test".to_string(),
            vec!["127.0.0.1".parse().unwrap()],
        ),
        (
            "public.rebind.test".to_string(),
            vec!["8.8.8.8".parse().unwrap()],
        ),
    ]
    .into_iter()
    .collect();
    let s = Sender::with_lookup(
        SenderSettings {
            timeout: Duration::from_millis(800),
            connect_timeout: Duration::from_millis(800),
            ..Default::default()
        },
        Lookup::Table(Arc::new(table)),
    );
    for (name, why) in [
        ("metadata.rebind.test", "metadata"),
        ("private.rebind.test", "private"),
    ] {
        let t = target("webhook", &format!("https://{name}:{port}/hook"), true);
        let err = send(&s, &t, &[event(1, EventType::JobFailed)], now_s())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::Refused(ref m) if m.contains(why)),
            "{name}: {err:?}"
        );
    }
    // Plain HTTP to a name that resolves to a public address: refused at
    // connect time although the name passed (it is only checked there).
    let t = TargetSpec {
        name: "t".into(),
        kind: "webhook".into(),
        url: Some(format!("http://localhost:{port}/hook")),
        signing_secret: Some(SECRET.into()),
        allow_loopback: true,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let mut public = t.clone();
    public.1.url = Some(format!("http://public.rebind.test:{port}/hook"));
    let err = send(&s, &public, &[event(1, EventType::JobFailed)], now_s())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Refused(ref m) if m.contains("plain HTTP")),
        "{err:?}"
    );
    assert!(
        r.got.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );
    // A name resolving to loopback, allowed: delivered.
    send(&s, &t, &[event(1, EventType::JobFailed)], now_s())
        .await
        .unwrap();
    assert_eq!(r.got.lock().unwrap().len(), 1);
    // SMTP hosts are checked the same way.
    let mail = TargetSpec {
        name: "m".into(),
        kind: "email".into(),
        smtp_host: Some("metadata.rebind.test".into()),
        smtp_port: Some(port),
        smtp_tls: Some(SmtpTls::None),
        from: Some("trestle@uni.example".into()),
        allow_loopback: true,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let to = vec!["ada@uni.example".to_string()];
    let events = [event(1, EventType::JobFailed)];
    let err = s
        .send(&Outgoing {
            config: &mail.0,
            secrets: &mail.1,
            message: Message {
                id: "msg_1",
                kind: EventType::JobFailed,
                events: &events,
                base_url: None,
                template: None,
            },
            to: &to,
            now_s: now_s(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn failures_are_told_apart() {
    let (r, addr) = receiver().await;
    let s = sender();
    let t = target(
        "webhook",
        &format!("http://127.0.0.1:{}/hook", addr.port()),
        true,
    );
    let e = [event(1, EventType::JobFailed)];
    r.mode.store(FAIL, Ordering::SeqCst);
    let err = send(&s, &t, &e, now_s()).await.unwrap_err();
    assert!(
        matches!(err, SendError::Status { status: 500, .. }),
        "{err:?}"
    );
    r.mode.store(SLOW, Ordering::SeqCst);
    let err = send(&s, &t, &e, now_s()).await.unwrap_err();
    assert!(matches!(err, SendError::Timeout(_)), "{err:?}");
    assert!(!err.is_permanent());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let t = target("webhook", &format!("http://127.0.0.1:{port}/hook"), true);
    let err = send(&s, &t, &e, now_s()).await.unwrap_err();
    assert!(matches!(err, SendError::Connect(_)), "{err:?}");
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

async fn smtpd() -> Smtpd {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = dir.path().join("mail");
    let mut child = Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python with aiosmtpd (scripts/test.sh installs it)");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Smtpd { child, port, dir };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("aiosmtpd did not start on {port}");
}

/// The messages aiosmtpd stored, parsed by Python's email package.
pub fn mailbox(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = Command::new(python())
        .arg(data("smtp_mailbox.py"))
        .arg(dir.join("mail"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_both_parts() {
    let d = smtpd().await;
    let s = sender();
    let mail = TargetSpec {
        name: "mail".into(),
        kind: "email".into(),
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: Some(d.port),
        smtp_tls: Some(SmtpTls::None),
        from: Some("trestle@uni.example".into()),
        allow_loopback: true,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let to = vec!["ada@uni.example".to_string()];
    let events = [
        event(7, EventType::JobFailed),
        event(8, EventType::JobFailed),
    ];
    s.send(&Outgoing {
        config: &mail.0,
        secrets: &mail.1,
        message: Message {
            id: "msg_mail1",
            kind: EventType::JobFailed,
            events: &events,
            base_url: Some("https://trestle.example.org"),
            template: None,
        },
        to: &to,
        now_s: now_s(),
    })
    .await
    .unwrap();
    let msgs = mailbox(d.dir.path());
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert_eq!(m["to"][0], "ada@uni.example");
    assert_eq!(m["from"], "trestle@uni.example");
    assert_eq!(m["subject"], "[Trestle] 2 events: job.failed");
    assert_eq!(m["message_id"], "<msg_mail1@trestle>");
    let parts = m["parts"].as_array().unwrap();
    let part = |t: &str| {
        parts
            .iter()
            .find(|p| p["type"] == t)
            .unwrap_or_else(|| panic!("no {t} part in {parts:?}"))["body"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let text = part("text/plain");
    assert!(
        text.contains("Job 8 (sim) failed: exit code 3 <https://trestle.example.org/ui/jobs/8>"),
        "{text}"
    );
    let html = part("text/html");
    assert!(
        html.contains("<a href=\"https://trestle.example.org/ui/jobs/7\">"),
        "{html}"
    );
}

/// A CA and a certificate for `localhost`/127.0.0.1 signed by it, made
/// with the openssl CLI: (CA PEM, server cert path, server key path).
fn certificates(dir: &std::path::Path) -> (String, String, String) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=trestle test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("srv.key"),
        "-out",
        &p("srv.csr"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &p("srv.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("srv.pem"),
    ]);
    (
        std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
        p("srv.pem"),
        p("srv.key"),
    )
}

/// aiosmtpd with TLS (`starttls` or `implicit`) and authentication.
async fn smtpd_tls(mode: &str, cert: &str, key: &str) -> Smtpd {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = dir.path().join("mail");
    let mut child = Command::new(python())
        .arg(data("smtpd_tls.py"))
        .args([&port.to_string(), mode, cert, key])
        .arg(&maildir)
        .args(["trestle", "relay password"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python with aiosmtpd");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Smtpd { child, port, dir };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("aiosmtpd with TLS did not start on {port}");
}

async fn send_mail(
    s: &Sender,
    t: (TargetConfig, TargetSecrets),
    to: &[String],
    events: &[Event],
) -> Result<(), SendError> {
    s.send(&Outgoing {
        config: &t.0,
        secrets: &t.1,
        message: Message {
            id: "msg_tls",
            kind: EventType::JobFailed,
            events,
            base_url: None,
            template: None,
        },
        to,
        now_s: now_s(),
    })
    .await
}

#[tokio::test]
async fn email_over_starttls_and_implicit_tls_with_authentication() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let s = Sender::new(SenderSettings {
        timeout: Duration::from_secs(10),
        ..Default::default()
    });
    let events = [event(9, EventType::JobFailed)];
    let to = vec!["ada@uni.example".to_string()];
    for (mode, tls) in [
        ("starttls", SmtpTls::Starttls),
        ("implicit", SmtpTls::Implicit),
    ] {
        let d = smtpd_tls(mode, &cert, &key).await;
        let spec = |password: &str, ca: Option<&str>| {
            TargetSpec {
                name: "mail".into(),
                kind: "email".into(),
                smtp_host: Some("localhost".into()),
                smtp_port: Some(d.port),
                smtp_tls: Some(tls),
                smtp_username: Some("trestle".into()),
                smtp_password: Some(password.into()),
                smtp_ca: ca.map(String::from),
                from: Some("trestle@uni.example".into()),
                allow_loopback: true,
                ..Default::default()
            }
            .validate()
            .unwrap()
        };
        // The server's certificate is verified: unknown CA, refused.
        let err = send_mail(&s, spec("relay password", None), &to, &events)
            .await
            .unwrap_err();
        assert!(!matches!(err, SendError::Refused(_)), "{mode}: {err:?}");
        // A wrong password is refused by the server.
        let err = send_mail(&s, spec("wrong", Some(&ca)), &to, &events)
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Smtp(_)), "{mode}: {err:?}");
        assert!(mailbox(d.dir.path()).is_empty(), "{mode}");
        send_mail(&s, spec("relay password", Some(&ca)), &to, &events)
            .await
            .unwrap();
        let msgs = mailbox(d.dir.path());
        assert_eq!(msgs.len(), 1, "{mode}: {msgs:?}");
        assert_eq!(msgs[0]["to"][0], "ada@uni.example");
    }
}
