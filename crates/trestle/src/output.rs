//! Human output: tables, times, sizes, and errors mapped to exit codes.

use std::process::ExitCode;
use trestle_client::ClientError;

/// Renders rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A timestamp (ms) as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = trestle_core::clock::civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A duration in ms, short (`850ms`, `12.3s`, `4m05s`, `2h05m`, `90d`).
pub fn duration(ms: i64) -> String {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < HOUR {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else if ms < DAY {
        format!("{}h{:02}m", ms / HOUR, (ms % HOUR) / 60_000)
    } else if ms % DAY < HOUR {
        format!("{}d", ms / DAY)
    } else {
        format!("{}d{:02}h", ms / DAY, (ms % DAY) / HOUR)
    }
}

/// An error for a person, including the server's code and field.
pub fn describe(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        // Many errors already include their cause in their own message.
        if !s.contains(&c) {
            s.push_str(&format!(": {c}"));
        }
    }
    s
}

/// Exit code for an error: 2 for input the server rejected, 3 otherwise.
pub fn exit_code_for(e: &anyhow::Error) -> ExitCode {
    match e.downcast_ref::<ClientError>() {
        Some(c) if c.status().is_some_and(|s| (400..500).contains(&s)) => ExitCode::from(2),
        Some(_) => ExitCode::from(3),
        None if e.downcast_ref::<UsageError>().is_some() => ExitCode::from(2),
        None => ExitCode::from(3),
    }
}

/// A mistake in how the command was called.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a usage error.
pub fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(msg.into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_500_000), "2h05m");
        assert_eq!(duration(90 * 86_400_000), "90d");
        assert_eq!(duration(86_400_000 + 3 * 3_600_000), "1d03h");
        let t = table(&["ID", "STATE"], &[vec!["1".into(), "RUNNING".into()]]);
        assert_eq!(t, "ID  STATE\n1   RUNNING\n");
    }
}
