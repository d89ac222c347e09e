//! Job arrays: the index set a user asks for (`0-999`, `0-15:4`, `1,3,5-7`,
//! each optionally followed by `%N` to cap how many run at once), kept as
//! a few arithmetic segments so that an array of any size is a handful of
//! numbers, and the pure arithmetic that maps a child's ordinal (0, 1, 2,
//! ... in submission order) to its index.

use crate::error::{Result, ValidationError};
use serde::{Deserialize, Serialize};

/// Most children one array may have.
pub const MAX_ARRAY_SIZE: u64 = 1_000_000;
/// Largest index an array may use.
pub const MAX_ARRAY_INDEX: u64 = 10_000_000;

/// One arithmetic run of indices: `first, first + step, ...` (`count` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The first index.
    pub first: u32,
    /// Distance between indices (at least 1).
    pub step: u32,
    /// How many indices (at least 1).
    pub count: u32,
}

impl Segment {
    /// The last index of the segment.
    pub fn last(&self) -> u32 {
        self.first + self.step * (self.count - 1)
    }
}

/// A validated array: its index segments, in the order written, and the
/// optional limit on children running at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArraySpec {
    /// The index segments.
    pub segments: Vec<Segment>,
    /// At most this many children run at once (`%N`); `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Fail fast: once this many children failed, the rest are cancelled
    /// (`--max-failures N`); `None`: every child runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u32>,
}

/// Which child of which array a job is (set on materialised children).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayTask {
    /// The parent (array) job id.
    pub parent: i64,
    /// This child's index.
    pub index: u32,
}

/// A run of children to create: ordinals `ordinal..ordinal + count` get
/// indices `first, first + step, ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Ordinal of the first child of the run.
    pub ordinal: u64,
    /// Index of the first child of the run.
    pub first: u32,
    /// Distance between indices.
    pub step: u32,
    /// Children in the run.
    pub count: u32,
}

fn bad(field: &str, text: &str, why: &str) -> ValidationError {
    ValidationError::new(
        "invalid-array",
        field,
        format!(
            "`{text}` is not an array specification ({why}); examples: 0-99, 0-99:2, 1,3,5-7, 0-999%10"
        ),
    )
}

fn number(field: &str, text: &str, part: &str) -> Result<u64> {
    let p = part.trim();
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 12 {
        return Err(bad(field, text, &format!("`{part}` is not a whole number")));
    }
    p.parse::<u64>()
        .map_err(|_| bad(field, text, &format!("`{part}` is too large")))
}

impl ArraySpec {
    /// Parses the Slurm syntax: comma-separated items, each `N`, `A-B` or
    /// `A-B:STEP`, optionally followed by `%LIMIT` for the whole array.
    pub fn parse(field: &str, text: &str) -> Result<ArraySpec> {
        let t = text.trim();
        let (list, limit) = match t.split_once('%') {
            Some((l, p)) => (l, Some(number(field, text, p)?)),
            None => (t, None),
        };
        let parallel = match limit {
            Some(0) => return Err(bad(field, text, "the `%` limit must be at least 1")),
            Some(n) => Some(u32::try_from(n).map_err(|_| bad(field, text, "limit too large"))?),
            None => None,
        };
        if list.trim().is_empty() {
            return Err(bad(field, text, "no indices"));
        }
        let mut segments = Vec::new();
        let mut total: u64 = 0;
        for item in list.split(',') {
            let (range, step) = match item.split_once(':') {
                Some((r, s)) => (r, number(field, text, s)?),
                None => (item, 1),
            };
            if step == 0 {
                return Err(bad(field, text, "a step must be at least 1"));
            }
            let (first, last) = match range.split_once('-') {
                Some((a, b)) => (number(field, text, a)?, number(field, text, b)?),
                None => {
                    let n = number(field, text, range)?;
                    (n, n)
                }
            };
            if last < first {
                return Err(bad(field, text, &format!("`{item}` runs backwards")));
            }
            if last > MAX_ARRAY_INDEX {
                return Err(bad(
                    field,
                    text,
                    &format!("indices must be at most {MAX_ARRAY_INDEX}"),
                ));
            }
            let count = (last - first) / step + 1;
            total += count;
            if total > MAX_ARRAY_SIZE {
                return Err(bad(
                    field,
                    text,
                    &format!("an array has at most {MAX_ARRAY_SIZE} children"),
                ));
            }
            segments.push(Segment {
                first: first as u32,
                step: if count == 1 { 1 } else { step as u32 },
                count: count as u32,
            });
        }
        let spec = ArraySpec {
            segments,
            parallel,
            max_failures: None,
        };
        spec.check_distinct(field, text)?;
        Ok(spec)
    }

