//! Jobs: the one submit path (used by the API's single and batch submits,
//! pipelines, the portal, drop folders and resubmission), listing, showing,
//! cancelling and reading logs, each checked by [`crate::access`].

use crate::access;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::state::Service;
use crate::workflows;
use trestle_core::JobSpec;
use trestle_core::JobState;
use trestle_core::api::{FileList, JobList, JobView, LogSlice, Presentation, WorkerView};
use trestle_core::batch::pipeline::PipelineRequest;
use trestle_core::batch::spec::{request_from_value, strip_trailing_commas};
use trestle_core::identity::authz::Action;
use trestle_core::identity::authz::Resource;
use trestle_store::JobFilter;
use trestle_store::blobs::{output_prefix, upload_prefix};

/// Most jobs in one batch submission.
pub const MAX_BATCH: usize = 10_000;

/// Reads a job id (a positive number) given as text in `field`.
pub fn parse_id(field: &str, s: &str) -> ServiceResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ServiceError::bad("invalid-id", field, format!("`{s}` is not a job id")))
}

/// Reads an attempt number given as text.
pub fn parse_attempt(s: &str) -> ServiceResult<u32> {
    s.parse()
        .map_err(|_| ServiceError::bad("invalid-attempt", "attempt", "not an attempt number"))
}

/// Validates a job request (native or seed JSON) into a specification.
pub fn validate_request(v: serde_json::Value) -> ServiceResult<JobSpec> {
    Ok(request_from_value(v)?.validate()?)
}

/// Validates a job request's JSON text (trailing commas allowed).
pub fn validate_text(text: &str) -> ServiceResult<JobSpec> {
    let value: serde_json::Value =
        serde_json::from_str(&strip_trailing_commas(text)).map_err(|e| {
            ServiceError::new(
                crate::ErrorKind::Invalid,
                "invalid-json",
                format!("the job is not valid JSON: {e}"),
            )
        })?;
    validate_request(value)
}

/// Checks that a job's queue exists: `default`, a `[queues.NAME]` of the
/// configuration, or one stored through the API. A typo (`defualt`) is
/// refused with the known queues named, not left waiting forever.
pub async fn check_queue(app: &Service, queue: &str) -> ServiceResult<()> {
    let topology = app.compute.topology();
    let configured = |q: &str| {
        q == trestle_core::batch::spec::DEFAULT_QUEUE
            || app.flow.queues.iter().any(|c| c.name == q)
            || topology.queues.iter().any(|r| r.spec.name == q)
    };
    if configured(queue) {
        return Ok(());
    }
    // Created on another server since this one last looked.
    let stored = app.store.queue_records().await?;
    if stored.iter().any(|r| r.spec.name == queue) {
        return Ok(());
    }
    let mut known: Vec<String> =
        std::iter::once(trestle_core::batch::spec::DEFAULT_QUEUE.to_string())
            .chain(app.flow.queues.iter().map(|c| c.name.clone()))
            .chain(stored.iter().map(|r| r.spec.name.clone()))
            .collect();
    known.sort();
    known.dedup();
    Err(ServiceError::bad(
        "unknown-queue",
        "queue",
        format!(
            "queue `{queue}` does not exist (queues: {})",
            known.join(", ")
        ),
    ))
}

/// Charges a spec to a project of `p` and checks its queue and inputs:
/// the first half of every submission.
async fn prepare(app: &Service, p: &Principal, spec: JobSpec) -> ServiceResult<JobSpec> {
    check_queue(app, &spec.queue).await?;
    trestle_core::batch::limits::check_user_priority(
        spec.priority,
        &spec.queue,
        app.flow.max_user_priority(&spec.queue),
        p.is_admin(),
    )?;
    let spec = access::charge(app, p, spec).await?;
    let spec = crate::study_attach::pin(app, p, spec).await?;
    if let Some(id) = &spec.inputs
        && (access::upload(app, p, id, Action::UploadRead)
            .await
            .is_err()
            || app.blobs.list(&upload_prefix(id)).await?.is_empty())
    {
        return Err(ServiceError::bad(
            "unknown-upload",
            "inputs",
            format!("upload `{id}` does not exist or has no files"),
        ));
    }
    Ok(spec)
}

