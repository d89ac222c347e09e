//! The server's side of workflows: per-queue settings (disabled queues,
//! drop folders), the dependency resolver loop, checks on dependencies at
//! submission, and the "why is my job not running?" reason added to jobs
//! the API shows.

use crate::access;
use crate::error::{ServiceError, ServiceResult};
use crate::loops::BackgroundLoop;
use crate::principal::Principal;
pub use crate::queues::{DEFAULT_DROP_OWNER, DEFAULT_TRIGGER_SUFFIX, FlowConfig, QueueConfig};
use crate::state::Service;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use trestle_core::api::JobView;
use trestle_core::batch::why::{ArrayProgress, CapacitySnapshot, Offer, WaitInput, why_waiting};
use trestle_core::identity::authz::Action;
use trestle_core::{JobSpec, JobState};

/// Checks a new job's dependencies: each must exist and be readable by
/// the submitter (a dependent receives its outputs).
pub async fn check_deps(app: &Service, p: &Principal, spec: &JobSpec) -> ServiceResult<()> {
    for d in &spec.flow.after {
        if access::job(app, p, d.job, Action::JobRead).await.is_err() {
            return Err(ServiceError::bad(
                "unknown-dependency",
                "after",
                format!("job {} does not exist", d.job),
            ));
        }
    }
    Ok(())
}

/// After a submission: jobs of a disabled queue are held at once, and
/// the resolver is woken.
pub async fn after_submit(app: &Service, specs: &[JobSpec]) -> ServiceResult<()> {
    if specs.iter().any(|s| app.flow.is_disabled(&s.queue)) {
        app.store
            .resolve_workflows(&app.flow.disabled(), crate::now_ms())
            .await?;
    }
    app.flow.wake.notify_one();
    Ok(())
}

/// The capacity on offer now, for reasons.
pub async fn capacity(app: &Service) -> ServiceResult<CapacitySnapshot> {
    let workers = app.store.list_workers().await?;
    let total: u64 = workers.iter().map(|w| u64::from(w.capacity.cpus)).sum();
    let mut envs = Vec::new();
    let mut leased = 0;
    let topology = app.compute.topology();
    if !topology.envs.is_empty() {
        // Every shape of every compute environment (the autoscaler's view,
        // without the queues' routes).
        leased = app.store.runnable_demand(0, 1).await?.leased_cpus;
        for e in &topology.envs {
            let used: u64 = workers
                .iter()
                .filter(|w| w.compute_env.as_deref() == Some(e.spec.name.as_str()))
                .map(|w| u64::from(w.capacity.cpus))
                .sum();
            let usable = e.spec.enabled && e.status == trestle_core::api::compute::STATUS_VALID;
            for shape in &e.spec.shapes {
                envs.push(Offer {
                    name: e.spec.name.clone(),
                    shape: shape.capacity(),
                    can_grow: usable
                        && used + u64::from(shape.vcpus) <= u64::from(e.spec.max_vcpus),
                    problem: (e.spec.enabled
                        && e.status != trestle_core::api::compute::STATUS_VALID)
                        .then(|| {
                            e.status_reason
                                .clone()
                                .unwrap_or_else(|| format!("status {}", e.status))
                        }),
                });
            }
        }
    } else if let Some((shape, max)) = app.flow.local {
        let d = app.store.runnable_demand(shape.cpus, 1).await?;
        leased = d.leased_cpus;
        let local_cpus: u64 = workers
            .iter()
            .filter(|w| w.compute_env.as_deref() == Some("local"))
            .map(|w| u64::from(w.capacity.cpus))
            .sum();
        envs.push(Offer {
            name: "local".into(),
            shape,
            can_grow: local_cpus + u64::from(shape.cpus) <= u64::from(max),
            problem: None,
        });
    } else if !workers.is_empty() {
        leased = app.store.runnable_demand(0, 1).await?.leased_cpus;
    }
    Ok(CapacitySnapshot {
        workers: workers.iter().map(|w| w.capacity).collect(),
        free_cpus: total.saturating_sub(leased),
        envs,
    })
}

/// Sets `reason` on a PENDING or RUNNABLE job (or group) to why it is not
/// running, unless it already carries a more specific one.
pub fn annotate(v: &mut JobView, capacity: &CapacitySnapshot, disabled: bool) {
    if !matches!(v.state, JobState::Pending | JobState::Runnable) {
        return;
    }
    if v.reason
        .as_deref()
        .is_some_and(|r| r.starts_with("retrying"))
    {
        return;
    }
    if v.reason.as_deref() == Some(crate::budgets::AWAITING) {
        v.reason = Some(format!(
            "waiting for budget: the most it could be charged (its rate on the dearest shape x its time limit x its attempts, plus one interruption) does not fit in what is left of the escrow budget of project `{}`; it runs once enough is released or an admin raises the budget",
            v.spec.project.as_deref().unwrap_or("-")
        ));
        return;
    }
    if v.reason.as_deref() == Some(trestle_core::batch::why::OVER_BUDGET) {
        v.reason = Some(trestle_core::batch::why::over_budget(
            v.id,
            v.spec.project.as_deref().unwrap_or("-"),
        ));
        return;
    }
    let array = v.flow.children.as_ref().map(|c| ArrayProgress {
        parallel: v.spec.flow.array.as_ref().and_then(|a| a.parallel),
        active: c.active(),
        remaining: c.total.saturating_sub(c.created),
    });
    let input = WaitInput {
        state: v.state,
        kind: v.flow.kind,
        resources: v.spec.resources,
        queue: &v.queue,
        queue_disabled: disabled,
        deps: &v.flow.dependencies,
        array,
        capacity,
    };
    if let Some(r) = why_waiting(&input) {
        v.reason = Some(r);
    }
}

/// Adds the reason to every waiting job of a page (one capacity snapshot).
pub async fn annotate_all(app: &Service, jobs: &mut [JobView]) -> ServiceResult<()> {
    if !jobs
        .iter()
        .any(|j| matches!(j.state, JobState::Pending | JobState::Runnable))
    {
        return Ok(());
    }
    let cap = capacity(app).await?;
    for j in jobs {
        let disabled = app.flow.is_disabled(&j.queue);
        annotate(j, &cap, disabled);
    }
    Ok(())
}

/// The dependency resolver: the safety net for what the transactions that
/// finish jobs resolve themselves, and the keeper of disabled queues.
pub struct Resolver {
    /// Shared state.
    pub app: Service,
    /// Tick interval.
    pub every: Duration,
}

#[async_trait]
impl BackgroundLoop for Resolver {
    fn name(&self) -> &'static str {
        "dependency-resolver"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.app.flow.wake.clone())
    }
    async fn tick(&self) -> crate::ServiceResult<()> {
        let t = self
            .app
            .store
            .resolve_workflows(&self.app.flow.disabled(), crate::now_ms())
            .await?;
        if t.runnable > 0 {
            tracing::debug!(runnable = t.runnable, "resolver released jobs");
            self.app.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_queues() {
        let mut off = QueueConfig::new("gpu");
        off.enabled = false;
        let f = FlowConfig {
            queues: vec![QueueConfig::new("default"), off],
            ..Default::default()
        };
        assert_eq!(f.disabled(), vec!["gpu".to_string()]);
        assert!(f.is_disabled("gpu"));
        assert!(!f.is_disabled("default"));
        assert!(!f.is_disabled("unknown"));
    }
}
