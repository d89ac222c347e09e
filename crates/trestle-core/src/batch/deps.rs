//! Job dependencies: the four kinds (as in Slurm's `--dependency`), their
//! parsing from `afterok:12:13,afterany:14`, and the pure decision whether a
//! dependency is met, still open, or can never be met.

use crate::batch::state::JobState;
use crate::error::{Result, ValidationError};
use serde::{Deserialize, Serialize};

/// Most dependencies one job may have.
pub const MAX_DEPENDENCIES: usize = 100;

/// When a dependency is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DepKind {
    /// The other job has started (or ended).
    After,
    /// The other job succeeded; if it fails or is cancelled, this job is
    /// cancelled with reason `dependency-failed`.
    AfterOk,
    /// The other job failed or was cancelled; if it succeeds, this job can
    /// never run and is cancelled (`dependency-never-satisfied`).
    AfterNotOk,
    /// The other job ended, however.
    AfterAny,
}

impl DepKind {
    /// Every kind.
    pub const ALL: [DepKind; 4] = [
        DepKind::After,
        DepKind::AfterOk,
        DepKind::AfterNotOk,
        DepKind::AfterAny,
    ];

    /// The wire name (`after-ok`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DepKind::After => "after",
            DepKind::AfterOk => "after-ok",
            DepKind::AfterNotOk => "after-not-ok",
            DepKind::AfterAny => "after-any",
        }
    }

    /// Parses a wire name or its Slurm spelling (`afterok`).
    pub fn parse(s: &str) -> Option<DepKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "after" => Some(DepKind::After),
            "after-ok" | "afterok" => Some(DepKind::AfterOk),
            "after-not-ok" | "afternotok" | "after-notok" => Some(DepKind::AfterNotOk),
            "after-any" | "afterany" => Some(DepKind::AfterAny),
            _ => None,
        }
    }
}

/// One dependency of a job on another job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dependency {
    /// The kind.
    pub kind: DepKind,
    /// The job depended on (an array or pipeline parent counts as a whole).
    pub job: i64,
}

/// Where a dependency stands, given the other job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepStatus {
    /// Not decided yet.
    Waiting,
    /// Met.
    Met,
    /// Can never be met: the dependent is cancelled with this reason.
    Never(&'static str),
}

/// Reason given to a job cancelled because an after-ok dependency failed.
pub const DEPENDENCY_FAILED: &str = "dependency-failed";
/// Reason given to a job whose after-not-ok dependency succeeded.
pub const DEPENDENCY_NEVER_SATISFIED: &str = "dependency-never-satisfied";

/// Decides a dependency from the state of the job depended on. `started`
/// says whether that job has begun running (an attempt started, or for a
/// parent, any child).
pub fn status(kind: DepKind, state: JobState, started: bool) -> DepStatus {
    match kind {
        DepKind::After if started || state.is_terminal() || state == JobState::Running => {
            DepStatus::Met
        }
        DepKind::After => DepStatus::Waiting,
        DepKind::AfterAny if state.is_terminal() => DepStatus::Met,
        DepKind::AfterAny => DepStatus::Waiting,
        DepKind::AfterOk => match state {
            JobState::Succeeded => DepStatus::Met,
            JobState::Failed | JobState::Cancelled => DepStatus::Never(DEPENDENCY_FAILED),
            _ => DepStatus::Waiting,
        },
        DepKind::AfterNotOk => match state {
            JobState::Failed | JobState::Cancelled => DepStatus::Met,
            JobState::Succeeded => DepStatus::Never(DEPENDENCY_NEVER_SATISFIED),
            _ => DepStatus::Waiting,
        },
    }
}

fn bad(field: &str, text: &str, why: &str) -> ValidationError {
    ValidationError::new(
        "invalid-dependency",
        field,
        format!("`{text}`: {why} (example: afterok:12:13,afterany:14)"),
    )
}

/// Parses a job id as written in a dependency.
pub fn parse_job_id(field: &str, text: &str) -> Result<i64> {
    let t = text.trim();
    if t.contains('_') {
        return Err(bad(
            field,
            text,
            "dependencies on single array elements are not supported; depend on the whole array",
        ));
    }
    t.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(field, text, &format!("`{t}` is not a job id")))
}