    /// Rejects index sets that name an index twice.
    fn check_distinct(&self, field: &str, text: &str) -> Result<()> {
        if self.segments.len() < 2 {
            return Ok(());
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.segments {
            for k in 0..s.count {
                let i = s.first + s.step * k;
                if !seen.insert(i) {
                    return Err(bad(field, text, &format!("index {i} appears twice")));
                }
            }
        }
        Ok(())
    }

    /// Number of children.
    pub fn len(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.count)).sum()
    }

    /// True when the array has no children (never for a parsed spec).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Smallest index.
    pub fn min(&self) -> u32 {
        self.segments.iter().map(|s| s.first).min().unwrap_or(0)
    }

    /// Largest index.
    pub fn max(&self) -> u32 {
        self.segments.iter().map(Segment::last).max().unwrap_or(0)
    }

    /// True if the array has a child with this index.
    pub fn contains(&self, index: u32) -> bool {
        self.segments.iter().any(|s| {
            index >= s.first
                && (index - s.first).is_multiple_of(s.step.max(1))
                && (index - s.first) / s.step.max(1) < s.count
        })
    }

    /// The index of the child with this ordinal.
    pub fn index_at(&self, ordinal: u64) -> Option<u32> {
        let mut left = ordinal;
        for s in &self.segments {
            if left < u64::from(s.count) {
                return Some(s.first + s.step * left as u32);
            }
            left -= u64::from(s.count);
        }
        None
    }

    /// The runs that create children with ordinals `from..to` (clamped to
    /// the array), one per segment they touch.
    pub fn batches(&self, from: u64, to: u64) -> Vec<Batch> {
        let to = to.min(self.len());
        let mut out = Vec::new();
        let mut start: u64 = 0;
        for s in &self.segments {
            let end = start + u64::from(s.count);
            let lo = from.max(start);
            let hi = to.min(end);
            if lo < hi {
                out.push(Batch {
                    ordinal: lo,
                    first: s.first + s.step * (lo - start) as u32,
                    step: s.step,
                    count: (hi - lo) as u32,
                });
            }
            start = end;
        }
        out
    }
}

/// Children of an array without a `%` limit that are kept created ahead of
/// the workers (the rest are created as these finish).
pub const ARRAY_WINDOW: u64 = 1000;

/// How many children of an array to create now: up to the `%` limit of
/// unfinished children, or, without a limit, a refill of the window once
/// half of it has finished. Never more than remain.
pub fn children_to_create(total: u64, created: u64, active: u64, parallel: Option<u32>) -> u64 {
    let remaining = total.saturating_sub(created);
    let room = match parallel {
        Some(p) => u64::from(p).saturating_sub(active),
        None if active <= ARRAY_WINDOW / 2 => ARRAY_WINDOW - active,
        None => 0,
    };
    room.min(remaining)
}

/// Indices as Slurm prints them compressed: sorted, runs of consecutive
/// indices joined (`3,17,40-42`).
pub fn compress(indices: &[u32]) -> String {
    let mut v = indices.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j == i {
            out.push_str(&v[i].to_string());
        } else {
            out.push_str(&format!("{}-{}", v[i], v[j]));
        }
        i = j + 1;
    }
    out
}

