//! The meter: every ended attempt (batch or workspace session, finished,
//! failed or interrupted) becomes one usage record priced from its own
//! timestamps and its worker's shape; every worker that left becomes an
//! overhead record for the time its tasks did not use. A leader loop,
//! off the jobs' hot path: the store's unmetered-attempt queue is a
//! partial index, and records are keyed so that a retried tick never
//! counts twice.

use crate::ServiceResult;
use crate::loops::BackgroundLoop;
use crate::state::Service;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use trestle_core::Capacity;
use trestle_core::cost::{self, CostSettings, WorkerPrice};
use trestle_store::cost::{EndedWorker, RunningAttempt, Unmetered, UsageKind, UsageRecord, whole};

/// Attempts metered per transaction.
const BATCH: u32 = 2_000;
/// A worker's overhead is recorded this long after it left (its last
/// reports may still be arriving).
const SETTLE_MS: i64 = 60_000;

/// How a site charges and how often the meter and budgets run.
#[derive(Debug, Clone)]
pub struct CostConfig {
    /// Units, weights, the default price.
    pub settings: CostSettings,
    /// Time between meter ticks.
    pub meter_every: Duration,
    /// Time between budget evaluations.
    pub budget_every: Duration,
    /// The time limit an escrow reservation assumes for a job without
    /// one.
    pub default_max_run: Duration,
}

impl Default for CostConfig {
    fn default() -> Self {
        CostConfig {
            settings: CostSettings::default(),
            meter_every: Duration::from_secs(10),
            budget_every: Duration::from_secs(30),
            default_max_run: Duration::from_secs(24 * 3600),
        }
    }
}

/// The price of a worker that did not record one (it registered before
/// metering existed): its task's own resources at the default price.
fn unknown_worker(resources: trestle_core::Resources, s: &CostSettings) -> WorkerPrice {
    cost::price_worker(
        None,
        Capacity {
            cpus: resources.cpus,
            mem_mib: resources.mem_mib,
            gpus: resources.gpus,
        },
        s,
    )
}

/// The usage record of an ended attempt (pure). An attempt that never
/// started is charged nothing: a prefetched job waiting in its worker
/// did not use the machine.
pub fn attempt_record(u: &Unmetered, s: &CostSettings) -> UsageRecord {
    let (env, price) = match &u.worker {
        Some((env, p)) => (env.clone().unwrap_or_else(|| "-".into()), p.clone()),
        None => ("-".into(), unknown_worker(u.resources, s)),
    };
    let start = u.started_at.unwrap_or(u.ended_at).min(u.ended_at);
    let rate = cost::rate_per_hour(u.resources, &price, s);
    UsageRecord {
        id: format!("a:{}:{}", u.job_id, u.attempt),
        kind: if u.workspace_id.is_some() {
            UsageKind::Workspace
        } else {
            UsageKind::Job
        },
        job_id: Some(u.job_id),
        attempt: Some(u.attempt),
        parent_id: u.parent_id,
        workspace_id: u.workspace_id,
        worker_id: Some(u.worker_id.clone()),
        compute_env: env,
        user: u.owner.clone(),
        project: u.project.clone(),
        index_name: u.index_name.clone(),
        started_at: start,
        ended_at: u.ended_at,
        resources: u.resources,
        rate_per_hour: rate,
        charge: cost::charge(rate, start, u.ended_at),
        cpu_used_ms: u.cpu_ms,
    }
}

/// The overhead record of a worker that left, if it cost anything (pure).
pub fn overhead_record(w: &EndedWorker, s: &CostSettings) -> Option<UsageRecord> {
    let amount = cost::overhead(&w.price, s, w.started_at, w.ended_at, w.charged);
    if amount <= 0.0 {
        return None;
    }
    let size = whole(w.price.size);
    Some(UsageRecord {
        id: format!("o:{}", w.id),
        kind: UsageKind::Overhead,
        job_id: None,
        attempt: None,
        parent_id: None,
        workspace_id: None,
        worker_id: Some(w.id.clone()),
        compute_env: w.compute_env.clone().unwrap_or_else(|| "-".into()),
        user: String::new(),
        project: String::new(),
        index_name: String::new(),
        started_at: w.started_at,
        ended_at: w.ended_at.max(w.started_at),
        resources: size,
        rate_per_hour: cost::rate_per_hour(size, &w.price, s),
        charge: amount,
        cpu_used_ms: None,
    })
}

