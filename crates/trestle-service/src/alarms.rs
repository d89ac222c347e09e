//! Resource alarms on the server: samples from worker heartbeats are
//! stored, each attempt's rules (its queue's, else the server's) are
//! evaluated with [`trestle_core::alarm::evaluate`] from the stored
//! states, and the states that changed are saved with their
//! `alarm.fired` / `alarm.cleared` events in one transaction. A leader
//! loop clears the alarms of attempts that ended and downsamples old
//! samples. The latest sample of each running attempt is kept in memory
//! for `/metrics`.

use crate::ServiceResult;
use crate::loops::BackgroundLoop;
use crate::state::Service;
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;
use trestle_core::alarm::{self, AlarmRule, AlarmState, Point, RuleState};
use trestle_core::api::AttemptKey;
use trestle_core::api::samples::{AlarmView, TaskSample};
use trestle_core::notify::event::{EventType, NewEvent};
use trestle_store::SampledAttempt;

/// Raw samples are kept this long, then one per minute.
pub const RAW_FOR: Duration = Duration::from_secs(86_400);
/// Downsampled samples are kept this long, then dropped.
pub const KEEP_FOR: Duration = Duration::from_secs(30 * 86_400);
/// How often old samples are downsampled.
const PRUNE_EVERY_MS: i64 = 10 * 60 * 1000;
/// Attempts whose latest sample is older than this leave `/metrics`.
const LATEST_FOR_MS: i64 = 120_000;
/// Latest samples kept before the old ones are swept out.
const LATEST_MAX: usize = 20_000;

/// The alarm rules in force (`[alarms]` and `[queues.NAME.alarms]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSettings {
    /// The rules of queues that do not set their own.
    pub rules: Vec<AlarmRule>,
    /// Queues with their own rules.
    pub queues: HashMap<String, Vec<AlarmRule>>,
    /// How often the alarms of ended attempts are cleared.
    pub clear_every: Duration,
}

impl Default for AlarmSettings {
    fn default() -> Self {
        AlarmSettings {
            rules: alarm::default_rules(),
            queues: HashMap::new(),
            clear_every: Duration::from_secs(2),
        }
    }
}

impl AlarmSettings {
    /// The rules of `queue`.
    pub fn rules_for(&self, queue: &str) -> &[AlarmRule] {
        self.queues.get(queue).unwrap_or(&self.rules)
    }
}

/// The latest sample of a running attempt, for `/metrics`.
#[derive(Debug, Clone)]
struct Latest {
    queue: String,
    sample: TaskSample,
    firing: Vec<String>,
}

/// Alarm settings and the latest samples this server received.
#[derive(Debug, Default)]
pub struct Alarms {
    /// The rules.
    pub settings: AlarmSettings,
    latest: Mutex<HashMap<AttemptKey, Latest>>,
    last_prune: Mutex<i64>,
}

