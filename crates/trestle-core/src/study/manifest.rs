//! A study's manifest: every file's path, size and SHA-256. A version is
//! an immutable manifest; every change ([`Change`]) makes a new one, with
//! paths checked so that nothing can name a place outside the study or
//! two names that look the same.

use super::check_sha256;
use crate::error::{Result, ValidationError};
use crate::paths::normalize_relative;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use unicode_normalization::UnicodeNormalization;

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its content (hex).
    pub sha256: String,
}

/// The files of one version, by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Path to file.
    pub files: BTreeMap<String, Entry>,
}

/// One change to a study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    /// Adds or replaces a file whose content was uploaded already.
    Put {
        /// Relative path.
        path: String,
        /// Size.
        size: u64,
        /// SHA-256 of the content.
        sha256: String,
    },
    /// Removes a file, or every file under a directory.
    Delete {
        /// Relative path.
        path: String,
    },
}

impl Change {
    /// The path changed.
    pub fn path(&self) -> &str {
        match self {
            Change::Put { path, .. } | Change::Delete { path } => path,
        }
    }
}

/// The most changes one version may carry.
pub const MAX_CHANGES: usize = 100_000;

impl Manifest {
    /// Total bytes of the files in this version.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }

    /// The files under `dir` (`""`: all), as a manifest of their own with
    /// the same paths.
    pub fn subset(&self, dir: &str) -> Manifest {
        let dir = dir.trim_matches('/');
        if dir.is_empty() {
            return self.clone();
        }
        let pre = format!("{dir}/");
        Manifest {
            files: self
                .files
                .iter()
                .filter(|(p, _)| p.as_str() == dir || p.starts_with(&pre))
                .map(|(p, e)| (p.clone(), e.clone()))
                .collect(),
        }
    }

    /// The content hashes this version refers to, with their sizes.
    pub fn objects(&self) -> BTreeMap<&str, u64> {
        self.files
            .values()
            .map(|e| (e.sha256.as_str(), e.size))
            .collect()
    }

    /// Paths whose content differs between `self` and `other` (added,
    /// removed or changed in either).
    pub fn changed_paths(&self, other: &Manifest) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (p, e) in &self.files {
            if other.files.get(p) != Some(e) {
                out.insert(p.clone());
            }
        }
        for p in other.files.keys() {
            if !self.files.contains_key(p) {
                out.insert(p.clone());
            }
        }
        out
    }
}

/// The changes, checked and with normalised paths: every path relative
/// and inside the study, no control characters, no part longer than 255
/// bytes, no two changes to one path, no new path that normalises
/// (Unicode NFC) to an existing or another new name, no file where a
/// directory is and no directory where a file is.
pub fn check_changes(current: &Manifest, changes: &[Change]) -> Result<Vec<Change>> {
    if changes.is_empty() {
        return Err(ValidationError::new(
            "no-changes",
            "changes",
            "a new version needs at least one change",
        ));
    }
    if changes.len() > MAX_CHANGES {
        return Err(ValidationError::new(
            "too-many-changes",
            "changes",
            format!("at most {MAX_CHANGES} changes make one version"),
        ));
    }
    let existing: BTreeMap<String, &str> = current
        .files
        .keys()
        .map(|p| (p.nfc().collect::<String>(), p.as_str()))
        .collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        let field = format!("changes[{i}].path");
        let path = normalize_relative(&field, c.path())?;
        let nfc: String = path.nfc().collect();
        if let Some(prev) = seen.get(&nfc) {
            let what = if *prev == path {
                "is named twice"
            } else {
                "normalises to the same name as another change"
            };
            return Err(ValidationError::new(
                "duplicate-path",
                &field,
                format!(
                    "`{}` {what} (`{}`)",
                    path.escape_debug(),
                    prev.escape_debug()
                ),
            ));
        }
        if let Some(old) = existing.get(&nfc)
            && *old != path
        {
            return Err(ValidationError::new(
                "name-collision",
                &field,
                format!(
                    "`{}` normalises (Unicode NFC) to the existing name `{}`: use that name",
                    path.escape_debug(),
                    old.escape_debug()
                ),
            ));
        }
        seen.insert(nfc, path.clone());
        out.push(match c {
            Change::Put { size, sha256, .. } => {
                check_sha256(&format!("changes[{i}].sha256"), sha256)?;
                Change::Put {
                    path,
                    size: *size,
                    sha256: sha256.clone(),
                }
            }
            Change::Delete { .. } => Change::Delete { path },
        });
    }
    Ok(out)
}

/// Applies checked changes to `base`, giving the next version. A `Delete`
/// of a path that is neither a file nor a directory is an error, and so
/// is a file that would sit where a directory is (or under a file).
pub fn apply(base: &Manifest, changes: &[Change]) -> Result<Manifest> {
    let mut next = base.clone();
    for (i, c) in changes.iter().enumerate() {
        let field = format!("changes[{i}].path");
        match c {
            Change::Put { path, size, sha256 } => {
                next.files.insert(
                    path.clone(),
                    Entry {
                        size: *size,
                        sha256: sha256.clone(),
                    },
                );
            }
            Change::Delete { path } => {
                let before = next.files.len();
                let pre = format!("{path}/");
                next.files.retain(|p, _| p != path && !p.starts_with(&pre));
                if next.files.len() == before {
                    return Err(ValidationError::new(
                        "no-such-path",
                        &field,
                        format!("`{}` is not in the study", path.escape_debug()),
                    ));
                }
            }
        }
    }
    check_tree(&next, changes)?;
    Ok(next)
}

