//! The autoscaler's decision, pure: from a snapshot of runnable demand per
//! queue and of the workers each compute environment has (live or still
//! starting), and the time, to a plan — launch `count` workers of a shape
//! in a CE, retire a worker.
//!
//! Demand is served queue by queue, highest priority first. A job first
//! goes to spare capacity (free room on live workers, or workers still
//! starting) in the queue's CEs, in the queue's order; otherwise to a new
//! worker in the first CE that has room, spilling to the next CE once one
//! is at `max_vcpus`. The shape comes from the CE's allocation strategy:
//!
//! - `best-fit`: the cheapest shape that fits the job. If the provider
//!   recently reported it cannot be had, the job waits for it; it never
//!   passes `max_vcpus`.
//! - `best-fit-progressive`: the cheapest fitting shape that can be had,
//!   moving to the next-best after capacity errors; launches while the CE
//!   is below `max_vcpus`, so it may pass it by one instance.
//! - `spot-capacity-optimized`: the fitting shape with the most available
//!   capacity as the provider reports it (then the cheapest); like
//!   progressive otherwise.
//!
//! Jobs that no shape of any of their queue's CEs could ever fit are
//! reported, never launched for. Without demand, idle workers are retired
//! after the idle timeout and unused starting ones after the same time,
//! down to `min_vcpus` (zero by default); below `min_vcpus` workers are
//! launched even without demand.

use crate::batch::job::Resources;
use crate::batch::placement::Capacity;
use crate::compute::{AllocationStrategy, ComputeEnvSpec, Shape};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a capacity error keeps a shape out of the strategies' choice.
pub const DEFAULT_CAPACITY_ERROR_TTL_MS: i64 = 60_000;

/// Runnable jobs of one queue that need the same resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandBucket {
    /// The queue.
    pub queue: String,
    /// What each job needs.
    pub resources: Resources,
    /// How many such jobs are runnable.
    pub count: u64,
}

/// A queue's route to capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRoute {
    /// Queue name.
    pub name: String,
    /// Higher is served first.
    pub priority: i64,
    /// CEs in order of preference.
    pub envs: Vec<String>,
}

/// What a worker is doing, as far as scaling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Launched, not yet registered (a pending Slurm pilot, a process
    /// still starting). All its capacity counts as spare.
    Starting {
        /// When it was launched, if known.
        since: Option<i64>,
    },
    /// Registered and leasing.
    Live {
        /// Capacity not held by leased jobs.
        free: Capacity,
        /// Since when it holds no job (none while it holds one).
        idle_since: Option<i64>,
    },
    /// The provider says it can never start (a pilot pending for a reason
    /// waiting cannot cure); retired, and its shape counts as unavailable.
    Stuck,
}

/// One worker (or would-be worker) of a CE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The provider's id (or the worker id for workers the provider does
    /// not know, such as ones started by hand or by another server).
    pub id: String,
    /// Its shape's name, when known.
    pub shape: Option<String>,
    /// Its capacity.
    pub capacity: Capacity,
    /// What it is doing.
    pub state: InstanceState,
    /// Whether this autoscaler may retire it through its provider.
    pub retirable: bool,
}

/// A CE as the autoscaler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSnapshot {
    /// The CE.
    pub spec: ComputeEnvSpec,
    /// Its workers.
    pub instances: Vec<Instance>,
    /// Shapes the provider recently could not supply: name -> time.
    pub capacity_errors: BTreeMap<String, i64>,
    /// Instances of each shape the provider says could start now
    /// (`spot-capacity-optimized`); shapes missing are unknown.
    pub available: BTreeMap<String, u64>,
    /// Launching is paused (the CE is disabled, or its provider failed and
    /// is backing off).
    pub paused: bool,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleInput {
    /// Now, ms since the epoch.
    pub now: i64,
    /// Routes of the queues with demand.
    pub queues: Vec<QueueRoute>,
    /// Runnable demand, each queue's buckets in lease order.
    pub demand: Vec<DemandBucket>,
    /// The CEs.
    pub envs: Vec<EnvSnapshot>,
    /// How long a capacity error counts, ms.
    pub capacity_error_ttl_ms: i64,
    /// The server is shutting down: the plan launches nothing (not even
    /// for `min_vcpus`) and retires nothing (the shutdown stops every
    /// worker the server started).
    pub stopping: bool,
}

/// Why workers are launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchReason {
    /// Runnable jobs need them.
    Demand,
    /// The CE is below `min_vcpus`.
    MinVcpus,
}