impl Alarms {
    /// Alarms with these settings.
    pub fn new(settings: AlarmSettings) -> Alarms {
        Alarms {
            settings,
            ..Alarms::default()
        }
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, HashMap<AttemptKey, Latest>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prometheus gauges of the latest samples of running attempts, per
    /// queue (bounded by the queues, not the tasks): tasks sampled, their
    /// mean and highest CPU and memory percent, and alarms firing per rule.
    pub fn render_metrics(&self, now: i64) -> String {
        let mut latest = self.latest();
        latest.retain(|_, l| now - l.sample.time < LATEST_FOR_MS);
        #[derive(Default)]
        struct Q {
            n: u64,
            cpu: f64,
            cpu_max: f64,
            mem: f64,
            mem_max: f64,
            firing: HashMap<String, u64>,
        }
        let mut by_queue: std::collections::BTreeMap<&str, Q> = Default::default();
        for l in latest.values() {
            let q = by_queue.entry(l.queue.as_str()).or_default();
            q.n += 1;
            q.cpu += l.sample.cpu_pct;
            q.cpu_max = q.cpu_max.max(l.sample.cpu_pct);
            q.mem += l.sample.mem_pct;
            q.mem_max = q.mem_max.max(l.sample.mem_pct);
            for r in &l.firing {
                *q.firing.entry(r.clone()).or_default() += 1;
            }
        }
        let mut o = String::new();
        type Gauge = (&'static str, &'static str, fn(&Q) -> f64);
        let gauges: [Gauge; 5] = [
            (
                "trestle_task_sampled",
                "Running tasks with a recent resource sample.",
                |q| q.n as f64,
            ),
            (
                "trestle_task_cpu_percent_mean",
                "Mean CPU use of running tasks, percent of their allocated CPUs.",
                |q| q.cpu / q.n.max(1) as f64,
            ),
            (
                "trestle_task_cpu_percent_max",
                "Highest CPU use of a running task, percent of its allocated CPUs.",
                |q| q.cpu_max,
            ),
            (
                "trestle_task_memory_percent_mean",
                "Mean resident memory of running tasks, percent of their request.",
                |q| q.mem / q.n.max(1) as f64,
            ),
            (
                "trestle_task_memory_percent_max",
                "Highest resident memory of a running task, percent of its request.",
                |q| q.mem_max,
            ),
        ];
        for (name, help, f) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (queue, q) in &by_queue {
                let _ = writeln!(o, "{name}{{queue=\"{queue}\"}} {:.1}", f(q));
            }
        }
        let _ = writeln!(
            o,
            "# HELP trestle_task_alarms Resource alarms firing on running tasks.\n\
             # TYPE trestle_task_alarms gauge"
        );
        for (queue, q) in &by_queue {
            for rule in self.settings.rules_for(queue) {
                let n = q.firing.get(&rule.name).copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "trestle_task_alarms{{queue=\"{queue}\",rule=\"{}\"}} {n}",
                    rule.name
                );
            }
        }
        o
    }
}

fn point(s: &TaskSample) -> Point {
    Point {
        time: s.time,
        cpu: Some(s.cpu_pct),
        memory: Some(s.mem_pct),
        disk: s.disk_pct,
    }
}

/// The event of a change of `rule` on attempt `a`.
fn event(a: &SampledAttempt, rule: &AlarmRule, to: AlarmState, time: i64, value: f64) -> NewEvent {
    let (kind, what) = match to {
        AlarmState::Alarm => (EventType::AlarmFired, "fired"),
        AlarmState::Ok => (EventType::AlarmCleared, "cleared"),
    };
    NewEvent {
        kind,
        subject: format!("job:{}", a.key.job_id),
        title: format!("Job {} ({})", a.key.job_id, a.name),
        owner: a.owner.clone(),
        project: a.project.clone(),
        link: Some(format!("/ui/jobs/{}", a.key.job_id)),
        detail: Some(format!(
            "{} {what} on attempt {}: {} (now {value:.1}%)",
            rule.name,
            a.key.attempt,
            alarm::describe(rule)
        )),
        time,
    }
}

/// Stores the samples of a worker's heartbeat and evaluates the alarm
/// rules of the attempts they belong to.
pub async fn ingest(app: &Service, worker_id: &str, samples: &[TaskSample]) -> ServiceResult<()> {
    let kept = app.store.record_samples(worker_id, samples).await?;
    let mut by_key: HashMap<AttemptKey, Vec<&TaskSample>> = HashMap::new();
    for s in samples {
        by_key
            .entry(AttemptKey {
                job_id: s.job_id,
                attempt: s.attempt,
            })
            .or_default()
            .push(s);
    }
    let mut states = Vec::new();
    let mut events = Vec::new();
    let mut latest = Vec::new();
    for a in &kept {
        let Some(mine) = by_key.get(&a.key) else {
            continue;
        };
        let rules = app.alarms.settings.rules_for(&a.queue);
        let points: Vec<Point> = mine.iter().map(|s| point(s)).collect();
        let e = alarm::evaluate(rules, &a.alarms, &points);
        for c in &e.changes {
            events.push(event(a, &c.rule, c.to, c.time, c.value));
        }
        let mut firing = Vec::new();
        for st in e.states {
            if st.state == AlarmState::Alarm {
                firing.push(st.rule.clone());
            }
            if !a.alarms.contains(&st) {
                states.push((a.key, st));
            }
        }
        if let Some(last) = mine.iter().max_by_key(|s| s.time) {
            latest.push((
                a.key,
                Latest {
                    queue: a.queue.clone(),
                    sample: (*last).clone(),
                    firing,
                },
            ));
        }
    }
    {
        let mut map = app.alarms.latest();
        map.extend(latest);
        // Attempts that ended without a scrape in between go here.
        if map.len() > LATEST_MAX {
            let now = crate::now_ms();
            map.retain(|_, l| now - l.sample.time < LATEST_FOR_MS);
        }
    }
    app.store.save_alarms(&states, &events).await?;
    Ok(())
}

