//! The client against a tiny in-process HTTP/1.1 server that records what it
//! receives and answers with canned responses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use trestle_client::{Client, ClientError, JobQuery};
use trestle_core::Capacity;
use trestle_core::api::LeaseRequest;

#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

type Handler = Arc<dyn Fn(&Received) -> (u16, Vec<u8>) + Send + Sync>;

struct Mock {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

async fn mock(handler: Handler) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(sock, handler.clone(), seen2.clone()));
        }
    });
    Mock { url, seen }
}

async fn serve(sock: TcpStream, handler: Handler, seen: Arc<Mutex<Vec<Received>>>) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await.unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let mut body = Vec::new();
        if let Some(len) = headers.get("content-length") {
            body.resize(len.parse().unwrap(), 0);
            r.read_exact(&mut body).await.unwrap();
        } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).await.unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let req = Received {
            method,
            target,
            headers,
            body,
        };
        let (status, out) = handler(&req);
        seen.lock().unwrap().push(req);
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n",
            out.len()
        );
        let mut msg = head.into_bytes();
        msg.extend_from_slice(&out);
        w.write_all(&msg).await.unwrap();
    }
}

async fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

const JOB: &str = r#"{"id":7,"name":"n","queue":"default","state":"RUNNABLE","attempts_used":0,
 "max_attempts":1,"submitted_at":1,"spec":{"name":"n","queue":"default","command":{"argv":["true"]},
 "resources":{"cpus":1,"mem_mib":256,"gpus":0},"max_attempts":1}}"#;

#[tokio::test]
async fn fails_over_to_a_reachable_server_and_remembers_it() {
    let m = mock(Arc::new(|_| (200, JOB.as_bytes().to_vec()))).await;
    let dead = closed_port_url().await;
    let c = Client::new(vec![dead, m.url.clone()], Some("tok".into())).unwrap();
    let job = c.get_job(7).await.unwrap();
    assert_eq!(job.id, 7);
    assert_eq!(c.current_base().as_str(), format!("{}/", m.url));
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen[0].target, "/api/v1/jobs/7");
    assert_eq!(seen[0].headers["authorization"], "Bearer tok");
}

#[tokio::test]
async fn error_statuses_are_not_failed_over() {
    let body = br#"{"error":{"code":"invalid-duration","message":"`soon` is not a duration","field":"timeout"}}"#;
    let m = mock(Arc::new(move |_| (400, body.to_vec()))).await;
    let other = mock(Arc::new(|_| (200, JOB.as_bytes().to_vec()))).await;
    let c = Client::new(vec![m.url.clone(), other.url.clone()], None).unwrap();
    let err = c
        .submit_job(&serde_json::json!({"command": "true", "timeout": "soon"}))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(
        err.to_string(),
        "[invalid-duration] timeout: `soon` is not a duration"
    );
    assert!(other.seen.lock().unwrap().is_empty());
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen[0].method, "POST");
    assert!(!seen[0].headers.contains_key("authorization"));
    let sent: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(sent["timeout"], "soon");
}

#[tokio::test]
async fn lists_with_query_and_leases_with_body() {
    let m = mock(Arc::new(|r: &Received| {
        if r.target.starts_with("/api/v1/jobs") {
            (200, br#"{"jobs":[],"next_before":3}"#.to_vec())
        } else {
            (200, br#"{"leases":[],"lease_ms":30000}"#.to_vec())
        }
    }))
    .await;
    let c = Client::new(vec![m.url.clone()], None).unwrap();
    let list = c
        .list_jobs(&JobQuery {
            states: vec![trestle_core::JobState::Failed],
            queue: Some("q".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.next_before, Some(3));
    let lease = c
        .lease(
            "w/1",
            &LeaseRequest {
                free: Capacity {
                    cpus: 2,
                    mem_mib: 100,
                    gpus: 0,
                },
                max_jobs: 2,
                prefetch: 0,
                wait_ms: 0,
                kinds: Vec::new(),
            },
        )
        .await
        .unwrap();
    assert_eq!(lease.lease_ms, 30000);
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen[0].target, "/api/v1/jobs?state=FAILED&queue=q");
    assert_eq!(seen[1].target, "/api/v1/workers/w%2F1/lease");
    let sent: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(sent["free"]["cpus"], 2);
    assert_eq!(sent["max_jobs"], 2);
}

#[tokio::test]
async fn uploads_stream_files_with_progress() {
    let m = mock(Arc::new(|r: &Received| {
        match r.headers.get("trestle-lease-token") {
            Some(t) if t == "stale" => (
                409,
                br#"{"error":{"code":"stale-lease","message":"lease lost"}}"#.to_vec(),
            ),
            _ => (204, Vec::new()),
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let c = Client::new(vec![m.url.clone()], None).unwrap();
    let calls = Mutex::new(Vec::new());
    let cb = |n: u64| calls.lock().unwrap().push(n);
    c.upload_file("u1", "a b/c.bin", &file, Some(&cb))
        .await
        .unwrap();
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.last(), Some(&300_000));
    assert!(calls.windows(2).all(|w| w[0] <= w[1]));
    c.upload_output(5, 2, "good", "out/x.txt", &file)
        .await
        .unwrap();
    let err = c
        .upload_output(5, 2, "stale", "out/x.txt", &file)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let missing = c
        .upload_output(5, 2, "good", "nope", &dir.path().join("missing"))
        .await
        .unwrap_err();
    assert!(matches!(missing, ClientError::Io(_)), "{missing:?}");
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/api/v1/uploads/u1/files/a%20b/c.bin");
    assert_eq!(seen[0].body, content);
    assert_eq!(
        seen[1].target,
        "/api/v1/jobs/5/attempts/2/outputs/out/x.txt"
    );
    assert_eq!(seen[1].headers["trestle-lease-token"], "good");
    assert_eq!(seen[1].body.len(), content.len());
}

#[tokio::test]
async fn downloads_stream_to_files() {
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
    let p2 = payload.clone();
    let m = mock(Arc::new(move |r: &Received| {
        if r.target.contains("missing") {
            (
                404,
                br#"{"error":{"code":"not-found","message":"no such file"}}"#.to_vec(),
            )
        } else {
            (200, p2.clone())
        }
    }))
    .await;
    let c = Client::new(vec![m.url.clone()], None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub/dir/out.bin");
    let n = c
        .download_output(3, Some(1), "res/out.bin", &dest)
        .await
        .unwrap();
    assert_eq!(n, payload.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), payload);
    let n = c
        .download_input(3, "in.txt", &dir.path().join("in.txt"))
        .await
        .unwrap();
    assert_eq!(n, payload.len() as u64);
    let err = c
        .download_input(3, "missing", &dir.path().join("m"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("not-found"));
    assert!(!dir.path().join("m").exists());
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].target,
        "/api/v1/jobs/3/outputs/res/out.bin?attempt=1"
    );
    assert_eq!(seen[1].target, "/api/v1/jobs/3/inputs/in.txt");
}

#[tokio::test]
async fn text_and_health_endpoints() {
    let m = mock(Arc::new(|r: &Received| {
        if r.target == "/metrics" {
            (200, b"trestle_jobs 3\n".to_vec())
        } else {
            (200, b"ok".to_vec())
        }
    }))
    .await;
    let c = Client::new(vec![m.url.clone()], None).unwrap();
    assert_eq!(c.get_text("/metrics").await.unwrap(), "trestle_jobs 3\n");
    assert!(c.healthz().await);
    c.deregister_worker("w1").await.unwrap();
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen[2].method, "DELETE");
    assert_eq!(seen[2].target, "/api/v1/workers/w1");
}
