//! "Why is my job not running?": a reason for every PENDING or RUNNABLE
//! job, decided from a snapshot of its dependencies, its array and the
//! capacity on offer. Pure.

use crate::api::workflow::DepView;
use crate::batch::job::{JobState, Resources};
use crate::batch::placement::Capacity;
use crate::batch::workflow::JobKind;

/// A compute environment as the reason sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Its name.
    pub name: String,
    /// The shape of the workers it starts.
    pub shape: Capacity,
    /// Whether it may start more workers now (not at its limit).
    pub can_grow: bool,
    /// Why it cannot start workers at all, when it is failing (its
    /// controller is down, its settings are invalid).
    pub problem: Option<String>,
}

/// Where an array stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArrayProgress {
    /// The `%N` limit, if any.
    pub parallel: Option<u32>,
    /// Children created and not finished.
    pub active: u64,
    /// Children not created yet.
    pub remaining: u64,
}

/// Capacity on offer right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapacitySnapshot {
    /// Total capacity of every live worker.
    pub workers: Vec<Capacity>,
    /// CPUs of live workers not held by leased jobs.
    pub free_cpus: u64,
    /// Compute environments that can start workers.
    pub envs: Vec<Offer>,
}

/// Everything the reason depends on.
#[derive(Debug, Clone, Copy)]
pub struct WaitInput<'a> {
    /// The job's state.
    pub state: JobState,
    /// Job, array or pipeline.
    pub kind: JobKind,
    /// What one attempt needs.
    pub resources: Resources,
    /// Its queue.
    pub queue: &'a str,
    /// The queue is disabled.
    pub queue_disabled: bool,
    /// Its dependencies.
    pub deps: &'a [DepView],
    /// For arrays.
    pub array: Option<ArrayProgress>,
    /// Capacity on offer.
    pub capacity: &'a CapacitySnapshot,
}

/// The stored reason of a job held because its project's budget is spent.
pub const OVER_BUDGET: &str = "over-budget";

/// What a job held over budget tells its user.
pub fn over_budget(id: i64, project: &str) -> String {
    format!(
        "over budget: the budget of project `{project}` is spent; the job waits until an admin raises it or lets this job past it (`trestle budget override {id}`)"
    )
}