/// What a running attempt has cost so far (pure).
pub fn running_charge(a: &RunningAttempt, s: &CostSettings, now: i64) -> f64 {
    let price = a
        .price
        .clone()
        .unwrap_or_else(|| unknown_worker(a.resources, s));
    cost::charge(
        cost::rate_per_hour(a.resources, &price, s),
        a.started_at,
        now,
    )
}

/// The highest rate `resources` could be charged at on any shape that
/// holds it (what an escrow reservation assumes: the job may land on the
/// dearest).
pub fn highest_rate(app: &Service, resources: trestle_core::Resources) -> f64 {
    let s = &app.costs.settings;
    let topology = app.compute.topology();
    topology
        .envs
        .iter()
        .flat_map(|e| e.spec.shapes.iter())
        .filter(|shape| shape.capacity().fits(&resources))
        .map(|shape| {
            let p = WorkerPrice {
                shape: shape.name.clone(),
                size: shape.capacity(),
                price_per_hour: shape.price_per_hour,
            };
            cost::rate_per_hour(resources, &p, s)
        })
        .fold(
            cost::rate_per_hour(resources, &unknown_worker(resources, s), s),
            f64::max,
        )
}

/// Prices a worker as it registers: its compute environment's shape.
pub async fn price_new_worker(
    app: &Service,
    id: &str,
    compute_env: Option<&str>,
    capacity: Capacity,
) -> ServiceResult<()> {
    let topology = app.compute.topology();
    let env = compute_env.and_then(|n| topology.envs.iter().find(|e| e.spec.name == n));
    let price = cost::price_worker(env.map(|e| &e.spec), capacity, &app.costs.settings);
    app.store
        .record_worker_price(id, compute_env, &price, crate::now_ms())
        .await?;
    Ok(())
}