/// Clears the alarms of attempts that are no longer running, each with
/// its `alarm.cleared` event; returns how many.
pub async fn clear_ended(app: &Service, now: i64) -> ServiceResult<usize> {
    let ended = app.store.ended_alarms().await?;
    if ended.is_empty() {
        return Ok(0);
    }
    let mut states = Vec::with_capacity(ended.len());
    let mut events = Vec::with_capacity(ended.len());
    let mut gone = Vec::new();
    for (a, st) in &ended {
        let rule = app
            .alarms
            .settings
            .rules_for(&a.queue)
            .iter()
            .find(|r| r.name == st.rule)
            .cloned()
            .unwrap_or_else(|| AlarmRule {
                name: st.rule.clone(),
                metric: alarm::Metric::Cpu,
                direction: alarm::Direction::Above,
                threshold: 0.0,
                duration_ms: 0,
            });
        let mut e = event(a, &rule, AlarmState::Ok, now, st.value.unwrap_or(0.0));
        e.detail = Some(format!(
            "{} cleared on attempt {}: the attempt ended",
            st.rule, a.key.attempt
        ));
        events.push(e);
        states.push((
            a.key,
            RuleState {
                state: AlarmState::Ok,
                breach_since: None,
                changed_at: now,
                ..st.clone()
            },
        ));
        gone.push(a.key);
    }
    app.store.save_alarms(&states, &events).await?;
    let mut latest = app.alarms.latest();
    for k in gone {
        latest.remove(&k);
    }
    Ok(ended.len())
}

/// A job's alarm states as the API shows them.
pub async fn views(app: &Service, job_id: i64, queue: &str) -> ServiceResult<Vec<AlarmView>> {
    let rules = app.alarms.settings.rules_for(queue);
    Ok(app
        .store
        .alarms(job_id)
        .await?
        .into_iter()
        .map(|(attempt, st)| AlarmView {
            attempt,
            condition: rules
                .iter()
                .find(|r| r.name == st.rule)
                .map(alarm::describe)
                .unwrap_or_default(),
            rule: st.rule,
            state: st.state,
            changed_at: st.changed_at,
            value: st.value,
        })
        .collect())
}

/// The leader loop: clears the alarms of ended attempts, and every ten
/// minutes downsamples samples older than a day and drops those older
/// than 30 days.
pub struct AlarmLoop {
    /// Shared state.
    pub app: Service,
}

#[async_trait]
impl BackgroundLoop for AlarmLoop {
    fn name(&self) -> &'static str {
        "alarms"
    }
    fn interval(&self) -> Duration {
        self.app.alarms.settings.clear_every
    }
    async fn tick(&self) -> ServiceResult<()> {
        let now = crate::now_ms();
        let n = clear_ended(&self.app, now).await?;
        if n > 0 {
            tracing::info!(cleared = n, "alarms of ended attempts cleared");
        }
        let due = {
            let mut last = self
                .app
                .alarms
                .last_prune
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let due = now - *last >= PRUNE_EVERY_MS;
            if due {
                *last = now;
            }
            due
        };
        if due {
            let gone = self
                .app
                .store
                .prune_samples(
                    now - RAW_FOR.as_millis() as i64,
                    now - KEEP_FOR.as_millis() as i64,
                )
                .await?;
            if gone > 0 {
                tracing::info!(rows = gone, "old resource samples downsampled");
            }
        }
        Ok(())
    }
}
