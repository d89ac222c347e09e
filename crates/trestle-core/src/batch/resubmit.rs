//! Resubmission: the specification of a new job that runs an existing
//! job's work again. Pure: the caller loads the job and submits the result
//! through the ordinary submit path (which charges it to a project and sets
//! its owner).
//!
//! - An ordinary job is resubmitted with its specification as it was (the
//!   caller-chosen key dropped, since keys are unique).
//! - One task of an array (a child) is resubmitted as a **plain job that
//!   runs the same task**: it keeps the task's index and the array's index
//!   set, so `TRESTLE_ARRAY_INDEX`, `SLURM_ARRAY_TASK_ID` and the `%a`
//!   output patterns are what the task saw, but it is a job of its own,
//!   not a child of the array: it has a new id and is not counted in the
//!   array's progress.
//! - Arrays and pipelines themselves are not resubmitted here: their
//!   children carry the work (resubmit a child, or submit the group again).

use crate::api::JobView;
use crate::batch::job::JobSpec;
use crate::batch::workflow::JobKind;
use crate::error::{Result, ValidationError};

/// The specification that runs `old`'s work again as a new job.
pub fn resubmission(old: &JobView) -> Result<JobSpec> {
    match old.flow.kind {
        JobKind::Job => {}
        kind => {
            return Err(ValidationError::new(
                "not-resubmittable",
                "id",
                format!(
                    "job {} is {} {}; resubmit one of its children, or submit it again",
                    old.id,
                    if kind == JobKind::Array { "an" } else { "a" },
                    kind.as_str()
                ),
            ));
        }
    }
    let mut spec = old.spec.clone();
    spec.key = None;
    // The submit path decides these for the one who resubmits.
    spec.owner = None;
    // A row of kind `job` never names an array without its task, so the
    // spec is stored as a plain job again (`Flow::kind`).
    Ok(spec)
}

/// The specification of a new array that runs only the children of array
/// `old` with these (failed) indices again, with `old`'s script, window
/// (`%N`) and fail-fast limit.
pub fn failed_again(old: &JobView, failed: &[u32]) -> Result<JobSpec> {
    let Some(array) = old
        .spec
        .flow
        .array
        .as_ref()
        .filter(|_| old.flow.kind == JobKind::Array)
    else {
        return Err(ValidationError::new(
            "not-an-array",
            "failed",
            format!(
                "job {} is not an array; `--failed` re-runs the failed children of an array",
                old.id
            ),
        ));
    };
    if failed.is_empty() {
        return Err(ValidationError::new(
            "nothing-failed",
            "failed",
            format!("array {} has no failed children to run again", old.id),
        ));
    }
    let mut again =
        crate::batch::array::ArraySpec::parse("failed", &crate::batch::array::compress(failed))?;
    again.parallel = array.parallel;
    again.max_failures = array.max_failures;
    let mut spec = old.spec.clone();
    spec.key = None;
    spec.owner = None;
    spec.flow.array = Some(again);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workflow::FlowView;
    use crate::batch::array::{ArraySpec, ArrayTask};
    use crate::batch::spec::request_from_value;

    fn view(spec: JobSpec, kind: JobKind, parent: Option<i64>) -> JobView {
        JobView {
            id: 1147,
            name: spec.name.clone(),
            queue: spec.queue.clone(),
            state: crate::JobState::Failed,
            reason: None,
            attempts_used: 1,
            max_attempts: 1,
            exit_code: Some(1),
            worker: None,
            submitted_at: 0,
            started_at: None,
            finished_at: None,
            spec,
            attempts: Vec::new(),
            abridged: false,
            env_hidden: false,
            alarms: Vec::new(),
            flow: FlowView {
                kind,
                parent,
                array_index: parent.map(|_| 133),
                ..FlowView::default()
            },
        }
    }

    fn array_spec() -> JobSpec {
        request_from_value(
            serde_json::json!({"command": ["./sweep.sh"], "array": "0-199", "key": "k1"}),
        )
        .unwrap()
        .validate()
        .unwrap()
    }

    #[test]
    fn an_array_child_becomes_a_plain_job_running_the_same_task() {
        let mut child = array_spec();
        child.owner = Some("alice".into());
        child.flow.array_task = Some(ArrayTask {
            parent: 1013,
            index: 133,
        });
        let spec = resubmission(&view(child.clone(), JobKind::Job, Some(1013))).unwrap();
        assert_eq!(spec.flow.kind(), JobKind::Job, "not a new array");
        assert_eq!(spec.flow.array_task, child.flow.array_task, "same task");
        assert_eq!(
            spec.flow.array,
            Some(ArraySpec::parse("array", "0-199").unwrap())
        );
        assert_eq!(spec.key, None);
        assert_eq!(spec.owner, None);
        assert_eq!(spec.command, child.command);
    }

    #[test]
    fn groups_are_refused_and_plain_jobs_kept() {
        let e = resubmission(&view(array_spec(), JobKind::Array, None)).unwrap_err();
        assert_eq!(e.code, "not-resubmittable");
        assert!(e.message.contains("an array"), "{}", e.message);
        let plain = request_from_value(serde_json::json!({"command": "echo hi", "priority": 3}))
            .unwrap()
            .validate()
            .unwrap();
        let spec = resubmission(&view(plain.clone(), JobKind::Job, None)).unwrap();
        assert_eq!(spec, plain);
    }

    #[test]
    fn failed_children_become_a_new_array_of_those_indices() {
        let mut old = array_spec();
        if let Some(a) = old.flow.array.as_mut() {
            a.parallel = Some(10);
            a.max_failures = Some(5);
        }
        let spec =
            failed_again(&view(old.clone(), JobKind::Array, None), &[42, 3, 40, 41]).unwrap();
        assert_eq!(spec.flow.kind(), JobKind::Array);
        let a = spec.flow.array.clone().unwrap();
        assert_eq!(a.to_string(), "3,40-42%10");
        assert_eq!(a.max_failures, Some(5));
        assert_eq!(spec.key, None);
        assert_eq!(spec.command, old.command);
        let none = failed_again(&view(old.clone(), JobKind::Array, None), &[]).unwrap_err();
        assert_eq!(none.code, "nothing-failed");
        let plain = failed_again(&view(old, JobKind::Job, None), &[1]).unwrap_err();
        assert_eq!(plain.code, "not-an-array");
    }
}
