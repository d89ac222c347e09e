//! Workflow progression as a plan: when children of arrays and pipelines
//! end, which groups' counters change, in which order the store takes
//! them, and what each group does next (finish, create more children, or
//! wait). Pure: the store applies the plan in the report's transaction,
//! taking every parent in ascending id order, so two report batches that
//! end children of the same groups never wait on each other in a circle.

use crate::batch::array::children_to_create;

/// The groups whose children ended in one batch: (parent id, how many of
/// its children ended), each parent once, in the order the store must
/// lock them (ascending id).
pub fn parents_in_lock_order(ended: impl IntoIterator<Item = i64>) -> Vec<(i64, u64)> {
    let mut per: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    for parent in ended {
        *per.entry(parent).or_default() += 1;
    }
    per.into_iter().collect()
}

/// A group's counters as stored, after its ended children were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCounters {
    /// An array (creates its children lazily); otherwise a pipeline.
    pub array: bool,
    /// Children in all.
    pub total: u64,
    /// Children created so far.
    pub created: u64,
    /// Children created and not ended.
    pub active: u64,
    /// The array's `%` limit.
    pub parallel: Option<u32>,
    /// A cancel was requested for the group.
    pub cancelled: bool,
}

/// What a group does after some of its children ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStep {
    /// Every child it will have has ended: it ends too (its state is the
    /// summary of its children's).
    Finish,
    /// An array creates this many more children.
    Create(u64),
    /// Children still run; nothing to do.
    Wait,
}

/// The next step of a group from its counters.
pub fn next_step(g: &GroupCounters) -> GroupStep {
    if g.active == 0 && (g.created >= g.total || g.cancelled) {
        return GroupStep::Finish;
    }
    if g.array && !g.cancelled && g.created < g.total {
        let n = children_to_create(g.total, g.created, g.active, g.parallel);
        if n > 0 {
            return GroupStep::Create(n);
        }
    }
    GroupStep::Wait
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn g(total: u64, created: u64, active: u64, parallel: Option<u32>) -> GroupCounters {
        GroupCounters {
            array: true,
            total,
            created,
            active,
            parallel,
            cancelled: false,
        }
    }

    #[test]
    fn parents_are_taken_once_each_in_ascending_order() {
        assert_eq!(
            parents_in_lock_order([9, 4, 9, 7, 4, 9]),
            vec![(4, 2), (7, 1), (9, 3)]
        );
        assert!(parents_in_lock_order([]).is_empty());
    }

    #[test]
    fn steps() {
        assert_eq!(next_step(&g(10, 10, 0, None)), GroupStep::Finish);
        assert_eq!(next_step(&g(10, 10, 3, None)), GroupStep::Wait);
        assert_eq!(next_step(&g(10, 4, 1, Some(2))), GroupStep::Create(1));
        assert_eq!(next_step(&g(10, 4, 2, Some(2))), GroupStep::Wait);
        let mut c = g(10, 4, 0, Some(2));
        c.cancelled = true;
        assert_eq!(
            next_step(&c),
            GroupStep::Finish,
            "a cancelled group ends with its last child"
        );
        let mut p = g(3, 3, 1, None);
        p.array = false;
        assert_eq!(next_step(&p), GroupStep::Wait);
        p.active = 0;
        assert_eq!(next_step(&p), GroupStep::Finish);
    }

    proptest! {
        #[test]
        fn a_group_never_overshoots_and_always_progresses(
            total in 0u64..5000, created_frac in 0u64..=100, active_frac in 0u64..=100,
            parallel in proptest::option::of(1u32..64),
        ) {
            let created = total * created_frac / 100;
            let active = created * active_frac / 100;
            let c = g(total, created, active, parallel);
            match next_step(&c) {
                GroupStep::Create(n) => {
                    prop_assert!(n > 0 && created + n <= total);
                    if let Some(p) = parallel {
                        prop_assert!(active + n <= u64::from(p));
                    }
                }
                GroupStep::Finish => prop_assert!(active == 0 && created >= total),
                // Waiting is only right while children still run.
                GroupStep::Wait => prop_assert!(active > 0),
            }
        }
    }
}
