//! Body limits per operation (issue: a login read 64 MiB bodies before
//! checking anything): each operation reads at most what it needs, a
//! larger body is refused with a JSON 413 as it arrives, and a flood of
//! large login bodies leaves the server's memory where it was.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn rss_mib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// POSTs the contents of `body` (too large for an argument) as JSON.
fn post_big(env: &Env, url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let file = env.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let mut args = vec![
        "-s".to_string(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        "POST".into(),
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        format!("@{}", file.display()),
        url.into(),
    ];
    if let Some(t) = token {
        args.push("-H".into());
        args.push(format!("Authorization: Bearer {t}"));
    }
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn each_operation_reads_only_what_it_needs() {
    let env = Env::new();
    let (up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let base = env.url();

    // A login body of 1 MiB: refused in the API's error format.
    let big = format!(r#"{{"user":"admin","password":"{}"}}"#, "x".repeat(1 << 20));
    let (code, body) = post_big(&env, &format!("{base}/api/v1/login"), None, &big);
    assert_eq!(code, 413, "{body}");
    assert!(body.contains(r#""code":"too-large""#), "{body}");
    // An ordinary one is read as before.
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/login"),
        None,
        Some(r#"{"user":"admin","password":"not the password"}"#),
    );
    assert_eq!(code, 401, "{body}");
    // A job of 5 MiB is more than a job takes; a small one is fine.
    let job = format!(r#"{{"command":"echo {}"}}"#, "y".repeat(5 << 20));
    let (code, body) = post_big(&env, &format!("{base}/api/v1/jobs"), Some(&admin), &job);
    assert_eq!(code, 413, "{body}");
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/jobs"),
        Some(&admin),
        Some(r#"{"command":"true"}"#),
    );
    assert_eq!(code, 201, "{body}");

    // Twenty concurrent 60 MB login bodies with no credentials.
    let file = env.path().join("flood.json");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(br#"{"user":"admin","password":""#).unwrap();
        let chunk = vec![b'z'; 1 << 20];
        for _ in 0..60 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(br#""}"#).unwrap();
    }
    let before = rss_mib(up.pid());
    let flood: Vec<_> = (0..20)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-X",
                    "POST",
                    "-H",
                    "Content-Type: application/json",
                    // Send the body at once, not after a 100 Continue.
                    "-H",
                    "Expect:",
                    "--data-binary",
                    &format!("@{}", file.display()),
                    &format!("{base}/api/v1/login"),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    let mut peak = before;
    let mut codes = Vec::new();
    for mut c in flood {
        loop {
            peak = peak.max(rss_mib(up.pid()));
            if c.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = c.wait_with_output().unwrap();
        codes.push(String::from_utf8_lossy(&out.stdout).to_string());
    }
    // Refused every time: 413, or the connection closed on the upload
    // before curl read an answer (000, or the interim 100 it had seen).
    assert!(
        codes.iter().all(|c| c == "413" || c == "000" || c == "100"),
        "every flood request refused: {codes:?}"
    );
    assert!(codes.iter().any(|c| c == "413"), "{codes:?}");
    assert!(
        peak < 200,
        "server RSS peaked at {peak} MiB (from {before} MiB)"
    );
    // And it still answers.
    let (code, _) = http("GET", &format!("{base}/readyz"), None, None);
    assert_eq!(code, 200);
}

/// `curl -i` for the headers and body of one request.
fn curl_i(method: &str, url: &str, token: &str, data: Option<&str>) -> (u16, String) {
    let mut args = vec![
        "-s".to_string(),
        "-i".into(),
        "-X".into(),
        method.into(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
    ];
    if let Some(d) = data {
        args.push("--data-binary".into());
        args.push(d.into());
    }
    args.push(url.into());
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn file_names_are_checked_and_downloads_are_attachments() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let base = env.url();
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/uploads"),
        Some(&admin),
        None,
    );
    assert_eq!(code, 201, "{body}");
    let upload = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |name: &str| {
        curl_i(
            "PUT",
            &format!("{base}/api/v1/uploads/{upload}/files/{name}"),
            &admin,
            Some("data"),
        )
    };
    // A name that displays reversed (U+202E) is refused like a control character.
    let (code, text) = put("report%E2%80%AEfdp.exe");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("bidirectional"), "{text}");
    // A 256-byte name is a 400 that names the field, and no server path shows.
    let (code, text) = put(&"n".repeat(256));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains(r#""field":"path""#), "{text}");
    let data_dir = env.path().display().to_string();
    assert!(
        !text.contains(&data_dir) && !text.contains("/tmp"),
        "{text}"
    );
    let (code, text) = put("in%20put.txt");
    assert!(code == 204 || code == 200 || code == 201, "{text}");
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/jobs"),
        Some(&admin),
        Some(&format!(r#"{{"command":"true","inputs":"{upload}"}}"#)),
    );
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].to_string();
    let (code, text) = curl_i(
        "GET",
        &format!("{base}/api/v1/jobs/{id}/inputs/in%20put.txt"),
        &admin,
        None,
    );
    assert_eq!(code, 200, "{text}");
    let head = text.to_lowercase();
    assert!(head.contains("x-content-type-options: nosniff"), "{text}");
    assert!(
        head.contains("content-disposition: attachment; filename*=utf-8''in%20put.txt"),
        "{text}"
    );
}
