//! Efficiency of a finished attempt, as Slurm's `seff` shows it: elapsed
//! time, CPU time, CPU efficiency (CPU time over elapsed time times the
//! CPUs allocated) and peak memory (MaxRSS) against the memory requested.
//! Pure arithmetic over what the worker reported.

use serde::{Deserialize, Serialize};

/// The efficiency figures of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    /// Wall-clock time from the command's start to its end (ms).
    pub elapsed_ms: i64,
    /// User plus system CPU time of the task's processes (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<i64>,
    /// CPU time over `elapsed x cpus`, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_efficiency: Option<f64>,
    /// Peak resident memory (KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kib: Option<i64>,
    /// MaxRSS over the memory requested, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_efficiency: Option<f64>,
}

/// The figures of an attempt that ran from `started_at` to `ended_at` on
/// `cpus` CPUs with `mem_mib` requested; `None` until it has both times.
pub fn efficiency(
    started_at: Option<i64>,
    ended_at: Option<i64>,
    cpus: u32,
    mem_mib: u64,
    cpu_ms: Option<i64>,
    max_rss_kib: Option<i64>,
) -> Option<Efficiency> {
    let elapsed_ms = (ended_at? - started_at?).max(0);
    let cpu_efficiency = cpu_ms.and_then(|c| {
        let allocated = elapsed_ms as f64 * f64::from(cpus.max(1));
        (allocated > 0.0).then(|| round1(100.0 * c as f64 / allocated))
    });
    let memory_efficiency = max_rss_kib
        .and_then(|m| (mem_mib > 0).then(|| round1(100.0 * m as f64 / (mem_mib as f64 * 1024.0))));
    Some(Efficiency {
        elapsed_ms,
        cpu_ms,
        cpu_efficiency,
        max_rss_kib,
        memory_efficiency,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `HH:MM:SS` (with days, `D-HH:MM:SS`), as `sacct` writes times.
pub fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, s) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A memory size for people (`812.0 MiB`, `1.5 GiB`).
pub fn kib(k: i64) -> String {
    let k = k.max(0) as f64;
    if k >= 1024.0 * 1024.0 {
        format!("{:.1} GiB", k / (1024.0 * 1024.0))
    } else if k >= 1024.0 {
        format!("{:.1} MiB", k / 1024.0)
    } else {
        format!("{k} KiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_as_seff_computes_them() {
        // 10 s on 2 CPUs with 15 s of CPU time: 75 %.
        let e = efficiency(
            Some(1000),
            Some(11_000),
            2,
            1024,
            Some(15_000),
            Some(524_288),
        )
        .unwrap();
        assert_eq!(e.elapsed_ms, 10_000);
        assert_eq!(e.cpu_efficiency, Some(75.0));
        assert_eq!(e.memory_efficiency, Some(50.0));
        assert!(efficiency(None, Some(1), 1, 1, None, None).is_none());
        let e = efficiency(Some(5), Some(5), 1, 0, Some(3), Some(3)).unwrap();
        assert_eq!((e.cpu_efficiency, e.memory_efficiency), (None, None));
    }

    #[test]
    fn formats() {
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(clock(90_061_000), "1-01:01:01");
        assert_eq!(kib(512), "512 KiB");
        assert_eq!(kib(2048), "2.0 MiB");
        assert_eq!(kib(3 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
