//! Kinds of task. Every task a worker runs is leased, fenced, heartbeated
//! and counted against the worker's capacity the same way; what differs
//! by kind is what the worker does with it and what a lost lease means.
//! A batch attempt whose worker vanished is run again elsewhere (it is an
//! interruption); an interactive session (a workspace) holds a user's
//! state, so a lost lease ends it FAILED and it is never silently re-run.

use serde::{Deserialize, Serialize};

/// What a task is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// A batch job's attempt: stage, run a command, check, upload, report.
    #[default]
    Batch,
    /// A long-running interactive session (a workspace), reached through
    /// the server; the workspaces issue runs it.
    Session,
}

/// What a lost lease (expired, or handed back by a worker that stopped)
/// means for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostLease {
    /// Run it again (an interruption; it does not use up an attempt).
    Retry,
    /// End it FAILED; it must not be re-run elsewhere.
    Fail,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [TaskKind; 2] = [TaskKind::Batch, TaskKind::Session];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Batch => "batch",
            TaskKind::Session => "session",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for batch attempts (a `skip_serializing_if` helper: specs of
    /// batch jobs do not name their kind).
    pub fn is_batch(&self) -> bool {
        *self == TaskKind::Batch
    }

    /// What a lost lease means for this kind.
    pub fn lost_lease(self) -> LostLease {
        match self {
            TaskKind::Batch => LostLease::Retry,
            TaskKind::Session => LostLease::Fail,
        }
    }
}

/// The kinds a worker runs, as the store's lease query reads them
/// (`,batch,session,`); empty means batch only, which is what workers of
/// an older version (that do not say) run.
pub fn kind_list(kinds: &[TaskKind]) -> String {
    if kinds.is_empty() {
        return ",batch,".to_string();
    }
    let mut s = String::from(",");
    for k in kinds {
        s.push_str(k.as_str());
        s.push(',');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_policies_and_lists() {
        for k in TaskKind::ALL {
            assert_eq!(TaskKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(TaskKind::parse("nope"), None);
        assert_eq!(TaskKind::Batch.lost_lease(), LostLease::Retry);
        assert_eq!(TaskKind::Session.lost_lease(), LostLease::Fail);
        assert_eq!(kind_list(&[]), ",batch,");
        assert_eq!(
            kind_list(&[TaskKind::Batch, TaskKind::Session]),
            ",batch,session,"
        );
    }
}
