//! The job state machine's decisions after an attempt ends. Pure.

use crate::batch::job::{AttemptReason, JobState, MAX_INTERRUPTIONS};
use crate::task::{LostLease, TaskKind};

/// How a worker saw the process end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessEnd {
    /// Exit code, when the process exited normally.
    pub exit_code: Option<i32>,
    /// The worker killed it for running past the timeout.
    pub timed_out: bool,
    /// The worker killed it because the job was cancelled.
    pub cancelled: bool,
    /// The worker is shutting down and killed it to hand the job back.
    pub released: bool,
    /// `Some(found)` when the job has a success string.
    pub success_string_found: Option<bool>,
}

/// The reason an attempt ended, from what the worker saw.
pub fn attempt_reason(end: &ProcessEnd) -> AttemptReason {
    if end.released {
        AttemptReason::Released
    } else if end.cancelled {
        AttemptReason::Cancelled
    } else if end.timed_out {
        AttemptReason::Timeout
    } else if end.exit_code != Some(0) {
        AttemptReason::ExitCode
    } else if end.success_string_found == Some(false) {
        AttemptReason::SuccessStringMissing
    } else {
        AttemptReason::Success
    }
}

/// What the store knows about a job when one of its attempts ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd<'a> {
    /// Why the attempt ended.
    pub reason: AttemptReason,
    /// Its exit code, if any.
    pub exit_code: Option<i32>,
    /// Attempts counted so far, including this one unless it was an
    /// interruption.
    pub counted_attempts: u32,
    /// Interruptions so far, including this one if it was one.
    pub interruptions: u32,
    /// The job's attempt limit.
    pub max_attempts: u32,
    /// Exit codes that retry (empty: all).
    pub retry_exit_codes: &'a [i32],
    /// A cancel was requested for the job.
    pub cancel_requested: bool,
    /// What kind of task it is (decides what a lost lease means).
    pub task: TaskKind,
}

/// The job's next state after an attempt: SUCCEEDED, RUNNABLE (retry),
/// FAILED or CANCELLED.
pub fn next_state(end: &AttemptEnd<'_>) -> JobState {
    match end.reason {
        AttemptReason::Success => return JobState::Succeeded,
        AttemptReason::Cancelled => return JobState::Cancelled,
        _ if end.cancel_requested => return JobState::Cancelled,
        AttemptReason::Lost | AttemptReason::Released => {
            // A session holds a user's state: it is never re-run elsewhere.
            return if end.task.lost_lease() == LostLease::Fail
                || end.interruptions >= MAX_INTERRUPTIONS
            {
                JobState::Failed
            } else {
                JobState::Runnable
            };
        }
        _ => {}
    }
    // An out-of-memory kill retries like an exit code (137, SIGKILL's)
    // would: only with attempts left, and only among the codes listed.
    if matches!(
        end.reason,
        AttemptReason::ExitCode | AttemptReason::OutOfMemory
    ) && !end.retry_exit_codes.is_empty()
        && !end
            .exit_code
            .is_some_and(|c| end.retry_exit_codes.contains(&c))
    {
        return JobState::Failed;
    }
    if end.counted_attempts < end.max_attempts {
        JobState::Runnable
    } else {
        JobState::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::job::AttemptState;

    fn end(reason: AttemptReason, counted: u32, max: u32) -> AttemptEnd<'static> {
        AttemptEnd {
            reason,
            exit_code: Some(1),
            counted_attempts: counted,
            interruptions: 0,
            max_attempts: max,
            retry_exit_codes: &[],
            cancel_requested: false,
            task: TaskKind::Batch,
        }
    }

    #[test]
    fn a_lost_session_fails_and_a_lost_batch_attempt_runs_again() {
        let mut e = end(AttemptReason::Lost, 0, 1);
        e.interruptions = 1;
        assert_eq!(next_state(&e), JobState::Runnable);
        e.task = TaskKind::Session;
        assert_eq!(next_state(&e), JobState::Failed);
        e.reason = AttemptReason::Released;
        assert_eq!(
            next_state(&e),
            JobState::Failed,
            "handed back: never re-run"
        );
        e.reason = AttemptReason::Success;
        assert_eq!(next_state(&e), JobState::Succeeded);
    }

    #[test]
    fn out_of_memory_fails_and_retries_only_as_the_policy_says() {
        let mut e = end(AttemptReason::OutOfMemory, 1, 1);
        e.exit_code = None;
        assert_eq!(next_state(&e), JobState::Failed, "no attempts left");
        e.max_attempts = 3;
        assert_eq!(next_state(&e), JobState::Runnable, "attempts: 3 retries");
        e.retry_exit_codes = &[75];
        assert_eq!(next_state(&e), JobState::Failed, "only exit 75 retries");
        e.retry_exit_codes = &[137];
        e.exit_code = Some(137);
        assert_eq!(next_state(&e), JobState::Runnable);
        assert_eq!(
            AttemptState::from_reason(AttemptReason::OutOfMemory),
            AttemptState::Failed
        );
        assert_eq!(
            AttemptReason::parse("out-of-memory"),
            Some(AttemptReason::OutOfMemory)
        );
        assert_eq!(
            AttemptReason::OutOfMemory.slurm_state(),
            Some(("OUT_OF_MEMORY", "OOM"))
        );
    }

    #[test]
    fn reasons() {
        let mut e = ProcessEnd {
            exit_code: Some(0),
            ..Default::default()
        };
        assert_eq!(attempt_reason(&e), AttemptReason::Success);
        e.success_string_found = Some(false);
        assert_eq!(attempt_reason(&e), AttemptReason::SuccessStringMissing);
        e.exit_code = Some(2);
        assert_eq!(attempt_reason(&e), AttemptReason::ExitCode);
        e.exit_code = None;
        e.timed_out = true;
        assert_eq!(attempt_reason(&e), AttemptReason::Timeout);
        e.cancelled = true;
        assert_eq!(attempt_reason(&e), AttemptReason::Cancelled);
        e.released = true;
        assert_eq!(attempt_reason(&e), AttemptReason::Released);
    }

    #[test]
    fn retries_until_attempts_used() {
        assert_eq!(
            next_state(&end(AttemptReason::ExitCode, 1, 3)),
            JobState::Runnable
        );
        assert_eq!(
            next_state(&end(AttemptReason::Timeout, 2, 3)),
            JobState::Runnable
        );
        assert_eq!(
            next_state(&end(AttemptReason::SuccessStringMissing, 3, 3)),
            JobState::Failed
        );
        assert_eq!(
            next_state(&end(AttemptReason::Success, 3, 3)),
            JobState::Succeeded
        );
        assert_eq!(
            next_state(&end(AttemptReason::Cancelled, 1, 3)),
            JobState::Cancelled
        );
    }

    #[test]
    fn interruptions_do_not_count() {
        let mut e = end(AttemptReason::Lost, 1, 1);
        e.interruptions = 1;
        assert_eq!(next_state(&e), JobState::Runnable);
        e.interruptions = MAX_INTERRUPTIONS;
        assert_eq!(next_state(&e), JobState::Failed);
    }

    #[test]
    fn retry_codes_and_cancel() {
        let mut e = end(AttemptReason::ExitCode, 1, 3);
        e.retry_exit_codes = &[75];
        assert_eq!(next_state(&e), JobState::Failed);
        e.exit_code = Some(75);
        assert_eq!(next_state(&e), JobState::Runnable);
        e.cancel_requested = true;
        assert_eq!(next_state(&e), JobState::Cancelled);
    }
}
