//! Attaching studies to jobs: `--study NAME[/SUBDIR][:ro|:rw][=PATH]` on
//! the command line, the `studies` list of a job's JSON. The server pins
//! the version each attach reads when the job is submitted; the worker
//! stages it at `PATH` (default `studies/NAME`) in the job's scratch,
//! read-only unless `rw`, and announces it in `TRESTLE_STUDY_<NAME>`. A
//! read-write attach's changes become one new version, by the merge rule
//! against the pinned version, only when the attempt succeeds.

use crate::error::{Result, ValidationError};
use crate::paths::normalize_relative;
use serde::{Deserialize, Serialize};

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// The job reads it; its files are not writable.
    #[default]
    Ro,
    /// The job's changes become a new version when it succeeds.
    Rw,
}

/// One study attached to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyAttach {
    /// The study.
    pub study: String,
    /// Only this directory of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
    /// Read-only (default) or read-write.
    #[serde(default)]
    pub mode: AttachMode,
    /// Where in the job's scratch it appears (default `studies/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The version read (set by the server at submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// The most studies one job may attach.
pub const MAX_ATTACHES: usize = 16;

impl StudyAttach {
    /// Where it appears, relative to the scratch directory.
    pub fn mount(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("studies/{}", self.study))
    }

    /// The environment variable announcing it: `TRESTLE_STUDY_` and the
    /// name in upper case with every other character as `_`.
    pub fn env_name(&self) -> String {
        let n: String = self
            .study
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("TRESTLE_STUDY_{n}")
    }
}

/// Parses `NAME[/SUBDIR][:ro|:rw][=PATH]`.
pub fn parse(field: &str, s: &str) -> Result<StudyAttach> {
    let (left, path) = match s.split_once('=') {
        Some((l, p)) => (l, Some(p.to_string())),
        None => (s, None),
    };
    let (left, mode) = match left.rsplit_once(':') {
        Some((l, "ro")) => (l, AttachMode::Ro),
        Some((l, "rw")) => (l, AttachMode::Rw),
        Some((_, m)) => {
            return Err(ValidationError::new(
                "invalid-study",
                field,
                format!("`{}` is not a mode: `:ro` or `:rw`", m.escape_debug()),
            ));
        }
        None => (left, AttachMode::Ro),
    };
    let (study, subdir) = match left.split_once('/') {
        Some((n, d)) => (n.to_string(), Some(d.to_string())),
        None => (left.to_string(), None),
    };
    let a = StudyAttach {
        study,
        subdir,
        mode,
        path,
        version: None,
    };
    let mut v = check(field, vec![a])?;
    Ok(v.remove(0))
}

/// Checks a job's attaches and normalises their paths: valid names, clean
/// relative sub-directories and mount paths, no study or mount path
/// twice, at most [`MAX_ATTACHES`].
pub fn check(field: &str, list: Vec<StudyAttach>) -> Result<Vec<StudyAttach>> {
    if list.len() > MAX_ATTACHES {
        return Err(ValidationError::new(
            "too-many-studies",
            field,
            format!("a job attaches at most {MAX_ATTACHES} studies"),
        ));
    }
    let mut out: Vec<StudyAttach> = Vec::with_capacity(list.len());
    for (i, mut a) in list.into_iter().enumerate() {
        let f = if field == "studies" {
            format!("studies[{i}]")
        } else {
            field.to_string()
        };
        crate::identity::validate_name(&format!("{f}.study"), &a.study)?;
        if let Some(d) = &a.subdir {
            a.subdir = Some(normalize_relative(&format!("{f}.subdir"), d)?);
        }
        if let Some(p) = &a.path {
            a.path = Some(normalize_relative(&format!("{f}.path"), p)?);
        }
        let mount = a.mount();
        for b in &out {
            let other = b.mount();
            let nested = mount == other
                || mount.starts_with(&format!("{other}/"))
                || other.starts_with(&format!("{mount}/"));
            if b.study == a.study || nested {
                return Err(ValidationError::new(
                    "duplicate-study",
                    &f,
                    format!(
                        "`{}` at `{mount}` clashes with `{}` at `{other}`",
                        a.study, b.study
                    ),
                ));
            }
        }
        out.push(a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag() {
        let a = parse("--study", "genomes").unwrap();
        assert_eq!(
            (a.study.as_str(), a.mode, a.mount()),
            ("genomes", AttachMode::Ro, "studies/genomes".to_string())
        );
        let a = parse("--study", "genomes/raw/2024:rw=data/in").unwrap();
        assert_eq!(a.subdir.as_deref(), Some("raw/2024"));
        assert_eq!(a.mode, AttachMode::Rw);
        assert_eq!(a.mount(), "data/in");
        assert_eq!(a.env_name(), "TRESTLE_STUDY_GENOMES");
        assert_eq!(
            parse("s", "my-data.v2").unwrap().env_name(),
            "TRESTLE_STUDY_MY_DATA_V2"
        );
        for (bad, field) in [
            ("Genomes", "--study.study"),
            ("g:rx", "--study"),
            ("g=../up", "--study.path"),
            ("g=/abs", "--study.path"),
            ("g/../x", "--study.subdir"),
        ] {
            assert_eq!(
                parse("--study", bad).unwrap_err().field.as_deref(),
                Some(field),
                "{bad}"
            );
        }
    }

    #[test]
    fn clashes_are_refused() {
        let a = |s: &str| parse("x", s).unwrap();
        check("studies", vec![a("a"), a("b")]).unwrap();
        let e = check("studies", vec![a("a"), a("a/sub=other")]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("studies[1]"));
        let e = check("studies", vec![a("a=d"), a("b=d/inner")]).unwrap_err();
        assert_eq!(e.code, "duplicate-study");
        let many: Vec<StudyAttach> = (0..17).map(|i| a(&format!("s{i}"))).collect();
        assert_eq!(check("studies", many).unwrap_err().code, "too-many-studies");
    }
}
