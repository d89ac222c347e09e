//! Which old versions may go. A version is kept while it is the current
//! one, while an unfinished job reads it (its record refers to it), and
//! for the retention period after a newer version replaced it; after
//! that it is marked deleted (its row stays, so a job's record that names
//! it says it was deleted) and the objects no kept version refers to are
//! removed.

use std::collections::BTreeSet;

/// Versions (number, created at) oldest first, not yet deleted, and the
/// current version; returns the ones to delete.
pub fn prunable(
    versions: &[(u64, i64)],
    current: u64,
    keep_ms: i64,
    now: i64,
    in_use: &BTreeSet<u64>,
) -> Vec<u64> {
    versions
        .windows(2)
        .filter(|w| {
            let (v, _) = w[0];
            let (_, replaced_at) = w[1];
            v != current && !in_use.contains(&v) && replaced_at.saturating_add(keep_ms) <= now
        })
        .map(|w| w[0].0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_current_in_use_and_recent() {
        let day = 86_400_000;
        let vs = [(1, 0), (2, day), (3, 10 * day), (4, 20 * day)];
        let none = BTreeSet::new();
        // At day 21 with a week's retention: 1 (replaced on day 1) and 2
        // (replaced on day 10) go; 3 was replaced a day ago; 4 is current.
        assert_eq!(prunable(&vs, 4, 7 * day, 21 * day, &none), [1, 2]);
        let used: BTreeSet<u64> = [1].into_iter().collect();
        assert_eq!(prunable(&vs, 4, 7 * day, 21 * day, &used), [2]);
        assert!(prunable(&vs, 4, 30 * day, 21 * day, &none).is_empty());
        assert!(prunable(&vs[..1], 1, 0, i64::MAX, &none).is_empty());
    }
}