/// The second half of every submission, once the jobs are stored: counts
/// them, holds jobs of disabled queues, wakes the schedulers.
async fn submitted(app: &Service, specs: &[JobSpec], jobs: usize) -> ServiceResult<()> {
    app.metrics.submitted(jobs as u64);
    workflows::after_submit(app, specs).await?;
    app.costs_gate.submitted();
    app.wake();
    Ok(())
}

/// Submits validated jobs for `p`, all or none: charges each to a project,
/// checks inputs and dependencies, stores them and wakes the schedulers.
/// With `fields`, errors name the job (`jobs[3].project`).
pub async fn submit(
    app: &Service,
    p: &Principal,
    specs: Vec<JobSpec>,
    fields: bool,
) -> ServiceResult<Vec<i64>> {
    if specs.is_empty() || specs.len() > MAX_BATCH {
        return Err(ServiceError::bad(
            "invalid-batch",
            "jobs",
            format!("a batch holds 1 to {MAX_BATCH} jobs, got {}", specs.len()),
        ));
    }
    let name = |i: usize, e: ServiceError| {
        if fields {
            e.in_field(&format!("jobs[{i}]"))
        } else {
            e
        }
    };
    let mut ready = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let spec = prepare(app, p, spec).await.map_err(|e| name(i, e))?;
        workflows::check_deps(app, p, &spec)
            .await
            .map_err(|e| name(i, e))?;
        ready.push(spec);
    }
    let ids = app.store.submit(&ready, crate::now_ms()).await?;
    crate::study_attach::audit(app, p, &ready, &ids);
    submitted(app, &ready, ids.len()).await?;
    Ok(ids)
}

/// Submits jobs already charged to their owner's project (a workspace's
/// session task, charged when the workspace was launched): checks their
/// queues, stores them and wakes the schedulers.
pub async fn submit_charged(app: &Service, specs: Vec<JobSpec>) -> ServiceResult<Vec<i64>> {
    for s in &specs {
        check_queue(app, &s.queue).await?;
    }
    let ids = app.store.submit(&specs, crate::now_ms()).await?;
    submitted(app, &specs, ids.len()).await?;
    Ok(ids)
}

/// Submits one validated job for `p` and returns it as stored.
pub async fn submit_one(app: &Service, p: &Principal, spec: JobSpec) -> ServiceResult<JobView> {
    let id = submit(app, p, vec![spec], false).await?[0];
    app.store
        .job(id)
        .await?
        .map(|j| presented(p, j))
        .ok_or_else(|| ServiceError::not_found(format!("job {id}")))
}

/// `job` as `p` is shown it: the environment only to its owner and admins,
/// and secrets masked (see [`JobView::present`]).
pub fn presented(p: &Principal, mut job: JobView) -> JobView {
    let owner = job.spec.owner.is_some() && job.spec.owner.as_deref() == p.user_name();
    job.present(if owner || p.is_admin() {
        Presentation::Owner
    } else {
        Presentation::Reader
    });
    job
}

/// Submits a pipeline: its parent and every step are charged to a project
/// of `p`, their inputs checked, and the whole stored at once.
pub async fn submit_pipeline(
    app: &Service,
    p: &Principal,
    req: PipelineRequest,
) -> ServiceResult<JobView> {
    let mut valid = req.validate()?;
    check_queue(app, &valid.parent.queue).await?;
    valid.parent = access::charge(app, p, valid.parent).await?;
    for (i, step) in valid.steps.iter_mut().enumerate() {
        let spec = std::mem::replace(&mut step.spec, valid.parent.clone());
        step.spec = prepare(app, p, spec)
            .await
            .map_err(|e| e.in_field(&format!("steps[{i}]")))?;
    }
    let (id, ids) = app.store.submit_pipeline(&valid, crate::now_ms()).await?;
    let specs: Vec<_> = valid.steps.iter().map(|s| s.spec.clone()).collect();
    if specs.len() == ids.len() {
        crate::study_attach::audit(app, p, &specs, &ids);
    }
    submitted(app, &specs, ids.len()).await?;
    app.store
        .job(id)
        .await?
        .map(|j| presented(p, j))
        .ok_or_else(|| ServiceError::not_found(format!("job {id}")))
}

