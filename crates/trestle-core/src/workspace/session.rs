//! The session task of a workspace: the job (of kind `session`) that a
//! launch or a start queues, placed through the same queues, compute
//! environments and autoscaler as batch jobs.

use super::Launch;
use crate::api::workspace::SessionSpec;
use crate::batch::job::{Command, JobSpec, Resources};
use crate::task::TaskKind;
use std::collections::BTreeMap;

/// The URL prefix workspace `id` is served under in path mode.
pub fn prefix(id: i64) -> String {
    format!("/ws/{id}/")
}

/// The tag that names a session task's workspace.
pub const WORKSPACE_TAG: &str = "trestle.workspace";

/// Grace beyond the lifetime for the task's own timeout: the lifetime
/// loop stops a workspace (saving its home) before its task is killed.
const TIMEOUT_GRACE_SECS: u64 = 600;

/// The session task for workspace `id` launched from `l`; `restore_home`
/// when a saved home exists.
pub fn session_job(id: i64, name: &str, l: &Launch, restore_home: bool) -> JobSpec {
    let c = &l.config;
    let t = &l.kind;
    let mut tags = BTreeMap::new();
    tags.insert(WORKSPACE_TAG.to_string(), id.to_string());
    tags.insert("trestle.config".to_string(), c.name.clone());
    JobSpec {
        name: format!(
            "ws-{id}-{}",
            super::params::render(name, &Default::default())
        ),
        queue: c.queue.clone(),
        key: None,
        command: Command::Argv(t.command.clone()),
        env: BTreeMap::new(),
        resources: Resources {
            cpus: c.cpus,
            mem_mib: c.mem_mib,
            gpus: c.gpus,
        },
        timeout_secs: c
            .max_lifetime_secs
            .saturating_add(c.max_extension_secs)
            .saturating_add(t.start_timeout_secs)
            .saturating_add(TIMEOUT_GRACE_SECS),
        max_attempts: 1,
        success_string: None,
        retry_exit_codes: vec![],
        inputs: None,
        workdir: None,
        priority: 0,
        tags,
        project: None,
        owner: None,
        flow: Default::default(),
        task: TaskKind::Session,
        session: Some(Box::new(SessionSpec {
            workspace: id,
            app: t.app,
            prefix: prefix(id),
            params: l.params.clone(),
            env: t.env.clone(),
            ready_path: t.ready_path.clone(),
            start_timeout_secs: t.start_timeout_secs,
            secret_header: t.secret_header.clone(),
            activity: t.activity,
            restore_home,
            home_limit_mib: c.home_limit_mib,
        })),
        studies: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::config::WorkspaceConfigRequest;
    use crate::workspace::kind::shipped;

    #[test]
    fn a_session_task_carries_its_workspace() {
        let t = shipped().remove(0).validate().unwrap();
        let config = WorkspaceConfigRequest {
            name: Some("lab".into()),
            type_ref: Some("jupyterlab@1".into()),
            max_lifetime: Some("1h".into()),
            max_extension: Some("1h".into()),
            ..Default::default()
        }
        .validate(&t)
        .unwrap();
        let l = Launch {
            config,
            kind: t,
            params: BTreeMap::new(),
        };
        let j = session_job(7, "lab", &l, true);
        assert_eq!(j.task, TaskKind::Session);
        assert_eq!(j.max_attempts, 1);
        assert_eq!(j.tags[WORKSPACE_TAG], "7");
        let s = j.session.unwrap();
        assert_eq!(
            (s.workspace, s.prefix.as_str(), s.restore_home),
            (7, "/ws/7/", true)
        );
        assert!(
            j.timeout_secs > 7200,
            "the task outlives the lifetime and extension"
        );
    }
}
