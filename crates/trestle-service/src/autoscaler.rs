//! The autoscaler loop (one per cluster, under a leader lease): reads the
//! snapshot — runnable demand per queue, every CE's workers as their
//! providers and the worker registry see them — asks the pure
//! [`trestle_core::compute::scale::plan`], and applies the plan: launches workers
//! with a short-lived worker credential, retires workers, and records what
//! happened as CE events and status. Providers' capacity errors keep the
//! failing shape out of the strategies' choice for a minute; other launch
//! failures mark the CE `INVALID` and pause it with a growing back-off
//! (not silent retries) until its settings change.

use crate::loops::BackgroundLoop;
use crate::principal::{hash_token, new_token, token_id};
use crate::state::Service;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use trestle_compute::{ComputeError, InstanceStatus, LaunchRequest, Provider, ProviderWorker};
use trestle_core::api::WorkerView;
use trestle_core::api::compute::{STATUS_INVALID, STATUS_VALID};
use trestle_core::compute::scale::{
    DEFAULT_CAPACITY_ERROR_TTL_MS, EnvSnapshot, Instance, InstanceState, Plan, RetireReason,
    ScaleInput, plan,
};
use trestle_core::compute::{AllocationStrategy, ComputeEnvSpec, ProviderKind};
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::Scope;
use trestle_core::{Capacity, Resources};

/// First pause after a launch failure; doubles up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 15_000;
/// Longest pause after launch failures.
const MAX_BACKOFF_MS: i64 = 600_000;
/// Workers that end before registering this many times in a row make the
/// CE `INVALID`.
const START_FAILURES: u32 = 3;
/// Lifetime of local workers' credentials (they have no time limit).
const LOCAL_TOKEN_MS: i64 = 7 * 24 * 3600 * 1000;
/// Slack added to a pilot's time limit for its credential.
const TOKEN_SLACK_MS: i64 = 15 * 60 * 1000;
/// A worker no provider of this server vouches for counts as capacity
/// only while it has been heard from this recently (idle workers
/// long-poll every few seconds); a dead one is reaped much later.
const SILENT_MS: i64 = 15_000;

/// A CE paused after failures.
struct Backoff {
    spec: ComputeEnvSpec,
    until: i64,
    delay: i64,
}

/// A worker the provider reported, as remembered between ticks.
#[derive(Clone, Copy, Default)]
struct Seen {
    registered: bool,
    retired: bool,
}

#[derive(Default)]
struct ScalerState {
    idle_since: HashMap<String, i64>,
    capacity_errors: HashMap<String, BTreeMap<String, i64>>,
    backoff: HashMap<String, Backoff>,
    tokens: HashMap<String, (String, i64)>,
    seen: HashMap<String, HashMap<String, Seen>>,
    start_failures: HashMap<String, u32>,
    unplaceable: Vec<String>,
    /// CEs whose provider could not list its workers at the last look.
    list_failed: std::collections::HashSet<String>,
}

/// Shortest time between two autoscaler decisions caused by wake-ups.
const WOKEN_GAP: Duration = Duration::from_millis(50);

/// The autoscaler.
pub struct Autoscaler {
    app: Service,
    every: Duration,
    state: Mutex<ScalerState>,
}

impl Autoscaler {
    /// An autoscaler ticking every `every` (and on every submission).
    pub fn new(app: Service, every: Duration) -> Autoscaler {
        Autoscaler {
            app,
            every,
            state: Mutex::default(),
        }
    }

    async fn event(&self, env: &str, kind: &str, message: &str) {
        tracing::info!(target: "trestle::autoscaler", env, kind, message);
        if let Err(e) = self
            .app
            .store
            .add_compute_env_event(env, kind, message, crate::now_ms())
            .await
        {
            tracing::warn!(error = %e, "cannot record a compute environment event");
        }
    }

    async fn status(&self, env: &str, status: &str, reason: Option<&str>) {
        if let Err(e) = self
            .app
            .store
            .set_compute_env_status(env, status, reason, crate::now_ms())
            .await
        {
            tracing::warn!(error = %e, "cannot record a compute environment status");
        }
    }

    /// A worker credential for `spec`'s workers, minted when the cached one
    /// would not outlive a new worker.
    async fn token(&self, st: &mut ScalerState, spec: &ComputeEnvSpec) -> Result<String, String> {
        let now = crate::now_ms();
        let need = match (&spec.slurm, spec.provider) {
            (Some(s), ProviderKind::Slurm) => s.time_limit_secs as i64 * 1000 + TOKEN_SLACK_MS,
            _ => LOCAL_TOKEN_MS,
        };
        if let Some((t, exp)) = st.tokens.get(&spec.name)
            && exp - now > need
        {
            return Ok(t.clone());
        }
        let token = new_token();
        let expires = now + 2 * need;
        let rec = trestle_store::NewTokenRecord {
            id: token_id(&token),
            name: format!("workers of compute environment {}", spec.name),
            hash: hash_token(&token),
            user: None,
            kind: TokenKind::Worker,
            scope: Scope::Full,
            expires_at: Some(expires),
        };
        self.app
            .store
            .create_token(&rec, now)
            .await
            .map_err(|e| e.to_string())?;
        st.tokens
            .insert(spec.name.clone(), (token.clone(), expires));
        Ok(token)
    }

