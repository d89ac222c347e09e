//! Placement: which runnable jobs a worker with some free capacity takes.
//! Pure: a snapshot in, a decision out.

use crate::batch::job::Resources;
use serde::{Deserialize, Serialize};

/// Free (or total) capacity of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// CPU cores.
    pub cpus: u32,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// GPUs.
    pub gpus: u32,
}

impl Capacity {
    /// True when a job needing `r` fits.
    pub fn fits(&self, r: &Resources) -> bool {
        r.cpus <= self.cpus && r.mem_mib <= self.mem_mib && r.gpus <= self.gpus
    }

    /// Capacity left after placing `r` (saturating).
    pub fn minus(&self, r: &Resources) -> Capacity {
        Capacity {
            cpus: self.cpus.saturating_sub(r.cpus),
            mem_mib: self.mem_mib.saturating_sub(r.mem_mib),
            gpus: self.gpus.saturating_sub(r.gpus),
        }
    }

    /// Capacity after giving `r` back.
    pub fn plus(&self, r: &Resources) -> Capacity {
        Capacity {
            cpus: self.cpus.saturating_add(r.cpus),
            mem_mib: self.mem_mib.saturating_add(r.mem_mib),
            gpus: self.gpus.saturating_add(r.gpus),
        }
    }

    /// True when nothing at all could fit (no CPU left).
    pub fn is_empty(&self) -> bool {
        self.cpus == 0
    }
}

/// A runnable job as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Job id.
    pub id: i64,
    /// What it needs.
    pub resources: Resources,
}

/// Chooses, in the given (priority) order, the candidates that fit together
/// into `free`, at most `max_jobs` of them. A candidate that does not fit is
/// skipped and later smaller ones may still be placed (backfill).
///
/// Up to `prefetch` more candidates that fit `free` on their own but not
/// beside the others are chosen too (still at most `max_jobs` in all):
/// jobs a worker holds to start as soon as its capacity frees.
pub fn pack(
    free: Capacity,
    candidates: &[Candidate],
    max_jobs: usize,
    prefetch: usize,
) -> Vec<i64> {
    let mut left = free;
    let mut extra = 0;
    let mut chosen = Vec::new();
    for c in candidates {
        if chosen.len() >= max_jobs {
            break;
        }
        if left.fits(&c.resources) {
            left = left.minus(&c.resources);
            chosen.push(c.id);
        } else if extra < prefetch && free.fits(&c.resources) {
            extra += 1;
            chosen.push(c.id);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(id: i64, cpus: u32, mem: u64) -> Candidate {
        Candidate {
            id,
            resources: Resources {
                cpus,
                mem_mib: mem,
                gpus: 0,
            },
        }
    }

    #[test]
    fn packs_in_order_with_backfill() {
        let free = Capacity {
            cpus: 4,
            mem_mib: 1000,
            gpus: 0,
        };
        let c = [
            cand(1, 2, 100),
            cand(2, 4, 100),
            cand(3, 2, 100),
            cand(4, 1, 1),
        ];
        assert_eq!(pack(free, &c, 10, 0), vec![1, 3]);
        assert_eq!(pack(free, &c, 1, 0), vec![1]);
        let mem_bound = [cand(1, 1, 600), cand(2, 1, 600), cand(3, 1, 400)];
        assert_eq!(pack(free, &mem_bound, 10, 0), vec![1, 3]);
    }

    #[test]
    fn prefetch_takes_more_that_each_fit() {
        let free = Capacity {
            cpus: 2,
            mem_mib: 1000,
            gpus: 0,
        };
        let c: Vec<Candidate> = (1..=6).map(|i| cand(i, 1, 10)).collect();
        assert_eq!(pack(free, &c, 10, 0), vec![1, 2]);
        assert_eq!(pack(free, &c, 10, 3), vec![1, 2, 3, 4, 5]);
        assert_eq!(
            pack(free, &c, 4, 3),
            vec![1, 2, 3, 4],
            "max_jobs bounds all"
        );
        let too_big = [cand(1, 3, 10), cand(2, 1, 10)];
        assert_eq!(pack(free, &too_big, 10, 5), vec![2]);
    }

    proptest! {
        #[test]
        fn never_overcommits(
            cpus in 0u32..16, mem in 0u64..4096,
            jobs in proptest::collection::vec((1u32..8, 1u64..2048), 0..40),
            max in 0usize..50,
            prefetch in 0usize..10,
        ) {
            let free = Capacity { cpus, mem_mib: mem, gpus: 0 };
            let cands: Vec<Candidate> = jobs.iter().enumerate()
                .map(|(i, (c, m))| cand(i as i64, *c, *m)).collect();
            let chosen = pack(free, &cands, max, 0);
            prop_assert!(chosen.len() <= max);
            let more = pack(free, &cands, max, prefetch);
            prop_assert!(more.len() <= max && more.len() <= chosen.len() + prefetch);
            prop_assert!(more.iter().all(|id| free.fits(&cands[*id as usize].resources)));
            let used_cpus: u32 = chosen.iter().map(|id| cands[*id as usize].resources.cpus).sum();
            let used_mem: u64 = chosen.iter().map(|id| cands[*id as usize].resources.mem_mib).sum();
            prop_assert!(used_cpus <= cpus && used_mem <= mem);
            // Order is preserved.
            prop_assert!(chosen.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