/// Start `count` workers of `shape` in `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// CE name.
    pub env: String,
    /// Shape name.
    pub shape: String,
    /// How many.
    pub count: u32,
    /// Why.
    pub reason: LaunchReason,
}

/// Why a worker is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetireReason {
    /// Live without work for the idle timeout.
    Idle,
    /// Still starting, and no job needs it any more.
    Unneeded,
    /// It can never start.
    Stuck,
}

/// Stop one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retire {
    /// CE name.
    pub env: String,
    /// Instance id.
    pub instance: String,
    /// Why.
    pub reason: RetireReason,
}

/// Jobs of a queue that no shape of its CEs can ever fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaceable {
    /// Queue.
    pub queue: String,
    /// What they need.
    pub resources: Resources,
    /// How many.
    pub count: u64,
}

/// The decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Workers to start.
    pub launches: Vec<Launch>,
    /// Workers to stop.
    pub retire: Vec<Retire>,
    /// Demand nothing could ever run.
    pub unplaceable: Vec<Unplaceable>,
    /// Shapes a `best-fit` CE waits for (CE, shape).
    pub waiting: Vec<(String, String)>,
}

/// A slot of spare capacity jobs can be packed into.
struct Slot {
    free: Capacity,
    /// Index into `Work::instances`, or `None` for a planned worker.
    instance: Option<usize>,
}

/// Per-CE working state while planning.
struct Work<'a> {
    snap: &'a EnvSnapshot,
    /// vCPUs of every worker, existing and planned.
    vcpus: u64,
    slots: Vec<Slot>,
    /// Whether each existing instance received demand in this plan.
    used: Vec<bool>,
    /// Planned launches, by shape index, in order.
    planned: Vec<(usize, LaunchReason)>,
    /// Shapes that cannot be had now.
    unavailable: Vec<bool>,
}