    /// Builds one CE's snapshot; remembers its workers between ticks and
    /// reports those that ended before they registered.
    async fn snapshot(
        &self,
        st: &mut ScalerState,
        spec: &ComputeEnvSpec,
        provider: &Arc<dyn Provider>,
        workers: &[WorkerView],
        leased: &HashMap<String, Resources>,
        now: i64,
    ) -> EnvSnapshot {
        if st.backoff.get(&spec.name).is_some_and(|b| b.spec != *spec) {
            st.backoff.remove(&spec.name);
            st.start_failures.remove(&spec.name);
        }
        let mut paused = !spec.enabled || st.backoff.get(&spec.name).is_some_and(|b| b.until > now);
        let listed: Option<Vec<ProviderWorker>> = match provider.list().await {
            Ok(l) => {
                if st.list_failed.remove(&spec.name) {
                    self.status(&spec.name, STATUS_VALID, None).await;
                }
                Some(l)
            }
            Err(e) => {
                // Nothing is launched or retired blind; the CE says why.
                if st.list_failed.insert(spec.name.clone()) {
                    let reason = format!("cannot list its workers: {e}");
                    self.status(&spec.name, STATUS_INVALID, Some(&reason)).await;
                    self.event(&spec.name, "list-failed", &reason).await;
                }
                paused = true;
                None
            }
        };
        let mine: Vec<&WorkerView> = workers
            .iter()
            .filter(|w| w.compute_env.as_deref() == Some(spec.name.as_str()))
            .collect();
        let live = |w: &WorkerView| InstanceState::Live {
            free: leased
                .get(&w.id)
                .map(|r| w.capacity.minus(r))
                .unwrap_or(w.capacity),
            idle_since: st.idle_since.get(&w.id).copied(),
        };
        let mut instances = Vec::new();
        let mut matched = Vec::new();
        for p in listed.iter().flatten() {
            let reg = mine
                .iter()
                .find(|w| w.instance.as_deref() == Some(p.id.as_str()));
            let state = match (reg, &p.status) {
                (Some(w), _) => {
                    matched.push(w.id.clone());
                    live(w)
                }
                (None, InstanceStatus::Stuck(_)) => InstanceState::Stuck,
                (None, _) => InstanceState::Starting {
                    since: p.launched_at,
                },
            };
            instances.push(Instance {
                id: p.id.clone(),
                shape: p.shape_name.clone(),
                capacity: reg.map(|w| w.capacity).unwrap_or(p.shape),
                state,
                retirable: true,
            });
        }
        for w in mine
            .iter()
            .filter(|w| !matched.contains(&w.id) && now - w.last_heartbeat <= SILENT_MS)
        {
            instances.push(Instance {
                id: w.id.clone(),
                shape: None,
                capacity: w.capacity,
                state: live(w),
                retirable: false,
            });
        }
        if let Some(listed) = &listed {
            self.track(st, spec, provider, listed, &instances).await;
        }
        let errors = st.capacity_errors.entry(spec.name.clone()).or_default();
        errors.retain(|_, at| now - *at < DEFAULT_CAPACITY_ERROR_TTL_MS);
        let capacity_errors = errors.clone();
        let mut available = BTreeMap::new();
        if spec.allocation_strategy == AllocationStrategy::SpotCapacityOptimized && !paused {
            let shapes: Vec<(String, Capacity)> = spec
                .shapes
                .iter()
                .map(|s| (s.name.clone(), s.capacity()))
                .collect();
            available = provider.available(&shapes).await.unwrap_or_default();
        }
        EnvSnapshot {
            spec: spec.clone(),
            instances,
            capacity_errors,
            available,
            paused,
        }
    }

