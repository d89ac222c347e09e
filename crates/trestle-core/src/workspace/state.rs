//! The workspace lifecycle, decided purely: a workspace's state, what its
//! user asked for (stop, terminate), and what its current session task (a
//! job of kind `session`) is doing give its next state.
//!
//! ```text
//! PENDING -> STARTING -> RUNNING -> STOPPING -> STOPPED -(start)-> PENDING ...
//!    any live state -(terminate)-> TERMINATING -> TERMINATED
//!    a session that ends on its own (app exited, start timeout, worker lost) -> FAILED
//! ```

use crate::batch::job::AttemptReason;
use crate::batch::state::JobState;
use serde::{Deserialize, Serialize};

/// A workspace's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkspaceState {
    /// Waiting for a worker (its session task is queued).
    Pending,
    /// Placed; the home is being restored and the app is starting.
    Starting,
    /// The app answered its readiness check; reachable through the proxy.
    Running,
    /// Stopping: the app is stopped and the home saved.
    Stopping,
    /// Stopped; the home is saved and it can be started again.
    Stopped,
    /// Being terminated.
    Terminating,
    /// Gone, with its home.
    Terminated,
    /// The session ended on its own; the home of the last save is kept.
    Failed,
}

impl WorkspaceState {
    /// Every state.
    pub const ALL: [WorkspaceState; 8] = [
        WorkspaceState::Pending,
        WorkspaceState::Starting,
        WorkspaceState::Running,
        WorkspaceState::Stopping,
        WorkspaceState::Stopped,
        WorkspaceState::Terminating,
        WorkspaceState::Terminated,
        WorkspaceState::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceState::Pending => "PENDING",
            WorkspaceState::Starting => "STARTING",
            WorkspaceState::Running => "RUNNING",
            WorkspaceState::Stopping => "STOPPING",
            WorkspaceState::Stopped => "STOPPED",
            WorkspaceState::Terminating => "TERMINATING",
            WorkspaceState::Terminated => "TERMINATED",
            WorkspaceState::Failed => "FAILED",
        }
    }

    /// Parses a stored name (any case).
    pub fn parse(s: &str) -> Option<WorkspaceState> {
        WorkspaceState::ALL
            .into_iter()
            .find(|w| w.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// True while a session task exists for it (it holds capacity or will).
    pub fn has_session(self) -> bool {
        matches!(
            self,
            WorkspaceState::Pending
                | WorkspaceState::Starting
                | WorkspaceState::Running
                | WorkspaceState::Stopping
                | WorkspaceState::Terminating
        )
    }

    /// True for the states that count against a user's running limit.
    pub fn counts_as_running(self) -> bool {
        matches!(
            self,
            WorkspaceState::Pending | WorkspaceState::Starting | WorkspaceState::Running
        )
    }
}

impl std::fmt::Display for WorkspaceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user (or a loop) asks of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// Stop it and save the home.
    Stop,
    /// Start it again.
    Start,
    /// Terminate it and delete the home.
    Terminate,
}

/// Why a workspace was stopped (shown, and in its event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopCause {
    /// Its user (or an admin) asked.
    User,
    /// An admin force-stopped it.
    Admin,
    /// It was idle for its configuration's idle timeout.
    Idle,
    /// It reached its maximum lifetime.
    Lifetime,
    /// Its project's budget is spent and the grace period is over.
    Budget,
}

impl StopCause {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCause::User => "user",
            StopCause::Admin => "admin",
            StopCause::Idle => "idle",
            StopCause::Lifetime => "lifetime",
            StopCause::Budget => "budget",
        }
    }
}

/// What a request does from a state: the new state and whether the
/// session task is to be cancelled (stop, terminate) or a new one queued
/// (start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The state to go to.
    pub to: WorkspaceState,
    /// Cancel the current session task (the worker stops the app and, for
    /// a stop, saves the home).
    pub cancel_session: bool,
    /// Queue a new session task.
    pub new_session: bool,
    /// Delete the saved home.
    pub delete_home: bool,
}

/// Why a request cannot be done in a state (a 409 to the user).
pub fn refusal(state: WorkspaceState, req: Request) -> Option<String> {
    apply(state, req).err()
}

/// Decides a user's request from `state`.
pub fn apply(state: WorkspaceState, req: Request) -> Result<Step, String> {
    use WorkspaceState::*;
    let step = |to, cancel_session, new_session, delete_home| Step {
        to,
        cancel_session,
        new_session,
        delete_home,
    };
    match (req, state) {
        (Request::Stop, Pending | Starting | Running) => Ok(step(Stopping, true, false, false)),
        (Request::Stop, Stopping | Stopped) => {
            Err("the workspace is already stopped or stopping".into())
        }
        (Request::Start, Stopped | Failed) => Ok(step(Pending, false, true, false)),
        (Request::Start, Pending | Starting | Running) => {
            Err("the workspace is already running".into())
        }
        (Request::Start, Stopping) => {
            Err("the workspace is stopping; start it once it is STOPPED".into())
        }
        (Request::Terminate, Pending | Starting | Running | Stopping) => {
            Ok(step(Terminating, true, false, true))
        }
        (Request::Terminate, Stopped | Failed) => Ok(step(Terminated, false, false, true)),
        (_, Terminating | Terminated) => Err("the workspace is terminated".into()),
        (Request::Stop, Failed) => {
            Err("the workspace has failed; start it again or terminate it".into())
        }
    }
}