/// One meter pass: every ended attempt waiting, then the day's storage,
/// then the overhead of workers that left. Returns the records stored.
/// `storage` is what this server already recorded of today's storage.
pub async fn meter(app: &Service, storage: &Mutex<StorageDay>) -> ServiceResult<u64> {
    let s = &app.costs.settings;
    let mut stored = 0;
    loop {
        let batch = app.store.unmetered(BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let records: Vec<UsageRecord> = batch.iter().map(|u| attempt_record(u, s)).collect();
        let keys: Vec<(i64, u32)> = batch.iter().map(|u| (u.job_id, u.attempt)).collect();
        let n = app
            .store
            .record_usage(&records, &keys, &[], crate::now_ms())
            .await?;
        count(app, n, &records);
        stored += n;
        if batch.len() < BATCH as usize {
            break;
        }
    }
    stored += meter_storage(app, storage).await?;
    let now = crate::now_ms();
    let workers = app.store.ended_workers(now - SETTLE_MS, 500).await?;
    if !workers.is_empty() {
        let records: Vec<UsageRecord> = workers
            .iter()
            .filter_map(|w| overhead_record(w, s))
            .collect();
        let ids: Vec<String> = workers.iter().map(|w| w.id.clone()).collect();
        let n = app.store.record_usage(&records, &[], &ids, now).await?;
        count(app, n, &records);
        stored += n;
    }
    Ok(stored)
}

/// The studies whose storage one day has been charged for (on this
/// server; the records' keys keep another server or a restart from
/// charging again).
#[derive(Debug, Default)]
pub struct StorageDay {
    day: i64,
    done: HashSet<i64>,
}

/// Charges each study's storage once per UTC day (records keyed
/// `s:{study}:{day}`), at the size it has when a tick of that day first
/// sees it stored; each tick reads the list of studies and writes only
/// those not charged yet today.
async fn meter_storage(app: &Service, storage: &Mutex<StorageDay>) -> ServiceResult<u64> {
    let per = app.costs.settings.storage_per_gib_month;
    if per <= 0.0 {
        return Ok(0);
    }
    let now = crate::now_ms();
    let day = trestle_core::cost::daily::day_of(now);
    let start = day * trestle_core::cost::daily::DAY_MS;
    let studies = app
        .store
        .studies(&trestle_store::StudyFilter::default())
        .await?;
    let due: Vec<_> = {
        let mut st = storage.lock().unwrap_or_else(|p| p.into_inner());
        if st.day != day {
            *st = StorageDay {
                day,
                done: HashSet::new(),
            };
        }
        studies
            .into_iter()
            .filter(|s| s.stored_bytes > 0 && !st.done.contains(&s.id))
            .collect()
    };
    if due.is_empty() {
        return Ok(0);
    }
    let projects: std::collections::HashMap<String, String> = app
        .store
        .list_projects()
        .await?
        .into_iter()
        .map(|p| (p.name, p.index))
        .collect();
    let records: Vec<UsageRecord> = due
        .iter()
        .map(|st| UsageRecord {
            id: format!("s:{}:{day}", st.id),
            kind: UsageKind::Storage,
            job_id: None,
            attempt: None,
            parent_id: None,
            workspace_id: None,
            worker_id: None,
            compute_env: "storage".into(),
            user: st.owner.clone(),
            project: st.project.clone(),
            index_name: projects.get(&st.project).cloned().unwrap_or_default(),
            started_at: start,
            ended_at: start,
            resources: trestle_core::Resources {
                cpus: 0,
                mem_mib: 0,
                gpus: 0,
            },
            rate_per_hour: 0.0,
            charge: cost::storage_day(st.stored_bytes, per),
            cpu_used_ms: None,
        })
        .collect();
    let n = app.store.record_usage(&records, &[], &[], now).await?;
    count(app, n, &records);
    let mut st = storage.lock().unwrap_or_else(|p| p.into_inner());
    if st.day == day {
        st.done.extend(due.iter().map(|s| s.id));
    }
    Ok(n)
}

fn count(app: &Service, n: u64, records: &[UsageRecord]) {
    if n == 0 {
        return;
    }
    let mut per: BTreeMap<String, f64> = BTreeMap::new();
    for r in records {
        *per.entry(r.project.clone()).or_default() += r.charge;
    }
    app.metrics.metered(n, &per.into_iter().collect::<Vec<_>>());
}

/// The meter as a leader loop.
pub struct Meter {
    /// Shared state.
    pub app: Service,
    /// What this loop already charged of today's storage.
    storage: Mutex<StorageDay>,
}

impl Meter {
    /// The meter of `app`.
    pub fn new(app: Service) -> Meter {
        Meter {
            app,
            storage: Mutex::default(),
        }
    }
}

#[async_trait]
impl BackgroundLoop for Meter {
    fn name(&self) -> &'static str {
        "meter"
    }
    fn interval(&self) -> Duration {
        self.app.costs.meter_every
    }
    async fn tick(&self) -> ServiceResult<()> {
        meter(&self.app, &self.storage).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_core::Resources;

    fn price(cpus: u32, mem_mib: u64, per_hour: f64) -> WorkerPrice {
        WorkerPrice {
            shape: "c2".into(),
            size: Capacity {
                cpus,
                mem_mib,
                gpus: 0,
            },
            price_per_hour: per_hour,
        }
    }

    fn ended(started: Option<i64>, ended: i64, cpus: u32, mem_mib: u64) -> Unmetered {
        Unmetered {
            job_id: 7,
            attempt: 2,
            worker_id: "w-1".into(),
            started_at: started,
            ended_at: ended,
            cpu_ms: None,
            owner: "ada".into(),
            project: "genomics".into(),
            index_name: "default".into(),
            resources: Resources {
                cpus,
                mem_mib,
                gpus: 0,
            },
            parent_id: None,
            workspace_id: None,
            worker: Some((Some("cloud".into()), price(2, 4096, 0.72))),
        }
    }

    #[test]
    fn an_attempt_is_charged_its_share_from_its_own_timestamps() {
        let s = CostSettings::default();
        let r = attempt_record(&ended(Some(1_000), 1_000 + 3_600_000, 1, 100), &s);
        assert_eq!(r.id, "a:7:2");
        assert_eq!(r.kind, UsageKind::Job);
        assert!((r.charge - 0.36).abs() < 1e-12, "{}", r.charge);
        assert_eq!(r.compute_env, "cloud");
        // Never started: nothing.
        assert_eq!(attempt_record(&ended(None, 5_000, 1, 100), &s).charge, 0.0);
        // Most of the memory: by memory.
        let r = attempt_record(&ended(Some(0), 3_600_000, 1, 3072), &s);
        assert!((r.charge - 0.54).abs() < 1e-12);
    }

    #[test]
    fn overhead_is_the_shape_less_its_tasks() {
        let s = CostSettings::default();
        let w = EndedWorker {
            id: "w-1".into(),
            compute_env: None,
            price: price(2, 4096, 0.72),
            started_at: 0,
            ended_at: 3_600_000,
            charged: 0.36,
        };
        let r = overhead_record(&w, &s).unwrap();
        assert!((r.charge - 0.36).abs() < 1e-12);
        assert_eq!((r.id.as_str(), r.compute_env.as_str()), ("o:w-1", "-"));
        let free = EndedWorker {
            price: price(2, 4096, 0.0),
            ..w
        };
        assert!(overhead_record(&free, &s).is_none());
    }
}