/// Why the job is not running, or `None` when it is not waiting.
pub fn why_waiting(w: &WaitInput<'_>) -> Option<String> {
    if !matches!(w.state, JobState::Pending | JobState::Runnable) {
        return None;
    }
    if w.queue_disabled {
        return Some(format!(
            "queue `{}` is disabled; jobs wait until it is enabled",
            w.queue
        ));
    }
    let open: Vec<&DepView> = w.deps.iter().filter(|d| !d.resolved).collect();
    if w.state == JobState::Pending && !open.is_empty() {
        let first = open[0];
        let state = first
            .state
            .map_or_else(|| "gone".to_string(), |s| s.as_str().to_string());
        let more = if open.len() > 1 {
            format!(" and {} more", open.len() - 1)
        } else {
            String::new()
        };
        return Some(format!(
            "waiting on dependency {} ({}; it is {state}){more}",
            first.job,
            first.kind.as_str()
        ));
    }
    // A group's children wait for the same things as any job, unless the
    // array's `%` limit holds them back.
    if w.kind.is_group()
        && let Some(a) = w.array
        && let Some(p) = a.parallel
        && a.remaining > 0
        && a.active >= u64::from(p)
    {
        return Some(format!(
            "array parallel limit: {} of at most {p} children at once (%{p}); {} more to come",
            a.active, a.remaining
        ));
    }
    if w.state == JobState::Pending {
        return Some("waiting for its dependencies to be checked".to_string());
    }
    let c = w.capacity;
    let r = &w.resources;
    let shapes: Vec<Capacity> = c
        .envs
        .iter()
        .map(|e| e.shape)
        .chain(c.workers.iter().copied())
        .collect();
    if shapes.is_empty() {
        return Some(
            "no compute environment and no worker: start one with `trestle worker --server URL`"
                .to_string(),
        );
    }
    if !shapes.iter().any(|s| s.fits(r)) {
        let max_cpus = shapes.iter().map(|s| s.cpus).max().unwrap_or(0);
        let max_mem = shapes.iter().map(|s| s.mem_mib).max().unwrap_or(0);
        let max_gpus = shapes.iter().map(|s| s.gpus).max().unwrap_or(0);
        let what = if r.cpus > max_cpus {
            format!(
                "{} CPUs; the largest environment or worker offers {max_cpus}",
                r.cpus
            )
        } else if r.mem_mib > max_mem {
            format!(
                "{} MiB of memory; the largest environment or worker offers {max_mem} MiB",
                r.mem_mib
            )
        } else if r.gpus > max_gpus {
            format!(
                "{} GPUs; the largest environment or worker offers {max_gpus}",
                r.gpus
            )
        } else {
            format!(
                "{} CPUs, {} MiB and {} GPUs together; no single environment or worker offers that",
                r.cpus, r.mem_mib, r.gpus
            )
        };
        return Some(format!("needs {what}"));
    }
    let can_launch = c.envs.iter().any(|e| e.can_grow && e.shape.fits(r));
    if !can_launch && c.free_cpus < u64::from(r.cpus) {
        let limits = if c.envs.is_empty() {
            "no compute environment can start more workers".to_string()
        } else {
            // One offer per shape: name each environment once; a failing
            // one says why, since that, not a limit, is what to fix.
            let mut failing: Vec<String> = Vec::new();
            let mut full: Vec<String> = Vec::new();
            for e in &c.envs {
                match &e.problem {
                    Some(p) => {
                        let line = format!("`{}` is failing ({p})", e.name);
                        if !failing.contains(&line) {
                            failing.push(line);
                        }
                    }
                    None => {
                        let n = format!("`{}`", e.name);
                        if !full.contains(&n) {
                            full.push(n);
                        }
                    }
                }
            }
            let mut parts = failing;
            if !full.is_empty() {
                parts.push(format!(
                    "{} at {} limit",
                    full.join(", "),
                    if full.len() == 1 { "its" } else { "their" }
                ));
            }
            parts.join("; ")
        };
        return Some(format!(
            "no capacity in any compute environment: every worker is busy and {limits}"
        ));
    }
    Some("waiting for a worker to lease it (one is free or starting)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::deps::DepKind;

    fn cap(cpus: u32, mem: u64, gpus: u32) -> Capacity {
        Capacity {
            cpus,
            mem_mib: mem,
            gpus,
        }
    }

    fn input<'a>(state: JobState, cpus: u32, c: &'a CapacitySnapshot) -> WaitInput<'a> {
        WaitInput {
            state,
            kind: JobKind::Job,
            resources: Resources {
                cpus,
                mem_mib: 256,
                gpus: 0,
            },
            queue: "default",
            queue_disabled: false,
            deps: &[],
            array: None,
            capacity: c,
        }
    }

    #[test]
    fn reasons() {
        let local = CapacitySnapshot {
            workers: vec![],
            free_cpus: 0,
            envs: vec![Offer {
                name: "local".into(),
                shape: cap(8, 16_000, 0),
                can_grow: true,
                problem: None,
            }],
        };
        assert_eq!(why_waiting(&input(JobState::Running, 1, &local)), None);
        let r = why_waiting(&input(JobState::Runnable, 64, &local)).unwrap();
        assert_eq!(
            r,
            "needs 64 CPUs; the largest environment or worker offers 8"
        );
        let mut gpu = input(JobState::Runnable, 1, &local);
        gpu.resources.gpus = 1;
        assert!(why_waiting(&gpu).unwrap().contains("1 GPUs"));
        let r = why_waiting(&input(JobState::Runnable, 2, &local)).unwrap();
        assert!(r.starts_with("waiting for a worker"), "{r}");
        let full = CapacitySnapshot {
            workers: vec![cap(8, 16_000, 0)],
            free_cpus: 1,
            envs: vec![Offer {
                name: "local".into(),
                shape: cap(8, 16_000, 0),
                can_grow: false,
                problem: None,
            }],
        };
        let r = why_waiting(&input(JobState::Runnable, 2, &full)).unwrap();
        assert!(
            r.starts_with("no capacity in any compute environment"),
            "{r}"
        );
        // A failing environment is named with its problem, not as full.
        let mut broken = full.clone();
        broken.envs.insert(
            0,
            Offer {
                name: "cluster".into(),
                shape: cap(8, 16_000, 0),
                can_grow: false,
                problem: Some("cannot list its workers: squeue failed".into()),
            },
        );
        let r = why_waiting(&input(JobState::Runnable, 2, &broken)).unwrap();
        assert!(
            r.ends_with(
                "`cluster` is failing (cannot list its workers: squeue failed); `local` at its limit"
            ),
            "{r}"
        );
        let none = CapacitySnapshot::default();
        assert!(
            why_waiting(&input(JobState::Runnable, 1, &none))
                .unwrap()
                .starts_with("no compute environment")
        );
        let mut disabled = input(JobState::Runnable, 1, &local);
        disabled.queue_disabled = true;
        assert!(why_waiting(&disabled).unwrap().contains("disabled"));
    }

    #[test]
    fn dependencies_and_arrays() {
        let c = CapacitySnapshot::default();
        let deps = [
            DepView {
                kind: DepKind::AfterOk,
                job: 7,
                state: Some(JobState::Running),
                resolved: false,
            },
            DepView {
                kind: DepKind::AfterAny,
                job: 8,
                state: Some(JobState::Runnable),
                resolved: false,
            },
        ];
        let mut w = input(JobState::Pending, 1, &c);
        w.deps = &deps;
        assert_eq!(
            why_waiting(&w).unwrap(),
            "waiting on dependency 7 (after-ok; it is RUNNING) and 1 more"
        );
        let mut a = input(JobState::Runnable, 1, &c);
        a.kind = JobKind::Array;
        a.array = Some(ArrayProgress {
            parallel: Some(2),
            active: 2,
            remaining: 5,
        });
        assert!(
            why_waiting(&a)
                .unwrap()
                .starts_with("array parallel limit: 2 of at most 2")
        );
        a.array = Some(ArrayProgress {
            parallel: None,
            active: 2,
            remaining: 5,
        });
        assert!(
            why_waiting(&a)
                .unwrap()
                .starts_with("no compute environment"),
            "children wait for capacity like any job"
        );
    }
}
