//! The data plane end to end, with real pieces: an axum server holding
//! [`Tunnels`] (routes shaped like the real ones), the real agent tunnel
//! client with a `TargetRegistry`, and a real HTTP app on a Unix socket
//! (echoing what it received, serving large bodies and a WebSocket echo).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{self, Message, protocol::Role};
use trestle_agent::tunnel::{Activity, SessionTarget, TargetRegistry};
use trestle_core::api::tunnel::{
    Channel, Frame, FrameDecoder, SHELL_PROTOCOL, StreamOpen, TCP_PROTOCOL, TUNNEL_PROTOCOL,
};
use trestle_proxy::{Route, Tunnels, forward_http, upgrade_relay};

const WORKER: &str = "w-test";
const WS: i64 = 1;
const SECRET: &str = "token launch-secret";

// ----- the app on a Unix socket -----

async fn echo(req: Request) -> Response {
    let headers: HashMap<String, Vec<String>> = req
        .headers()
        .keys()
        .map(|k| {
            (
                k.to_string(),
                req.headers()
                    .get_all(k)
                    .iter()
                    .map(|v| v.to_str().unwrap_or("").to_string())
                    .collect(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
        "headers": headers,
    });
    (
        [
            (header::SET_COOKIE, "trestle_session=evil; Path=/"),
            (header::SET_COOKIE, "app=1"),
        ],
        axum::Json(body),
    )
        .into_response()
}

async fn big(Query(q): Query<HashMap<String, usize>>) -> Response {
    let n = q.get("n").copied().unwrap_or(0);
    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let take = left.min(chunk.len());
                (Ok::<_, std::io::Error>(chunk.slice(..take)), left - take)
            })
        }
    });
    Body::from_stream(stream).into_response()
}

async fn count(body: Body) -> String {
    let mut n = 0usize;
    let mut s = body.into_data_stream();
    while let Some(Ok(c)) = s.next().await {
        n += c.len();
    }
    n.to_string()
}

async fn ws_echo(mut req: Request) -> Response {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = hyper_util::rt::TokioIo::new(on.await.unwrap());
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
            if ws.send(m).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            "sec-websocket-accept",
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
        )
        .body(Body::empty())
        .unwrap()
}

fn app() -> Router {
    Router::new()
        .route("/echo/{*rest}", any(echo))
        .route("/big", get(big))
        .route("/upload", post(count))
        .route("/ws", get(ws_echo))
}

// ----- the server side, shaped like the real routes -----