/// No file may also be a directory of another file.
fn check_tree(m: &Manifest, changes: &[Change]) -> Result<()> {
    for (i, c) in changes.iter().enumerate() {
        let Change::Put { path, .. } = c else {
            continue;
        };
        let field = format!("changes[{i}].path");
        let mut dir = path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if m.files.contains_key(parent) {
                return Err(ValidationError::new(
                    "file-in-the-way",
                    &field,
                    format!(
                        "`{}` would be inside `{}`, which is a file",
                        path.escape_debug(),
                        parent.escape_debug()
                    ),
                ));
            }
            dir = parent;
        }
        let pre = format!("{path}/");
        if m.files
            .range(pre.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&pre))
        {
            return Err(ValidationError::new(
                "directory-in-the-way",
                &field,
                format!("`{}` is a directory in the study", path.escape_debug()),
            ));
        }
    }
    Ok(())
}

/// Whether a deposit-box writer (who may only add) may make these
/// changes to `base`: no replaced or deleted file.
pub fn only_adds(base: &Manifest, changes: &[Change]) -> bool {
    changes.iter().all(|c| match c {
        Change::Put { path, .. } => !base.files.contains_key(path),
        Change::Delete { .. } => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(p: &str, n: u8) -> Change {
        Change::Put {
            path: p.into(),
            size: u64::from(n),
            sha256: format!("{n:02x}").repeat(32),
        }
    }

    fn m(files: &[(&str, u8)]) -> Manifest {
        let c: Vec<Change> = files.iter().map(|(p, n)| put(p, *n)).collect();
        apply(&Manifest::default(), &c).unwrap()
    }

    #[test]
    fn versions_apply_changes() {
        let v1 = m(&[("a.txt", 1), ("d/b.txt", 2), ("d/c.txt", 3)]);
        assert_eq!(v1.bytes(), 6);
        let v2 = apply(&v1, &[Change::Delete { path: "d".into() }, put("a.txt", 9)]).unwrap();
        assert_eq!(v2.files.len(), 1);
        assert_eq!(v2.files["a.txt"].size, 9);
        let changed = v1.changed_paths(&v2);
        assert_eq!(changed.len(), 3, "{changed:?}");
        assert_eq!(v1.subset("d").files.len(), 2);
        assert_eq!(v1.subset("").files.len(), 3);
        assert_eq!(v1.subset("d/b.txt").files.len(), 1);
        let e = apply(&v1, &[Change::Delete { path: "zz".into() }]).unwrap_err();
        assert_eq!(e.code, "no-such-path");
    }

    #[test]
    fn bad_paths_name_their_field() {
        let cur = m(&[("caf\u{e9}.txt", 1), ("dir/x", 1)]);
        let cases: &[(&str, &str)] = &[
            ("../x", "invalid-path"),
            ("/etc/passwd", "invalid-path"),
            ("a\0b", "invalid-path"),
            ("a\u{1b}b", "invalid-path"),
            (&"n".repeat(256), "invalid-path"),
            // `e` + combining acute accent: NFC is the existing `café.txt`.
            ("cafe\u{301}.txt", "name-collision"),
        ];
        for (p, code) in cases {
            let e = check_changes(&cur, &[put("ok", 1), put(p, 2)]).unwrap_err();
            assert_eq!(e.code, *code, "{p:?}");
            assert_eq!(e.field.as_deref(), Some("changes[1].path"), "{p:?}");
        }
        let e = check_changes(&cur, &[put("x", 1), put("./x", 2)]).unwrap_err();
        assert_eq!(e.code, "duplicate-path");
        let e = check_changes(&cur, &[put("n\u{e9}", 1), put("ne\u{301}", 2)]).unwrap_err();
        assert_eq!(e.code, "duplicate-path");
        let e = check_changes(&cur, &[]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("changes"));
        let bad_sha = Change::Put {
            path: "y".into(),
            size: 1,
            sha256: "nope".into(),
        };
        let e = check_changes(&cur, &[bad_sha]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("changes[0].sha256"));
        // The same name, byte for byte, replaces the file.
        check_changes(&cur, &[put("caf\u{e9}.txt", 3)]).unwrap();
        let ok = check_changes(&cur, &[put("a/./b", 1)]).unwrap();
        assert_eq!(ok[0].path(), "a/b");
    }

    #[test]
    fn files_and_directories_do_not_overlap() {
        let cur = m(&[("dir/x", 1), ("f", 1)]);
        assert_eq!(
            apply(&cur, &[put("dir", 2)]).unwrap_err().code,
            "directory-in-the-way"
        );
        assert_eq!(
            apply(&cur, &[put("f/y", 2)]).unwrap_err().code,
            "file-in-the-way"
        );
    }

    #[test]
    fn deposit_boxes_only_add() {
        let cur = m(&[("a", 1)]);
        assert!(only_adds(&cur, &[put("b", 1)]));
        assert!(!only_adds(&cur, &[put("a", 2)]));
        assert!(!only_adds(&cur, &[Change::Delete { path: "a".into() }]));
    }
}