    /// Notices workers that vanished before registering (a pilot that
    /// failed to start) and reports them.
    async fn track(
        &self,
        st: &mut ScalerState,
        spec: &ComputeEnvSpec,
        provider: &Arc<dyn Provider>,
        listed: &[ProviderWorker],
        instances: &[Instance],
    ) {
        let seen = st.seen.entry(spec.name.clone()).or_default();
        let mut gone = Vec::new();
        seen.retain(|id, s| {
            let still = listed.iter().any(|p| &p.id == id);
            if !still && !s.registered && !s.retired {
                gone.push(id.clone());
            }
            still
        });
        let mut registered_now = false;
        for i in instances.iter().filter(|i| i.retirable) {
            let s = seen.entry(i.id.clone()).or_default();
            if matches!(i.state, InstanceState::Live { .. }) && !s.registered {
                s.registered = true;
                registered_now = true;
            }
        }
        if registered_now {
            st.start_failures.remove(&spec.name);
            if st.backoff.remove(&spec.name).is_some() {
                self.status(&spec.name, STATUS_VALID, None).await;
            }
        }
        for id in gone {
            let ended = provider.describe(&id).await.ok().flatten();
            // A worker that came and went between two looks exits 0.
            if ended.as_ref().is_some_and(|e| e.ok) {
                continue;
            }
            let how = ended
                .as_ref()
                .map(|e| e.what.clone())
                .unwrap_or_else(|| "it is gone".into());
            if ended.as_ref().is_some_and(|e| e.cancelled) {
                let msg = format!("worker {id} was cancelled before it registered: {how}");
                self.event(&spec.name, "worker-cancelled", &msg).await;
                continue;
            }
            let msg = format!("worker {id} ended before it registered: {how}");
            self.event(&spec.name, "worker-failed", &msg).await;
            let n = st.start_failures.entry(spec.name.clone()).or_insert(0);
            *n += 1;
            if *n >= START_FAILURES {
                let reason = format!("{n} workers in a row ended before registering; last: {how}");
                self.pause(st, spec, &reason).await;
            }
        }
    }

    /// Marks a CE invalid and pauses its launches.
    async fn pause(&self, st: &mut ScalerState, spec: &ComputeEnvSpec, reason: &str) {
        let now = crate::now_ms();
        let delay = match st.backoff.get(&spec.name) {
            Some(b) => (b.delay * 2).min(MAX_BACKOFF_MS),
            None => FIRST_BACKOFF_MS,
        };
        st.backoff.insert(
            spec.name.clone(),
            Backoff {
                spec: spec.clone(),
                until: now + delay,
                delay,
            },
        );
        self.status(&spec.name, STATUS_INVALID, Some(reason)).await;
        self.event(
            &spec.name,
            "paused",
            &format!("launching paused for {}s: {reason}", delay / 1000),
        )
        .await;
    }

    async fn apply(
        &self,
        st: &mut ScalerState,
        p: &Plan,
        specs: &HashMap<String, (ComputeEnvSpec, Arc<dyn Provider>)>,
        snaps: &[EnvSnapshot],
    ) {
        for r in &p.retire {
            let Some((_, provider)) = specs.get(&r.env) else {
                continue;
            };
            if r.reason == RetireReason::Stuck {
                let shape = snaps
                    .iter()
                    .find(|s| s.spec.name == r.env)
                    .and_then(|s| s.instances.iter().find(|i| i.id == r.instance))
                    .and_then(|i| i.shape.clone());
                if let Some(shape) = &shape {
                    st.capacity_errors
                        .entry(r.env.clone())
                        .or_default()
                        .insert(shape.clone(), crate::now_ms());
                }
                let msg = format!(
                    "worker {} of shape {} can never start here; cancelled, and the shape counts as unavailable",
                    r.instance,
                    shape.as_deref().unwrap_or("?")
                );
                self.event(&r.env, "capacity-error", &msg).await;
            }
            if let Some(s) = st.seen.get_mut(&r.env).and_then(|m| m.get_mut(&r.instance)) {
                s.retired = true;
            }
            match provider.terminate(&r.instance).await {
                Ok(()) | Err(ComputeError::NotFound(_)) => {
                    let why = match r.reason {
                        RetireReason::Idle => "idle for the idle timeout",
                        RetireReason::Unneeded => "no longer needed",
                        RetireReason::Stuck => "it cannot start",
                    };
                    self.event(
                        &r.env,
                        "retired",
                        &format!("retired worker {} ({why})", r.instance),
                    )
                    .await;
                }
                Err(e) => {
                    tracing::warn!(target: "trestle::autoscaler", env = %r.env, instance = %r.instance, error = %e, "cannot retire")
                }
            }
        }
        for l in &p.launches {
            // The plan may predate the shutdown: asked again right before
            // every launch (local providers also refuse once stopping).
            if self.app.compute.is_stopping() {
                tracing::info!(target: "trestle::autoscaler", "shutting down: launching nothing");
                return;
            }
            let Some((spec, provider)) = specs.get(&l.env) else {
                continue;
            };
            let Some(shape) = spec.shape(&l.shape) else {
                continue;
            };
            let token = match self.token(st, spec).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(target: "trestle::autoscaler", error = %e, "cannot mint a worker credential");
                    return;
                }
            };
            let env = vec![("TRESTLE_TOKEN".to_string(), token)];
            let req = LaunchRequest {
                shape_name: &shape.name,
                shape: shape.capacity(),
                count: l.count,
                env: &env,
            };
            match provider.launch(&req).await {
                Ok(started) => {
                    let ids: Vec<&str> = started.iter().map(|w| w.id.as_str()).collect();
                    let why = match l.reason {
                        trestle_core::compute::scale::LaunchReason::Demand => "runnable jobs",
                        trestle_core::compute::scale::LaunchReason::MinVcpus => "min_vcpus",
                    };
                    let msg = format!(
                        "launched {} worker(s) of shape {} for {why}: {}",
                        started.len(),
                        shape.name,
                        ids.join(", ")
                    );
                    self.event(&spec.name, "launched", &msg).await;
                    let seen = st.seen.entry(spec.name.clone()).or_default();
                    for id in ids {
                        seen.entry(id.to_string()).or_default();
                    }
                }
                Err(ComputeError::Stopping) => {
                    tracing::info!(target: "trestle::autoscaler", env = %spec.name, "shutting down: launching nothing");
                    return;
                }
                Err(ComputeError::Capacity(m)) => {
                    st.capacity_errors
                        .entry(spec.name.clone())
                        .or_default()
                        .insert(shape.name.clone(), crate::now_ms());
                    let msg = format!("shape {} cannot be had now: {m}", shape.name);
                    self.event(&spec.name, "capacity-error", &msg).await;
                }
                Err(e) => {
                    let msg = format!(
                        "launching {} worker(s) of shape {} failed: {e}",
                        l.count, shape.name
                    );
                    self.event(&spec.name, "launch-failed", &msg).await;
                    self.pause(st, spec, &e.to_string()).await;
                }
            }
        }
        let mut unplaceable: Vec<String> = p
            .unplaceable
            .iter()
            .map(|u| {
                format!(
                    "{} job(s) of queue {} need {} CPUs, {} MiB, {} GPUs: no shape of its compute environments fits",
                    u.count, u.queue, u.resources.cpus, u.resources.mem_mib, u.resources.gpus
                )
            })
            .collect();
        unplaceable.sort();
        if unplaceable != st.unplaceable {
            for u in &unplaceable {
                tracing::warn!(target: "trestle::autoscaler", "{u}");
            }
            st.unplaceable = unplaceable;
        }
    }
}

