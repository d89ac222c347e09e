//! Studies attached to jobs: at submission every attach is authorized for
//! the submitter (read-only needs read, read-write needs read-write) and
//! pinned to the version it reads, and each is audited once
//! (`study.read.attach`, one record per attach, never per file). The
//! worker holding the job's lease reads the pinned version's files
//! through the job (`/jobs/{id}/studies/{name}/...`), and when an attempt
//! of a read-write attach succeeds it commits the changes as one new
//! version by the merge rule, made by the job's owner and recording the
//! job. A failed or lost attempt commits nothing.

use crate::access;
use crate::audit::internal_record;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::files::FileStream;
use crate::principal::Principal;
use crate::state::Service;
use crate::studies::{self, Author, Download};
use bytes::Bytes;
use futures::Stream;
use trestle_core::JobSpec;
use trestle_core::api::study::{CommitRequest, ObjectView, StudyFile, StudyListing, VersionView};
use trestle_core::identity::authz::{Action, Scope};
use trestle_core::identity::authz_study::StudyAction;
use trestle_core::study::attach::{AttachMode, StudyAttach};
use trestle_core::study::{object_key, prefix};

/// Authorizes and pins every attach of a spec being submitted by `p`.
pub async fn pin(app: &Service, p: &Principal, mut spec: JobSpec) -> ServiceResult<JobSpec> {
    for (i, a) in spec.studies.iter_mut().enumerate() {
        let action = match a.mode {
            AttachMode::Ro => StudyAction::AttachRead,
            AttachMode::Rw => StudyAction::AttachWrite,
        };
        let field = format!("studies[{i}]");
        let (s, _) = studies::load(app, p, &a.study, action)
            .await
            .map_err(|e| e.in_field(&field))?;
        let version = match a.version {
            Some(v) if v > s.version => {
                return Err(ServiceError::bad(
                    "unknown-version",
                    &format!("{field}.version"),
                    format!("study `{}` has no version {v}", s.name),
                ));
            }
            Some(v) => v,
            None => s.version,
        };
        if let Some(d) = &a.subdir {
            let m = app
                .store
                .study_manifest(s.id, version)
                .await?
                .unwrap_or_default();
            if m.subset(d).files.is_empty() && a.mode == AttachMode::Ro {
                return Err(ServiceError::bad(
                    "empty-subset",
                    &format!("{field}.subdir"),
                    format!(
                        "version {version} of study `{}` has nothing under `{d}`",
                        s.name
                    ),
                ));
            }
        }
        a.version = Some(version);
    }
    Ok(spec)
}

/// Audits each attach of stored jobs once.
pub fn audit(app: &Service, p: &Principal, specs: &[JobSpec], ids: &[i64]) {
    for (spec, id) in specs.iter().zip(ids) {
        for a in &spec.studies {
            let mut r =
                internal_record(Some(p), "study.read.attach", &format!("study:{}", a.study));
            r.method = "SUBMIT".into();
            r.path = format!(
                "/jobs/{id} {} version {}",
                match a.mode {
                    AttachMode::Ro => "ro",
                    AttachMode::Rw => "rw",
                },
                a.version.unwrap_or(0)
            );
            app.audit.record(r);
        }
    }
}

/// The attach of `name` in the job `job`, for the worker holding it.
async fn attach_of(
    app: &Service,
    p: &Principal,
    job: i64,
    name: &str,
) -> ServiceResult<(trestle_core::api::JobView, StudyAttach)> {
    let view = access::job(app, p, job, Action::JobInputsRead).await?;
    // A user who may read the job may still not read the study.
    if p.user().is_some() {
        studies::load(app, p, name, StudyAction::Read).await?;
    }
    let a = view
        .spec
        .studies
        .iter()
        .find(|a| a.study == name)
        .cloned()
        .ok_or_else(|| ServiceError::not_found(format!("study `{name}` of job {job}")))?;
    Ok((view, a))
}

async fn record(app: &Service, name: &str) -> ServiceResult<trestle_store::StudyRecord> {
    app.store
        .study(name)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("study `{name}`")))
}