/// What the workspace's current session task is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The task's state.
    pub job: JobState,
    /// Why its last attempt ended, when it did.
    pub reason: Option<AttemptReason>,
    /// Its exit code, when the app exited.
    pub exit_code: Option<i32>,
    /// The worker reported the app ready.
    pub ready: bool,
    /// The worker saved the home during this session.
    pub home_saved: bool,
    /// The worker's error saving the home, if it failed.
    pub save_error: Option<String>,
}

/// Where the session leads: the new state and its reason, or `None` when
/// nothing changes.
pub fn observe(state: WorkspaceState, s: &Session) -> Option<(WorkspaceState, Option<String>)> {
    use WorkspaceState::*;
    let ended = s.job.is_terminal();
    match state {
        Pending if !ended && s.ready => Some((Running, None)),
        Pending if !ended && matches!(s.job, JobState::Starting | JobState::Running) => {
            Some((Starting, None))
        }
        Starting if !ended && s.ready => Some((Running, None)),
        Pending | Starting | Running if ended => Some((Failed, Some(failure(s)))),
        Stopping if ended => {
            if s.home_saved {
                Some((Stopped, None))
            } else if let Some(e) = &s.save_error {
                Some((
                    Stopped,
                    Some(format!(
                        "the home could not be saved ({e}); the previous saved copy is kept"
                    )),
                ))
            } else if s.reason == Some(AttemptReason::Cancelled)
                && s.job == JobState::Cancelled
                && !s.ready
            {
                // Stopped before it ever ran: there was nothing to save.
                Some((Stopped, None))
            } else {
                Some((
                    Stopped,
                    Some("the home was not saved; the previous saved copy is kept".into()),
                ))
            }
        }
        Terminating if ended => Some((Terminated, None)),
        _ => None,
    }
}

fn failure(s: &Session) -> String {
    match s.reason {
        Some(AttemptReason::Lost) => "worker lost: the hosting worker stopped answering; start it again from its last saved home".into(),
        Some(AttemptReason::Released) => "the hosting worker shut down (the home was saved); start it again".into(),
        Some(AttemptReason::Timeout) if !s.ready => {
            "the app did not become ready within its start timeout; its output is in the log".into()
        }
        Some(AttemptReason::Timeout) => "the session ran past its limit".into(),
        Some(AttemptReason::OutOfMemory) => "the app ran out of memory".into(),
        Some(AttemptReason::WorkerError) => {
            "the worker could not start the workspace; see the log".into()
        }
        Some(AttemptReason::Cancelled) => "the session was cancelled".into(),
        _ => match s.exit_code {
            Some(c) => format!("the app exited with code {c}; its output is in the log"),
            None => "the app exited; its output is in the log".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::WorkspaceState::*;
    use super::*;

    fn session(job: JobState) -> Session {
        Session {
            job,
            reason: None,
            exit_code: None,
            ready: false,
            home_saved: false,
            save_error: None,
        }
    }

    #[test]
    fn requests() {
        assert_eq!(apply(Running, Request::Stop).unwrap().to, Stopping);
        assert!(apply(Running, Request::Stop).unwrap().cancel_session);
        assert_eq!(apply(Stopped, Request::Start).unwrap().to, Pending);
        assert_eq!(apply(Failed, Request::Start).unwrap().to, Pending);
        assert_eq!(apply(Stopped, Request::Terminate).unwrap().to, Terminated);
        assert!(apply(Stopped, Request::Terminate).unwrap().delete_home);
        assert_eq!(apply(Running, Request::Terminate).unwrap().to, Terminating);
        for s in [Terminating, Terminated] {
            for r in [Request::Stop, Request::Start, Request::Terminate] {
                assert!(apply(s, r).is_err());
            }
        }
        assert!(refusal(Running, Request::Start).is_some());
    }

    #[test]
    fn sessions() {
        assert_eq!(observe(Pending, &session(JobState::Runnable)), None);
        assert_eq!(
            observe(Pending, &session(JobState::Running)).unwrap().0,
            Starting
        );
        let ready = Session {
            ready: true,
            ..session(JobState::Running)
        };
        assert_eq!(observe(Starting, &ready).unwrap().0, Running);
        assert_eq!(observe(Running, &ready), None);
        let lost = Session {
            reason: Some(AttemptReason::Lost),
            ..session(JobState::Failed)
        };
        let (to, why) = observe(Running, &lost).unwrap();
        assert_eq!(to, Failed);
        assert!(why.unwrap().contains("worker lost"));
        let slow = Session {
            reason: Some(AttemptReason::Timeout),
            ..session(JobState::Failed)
        };
        assert!(
            observe(Starting, &slow)
                .unwrap()
                .1
                .unwrap()
                .contains("start timeout")
        );
        let saved = Session {
            home_saved: true,
            ready: true,
            ..session(JobState::Cancelled)
        };
        assert_eq!(observe(Stopping, &saved), Some((Stopped, None)));
        let bad = Session {
            save_error: Some("disk full".into()),
            ready: true,
            ..session(JobState::Cancelled)
        };
        assert!(
            observe(Stopping, &bad)
                .unwrap()
                .1
                .unwrap()
                .contains("previous saved copy")
        );
        assert_eq!(
            observe(Terminating, &session(JobState::Cancelled))
                .unwrap()
                .0,
            Terminated
        );
    }
}