#[async_trait]
impl BackgroundLoop for Autoscaler {
    fn name(&self) -> &'static str {
        "autoscaler"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.app.demand.clone())
    }
    fn min_gap(&self) -> Duration {
        // Demand arrives in bursts (every submission wakes this loop); one
        // decision per burst is enough, and the first still comes at once.
        WOKEN_GAP.min(self.every)
    }
    async fn tick(&self) -> crate::ServiceResult<()> {
        let topo = self.app.compute.topology();
        if topo.envs.is_empty() || self.app.compute.is_stopping() {
            return Ok(());
        }
        let mut st = self.state.lock().await;
        let now = crate::now_ms();
        let store = &self.app.store;
        let workers = store.list_workers().await?;
        let leased: HashMap<String, Resources> =
            store.leased_by_worker().await?.into_iter().collect();
        for w in &workers {
            if leased.contains_key(&w.id) {
                st.idle_since.remove(&w.id);
            } else {
                st.idle_since.entry(w.id.clone()).or_insert(now);
            }
        }
        st.idle_since
            .retain(|id, _| workers.iter().any(|w| &w.id == id));
        let max: u64 = topo.envs.iter().map(|e| u64::from(e.spec.max_vcpus)).sum();
        let limit = (max * 4).clamp(1000, 20_000) as u32;
        let demand = store.runnable_buckets(limit).await?;
        let mut specs = HashMap::new();
        let mut envs = Vec::with_capacity(topo.envs.len());
        for rec in &topo.envs {
            let provider = self.app.compute.provider(&rec.spec);
            let snap = self
                .snapshot(&mut st, &rec.spec, &provider, &workers, &leased, now)
                .await;
            envs.push(snap);
            specs.insert(rec.spec.name.clone(), (rec.spec.clone(), provider));
        }
        let mut queues: Vec<String> = demand.iter().map(|b| b.queue.clone()).collect();
        queues.sort();
        queues.dedup();
        let input = ScaleInput {
            now,
            queues: queues.iter().map(|q| topo.route(q)).collect(),
            demand,
            envs,
            capacity_error_ttl_ms: DEFAULT_CAPACITY_ERROR_TTL_MS,
            stopping: self.app.compute.is_stopping(),
        };
        let p = plan(&input);
        if !p.launches.is_empty() || !p.retire.is_empty() {
            tracing::debug!(target: "trestle::autoscaler", launches = ?p.launches, retire = ?p.retire, "plan");
        }
        self.apply(&mut st, &p, &specs, &input.envs).await;
        Ok(())
    }
}
