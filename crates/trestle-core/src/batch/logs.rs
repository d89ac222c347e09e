//! How much of a job's log is kept. Each attempt's log is kept up to its
//! queue's limit; past it, the oldest output is dropped and a marker says
//! how much, so the newest output (where errors usually are) stays. The
//! store applies [`plan_trim`]; these are the decisions.

use std::collections::BTreeMap;

/// Default log limit of an attempt: 16 MiB.
pub const DEFAULT_LOG_LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// Smallest configurable limit (a worker sends chunks of up to 64 KiB).
pub const MIN_LOG_LIMIT_BYTES: u64 = 64 * 1024;

/// Log limits: a default and per-queue values (`[queues.NAME] log_limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLimits {
    /// The limit of queues without their own.
    pub default: u64,
    /// Queue name -> limit.
    pub queues: BTreeMap<String, u64>,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            default: DEFAULT_LOG_LIMIT_BYTES,
            queues: BTreeMap::new(),
        }
    }
}

impl LogLimits {
    /// The limit of `queue`.
    pub fn of(&self, queue: &str) -> u64 {
        self.queues.get(queue).copied().unwrap_or(self.default)
    }

    /// The smallest limit of any queue: logs below it need no look at
    /// their queue.
    pub fn smallest(&self) -> u64 {
        self.queues.values().copied().fold(self.default, u64::min)
    }
}

/// What to drop from a log over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTrim {
    /// The chunk that becomes the marker; every older chunk is deleted.
    pub marker_seq: i64,
    /// Bytes dropped by this trim (the marker's chunk included).
    pub dropped: u64,
    /// Bytes kept after it (the marker not included).
    pub kept: u64,
}

/// Plans a trim of a log whose chunks are `(seq, bytes)`, newest first, to
/// at most `limit` bytes: the newest chunks that fit are kept (always at
/// least one), the newest of the rest becomes the marker and older ones
/// go. `None` when the log fits or nothing can be dropped.
pub fn plan_trim(newest_first: &[(i64, u64)], limit: u64) -> Option<LogTrim> {
    let budget = limit.saturating_sub(MARKER_ROOM);
    let mut kept = 0u64;
    let mut keep = 0usize;
    for (i, (_, n)) in newest_first.iter().enumerate() {
        if i > 0 && kept + n > budget {
            break;
        }
        kept += n;
        keep = i + 1;
    }
    let rest = &newest_first[keep..];
    let (marker_seq, _) = *rest.first()?;
    Some(LogTrim {
        marker_seq,
        dropped: rest.iter().map(|(_, n)| n).sum(),
        kept,
    })
}

/// Room left for the marker.
const MARKER_ROOM: u64 = 256;

/// The line that stands for dropped output: `dropped` bytes in all, the
/// earlier markers' included.
pub fn marker(dropped: u64, limit: u64) -> String {
    format!(
        "[trestle: {dropped} bytes of earlier output were dropped; this queue keeps the newest {} of each attempt's log]\n",
        human_bytes(limit)
    )
}

fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_output_is_kept() {
        let chunks: Vec<(i64, u64)> = (1..=10).rev().map(|s| (s, 1000)).collect();
        assert_eq!(plan_trim(&chunks, 20_000), None);
        let t = plan_trim(&chunks, 3_500).unwrap();
        assert_eq!(
            t,
            LogTrim {
                marker_seq: 7,
                dropped: 7_000,
                kept: 3_000
            }
        );
        // One chunk larger than the limit is kept whole.
        let t = plan_trim(&[(3, 90_000), (2, 10), (1, 10)], 64 * 1024).unwrap();
        assert_eq!((t.marker_seq, t.kept, t.dropped), (2, 90_000, 20));
        assert_eq!(plan_trim(&[(1, 90_000)], 64 * 1024), None);
    }

    #[test]
    fn limits_per_queue() {
        let l = LogLimits {
            default: 1 << 20,
            queues: [("small".to_string(), 1 << 16)].into(),
        };
        assert_eq!(
            (l.of("small"), l.of("other"), l.smallest()),
            (1 << 16, 1 << 20, 1 << 16)
        );
        assert!(marker(5, 1 << 20).contains("5 bytes") && marker(5, 1 << 20).contains("1 MiB"));
    }
}
