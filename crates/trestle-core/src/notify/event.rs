//! The events notifications are made of: a closed but growing set of
//! types (every domain's events are named here, even before the domain
//! emits them), and the fields every event has.

use serde::{Deserialize, Serialize};

/// The type of an event, written `domain.what` (`job.failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// A job (or an array or pipeline) succeeded.
    #[serde(rename = "job.finished")]
    JobFinished,
    /// A job (or an array or pipeline) failed.
    #[serde(rename = "job.failed")]
    JobFailed,
    /// A workspace was launched.
    #[serde(rename = "workspace.launched")]
    WorkspaceLaunched,
    /// A workspace became ready to open.
    #[serde(rename = "workspace.ready")]
    WorkspaceReady,
    /// A workspace was stopped.
    #[serde(rename = "workspace.stopped")]
    WorkspaceStopped,
    /// A workspace was stopped because it was idle.
    #[serde(rename = "workspace.idle_stopped")]
    WorkspaceIdleStopped,
    /// A workspace was terminated.
    #[serde(rename = "workspace.terminated")]
    WorkspaceTerminated,
    /// Terminating a workspace failed.
    #[serde(rename = "workspace.terminate_failed")]
    WorkspaceTerminateFailed,
    /// A workspace's session ended on its own (the app exited, never became
    /// ready, or its worker was lost).
    #[serde(rename = "workspace.failed")]
    WorkspaceFailed,
    /// A configuration was uploaded or changed.
    #[serde(rename = "config.changed")]
    ConfigChanged,
    /// A resource alarm fired.
    #[serde(rename = "alarm.fired")]
    AlarmFired,
    /// A resource alarm went back to OK (or its job ended).
    #[serde(rename = "alarm.cleared")]
    AlarmCleared,
    /// A budget threshold was crossed.
    #[serde(rename = "budget.threshold")]
    BudgetThreshold,
    /// A study was shared with someone.
    #[serde(rename = "study.shared")]
    StudyShared,
    /// A security finding was raised.
    #[serde(rename = "security.finding")]
    SecurityFinding,
    /// A test message (`trestle notify test`).
    #[serde(rename = "notify.test")]
    NotifyTest,
}

impl EventType {
    /// Every type, in a fixed order.
    pub const ALL: [EventType; 16] = [
        EventType::JobFinished,
        EventType::JobFailed,
        EventType::WorkspaceLaunched,
        EventType::WorkspaceReady,
        EventType::WorkspaceStopped,
        EventType::WorkspaceIdleStopped,
        EventType::WorkspaceTerminated,
        EventType::WorkspaceTerminateFailed,
        EventType::WorkspaceFailed,
        EventType::ConfigChanged,
        EventType::AlarmFired,
        EventType::AlarmCleared,
        EventType::BudgetThreshold,
        EventType::StudyShared,
        EventType::SecurityFinding,
        EventType::NotifyTest,
    ];

    /// Its name (`job.failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobFinished => "job.finished",
            EventType::JobFailed => "job.failed",
            EventType::WorkspaceLaunched => "workspace.launched",
            EventType::WorkspaceReady => "workspace.ready",
            EventType::WorkspaceStopped => "workspace.stopped",
            EventType::WorkspaceIdleStopped => "workspace.idle_stopped",
            EventType::WorkspaceTerminated => "workspace.terminated",
            EventType::WorkspaceTerminateFailed => "workspace.terminate_failed",
            EventType::WorkspaceFailed => "workspace.failed",
            EventType::ConfigChanged => "config.changed",
            EventType::AlarmFired => "alarm.fired",
            EventType::AlarmCleared => "alarm.cleared",
            EventType::BudgetThreshold => "budget.threshold",
            EventType::StudyShared => "study.shared",
            EventType::SecurityFinding => "security.finding",
            EventType::NotifyTest => "notify.test",
        }
    }

    /// Parses a name; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The domain part (`job`).
    pub fn domain(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or("")
    }

    /// A short phrase for people (`failed`).
    pub fn verb(self) -> &'static str {
        match self {
            EventType::JobFinished => "finished",
            EventType::JobFailed => "failed",
            EventType::WorkspaceLaunched => "was launched",
            EventType::WorkspaceReady => "is ready",
            EventType::WorkspaceStopped => "was stopped",
            EventType::WorkspaceIdleStopped => "was stopped because it was idle",
            EventType::WorkspaceTerminated => "was terminated",
            EventType::WorkspaceTerminateFailed => "could not be terminated",
            EventType::WorkspaceFailed => "failed",
            EventType::ConfigChanged => "was changed",
            EventType::AlarmFired => "fired",
            EventType::AlarmCleared => "cleared",
            EventType::BudgetThreshold => "crossed a budget threshold",
            EventType::StudyShared => "was shared",
            EventType::SecurityFinding => "was found",
            EventType::NotifyTest => "is a test message",
        }
    }

    /// Whether the event reports something going wrong (shown in red).
    pub fn is_bad(self) -> bool {
        matches!(
            self,
            EventType::JobFailed
                | EventType::WorkspaceTerminateFailed
                | EventType::WorkspaceFailed
                | EventType::AlarmFired
                | EventType::BudgetThreshold
                | EventType::SecurityFinding
        )
    }

    /// The event type of a job reaching terminal state `state`
    /// (`SUCCEEDED`, `FAILED`); `None` for the states nobody is told of.
    pub fn of_job_state(state: &str) -> Option<EventType> {
        match state {
            "SUCCEEDED" => Some(EventType::JobFinished),
            "FAILED" => Some(EventType::JobFailed),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as other code records it (see the store's
/// `sql::notify::record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Its type.
    pub kind: EventType,
    /// What it is about, `kind:name` (`workspace:17`, `job:42`).
    pub subject: String,
    /// A short title for people (`jupyter for ada`).
    #[serde(default)]
    pub title: String,
    /// The user it belongs to.
    #[serde(default)]
    pub owner: Option<String>,
    /// The project it is charged to.
    #[serde(default)]
    pub project: Option<String>,
    /// The portal page of the subject, a path (`/ui/jobs/42`).
    #[serde(default)]
    pub link: Option<String>,
    /// More to say (a reason, an exit code), one line.
    #[serde(default)]
    pub detail: Option<String>,
    /// When it happened (ms).
    pub time: i64,
}

/// A recorded event: its source and id in that source (`job:981`,
/// `event:12`) make its stable key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable key (`job:981` for row 981 of the job event log).
    pub key: String,
    /// What happened.
    #[serde(flatten)]
    pub event: NewEvent,
    /// For an array or pipeline child, its parent job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_by_name_and_serde() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let j = serde_json::to_string(&t).unwrap();
            assert_eq!(j, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&j).unwrap(), t);
        }
        assert_eq!(EventType::parse("job.exploded"), None);
        assert_eq!(EventType::WorkspaceIdleStopped.domain(), "workspace");
        assert_eq!(
            EventType::of_job_state("FAILED"),
            Some(EventType::JobFailed)
        );
        assert_eq!(EventType::of_job_state("RUNNING"), None);
    }
}
