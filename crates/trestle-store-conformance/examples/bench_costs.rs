//! The cost dashboard's queries at scale: stores N usage records (default
//! 1,000,000: 200 users, each in one or two of 30 projects in 5 indexes,
//! 3 compute environments, spread over 60 days) through the meter's own
//! `record_usage`, then times each query the Costs page and `trestle
//! costs` make, 200 times each, on SQLite and on PostgreSQL:
//!
//! ```sh
//! cargo run --release -p trestle-store-conformance --example bench_costs [N]
//! ```
//!
//! Prints the insert rate and, per query, p50 and p99 in milliseconds.

use std::error::Error;
use std::time::Instant;
use trestle_core::Resources;
use trestle_core::cost::budget::ScopeKind;
use trestle_core::cost::daily::{DAY_MS, day_of};
use trestle_store::cost::{Grouping, UsageFilter, UsageKind, UsageRecord};
use trestle_store_conformance::db::{Backend, TestDb};

type Res<T> = Result<T, Box<dyn Error>>;

/// A small deterministic generator (xorshift), so every run stores the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn records(n: usize, now: i64) -> Vec<UsageRecord> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            // Each user works in one or two projects (their own, and now
            // and then a second), as on a real site.
            let u = rng.below(200);
            let project = if rng.below(4) == 0 {
                (u * 7 + 3) % 30
            } else {
                u % 30
            };
            let end = now - (rng.below(60 * DAY_MS as u64) as i64);
            let len = 1_000 + rng.below(3_600_000) as i64;
            let cpus = 1 + rng.below(8) as u32;
            UsageRecord {
                id: format!("a:{i}:1"),
                // Stored as records of their own (a batch attempt's record
                // is its attempt row, which this does not create); the
                // dashboard reads the daily roll-up either way.
                kind: UsageKind::Workspace,
                job_id: Some(i as i64),
                attempt: Some(1),
                parent_id: None,
                workspace_id: Some(i as i64),
                worker_id: Some(format!("w-{}", i / 50)),
                compute_env: format!("env-{}", rng.below(3)),
                user: format!("user-{u}"),
                project: format!("project-{project}"),
                index_name: format!("index-{}", project % 5),
                started_at: end - len,
                ended_at: end,
                resources: Resources {
                    cpus,
                    mem_mib: 1024,
                    gpus: 0,
                },
                rate_per_hour: 0.05 * f64::from(cpus),
                charge: 0.05 * f64::from(cpus) * len as f64 / 3_600_000.0,
                cpu_used_ms: Some(len as u64 * u64::from(cpus) / 2),
            }
        })
        .collect()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let now = trestle_core::clock::now_ms();
    let today = day_of(now);
    println!("records: {n}");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend, "bench_costs").await;
        let s = db.shared();
        let recs = records(n, now);
        let t0 = Instant::now();
        for chunk in recs.chunks(10_000) {
            s.record_usage(chunk, &[], &[], now).await?;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{backend:?}: stored {n} records in {secs:.1} s ({:.0}/s)",
            n as f64 / secs
        );
        let base = UsageFilter {
            from_day: today - 29,
            to_day: today,
            by: Grouping::Project,
            per_day: false,
            project: None,
            user: None,
            index: None,
            visible: None,
        };
        let queries: Vec<(&str, UsageFilter)> = vec![
            (
                "by project, per day, 30 days (the chart)",
                UsageFilter {
                    per_day: true,
                    ..base.clone()
                },
            ),
            ("by project, 30 days", base.clone()),
            (
                "by user, 30 days (top users)",
                UsageFilter {
                    by: Grouping::User,
                    ..base.clone()
                },
            ),
            (
                "yesterday",
                UsageFilter {
                    from_day: today - 1,
                    to_day: today - 1,
                    by: Grouping::Day,
                    per_day: true,
                    ..base.clone()
                },
            ),
            (
                "one user's own view, by project",
                UsageFilter {
                    visible: Some(("user-7".into(), vec![])),
                    ..base.clone()
                },
            ),
            (
                "a manager's view, by user",
                UsageFilter {
                    by: Grouping::User,
                    visible: Some((
                        "user-7".into(),
                        vec!["project-3".into(), "project-4".into()],
                    )),
                    ..base.clone()
                },
            ),
        ];
        for (name, f) in &queries {
            let mut lat = Vec::with_capacity(200);
            for _ in 0..200 {
                let t = Instant::now();
                let rows = s.usage(f).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(!rows.is_empty(), "{name}: no rows");
            }
            println!(
                "{backend:?}: {name}: p50 {:.2} ms, p99 {:.2} ms",
                pct(&mut lat, 0.5),
                pct(&mut lat, 0.99)
            );
        }
        let mut lat = Vec::with_capacity(200);
        for i in 0..200 {
            let t = Instant::now();
            s.spend(
                ScopeKind::Project,
                &format!("project-{}", i % 30),
                today - 29,
                today + 1,
            )
            .await?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "{backend:?}: a budget's spend this period: p50 {:.2} ms, p99 {:.2} ms",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
        db.finish().await;
    }
    Ok(())
}
