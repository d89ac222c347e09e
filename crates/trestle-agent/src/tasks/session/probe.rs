//! Talking to a hosted app on its Unix socket: the readiness check and the
//! app's own activity (Jupyter's kernels and terminals). Requests are
//! HTTP/1.0, so the answer is never chunked and ends with the connection.

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The most of an answer that is read.
const MAX_ANSWER: usize = 1 << 20;

/// GETs `path` from the app on `socket` with `header`; its status and body.
pub async fn get(
    socket: &Path,
    path: &str,
    header: Option<(&str, &str)>,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    tokio::time::timeout(timeout, async {
        let mut s = UnixStream::connect(socket).await?;
        let mut req =
            format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n");
        if let Some((k, v)) = header {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 || buf.len() > MAX_ANSWER {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_answer(&buf).ok_or_else(|| std::io::Error::other("not an HTTP answer"))
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "the app did not answer"))?
}

fn parse_answer(buf: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf[end + 4..].to_vec()))
}

/// What Jupyter says about its activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppActivity {
    /// The latest `last_activity` of a kernel or terminal (ms).
    pub last: Option<i64>,
    /// A kernel is busy.
    pub busy: bool,
}

/// Reads Jupyter's kernels and terminals (`{prefix}api/kernels`,
/// `{prefix}api/terminals`) into one activity.
pub async fn jupyter_activity(
    socket: &Path,
    prefix: &str,
    header: Option<(&str, &str)>,
) -> Option<AppActivity> {
    let t = Duration::from_secs(5);
    let (status, kernels) = get(socket, &format!("{prefix}api/kernels"), header, t)
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    let mut a = parse_kernels(&kernels)?;
    if let Ok((200, terms)) = get(socket, &format!("{prefix}api/terminals"), header, t).await
        && let Some(t) = parse_kernels(&terms)
    {
        a.last = a.last.max(t.last);
    }
    Some(a)
}

/// Parses a Jupyter list of kernels (or terminals).
pub fn parse_kernels(body: &[u8]) -> Option<AppActivity> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut a = AppActivity::default();
    for k in v.as_array()? {
        if let Some(t) = k
            .get("last_activity")
            .and_then(|t| t.as_str())
            .and_then(parse_iso_ms)
        {
            a.last = a.last.max(Some(t));
        }
        if k.get("execution_state").and_then(|s| s.as_str()) == Some("busy") {
            a.busy = true;
        }
    }
    Some(a)
}

/// Parses an ISO 8601 UTC time (`2026-12-01T15:00:00.123456Z`, or with
/// `+00:00`) into ms since the epoch.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms: i64 = format!("{:0<3}", frac.chars().take(3).collect::<String>())
        .parse()
        .ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(parse_iso_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso_ms("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(
            parse_iso_ms("2026-12-01T15:00:00.123456Z"),
            Some(1_796_137_200_123)
        );
        assert_eq!(
            parse_iso_ms("2000-03-01T00:00:00+00:00"),
            Some(951_868_800_000)
        );
        assert_eq!(parse_iso_ms("nope"), None);
        assert_eq!(parse_iso_ms("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn kernels() {
        let body = br#"[{"id":"a","last_activity":"1970-01-01T00:00:01Z","execution_state":"idle"},
                        {"id":"b","last_activity":"1970-01-01T00:00:03Z","execution_state":"busy"}]"#;
        assert_eq!(
            parse_kernels(body),
            Some(AppActivity {
                last: Some(3000),
                busy: true
            })
        );
        assert_eq!(parse_kernels(b"[]"), Some(AppActivity::default()));
        assert_eq!(parse_kernels(b"{"), None);
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nbody"),
            Some((200, b"body".to_vec()))
        );
        assert_eq!(parse_answer(b"garbage"), None);
    }
}