async fn tunnel_route(
    Path(id): Path<String>,
    tunnels: axum::Extension<Tunnels>,
    req: Request,
) -> Response {
    assert_eq!(req.headers().get(header::UPGRADE).unwrap(), TUNNEL_PROTOCOL);
    let on = hyper::upgrade::on(req);
    let t = tunnels.0.clone();
    tokio::spawn(async move {
        if let Ok(io) = on.await {
            t.accept(&id, hyper_util::rt::TokioIo::new(io)).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, TUNNEL_PROTOCOL)
        .body(Body::empty())
        .unwrap()
}

fn route(workspace: i64) -> Route {
    Route {
        worker_id: WORKER.into(),
        workspace,
        strip_prefix: Some(format!("/ws/{workspace}")),
        add_headers: vec![(header::AUTHORIZATION, SECRET.parse().unwrap())],
        session_cookie: "trestle_session".into(),
        forwarded_proto: "https".into(),
    }
}

async fn proxy_route(
    Path((ws, _)): Path<(i64, String)>,
    t: axum::Extension<Tunnels>,
    req: Request,
) -> Response {
    forward_http(&t.0, &route(ws), req).await
}

async fn shell_route(
    Path(ws): Path<i64>,
    t: axum::Extension<Tunnels>,
    h: HeaderMap,
    req: Request,
) -> Response {
    let command: Vec<String> =
        serde_json::from_str(h.get("x-command").unwrap().to_str().unwrap()).unwrap();
    let open = StreamOpen {
        workspace: ws,
        channel: Channel::Shell {
            cols: 80,
            rows: 24,
            command,
        },
    };
    upgrade_relay(&t.0, WORKER, open, SHELL_PROTOCOL, req).await
}

async fn forward_route(
    Path((ws, port)): Path<(i64, u16)>,
    t: axum::Extension<Tunnels>,
    req: Request,
) -> Response {
    let open = StreamOpen {
        workspace: ws,
        channel: Channel::Tcp { port },
    };
    upgrade_relay(&t.0, WORKER, open, TCP_PROTOCOL, req).await
}

/// What the proxy told the activity sink.
#[derive(Default)]
struct Recorder {
    requests: std::sync::Mutex<Vec<(i64, String, String)>>,
    bytes: std::sync::Mutex<Vec<(i64, u64, u64)>>,
}

impl trestle_proxy::ActivitySink for Recorder {
    fn request(&self, workspace: i64, method: &axum::http::Method, path: &str) {
        self.requests
            .lock()
            .unwrap()
            .push((workspace, method.to_string(), path.to_string()));
    }

    fn bytes(&self, workspace: i64, up: u64, down: u64) {
        self.bytes.lock().unwrap().push((workspace, up, down));
    }
}

impl Recorder {
    /// Bytes reported (up, down) so far.
    fn total(&self) -> (u64, u64) {
        self.bytes
            .lock()
            .unwrap()
            .iter()
            .fold((0, 0), |(u, d), (_, a, b)| (u + a, d + b))
    }
}

struct Server {
    tunnels: Tunnels,
    activity: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(addr: SocketAddr) -> Server {
        let tunnels = Tunnels::new();
        let activity = Arc::new(Recorder::default());
        tunnels.set_activity(activity.clone());
        let router = Router::new()
            .route("/api/v1/workers/{id}/tunnel", get(tunnel_route))
            .route("/ws/{ws}/{*rest}", any(proxy_route))
            .route("/api/v1/workspaces/{ws}/shell", get(shell_route))
            .route("/api/v1/workspaces/{ws}/forward/{port}", get(forward_route))
            .layer(axum::Extension(tunnels.clone()));
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server {
            tunnels,
            activity,
            task,
        }
    }

    /// Kills it: the listener and every tunnel go.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        self.tunnels.close_all();
    }

    async fn wait_connected(&self) {
        for _ in 0..300 {
            if self.tunnels.connected(WORKER) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the worker's tunnel never connected");
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    server: Option<Server>,
    registry: Arc<TargetRegistry>,
    activity: Arc<Activity>,
    _stop: watch::Sender<bool>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server = Server::start(addr).await;
    let registry = Arc::new(TargetRegistry::new());
    let activity = Arc::new(Activity::new());
    registry.insert(
        WS,
        SessionTarget {
            socket: sock,
            cwd: dir.path().to_path_buf(),
            env: vec![("WORKSPACE_MARK".into(), "m1".into())],
            activity: activity.clone(),
            run_as: None,
        },
    );
    let (stop, stop_rx) = watch::channel(false);
    let client = trestle_client::Client::new(vec![format!("http://{addr}")], None).unwrap();
    trestle_agent::tunnel::spawn(
        &client,
        Arc::new(|| WORKER.to_string()),
        registry.clone(),
        stop_rx,
    );
    server.wait_connected().await;
    Setup {
        _dir: dir,
        addr,
        server: Some(server),
        registry,
        activity,
        _stop: stop,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_reach_the_app_without_trestle_credentials() {
    let s = setup().await;
    let resp = http()
        .get(format!("http://{}/ws/1/echo/lab?x=1", s.addr))
        .header(
            header::COOKIE,
            "a=1; trestle_session=SESSION-SECRET; _xsrf=2",
        )
        .header(header::AUTHORIZATION, "Bearer trs_0123456789abcdef")
        .header("x-csrf-token", "CSRF")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookies: Vec<_> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cookies,
        vec!["app=1"],
        "the app cannot set the portal's session cookie"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    let text = body.to_string();
    assert!(!text.contains("SESSION-SECRET"), "{text}");
    assert!(!text.contains("trs_"), "{text}");
    assert!(!text.contains("CSRF"), "{text}");
    assert_eq!(body["path"], "/echo/lab?x=1", "the prefix is stripped");
    let h = &body["headers"];
    assert_eq!(h["cookie"][0], "a=1; _xsrf=2", "other cookies stay");
    assert_eq!(h["authorization"][0], SECRET, "the launch secret is added");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-forwarded-prefix"][0], "/ws/1");
    assert!(
        h["x-forwarded-host"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1")
    );

    // Bodies stream both ways.
    let n = 64 * 1024 * 1024 + 5;
    let resp = http()
        .get(format!("http://{}/ws/1/big?n={n}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = 0usize;
    let mut body = resp.bytes_stream();
    while let Some(c) = body.next().await {
        got += c.unwrap().len();
    }
    assert_eq!(got, n);
    let up = vec![b'y'; 8 * 1024 * 1024 + 3];
    let resp = http()
        .post(format!("http://{}/ws/1/upload", s.addr))
        .body(up.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), up.len().to_string());

    // A workspace the worker does not host; a worker without a tunnel.
    let resp = http()
        .get(format!("http://{}/ws/2/echo/x", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "workspace-not-running");
    s.registry.remove(WS);
    let resp = http()
        .get(format!("http://{}/ws/1/echo/x", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let no_tunnel = forward_http(
        &Tunnels::new(),
        &route(WS),
        axum::http::Request::new(Body::empty()),
    )
    .await;
    assert_eq!(no_tunnel.status(), 502);
    let e = no_tunnel.into_body().collect().await.unwrap().to_bytes();
    let e: serde_json::Value = serde_json::from_slice(&e).unwrap();
    assert_eq!(e["error"]["code"], "workspace-unreachable");
    assert!(e["error"].get("field").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_relayed() {
    let s = setup().await;
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let url = format!("ws://{}/ws/1/ws", s.addr);
    let (mut ws, resp) = tokio_tungstenite::client_async(url.as_str(), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    // A long-lived WebSocket reports its traffic while it is open.
    let activity = s.server.as_ref().unwrap().activity.clone();
    tokio::time::sleep(trestle_proxy::ACTIVITY_EVERY + Duration::from_millis(100)).await;
    ws.send(Message::text("again")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("again"));
    let (up, down) = activity.total();
    assert!(up > 0 && down > 0, "reported while open: {up} {down}");
    let big = vec![7u8; 1024 * 1024];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
}

/// Reads shell frames until `until` holds for the output so far, or the
/// shell exits; returns the output and the exit code.
async fn read_shell<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    dec: &mut FrameDecoder,
    out: &mut String,
    until: impl Fn(&str) -> bool,
) -> Option<i32> {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(f) = dec.next_frame().unwrap() {
            match f {
                Frame::Data(d) => out.push_str(&String::from_utf8_lossy(&d)),
                Frame::Exit(c) => return Some(c),
                _ => {}
            }
        }
        if until(out) {
            return None;
        }
        let n = tokio::time::timeout_at(deadline, r.read(&mut buf))
            .await
            .expect("the shell answered in time")
            .unwrap();
        assert!(
            n > 0,
            "the shell stream ended without an exit frame; output: {out}"
        );
        dec.push(&buf[..n]);
    }
}

/// Opens a shell in workspace 1 (the test route reads the command from a
/// header).
async fn open_shell(s: &Setup, command: &[&str]) -> trestle_client::Upgraded {
    open_shell_in(s, 1, command).await
}

async fn open_shell_in(s: &Setup, ws: i64, command: &[&str]) -> trestle_client::Upgraded {
    let resp = http()
        .get(format!("http://{}/api/v1/workspaces/{ws}/shell", s.addr))
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, SHELL_PROTOCOL)
        .header("x-command", serde_json::to_string(command).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    resp.upgrade().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_run_in_a_pty_with_resize_and_exit_codes() {
    let s = setup().await;
    // The exit code comes back.
    let mut io = open_shell(&s, &["sh", "-c", "exit 7"]).await;
    let (mut dec, mut out) = (FrameDecoder::new(), String::new());
    assert_eq!(
        read_shell(&mut io, &mut dec, &mut out, |_| false).await,
        Some(7)
    );

    // A PTY: `stty size` follows resizes; the workspace's environment and
    // directory are the shell's.
    let script =
        "stty size; echo \"mark=$WORKSPACE_MARK tty=$(tty) pwd=$(pwd)\"; read x; stty size; exit 3";
    let mut io = open_shell(&s, &["sh", "-c", script]).await;
    let (mut dec, mut out) = (FrameDecoder::new(), String::new());
    assert_eq!(
        read_shell(&mut io, &mut dec, &mut out, |o| o.contains("pwd=")).await,
        None
    );
    assert!(out.contains("24 80"), "{out}");
    assert!(out.contains("mark=m1"), "{out}");
    assert!(out.contains("tty=/dev/pts/"), "{out}");
    assert!(s.activity.attached() == 1 && s.activity.last_ms() > 0);
    let mut msg = Frame::Resize {
        cols: 100,
        rows: 30,
    }
    .to_bytes();
    Frame::Data(b"\n".to_vec()).encode(&mut msg);
    io.write_all(&msg).await.unwrap();
    assert_eq!(
        read_shell(&mut io, &mut dec, &mut out, |_| false).await,
        Some(3)
    );
    assert!(out.contains("30 100"), "{out}");

    // The CLI's pump: keystrokes in, output out. A signal reaches the
    // foreground process: SIGINT ends `sleep`, and the shell reports
    // 128 + 2.
    let io = open_shell(&s, &["sh", "-c", "read x; echo got-$x; exec sleep 30"]).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let (out_w, mut out_r) = tokio::io::duplex(1 << 16);
    let pump = tokio::spawn(trestle_client::run_shell(io, rx, out_w));
    tx.send(trestle_client::ShellInput::Data(b"abc\n".to_vec()))
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains("got-abc") {
        let n = tokio::time::timeout(Duration::from_secs(20), out_r.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    tx.send(trestle_client::ShellInput::Signal(
        trestle_core::api::tunnel::Signal::Int,
    ))
    .await
    .unwrap();
    assert_eq!(pump.await.unwrap().unwrap(), 130);
    for _ in 0..100 {
        if s.activity.attached() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.activity.attached(), 0, "shells detach when they end");

    // A workspace whose app runs as another account gets its shells as
    // that account (the test command runs as root, as a worker that runs
    // tasks as their users does).
    // SAFETY: getuid has no preconditions.
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "this test runs as root (scripts/test.sh does) to run a shell as another account"
    );
    {
        s.registry.insert(
            3,
            SessionTarget {
                socket: "/nonexistent".into(),
                cwd: "/tmp".into(),
                env: vec![],
                activity: Arc::new(Activity::new()),
                run_as: Some((65534, 65534)),
            },
        );
        let mut io = open_shell_in(
            &s,
            3,
            &[
                "sh",
                "-c",
                "echo \"uid=$(id -u) gid=$(id -g) tty=$(stat -c %u $(tty))\"",
            ],
        )
        .await;
        let (mut dec, mut out) = (FrameDecoder::new(), String::new());
        assert_eq!(
            read_shell(&mut io, &mut dec, &mut out, |_| false).await,
            Some(0)
        );
        assert!(out.contains("uid=65534 gid=65534 tty=65534"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_forwards_carry_http() {
    let s = setup().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            Router::new().route("/", get(|| async { "forwarded!" })),
        )
        .await
        .unwrap()
    });
    let resp = http()
        .get(format!(
            "http://{}/api/v1/workspaces/1/forward/{port}",
            s.addr
        ))
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, TCP_PROTOCOL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    let mut io = resp.upgrade().await.unwrap();
    io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    io.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("forwarded!"), "{answer}");

    // Without the upgrade header: a 400 in the API's shape, nothing opened.
    let resp = http()
        .get(format!(
            "http://{}/api/v1/workspaces/1/forward/{port}",
            s.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A port nobody listens on: 502.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let resp = http()
        .get(format!(
            "http://{}/api/v1/workspaces/1/forward/{closed}",
            s.addr
        ))
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, TCP_PROTOCOL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reconnects_when_the_server_comes_back() {
    let mut s = setup().await;
    let get = |addr: SocketAddr| async move {
        http()
            .get(format!("http://{addr}/ws/1/echo/again"))
            .send()
            .await
    };
    assert_eq!(get(s.addr).await.unwrap().status(), 200);
    s.server.take().unwrap().kill().await;
    assert!(get(s.addr).await.is_err(), "the server is gone");
    let server = Server::start(s.addr).await;
    server.wait_connected().await;
    assert_eq!(get(s.addr).await.unwrap().status(), 200);
    s.server = Some(server);
}