/// Runs job `id`'s work again as a new job for `p` (an array task as a
/// plain job running the same task; see [`trestle_core::batch::resubmit`]):
/// `p` must be able to read the job and to submit to its project.
pub async fn resubmit(app: &Service, p: &Principal, id: i64) -> ServiceResult<JobView> {
    let old = access::job(app, p, id, Action::JobRead).await?;
    let mut spec = trestle_core::batch::resubmit::resubmission(&old)?;
    keep_env_for_owner(p, &old, &mut spec);
    submit_one(app, p, spec).await
}

/// A job's environment goes with a resubmission only for its owner (or an
/// admin): a project member who may read the job does not see it, and
/// must not receive it in a job of their own.
fn keep_env_for_owner(p: &Principal, old: &JobView, spec: &mut trestle_core::JobSpec) {
    let owner = old.spec.owner.as_deref();
    if !p.is_admin() && (owner.is_none() || owner != p.user_name()) {
        spec.env.clear();
    }
}

/// Runs the failed children of array `id` again, as a new array of only
/// those indices with the same script, for `p` (who must be able to read
/// the array and submit to its project).
pub async fn resubmit_failed(app: &Service, p: &Principal, id: i64) -> ServiceResult<JobView> {
    let old = access::job(app, p, id, Action::JobRead).await?;
    let mut failed = Vec::new();
    let mut before = None;
    loop {
        let page = app
            .store
            .list_jobs(&JobFilter {
                parent: Some(id),
                states: vec![JobState::Failed],
                before,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        failed.extend(page.iter().filter_map(|j| j.flow.array_index));
        match page.last() {
            Some(last) if page.len() == 1000 => before = Some(last.id),
            _ => break,
        }
    }
    let mut spec = trestle_core::batch::resubmit::failed_again(&old, &failed)?;
    keep_env_for_owner(p, &old, &mut spec);
    submit_one(app, p, spec).await
}

/// A listing's filter from query parameters (`state=RUNNING,FAILED`,
/// `queue`, `project`, `owner`, `name`, `parent` (children of an array or
/// pipeline), `index` (an array child's index), `before`, `limit` 1-1000,
/// default 100).
pub fn filter_from_params(
    q: &std::collections::HashMap<String, String>,
) -> ServiceResult<JobFilter> {
    let mut filter = JobFilter {
        limit: 100,
        ..Default::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "state" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    filter.states.push(JobState::parse(s).ok_or_else(|| {
                        ServiceError::bad(
                            "invalid-state",
                            "state",
                            format!("`{s}` is not a job state (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED)"),
                        )
                    })?);
                }
            }
            "queue" => filter.queue = Some(v.clone()),
            "project" => filter.project = Some(v.clone()),
            "owner" => filter.owner = Some(v.clone()),
            "name" => filter.name = Some(v.clone()),
            "parent" => filter.parent = Some(parse_id("parent", v)?),
            "index" => {
                filter.array_index = Some(v.parse().map_err(|_| {
                    ServiceError::bad(
                        "invalid-index",
                        "index",
                        format!("`{v}` is not an array index (a whole number)"),
                    )
                })?)
            }
            "before" => filter.before = Some(parse_id("before", v)?),
            "limit" => {
                filter.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ServiceError::bad(
                            "invalid-limit",
                            "limit",
                            format!("limit must be 1-1000, got `{v}`"),
                        )
                    })?
            }
            other => {
                return Err(ServiceError::bad(
                    "unknown-parameter",
                    other,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    Ok(filter)
}

/// Jobs matching `filter` that `p` may see, newest first, each annotated
/// with why it is not running.
pub async fn list(app: &Service, p: &Principal, mut filter: JobFilter) -> ServiceResult<JobList> {
    access::restrict(p, &mut filter);
    let mut jobs = app.store.list_jobs(&filter).await?;
    workflows::annotate_all(app, &mut jobs).await?;
    for j in &mut jobs {
        j.present(Presentation::Listed);
    }
    let next_before = (jobs.len() as u32 == filter.limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(JobList { jobs, next_before })
}

/// One job with its attempts, if `p` may see it.
pub async fn show(app: &Service, p: &Principal, id: i64) -> ServiceResult<JobView> {
    let mut job = access::job(app, p, id, Action::JobRead).await?;
    workflows::annotate_all(app, std::slice::from_mut(&mut job)).await?;
    job.alarms = crate::alarms::views(app, job.id, &job.queue).await?;
    Ok(presented(p, job))
}

/// Most samples `GET /api/v1/jobs/{id}/samples` returns.
pub const MAX_SAMPLES: u32 = 5000;

/// A job's resource samples taken at or after `since` (the newest `limit`
/// of them) and its alarm states, for whoever may see the job.
pub async fn samples(
    app: &Service,
    p: &Principal,
    id: i64,
    since: i64,
    limit: u32,
) -> ServiceResult<trestle_core::api::samples::JobSamples> {
    let job = access::job(app, p, id, Action::JobRead).await?;
    Ok(trestle_core::api::samples::JobSamples {
        job_id: id,
        samples: app
            .store
            .samples(id, since, limit.clamp(1, MAX_SAMPLES))
            .await?,
        alarms: crate::alarms::views(app, id, &job.queue).await?,
    })
}

/// Cancels a job (and, for a group, its unfinished children).
pub async fn cancel(app: &Service, p: &Principal, id: i64) -> ServiceResult<JobView> {
    access::job(app, p, id, Action::JobCancel).await?;
    app.store
        .cancel(id, crate::now_ms())
        .await?
        .map(|j| presented(p, j))
        .ok_or_else(|| ServiceError::not_found(format!("job {id}")))
}

/// A slice of a job's log: `attempt` (default the latest) after chunk
/// `after`.
pub async fn log(
    app: &Service,
    p: &Principal,
    id: i64,
    attempt: Option<u32>,
    after: u32,
) -> ServiceResult<LogSlice> {
    access::job(app, p, id, Action::JobRead).await?;
    app.store
        .read_log(id, attempt, after)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("job {id}")))
}

/// The attempt whose outputs to show: the one asked for, or the latest one
/// that has any (0: none yet).
pub async fn outputs_attempt(
    app: &Service,
    p: &Principal,
    job: i64,
    asked: Option<&str>,
) -> ServiceResult<u32> {
    let view = access::job(app, p, job, Action::JobRead).await?;
    if let Some(a) = asked {
        return parse_attempt(a);
    }
    for a in view.attempts.iter().rev() {
        if !app
            .blobs
            .list(&output_prefix(job, a.attempt))
            .await?
            .is_empty()
        {
            return Ok(a.attempt);
        }
    }
    Ok(view.attempts.last().map(|a| a.attempt).unwrap_or(0))
}

/// The output files of a job's attempt (`asked`, or the latest with any).
pub async fn outputs(
    app: &Service,
    p: &Principal,
    job: i64,
    asked: Option<&str>,
) -> ServiceResult<FileList> {
    let attempt = outputs_attempt(app, p, job, asked).await?;
    let files = if attempt == 0 {
        Vec::new()
    } else {
        app.blobs.list(&output_prefix(job, attempt)).await?
    };
    Ok(FileList {
        files,
        attempt: Some(attempt),
    })
}

/// Every registered worker; non-admins see only the running jobs they may
/// see.
pub async fn workers(app: &Service, p: &Principal) -> ServiceResult<Vec<WorkerView>> {
    access::check(p, Action::WorkersList, Resource::None, "")?;
    let mut workers = app.store.list_workers().await?;
    if !p.is_admin() {
        let mut filter = JobFilter {
            states: vec![JobState::Starting, JobState::Running],
            limit: 1000,
            ..Default::default()
        };
        access::restrict(p, &mut filter);
        let visible: std::collections::HashSet<i64> = app
            .store
            .list_jobs(&filter)
            .await?
            .iter()
            .map(|j| j.id)
            .collect();
        for w in &mut workers {
            w.running_jobs.retain(|j| visible.contains(j));
        }
    }
    Ok(workers)
}
