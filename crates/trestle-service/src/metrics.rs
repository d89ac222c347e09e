//! Prometheus metrics: counters and a latency histogram kept in memory,
//! gauges read from the store at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use trestle_core::JobState;

/// Upper bounds (seconds) of the submit-to-start histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// In-process counters.
#[derive(Default)]
pub struct Metrics {
    submitted: AtomicU64,
    leases_expired: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    usage_records: AtomicU64,
    /// Charges metered by this server, per project (bounded by projects).
    charges: std::sync::Mutex<std::collections::BTreeMap<String, f64>>,
}

impl Metrics {
    /// Counts submitted jobs.
    pub fn submitted(&self, n: u64) {
        self.submitted.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts expired leases.
    pub fn leases_expired(&self, n: u64) {
        self.leases_expired.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one submit-to-start latency.
    pub fn started(&self, latency_ms: i64) {
        let secs = latency_ms.max(0) as f64 / 1000.0;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency_ms.max(0) as u64 * 1000, Ordering::Relaxed);
    }

    /// Counts usage records the meter stored, and their charges.
    pub fn metered(&self, records: u64, charges: &[(String, f64)]) {
        self.usage_records.fetch_add(records, Ordering::Relaxed);
        let mut m = self.charges.lock().unwrap_or_else(|p| p.into_inner());
        for (project, c) in charges {
            *m.entry(project.clone()).or_default() += c;
        }
    }

    /// Renders the text exposition format.
    pub fn render(&self, counts: &[(String, JobState, u64)], workers: usize) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP trestle_usage_records_total Usage records metered by this server."
        );
        let _ = writeln!(o, "# TYPE trestle_usage_records_total counter");
        let _ = writeln!(
            o,
            "trestle_usage_records_total {}",
            self.usage_records.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP trestle_usage_charge_total Charges metered by this server, per project, in the site's unit."
        );
        let _ = writeln!(o, "# TYPE trestle_usage_charge_total counter");
        for (project, c) in self
            .charges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(o, "trestle_usage_charge_total{{project=\"{project}\"}} {c}");
        }
        let _ = writeln!(o, "# HELP trestle_jobs Jobs by queue and state.");
        let _ = writeln!(o, "# TYPE trestle_jobs gauge");
        for (queue, state, n) in counts {
            let _ = writeln!(o, "trestle_jobs{{queue=\"{queue}\",state=\"{state}\"}} {n}");
        }
        let _ = writeln!(o, "# HELP trestle_workers Registered workers.");
        let _ = writeln!(o, "# TYPE trestle_workers gauge");
        let _ = writeln!(o, "trestle_workers {workers}");
        let _ = writeln!(
            o,
            "# HELP trestle_jobs_submitted_total Jobs submitted to this server."
        );
        let _ = writeln!(o, "# TYPE trestle_jobs_submitted_total counter");
        let _ = writeln!(
            o,
            "trestle_jobs_submitted_total {}",
            self.submitted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP trestle_leases_expired_total Leases that expired (attempts lost)."
        );
        let _ = writeln!(o, "# TYPE trestle_leases_expired_total counter");
        let _ = writeln!(
            o,
            "trestle_leases_expired_total {}",
            self.leases_expired.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP trestle_submit_to_start_seconds Time from submission to the start of an attempt."
        );
        let _ = writeln!(o, "# TYPE trestle_submit_to_start_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "trestle_submit_to_start_seconds_bucket{{le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "trestle_submit_to_start_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "trestle_submit_to_start_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "trestle_submit_to_start_seconds_count {count}");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.started(1);
        m.started(40);
        m.started(2000);
        let text = m.render(&[("default".into(), JobState::Running, 2)], 1);
        assert!(text.contains("trestle_jobs{queue=\"default\",state=\"RUNNING\"} 2"));
        assert!(text.contains("trestle_submit_to_start_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("trestle_submit_to_start_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("trestle_submit_to_start_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("trestle_submit_to_start_seconds_count 3"));
    }
}