impl<'a> Work<'a> {
    fn new(snap: &'a EnvSnapshot, now: i64, ttl: i64) -> Work<'a> {
        let mut slots = Vec::new();
        let mut vcpus = 0u64;
        let mut unavailable: Vec<bool> = snap
            .spec
            .shapes
            .iter()
            .map(|s| {
                snap.capacity_errors
                    .get(&s.name)
                    .is_some_and(|at| now.saturating_sub(*at) < ttl)
            })
            .collect();
        for (i, inst) in snap.instances.iter().enumerate() {
            match inst.state {
                InstanceState::Stuck => {
                    if let Some(k) = inst
                        .shape
                        .as_ref()
                        .and_then(|n| snap.spec.shapes.iter().position(|s| &s.name == n))
                    {
                        unavailable[k] = true;
                    }
                    continue;
                }
                InstanceState::Starting { .. } => slots.push(Slot {
                    free: inst.capacity,
                    instance: Some(i),
                }),
                InstanceState::Live { free, .. } => slots.push(Slot {
                    free,
                    instance: Some(i),
                }),
            }
            vcpus += u64::from(inst.capacity.cpus);
        }
        Work {
            snap,
            vcpus,
            slots,
            used: vec![false; snap.instances.len()],
            planned: Vec::new(),
            unavailable,
        }
    }

    fn spec(&self) -> &ComputeEnvSpec {
        &self.snap.spec
    }

    fn launchable(&self) -> bool {
        self.spec().enabled && !self.snap.paused
    }

    /// Packs a job into spare capacity; true when it fit.
    fn absorb(&mut self, r: &Resources) -> bool {
        for slot in &mut self.slots {
            if slot.free.fits(r) {
                slot.free = slot.free.minus(r);
                if let Some(i) = slot.instance {
                    self.used[i] = true;
                }
                return true;
            }
        }
        false
    }

    fn any_shape_fits(&self, r: &Resources) -> bool {
        self.spec().shapes.iter().any(|s| s.capacity().fits(r))
    }

    /// Whether a worker of `vcpus` may start now.
    fn room_for(&self, vcpus: u32) -> bool {
        let max = u64::from(self.spec().max_vcpus);
        if self.spec().allocation_strategy.may_overshoot() {
            self.vcpus < max
        } else {
            self.vcpus + u64::from(vcpus) <= max
        }
    }

    fn launch(&mut self, shape: usize, reason: LaunchReason, r: Option<&Resources>) {
        let cap = self.spec().shapes[shape].capacity();
        self.vcpus += u64::from(cap.cpus);
        self.planned.push((shape, reason));
        self.slots.push(Slot {
            free: match r {
                Some(r) => cap.minus(r),
                None => cap,
            },
            instance: None,
        });
    }
}

/// The result of asking a CE for a worker for one job.
enum Choice {
    /// Launch this shape.
    Launch(usize),
    /// The CE is at its limit (or cannot supply anything): try the next.
    Full,
    /// `best-fit` waits for its shape.
    Wait(usize),
}

/// Shape indices that fit `r`, cheapest first (then fewest vCPUs, name).
fn by_price(shapes: &[Shape], r: &Resources) -> Vec<usize> {
    let mut v: Vec<usize> = (0..shapes.len())
        .filter(|i| shapes[*i].capacity().fits(r))
        .collect();
    v.sort_by(|a, b| {
        let (x, y) = (&shapes[*a], &shapes[*b]);
        x.price_per_hour
            .total_cmp(&y.price_per_hour)
            .then(x.vcpus.cmp(&y.vcpus))
            .then(x.mem_mib.cmp(&y.mem_mib))
            .then(x.name.cmp(&y.name))
    });
    v
}

fn choose(w: &Work<'_>, r: &Resources) -> Choice {
    let shapes = &w.spec().shapes;
    let fitting = by_price(shapes, r);
    match w.spec().allocation_strategy {
        AllocationStrategy::BestFit => {
            let Some(&best) = fitting.first() else {
                return Choice::Full;
            };
            if !w.room_for(shapes[best].vcpus) {
                Choice::Full
            } else if w.unavailable[best] {
                Choice::Wait(best)
            } else {
                Choice::Launch(best)
            }
        }
        AllocationStrategy::BestFitProgressive | AllocationStrategy::SpotCapacityOptimized => {
            let mut ok: Vec<usize> = fitting.into_iter().filter(|i| !w.unavailable[*i]).collect();
            if w.spec().allocation_strategy == AllocationStrategy::SpotCapacityOptimized {
                // Stable: among equal availability the cheaper stays first.
                ok.sort_by_key(|i| {
                    std::cmp::Reverse(w.snap.available.get(&shapes[*i].name).copied().unwrap_or(0))
                });
            }
            match ok.first() {
                Some(&i) if w.room_for(shapes[i].vcpus) => Choice::Launch(i),
                _ => Choice::Full,
            }
        }
    }
}

/// Decides what to launch and what to retire.
pub fn plan(input: &ScaleInput) -> Plan {
    let mut plan = Plan::default();
    if input.stopping {
        return plan;
    }
    let mut works: Vec<Work<'_>> = input
        .envs
        .iter()
        .map(|e| Work::new(e, input.now, input.capacity_error_ttl_ms))
        .collect();
    let index: BTreeMap<&str, usize> = input
        .envs
        .iter()
        .enumerate()
        .map(|(i, e)| (e.spec.name.as_str(), i))
        .collect();
    let mut queues: Vec<&QueueRoute> = input.queues.iter().collect();
    queues.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
    let mut waiting = Vec::new();
    for q in queues {
        let route: Vec<usize> = q
            .envs
            .iter()
            .filter_map(|e| index.get(e.as_str()).copied())
            .collect();
        for b in input.demand.iter().filter(|b| b.queue == q.name) {
            place_bucket(&mut works, &route, b, &mut plan, &mut waiting);
        }
    }
    // Demand of queues without a route cannot go anywhere.
    for b in &input.demand {
        if !input.queues.iter().any(|q| q.name == b.queue) {
            add_unplaceable(&mut plan, b, b.count);
        }
    }
    for w in &mut works {
        fill_minimum(w);
    }
    for w in &works {
        retire(w, input.now, &mut plan);
        let mut counts: BTreeMap<(usize, LaunchReason), u32> = BTreeMap::new();
        let mut order = Vec::new();
        for p in &w.planned {
            let c = counts.entry(*p).or_insert(0);
            if *c == 0 {
                order.push(*p);
            }
            *c += 1;
        }
        for p in order {
            plan.launches.push(Launch {
                env: w.spec().name.clone(),
                shape: w.spec().shapes[p.0].name.clone(),
                count: counts[&p],
                reason: p.1,
            });
        }
    }
    waiting.sort();
    waiting.dedup();
    plan.waiting = waiting
        .into_iter()
        .map(|(e, s): (usize, usize)| {
            (
                works[e].spec().name.clone(),
                works[e].spec().shapes[s].name.clone(),
            )
        })
        .collect();
    plan
}

fn add_unplaceable(plan: &mut Plan, b: &DemandBucket, count: u64) {
    if count == 0 {
        return;
    }
    match plan
        .unplaceable
        .iter_mut()
        .find(|u| u.queue == b.queue && u.resources == b.resources)
    {
        Some(u) => u.count += count,
        None => plan.unplaceable.push(Unplaceable {
            queue: b.queue.clone(),
            resources: b.resources,
            count,
        }),
    }
}

fn place_bucket(
    works: &mut [Work<'_>],
    route: &[usize],
    b: &DemandBucket,
    plan: &mut Plan,
    waiting: &mut Vec<(usize, usize)>,
) {
    let r = &b.resources;
    if !route.iter().any(|&e| works[e].any_shape_fits(r)) {
        // Spare capacity of odd-shaped workers (started by hand) may still
        // run it, but nothing is ever launched for it.
        let mut left = b.count;
        while left > 0 && route.iter().any(|&e| works[e].absorb(r)) {
            left -= 1;
        }
        add_unplaceable(plan, b, left);
        return;
    }
    for _ in 0..b.count {
        if route.iter().any(|&e| works[e].absorb(r)) {
            continue;
        }
        let mut launched = false;
        for &e in route {
            let w = &mut works[e];
            if !w.launchable() || !w.any_shape_fits(r) {
                continue;
            }
            match choose(w, r) {
                Choice::Launch(s) => {
                    w.launch(s, LaunchReason::Demand, Some(r));
                    launched = true;
                    break;
                }
                Choice::Wait(s) => {
                    waiting.push((e, s));
                    break;
                }
                Choice::Full => {}
            }
        }
        if !launched {
            // Identical jobs behind this one cannot be served either.
            return;
        }
    }
}

/// Launches the cheapest available shapes until the CE holds `min_vcpus`,
/// never past `max_vcpus`.
fn fill_minimum(w: &mut Work<'_>) {
    if !w.launchable() {
        return;
    }
    let min = u64::from(w.spec().min_vcpus);
    let max = u64::from(w.spec().max_vcpus);
    let none = Resources {
        cpus: 0,
        mem_mib: 0,
        gpus: 0,
    };
    let order: Vec<usize> = by_price(&w.spec().shapes, &none)
        .into_iter()
        .filter(|i| !w.unavailable[*i])
        .collect();
    while w.vcpus < min {
        let Some(&s) = order
            .iter()
            .find(|s| w.vcpus + u64::from(w.spec().shapes[**s].vcpus) <= max)
        else {
            return;
        };
        w.launch(s, LaunchReason::MinVcpus, None);
    }
}

/// Retires stuck workers, idle live ones and unneeded starting ones, never
/// below `min_vcpus`; the longest idle go first.
fn retire(w: &Work<'_>, now: i64, plan: &mut Plan) {
    let spec = w.spec();
    let timeout = (spec.idle_timeout_secs as i64).saturating_mul(1000);
    let min = u64::from(spec.min_vcpus);
    let mut left = w.vcpus;
    let mut candidates: Vec<(i64, usize, RetireReason)> = Vec::new();
    for (i, inst) in w.snap.instances.iter().enumerate() {
        if !inst.retirable {
            continue;
        }
        match inst.state {
            InstanceState::Stuck => plan.retire.push(Retire {
                env: spec.name.clone(),
                instance: inst.id.clone(),
                reason: RetireReason::Stuck,
            }),
            InstanceState::Live {
                idle_since: Some(t),
                ..
            } if !w.used[i] && now.saturating_sub(t) >= timeout => {
                candidates.push((t, i, RetireReason::Idle))
            }
            InstanceState::Starting { since } if !w.used[i] => {
                let since = since.unwrap_or(now);
                if now.saturating_sub(since) >= timeout || !spec.enabled {
                    candidates.push((since, i, RetireReason::Unneeded));
                }
            }
            _ => {}
        }
    }
    candidates.sort();
    for (_, i, reason) in candidates {
        let inst = &w.snap.instances[i];
        let cpus = u64::from(inst.capacity.cpus);
        if left.saturating_sub(cpus) < min {
            continue;
        }
        left -= cpus;
        plan.retire.push(Retire {
            env: spec.name.clone(),
            instance: inst.id.clone(),
            reason,
        });
    }
}

#[cfg(test)]
#[path = "scale_tests.rs"]
mod tests;
