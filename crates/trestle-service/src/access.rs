//! The handlers' side of authorization: gathers the facts about a resource
//! (who owns the job, which worker holds it), asks
//! [`trestle_core::identity::authz::decide`], and turns a denial into the answer:
//! 404 for what the caller may not see, 403 with a reason otherwise.

use crate::error::{ServiceError, ServiceResult};
use crate::principal::Principal;
pub use crate::principal::WorkerOwners;
use crate::state::Service;
use trestle_core::JobSpec;
use trestle_core::api::JobView;
use trestle_core::identity::authz::{Action, Decision, Denial, Resource, Subject, decide};
use trestle_store::JobFilter;

/// Decides, and maps a denial to an error; `what` names the resource in a
/// 404 (`job 12`), exactly as if it did not exist.
pub fn check(
    p: &Principal,
    action: Action,
    resource: Resource<'_>,
    what: &str,
) -> ServiceResult<()> {
    match decide(&p.subject, action, resource) {
        Decision::Allow => Ok(()),
        Decision::Deny(Denial::NotFound) => Err(ServiceError::not_found(what)),
        Decision::Deny(Denial::Forbidden(msg)) => Err(ServiceError::forbidden(msg)),
    }
}

/// The credential that registered a worker, cached (workers call on the
/// hot path; the binding never changes once made).
pub async fn worker_registrant(app: &Service, worker_id: &str) -> ServiceResult<Option<String>> {
    if let Some(t) = app.worker_owners.get(worker_id) {
        return Ok(Some(t));
    }
    let t = app.store.worker_registrant(worker_id).await?;
    if let Some(t) = &t {
        app.worker_owners.put(worker_id, t);
    }
    Ok(t)
}

/// Checks that the caller may act as worker `worker_id` (lease, report,
/// deregister): the credential that registered it, or an admin. Others get
/// a 404 (the worker id might as well not exist).
pub async fn check_worker(app: &Service, p: &Principal, worker_id: &str) -> ServiceResult<()> {
    let owner = match p.subject {
        Subject::Worker { .. } => worker_registrant(app, worker_id).await?,
        Subject::User(_) => None,
    };
    check(
        p,
        Action::WorkerOperate,
        Resource::Worker {
            registered_by: owner.as_deref(),
        },
        &format!("worker `{worker_id}`"),
    )
}

/// Checks that the caller may open worker `worker_id`'s workspace tunnel:
/// only the worker credential that registered it. Other workers get a 404,
/// users (admins included) a 403: the tunnel receives the traffic of the
/// workspaces the worker hosts.
pub async fn check_worker_tunnel(
    app: &Service,
    p: &Principal,
    worker_id: &str,
) -> ServiceResult<()> {
    let owner = match p.subject {
        Subject::Worker { .. } => worker_registrant(app, worker_id).await?,
        Subject::User(_) => None,
    };
    check(
        p,
        Action::WorkerTunnel,
        Resource::Worker {
            registered_by: owner.as_deref(),
        },
        &format!("worker `{worker_id}`"),
    )
}

/// Loads a job the caller may do `action` on; a job they may not see is a
/// 404, exactly like one that does not exist.
pub async fn job(app: &Service, p: &Principal, id: i64, action: Action) -> ServiceResult<JobView> {
    let what = format!("job {id}");
    let job = match app.store.job(id).await {
        Ok(j) => j.ok_or_else(|| ServiceError::not_found(&what))?,
        // Only admins learn that a damaged row exists.
        Err(trestle_store::StoreError::Damaged(_)) if !p.is_admin() => {
            return Err(ServiceError::not_found(&what));
        }
        Err(e) => return Err(e.into()),
    };
    let leased_by_caller = match (&p.subject, job.worker.as_deref()) {
        (Subject::Worker { token_id }, Some(w)) => {
            worker_registrant(app, w).await?.as_deref() == Some(token_id.as_str())
        }
        _ => false,
    };
    check(
        p,
        action,
        Resource::Job {
            owner: job.spec.owner.as_deref(),
            project: job.spec.project.as_deref(),
            leased_by_caller,
        },
        &what,
    )?;
    Ok(job)
}

/// Restricts a job listing to what the caller may see (admins: all).
pub fn restrict(p: &Principal, filter: &mut JobFilter) {
    if p.is_admin() {
        return;
    }
    match p.user() {
        Some(u) => {
            filter.visible_to = Some(u.name.clone());
            filter.visible_projects = u.readable_projects();
        }
        None => {
            // Worker credentials never list jobs (refused earlier); be safe.
            filter.visible_to = Some(String::new());
            filter.visible_projects = Vec::new();
        }
    }
}

/// Checks that the caller may read or write an upload.
pub async fn upload(app: &Service, p: &Principal, id: &str, action: Action) -> ServiceResult<()> {
    let owner = app.store.upload_owner(id).await?;
    let what = format!("upload `{id}`");
    if owner.is_none() && !p.is_admin() {
        return Err(ServiceError::not_found(what));
    }
    check(
        p,
        action,
        Resource::Upload {
            owner: owner.as_deref(),
        },
        &what,
    )
}

/// Charges a job to a project: sets its owner to the submitter and its
/// project (default: the submitter's default project), and checks the
/// submitter may submit there. A project that does not exist is, for a
/// non-admin, refused exactly like one they are not a member of.
pub async fn charge(app: &Service, p: &Principal, mut spec: JobSpec) -> ServiceResult<JobSpec> {
    let Some(u) = p.user() else {
        check(p, Action::JobSubmit, Resource::None, "")?;
        return Ok(spec);
    };
    let project = match spec.project.clone().or_else(|| p.default_project.clone()) {
        Some(pr) => pr,
        None => {
            return Err(ServiceError::bad(
                "no-project",
                "project",
                format!(
                    "`{}` has no default project: name one with `--project` (`trestle whoami` lists yours), or ask an admin to set a default",
                    u.name
                ),
            ));
        }
    };
    let org = match u.memberships.iter().find(|m| m.project == project) {
        Some(m) => m.org.clone(),
        None if p.is_admin() => match app.store.project(&project).await? {
            Some(pr) => pr.org,
            None => {
                return Err(ServiceError::bad(
                    "unknown-project",
                    "project",
                    format!("project `{project}` does not exist"),
                ));
            }
        },
        None => None,
    };
    check(
        p,
        Action::JobSubmit,
        Resource::Project {
            name: &project,
            org: org.as_deref(),
        },
        "",
    )?;
    // A budget that stops spending refuses new work at once.
    crate::budgets::check_open(app, &project).await?;
    spec.owner = Some(u.name.clone());
    spec.project = Some(project);
    Ok(spec)
}