impl std::fmt::Display for ArraySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if s.count == 1 {
                write!(f, "{}", s.first)?;
            } else if s.step == 1 {
                write!(f, "{}-{}", s.first, s.last())?;
            } else {
                write!(f, "{}-{}:{}", s.first, s.last(), s.step)?;
            }
        }
        if let Some(p) = self.parallel {
            write!(f, "%{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compressed_ranges() {
        assert_eq!(compress(&[42, 3, 40, 17, 41]), "3,17,40-42");
        assert_eq!(compress(&[]), "");
        assert_eq!(compress(&[5, 5]), "5");
        assert_eq!(compress(&[0, 1, 2, 3]), "0-3");
        let s = ArraySpec::parse("array", "0-10:5,20").unwrap();
        assert!(s.contains(5) && s.contains(20) && s.contains(0));
        assert!(!s.contains(3) && !s.contains(15) && !s.contains(21));
        // What compress prints, parse reads back as the same indices.
        let a = ArraySpec::parse("array", &compress(&[9, 1, 2, 7, 8])).unwrap();
        assert_eq!(indices(&a), vec![1, 2, 7, 8, 9]);
    }

    fn indices(a: &ArraySpec) -> Vec<u32> {
        (0..a.len()).map(|k| a.index_at(k).unwrap()).collect()
    }

    #[test]
    fn parses_slurm_forms() {
        let a = ArraySpec::parse("array", "0-9").unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!((a.min(), a.max(), a.parallel), (0, 9, None));
        let a = ArraySpec::parse("array", "0-15:4").unwrap();
        assert_eq!(indices(&a), vec![0, 4, 8, 12]);
        let a = ArraySpec::parse("array", "1,3,5-7%2").unwrap();
        assert_eq!(indices(&a), vec![1, 3, 5, 6, 7]);
        assert_eq!(a.parallel, Some(2));
        assert_eq!(a.to_string(), "1,3,5-7%2");
        let a = ArraySpec::parse("array", "0-99999").unwrap();
        assert_eq!(a.len(), 100_000);
        assert_eq!(a.segments.len(), 1);
        assert_eq!(ArraySpec::parse("a", "7").unwrap().to_string(), "7");
        assert_eq!(
            ArraySpec::parse("a", "1-10:3").unwrap().to_string(),
            "1-10:3"
        );
        assert_eq!(
            indices(&ArraySpec::parse("a", "1-10:3").unwrap()),
            vec![1, 4, 7, 10]
        );
    }

    #[test]
    fn rejects_bad_specs_naming_the_field() {
        for bad in [
            "",
            "a-b",
            "5-1",
            "0-9:0",
            "0-9%0",
            "1,1",
            "0-3,2",
            "-1",
            "0-20000000",
            "0-9%",
            "1,,2",
            "0-2000000",
        ] {
            let e = ArraySpec::parse("array", bad).unwrap_err();
            assert_eq!(e.code, "invalid-array", "{bad}");
            assert_eq!(e.field.as_deref(), Some("array"));
        }
    }

    #[test]
    fn batches_cover_ordinals_across_segments() {
        let a = ArraySpec::parse("a", "0-4,10-20:5,100").unwrap();
        assert_eq!(a.len(), 9);
        let b = a.batches(3, 8);
        assert_eq!(
            b,
            vec![
                Batch {
                    ordinal: 3,
                    first: 3,
                    step: 1,
                    count: 2
                },
                Batch {
                    ordinal: 5,
                    first: 10,
                    step: 5,
                    count: 3
                },
            ]
        );
        assert_eq!(
            a.batches(8, 100),
            vec![Batch {
                ordinal: 8,
                first: 100,
                step: 1,
                count: 1
            }]
        );
        assert!(a.batches(9, 100).is_empty());
    }

    #[test]
    fn windows() {
        assert_eq!(children_to_create(100_000, 0, 0, None), ARRAY_WINDOW);
        assert_eq!(children_to_create(100_000, 1000, 900, None), 0);
        assert_eq!(children_to_create(100_000, 1000, 500, None), 500);
        assert_eq!(children_to_create(10, 0, 0, Some(3)), 3);
        assert_eq!(children_to_create(10, 9, 2, Some(3)), 1);
        assert_eq!(children_to_create(10, 10, 0, Some(3)), 0);
    }

    proptest! {
        #[test]
        fn creation_respects_limits(total in 0u64..5000, created in 0u64..5000, active in 0u64..2000, p in proptest::option::of(1u32..50)) {
            let created = created.min(total);
            let active = active.min(created);
            let n = children_to_create(total, created, active, p);
            prop_assert!(created + n <= total);
            if let Some(p) = p {
                prop_assert!(n == 0 || active + n <= u64::from(p));
            } else {
                prop_assert!(active + n <= ARRAY_WINDOW.max(active));
            }
        }
    }

    proptest! {
        #[test]
        fn batches_agree_with_index_at(
            first in 0u32..50, step in 1u32..5, count in 1u32..40,
            first2 in 1000u32..1100, count2 in 1u32..10,
            from in 0u64..60, len in 0u64..60,
        ) {
            let text = format!("{first}-{}:{step},{first2}-{}", first + step * (count - 1), first2 + count2 - 1);
            let a = ArraySpec::parse("a", &text).unwrap();
            prop_assert_eq!(a.len(), u64::from(count + count2));
            let mut got = Vec::new();
            for b in a.batches(from, from + len) {
                for k in 0..b.count {
                    got.push((b.ordinal + u64::from(k), b.first + b.step * k));
                }
            }
            let want: Vec<(u64, u32)> = (from..(from + len).min(a.len()))
                .map(|o| (o, a.index_at(o).unwrap()))
                .collect();
            prop_assert_eq!(got, want);
            let back = ArraySpec::parse("a", &a.to_string()).unwrap();
            prop_assert_eq!(back, a);
        }
    }
}