/// The files a job's attach reads (its pinned version, its subset).
pub async fn files(
    app: &Service,
    p: &Principal,
    job: i64,
    name: &str,
) -> ServiceResult<StudyListing> {
    let (_, a) = attach_of(app, p, job, name).await?;
    let s = record(app, name).await?;
    let version = a.version.unwrap_or(0);
    let m = app
        .store
        .study_manifest(s.id, version)
        .await?
        .unwrap_or_default();
    let m = match &a.subdir {
        Some(d) => m.subset(d),
        None => m,
    };
    Ok(StudyListing {
        version,
        files: m
            .files
            .into_iter()
            .map(|(path, e)| StudyFile {
                path,
                size: e.size,
                sha256: e.sha256,
            })
            .collect(),
    })
}

/// One object of a job's attach, by its SHA-256 (the worker's cache is
/// keyed by content): only objects of the attach's version and subset.
pub async fn object(
    app: &Service,
    p: &Principal,
    job: i64,
    name: &str,
    sha: &str,
) -> ServiceResult<Download> {
    let listing = files(app, p, job, name).await?;
    if !listing.files.iter().any(|f| f.sha256 == sha) {
        return Err(ServiceError::not_found(format!(
            "object {sha} of study `{name}`"
        )));
    }
    let s = record(app, name).await?;
    let (size, stream) = app
        .blobs
        .get_stream(&prefix(s.id), &object_key(sha))
        .await?;
    Ok(Download {
        file: FileStream { size, stream },
        sha256: sha.to_string(),
        version: listing.version,
    })
}

/// The job's owner, as a principal acting for the job (a read-write
/// attach's version is theirs), after checking that the caller holds
/// the lease of `attempt` with `token`.
async fn owner_for(
    app: &Service,
    p: &Principal,
    job: i64,
    attempt: u32,
    token: Option<&str>,
    name: &str,
) -> ServiceResult<(Principal, StudyAttach)> {
    let (view, a) = attach_of(app, p, job, name).await?;
    if a.mode != AttachMode::Rw {
        return Err(ServiceError::forbidden(format!(
            "study `{name}` is attached read-only to job {job}"
        )));
    }
    let token = token.ok_or_else(|| {
        ServiceError::bad(
            "missing-token",
            trestle_core::api::LEASE_TOKEN_HEADER,
            "a job's study writes must carry the lease token",
        )
    })?;
    if !app
        .store
        .lease_holds(job, attempt, token, &p.token_id)
        .await?
    {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "stale-lease",
            format!("attempt {attempt} of job {job} no longer holds its lease"),
        ));
    }
    let owner =
        view.spec.owner.clone().ok_or_else(|| {
            ServiceError::forbidden("a job without an owner cannot write a study")
        })?;
    let principal = crate::authn::user_principal(app, &owner, Scope::Full, format!("job:{job}"))
        .await?
        .ok_or_else(|| {
            ServiceError::forbidden(format!(
                "the job's owner `{owner}` can no longer write studies"
            ))
        })?;
    Ok((principal, a))
}

/// Uploads an object for a read-write attach (the lease holder).
#[allow(clippy::too_many_arguments)]
pub async fn put_object<S, E>(
    app: &Service,
    p: &Principal,
    job: i64,
    attempt: u32,
    token: Option<&str>,
    name: &str,
    sha: &str,
    body: S,
) -> ServiceResult<ObjectView>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let (owner, _) = owner_for(app, p, job, attempt, token, name).await?;
    studies::put_object(app, &owner, name, sha, body).await
}

/// Commits a succeeded attempt's changes to a read-write attach as one
/// version based on the pinned one (a conflict is a 409 naming the
/// paths, and nothing is applied).
pub async fn commit(
    app: &Service,
    p: &Principal,
    job: i64,
    attempt: u32,
    token: Option<&str>,
    name: &str,
    req: CommitRequest,
) -> ServiceResult<VersionView> {
    let (owner, a) = owner_for(app, p, job, attempt, token, name).await?;
    let (s, c) = studies::load(app, &owner, name, StudyAction::AttachWrite).await?;
    let msg = format!("job {job} attempt {attempt}");
    let author = Author {
        job_id: Some(job),
        message: Some(&msg),
    };
    studies::commit_loaded(app, &owner, s, c, a.version, &req.changes, author).await
}