/// Parses Slurm's dependency list: `TYPE:ID[:ID...]` items separated by
/// `,` (all must be met). `?` (any of) and `singleton`/`aftercorr`/
/// `afterburstbuffer` are rejected with a clear error.
pub fn parse_slurm_dependency(field: &str, text: &str) -> Result<Vec<Dependency>> {
    let t = text.trim();
    if t.is_empty() {
        return Err(bad(field, text, "empty dependency"));
    }
    if t.contains('?') {
        return Err(bad(
            field,
            text,
            "`?` (any of several) is not supported; use `,` (all of)",
        ));
    }
    let mut out = Vec::new();
    for item in t.split(',') {
        let mut parts = item.split(':');
        let kind_text = parts.next().unwrap_or("");
        let Some(kind) = DepKind::parse(kind_text) else {
            return Err(bad(
                field,
                text,
                &format!(
                    "`{kind_text}` is not a supported dependency type (after, afterok, afternotok, afterany)"
                ),
            ));
        };
        let mut any = false;
        for id in parts {
            // Slurm allows `+time` after an id for `after`; not supported.
            if id.contains('+') {
                return Err(bad(field, text, "`+time` delays are not supported"));
            }
            out.push(Dependency {
                kind,
                job: parse_job_id(field, id)?,
            });
            any = true;
        }
        if !any {
            return Err(bad(field, text, &format!("`{item}` names no job")));
        }
    }
    check_count(field, &out)?;
    Ok(out)
}

/// Rejects more than [`MAX_DEPENDENCIES`] dependencies.
pub fn check_count(field: &str, deps: &[Dependency]) -> Result<()> {
    if deps.len() > MAX_DEPENDENCIES {
        return Err(ValidationError::new(
            "invalid-dependency",
            field,
            format!(
                "a job may have at most {MAX_DEPENDENCIES} dependencies, got {}",
                deps.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        use DepKind::*;
        use JobState::*;
        assert_eq!(status(AfterOk, Succeeded, true), DepStatus::Met);
        assert_eq!(
            status(AfterOk, Failed, true),
            DepStatus::Never(DEPENDENCY_FAILED)
        );
        assert_eq!(
            status(AfterOk, Cancelled, false),
            DepStatus::Never(DEPENDENCY_FAILED)
        );
        assert_eq!(status(AfterOk, Running, true), DepStatus::Waiting);
        assert_eq!(status(AfterNotOk, Failed, true), DepStatus::Met);
        assert_eq!(
            status(AfterNotOk, Succeeded, true),
            DepStatus::Never(DEPENDENCY_NEVER_SATISFIED)
        );
        assert_eq!(status(AfterAny, Cancelled, false), DepStatus::Met);
        assert_eq!(status(AfterAny, Runnable, false), DepStatus::Waiting);
        assert_eq!(status(After, Runnable, false), DepStatus::Waiting);
        assert_eq!(status(After, Starting, false), DepStatus::Waiting);
        assert_eq!(status(After, Running, true), DepStatus::Met);
        assert_eq!(
            status(After, Runnable, true),
            DepStatus::Met,
            "a retry after a start"
        );
        assert_eq!(status(After, Cancelled, false), DepStatus::Met);
        for k in DepKind::ALL {
            assert_eq!(DepKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn slurm_syntax() {
        let d = parse_slurm_dependency("dependency", "afterok:12:13,afterany:14").unwrap();
        assert_eq!(
            d,
            vec![
                Dependency {
                    kind: DepKind::AfterOk,
                    job: 12
                },
                Dependency {
                    kind: DepKind::AfterOk,
                    job: 13
                },
                Dependency {
                    kind: DepKind::AfterAny,
                    job: 14
                },
            ]
        );
        assert_eq!(
            parse_slurm_dependency("d", "afternotok:5").unwrap()[0].kind,
            DepKind::AfterNotOk
        );
        for bad in [
            "",
            "afterok",
            "afterok:",
            "afterok:x",
            "singleton",
            "afterok:1?afterany:2",
            "aftercorr:3",
            "afterok:4_2",
            "after:5+10",
        ] {
            let e = parse_slurm_dependency("dependency", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("dependency"), "{bad}");
            assert_eq!(e.code, "invalid-dependency");
        }
    }
}
