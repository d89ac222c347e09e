//! Autoscaling of the local compute environment: how many worker processes
//! to start for the runnable demand. Pure.

/// What the autoscaler sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalSnapshot {
    /// CPUs asked for by runnable jobs that fit one worker's shape.
    pub runnable_cpus: u64,
    /// Free CPUs on live workers, plus all CPUs of workers still starting.
    pub spare_cpus: u64,
    /// CPUs of every live or starting worker.
    pub total_worker_cpus: u64,
    /// The environment's limit.
    pub max_vcpus: u64,
    /// CPUs of one worker.
    pub shape_cpus: u64,
}

/// Workers to launch now: enough to cover the demand that spare capacity
/// does not, never past `max_vcpus`.
pub fn workers_to_launch(s: &LocalSnapshot) -> u64 {
    if s.shape_cpus == 0 || s.runnable_cpus <= s.spare_cpus {
        return 0;
    }
    let missing = s.runnable_cpus - s.spare_cpus;
    let wanted = missing.div_ceil(s.shape_cpus);
    let room = s.max_vcpus.saturating_sub(s.total_worker_cpus) / s.shape_cpus;
    wanted.min(room)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn launches_for_demand() {
        let s = LocalSnapshot {
            runnable_cpus: 3,
            spare_cpus: 0,
            total_worker_cpus: 0,
            max_vcpus: 8,
            shape_cpus: 2,
        };
        assert_eq!(workers_to_launch(&s), 2);
        assert_eq!(workers_to_launch(&LocalSnapshot { spare_cpus: 3, ..s }), 0);
        assert_eq!(
            workers_to_launch(&LocalSnapshot {
                runnable_cpus: 0,
                ..s
            }),
            0
        );
    }

    proptest! {
        #[test]
        fn never_exceeds_max(d in 0u64..1000, spare in 0u64..100, total in 0u64..64, max in 0u64..64, shape in 0u64..16) {
            let s = LocalSnapshot { runnable_cpus: d, spare_cpus: spare, total_worker_cpus: total, max_vcpus: max, shape_cpus: shape };
            let n = workers_to_launch(&s);
            if n > 0 {
                prop_assert!(total + n * shape <= max);
                prop_assert!(d > spare);
            }
        }
    }
}
