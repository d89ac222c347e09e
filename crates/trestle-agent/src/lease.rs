//! Lease planning: how much to ask the server for, given what the worker
//! holds. Pure.

use crate::state::Usage;
use std::time::Duration;
use trestle_core::Capacity;

/// One lease request's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePlan {
    /// Capacity offered.
    pub free: Capacity,
    /// Most jobs wanted.
    pub max_jobs: u32,
    /// Of which this many may come beyond what fits `free` together.
    pub prefetch: u32,
}

/// How much work prefetched jobs should cover: enough short jobs are held
/// to keep every CPU busy for about this long, so the lease round trip is
/// paid once per many jobs.
pub const PREFETCH_WINDOW: Duration = Duration::from_millis(100);
/// Most jobs a worker holds waiting, however short they are.
pub const MAX_PREFETCH: u32 = 1024;

/// How many leased jobs may wait locally. `configured` is the floor (0
/// turns prefetching off); when jobs are short, the target grows to cover
/// [`PREFETCH_WINDOW`] of work on every CPU at the observed mean run time.
pub fn prefetch_target(configured: u32, cpus: u32, mean_run: Option<Duration>) -> u32 {
    if configured == 0 {
        return 0;
    }
    let Some(mean) = mean_run else {
        return configured.min(MAX_PREFETCH);
    };
    let per_cpu = PREFETCH_WINDOW.as_micros() / mean.as_micros().max(1);
    let jobs = per_cpu.saturating_mul(u128::from(cpus.max(1)));
    let jobs = u32::try_from(jobs).unwrap_or(u32::MAX);
    jobs.clamp(configured.min(MAX_PREFETCH), MAX_PREFETCH)
}

/// What to ask for, or `None` when the worker should wait for an attempt to
/// end first.
///
/// Without prefetch the worker offers exactly what its attempts leave free
/// (`capacity - used`, where `used` counts running and waiting attempts) and
/// asks for at most one job per free CPU. With a prefetch target (see
/// [`prefetch_target`]) it asks again once a quarter of the target has
/// started (so one request brings many jobs, not one per job that ended,
/// and a newly submitted job of a higher priority is leased soon), offering its whole capacity (any job that fits the machine can
/// come) and asking for enough to fill the target; those jobs wait locally
/// and start as soon as capacity frees.
pub fn plan(capacity: Capacity, usage: &Usage, prefetch: u32) -> Option<LeasePlan> {
    let free = Capacity {
        cpus: capacity.cpus.saturating_sub(usage.used.cpus),
        mem_mib: capacity.mem_mib.saturating_sub(usage.used.mem_mib),
        gpus: capacity.gpus.saturating_sub(usage.used.gpus),
    };
    let target = prefetch_target(prefetch, capacity.cpus, usage.mean_run);
    if target > 0 && usage.waiting <= target - (target / 4).max(1) {
        let prefetch = target - usage.waiting;
        return Some(LeasePlan {
            free: capacity,
            max_jobs: free.cpus.saturating_add(prefetch),
            prefetch,
        });
    }
    if free.is_empty() {
        return None;
    }
    Some(LeasePlan {
        free,
        max_jobs: free.cpus,
        prefetch: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn cap(cpus: u32, mem_mib: u64) -> Capacity {
        Capacity {
            cpus,
            mem_mib,
            gpus: 0,
        }
    }

    fn usage(cpus: u32, mem: u64, waiting: u32) -> Usage {
        Usage {
            used: cap(cpus, mem),
            waiting,
            count: 0,
            idle_since: Instant::now(),
            mean_run: None,
        }
    }

    #[test]
    fn offers_what_is_free() {
        let c = cap(8, 8000);
        assert_eq!(
            plan(c, &usage(0, 0, 0), 0),
            Some(LeasePlan {
                free: c,
                max_jobs: 8,
                prefetch: 0
            })
        );
        assert_eq!(
            plan(c, &usage(6, 1000, 0), 0),
            Some(LeasePlan {
                free: cap(2, 7000),
                max_jobs: 2,
                prefetch: 0
            })
        );
        assert_eq!(plan(c, &usage(8, 1000, 0), 0), None);
        // Overcommitted by prefetched jobs: saturates, nothing to offer.
        assert_eq!(plan(c, &usage(12, 9000, 4), 0), None);
    }

    #[test]
    fn prefetch_asks_for_extra_jobs() {
        let c = cap(4, 4000);
        assert_eq!(
            plan(c, &usage(4, 4000, 0), 2),
            Some(LeasePlan {
                free: c,
                max_jobs: 2,
                prefetch: 2
            })
        );
        assert_eq!(
            plan(c, &usage(1, 100, 0), 2),
            Some(LeasePlan {
                free: c,
                max_jobs: 5,
                prefetch: 2
            })
        );
        assert_eq!(
            plan(c, &usage(5, 4000, 1), 2),
            Some(LeasePlan {
                free: c,
                max_jobs: 1,
                prefetch: 1
            })
        );
        assert_eq!(plan(c, &usage(6, 4000, 2), 2), None);
    }

    #[test]
    fn the_prefetch_target_follows_job_length() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        assert_eq!(prefetch_target(0, 8, Some(us(10))), 0, "off stays off");
        assert_eq!(prefetch_target(4, 8, None), 4, "unknown: as configured");
        assert_eq!(prefetch_target(4, 2, Some(ms(1))), 200);
        assert_eq!(prefetch_target(4, 2, Some(ms(50))), 4);
        assert_eq!(prefetch_target(4, 2, Some(Duration::ZERO)), MAX_PREFETCH);
        assert_eq!(prefetch_target(4, 2, Some(Duration::from_secs(600))), 4);
        assert_eq!(prefetch_target(5000, 2, None), MAX_PREFETCH);
    }

    #[test]
    fn short_jobs_are_leased_many_at_a_time() {
        let c = cap(2, 4000);
        let mut u = usage(2, 100, 0);
        u.mean_run = Some(Duration::from_millis(1));
        // Target 200: ask for the lot, then not again until a quarter is used.
        assert_eq!(plan(c, &u, 2).map(|p| p.max_jobs), Some(200));
        u.waiting = 151;
        u.used = cap(153, 4000);
        assert_eq!(plan(c, &u, 2), None);
        u.waiting = 150;
        u.used = cap(152, 4000);
        assert_eq!(plan(c, &u, 2).map(|p| p.max_jobs), Some(50));
    }
}
