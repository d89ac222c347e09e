//! Lease planning: how much to ask the server for, given what the worker
//! holds. Pure.

use crate::state::Usage;
use trestle_core::Capacity;

/// One lease request's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePlan {
    /// Capacity offered.
    pub free: Capacity,
    /// Most jobs wanted.
    pub max_jobs: u32,
}

/// What to ask for, or `None` when the worker should wait for an attempt to
/// end first.
///
/// Without prefetch the worker offers exactly what its attempts leave free
/// (`capacity - used`, where `used` counts running and waiting attempts) and
/// asks for at most one job per free CPU. With `prefetch` slots not yet
/// filled by waiting attempts, it offers its whole capacity (so any job that
/// fits the machine can come) and asks for up to that many extra jobs; they
/// wait locally and start as soon as capacity frees.
pub fn plan(capacity: Capacity, usage: &Usage, prefetch: u32) -> Option<LeasePlan> {
    let free = Capacity {
        cpus: capacity.cpus.saturating_sub(usage.used.cpus),
        mem_mib: capacity.mem_mib.saturating_sub(usage.used.mem_mib),
        gpus: capacity.gpus.saturating_sub(usage.used.gpus),
    };
    let slots = prefetch.saturating_sub(usage.waiting);
    if slots > 0 {
        return Some(LeasePlan {
            free: capacity,
            max_jobs: free.cpus.saturating_add(slots),
        });
    }
    if free.is_empty() {
        return None;
    }
    Some(LeasePlan {
        free,
        max_jobs: free.cpus,
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
        }
    }

    #[test]
    fn offers_what_is_free() {
        let c = cap(8, 8000);
        assert_eq!(
            plan(c, &usage(0, 0, 0), 0),
            Some(LeasePlan {
                free: c,
                max_jobs: 8
            })
        );
        assert_eq!(
            plan(c, &usage(6, 1000, 0), 0),
            Some(LeasePlan {
                free: cap(2, 7000),
                max_jobs: 2
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
                max_jobs: 2
            })
        );
        assert_eq!(
            plan(c, &usage(1, 100, 0), 2),
            Some(LeasePlan {
                free: c,
                max_jobs: 5
            })
        );
        assert_eq!(
            plan(c, &usage(5, 4000, 1), 2),
            Some(LeasePlan {
                free: c,
                max_jobs: 1
            })
        );
        assert_eq!(plan(c, &usage(6, 4000, 2), 2), None);
    }
}
