//! The merge rule for concurrent writers (many tasks writing one study,
//! or a CLI upload racing a job). Each writer's changes were made against
//! a **base** version and apply as one new version on top of the
//! **current** one:
//!
//! - a change to a path that no version since the base touched merges;
//! - a change to a path that did change in between (added, replaced or
//!   removed, or anything under a directory the writer deletes) is a
//!   conflict: the whole set is refused, nothing is half-applied, and
//!   the refusal names every conflicting path.

use super::manifest::{Change, Manifest, apply};
use crate::error::ValidationError;
use std::collections::BTreeSet;

/// Why a set of changes could not be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// Paths that changed since the base (sorted).
    Conflict(Vec<String>),
    /// The changes are invalid on the current version.
    Invalid(ValidationError),
}

/// Applies `changes`, made against `base`, on top of `current`.
pub fn merge(
    base: &Manifest,
    current: &Manifest,
    changes: &[Change],
) -> Result<Manifest, MergeError> {
    let moved = base.changed_paths(current);
    if !moved.is_empty() {
        let mut clash = BTreeSet::new();
        for c in changes {
            let p = c.path();
            let pre = format!("{p}/");
            for m in &moved {
                if m == p || m.starts_with(&pre) {
                    clash.insert(m.clone());
                }
            }
        }
        if !clash.is_empty() {
            return Err(MergeError::Conflict(clash.into_iter().collect()));
        }
    }
    apply(current, changes).map_err(MergeError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(p: &str, n: u8) -> Change {
        Change::Put {
            path: p.into(),
            size: 1,
            sha256: format!("{n:02x}").repeat(32),
        }
    }

    #[test]
    fn two_writers_on_different_paths_both_apply() {
        let base = apply(&Manifest::default(), &[put("shared", 1)]).unwrap();
        let after_a = merge(&base, &base, &[put("a/out", 2)]).unwrap();
        let after_b = merge(&base, &after_a, &[put("b/out", 3)]).unwrap();
        assert_eq!(after_b.files.len(), 3);
    }

    #[test]
    fn two_writers_on_one_path_conflict_and_nothing_is_applied() {
        let base = apply(&Manifest::default(), &[put("shared", 1)]).unwrap();
        let after_a = merge(&base, &base, &[put("result", 2)]).unwrap();
        let err = merge(&base, &after_a, &[put("other", 4), put("result", 3)]).unwrap_err();
        assert_eq!(err, MergeError::Conflict(vec!["result".into()]));
        // Deleting a directory conflicts with a change inside it.
        let after_c = merge(&base, &base, &[put("d/x", 5)]).unwrap();
        let err = merge(&base, &after_c, &[Change::Delete { path: "d".into() }]).unwrap_err();
        assert_eq!(err, MergeError::Conflict(vec!["d/x".into()]));
        // A writer up to date with the current version never conflicts.
        merge(&after_a, &after_a, &[put("result", 9)]).unwrap();
    }
}
