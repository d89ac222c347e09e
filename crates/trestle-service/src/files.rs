//! Files: uploads (input folders), a job's inputs, attempt outputs, and a
//! job's upstream (the outputs of the jobs it depends on, staged into its
//! scratch directory before it runs). Every path is normalised and
//! confined to its prefix; bytes pass through as streams, which the edges
//! frame.

use crate::access;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::jobs::{outputs_attempt, parse_attempt, parse_id};
use crate::principal::Principal;
use crate::state::Service;
use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use rand::RngCore;
use trestle_core::JobState;
use trestle_core::api::workflow::{UpstreamJob, UpstreamList};
use trestle_core::api::{FileList, JobView, LEASE_TOKEN_HEADER, UploadCreated};
use trestle_core::batch::spec::validate_upload_id;
use trestle_core::identity::authz::{Action, Resource};
use trestle_core::paths::normalize_relative;
use trestle_store::StoreError;
use trestle_store::blobs::{output_prefix, upload_prefix};

/// A stored file being read: its size and its bytes.
pub struct FileStream {
    /// Size in bytes.
    pub size: u64,
    /// The bytes, as they arrive from object storage.
    pub stream: BoxStream<'static, trestle_store::Result<Bytes>>,
}

/// Creates an empty upload owned by the caller.
pub async fn create_upload(app: &Service, p: &Principal) -> ServiceResult<UploadCreated> {
    access::check(p, Action::UploadCreate, Resource::None, "")?;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    let id = format!("u{}", hex::encode(b));
    let owner = p.user_name().unwrap_or_default();
    app.store.create_upload(&id, owner, crate::now_ms()).await?;
    Ok(UploadCreated { id })
}

/// How much users may upload (`[storage]` in `trestle.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Largest file of an upload.
    pub file_bytes: u64,
    /// Most bytes the uploads charged to one project may hold.
    pub project_bytes: u64,
}

/// Default largest uploaded file: 1 GiB.
pub const DEFAULT_UPLOAD_FILE_BYTES: u64 = 1 << 30;
/// Default storage quota of a project's uploads: 100 GiB.
pub const DEFAULT_PROJECT_UPLOAD_BYTES: u64 = 100 << 30;

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            file_bytes: DEFAULT_UPLOAD_FILE_BYTES,
            project_bytes: DEFAULT_PROJECT_UPLOAD_BYTES,
        }
    }
}

/// Why a capped stream stopped.
#[derive(Debug)]
pub(crate) enum Capped {
    /// More than the cap arrived.
    Over,
    /// Reading the body failed.
    Read(String),
}

impl std::fmt::Display for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capped::Over => f.write_str("the upload is larger than allowed"),
            Capped::Read(e) => f.write_str(e),
        }
    }
}

/// `data`, failing with [`Capped::Over`] once more than `cap` bytes
/// arrive.
pub(crate) fn capped<S, E>(
    data: S,
    cap: u64,
) -> impl Stream<Item = Result<Bytes, Capped>> + Send + Unpin
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    let mut seen = 0u64;
    data.map(move |chunk| match chunk {
        Ok(b) => {
            seen += b.len() as u64;
            if seen > cap { Err(Capped::Over) } else { Ok(b) }
        }
        Err(e) => Err(Capped::Read(e.to_string())),
    })
}

/// Whether object storage stopped because a [`capped`] stream went over.
pub(crate) fn is_over(e: &StoreError) -> bool {
    e.to_string().contains(&Capped::Over.to_string())
}

/// A 413 about the file at `path`.
pub(crate) fn too_large(code: &str, message: String) -> ServiceError {
    ServiceError {
        field: Some("path".into()),
        ..ServiceError::new(ErrorKind::TooLarge, code, message)
    }
}

/// The project an upload's bytes are charged to: the uploader's default
/// project (`user:NAME` for a user with none).
fn charged_project(p: &Principal) -> String {
    match (&p.default_project, p.user_name()) {
        (Some(project), _) => project.clone(),
        (None, Some(user)) => format!("user:{user}"),
        (None, None) => "user:".to_string(),
    }
}

/// The code of the answer to a write into a sealed upload.
pub const UPLOAD_SEALED: &str = "upload-sealed";

fn sealed(id: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::Conflict,
        UPLOAD_SEALED,
        format!(
            "upload `{id}` is the inputs of a submitted job and cannot change; \
             create a new upload (`trestle submit --input DIR`) for different inputs"
        ),
    )
    .in_field("id")
}

/// Writes one file of upload `id` at `path` from `data`, unless the upload
/// is sealed (a job was submitted with it as inputs: `409
/// upload-sealed`).
///
/// Size: the file may be at most [`UploadLimits::file_bytes`], and the
/// uploads charged to the uploader's default project at most
/// [`UploadLimits::project_bytes`]. The body is counted as it arrives and
/// refused (413) the moment it goes over, plain or chunked, and nothing of
/// it is kept. Uploads running at once on one project may each see the
/// room before the others use it, so the quota can be passed by at most
/// what those uploads hold.
///
/// Sealing: the file is read in full first and made visible while the
/// store holds the upload unsealed, so a submit racing this write seals
/// the upload either before the file appears (and the write is refused)
/// or after (and its job sees the file): a submitted job's inputs never
/// change.
pub async fn put_upload_file<S, E>(
    app: &Service,
    p: &Principal,
    id: &str,
    path: &str,
    data: S,
) -> ServiceResult<()>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    validate_upload_id("id", id)?;
    access::upload(app, p, id, Action::UploadWrite).await?;
    let rel = normalize_relative("path", path)?;
    // Refused before the body is read, when it can be.
    if app.store.upload_sealed(id).await? {
        return Err(sealed(id));
    }
    let prefix = upload_prefix(id);
    let old = app
        .blobs
        .list(&prefix)
        .await?
        .into_iter()
        .find(|f| f.path == rel)
        .map_or(0, |f| f.size);
    let project = charged_project(p);
    let limits = app.uploads;
    let used = app.store.project_upload_bytes(&project).await?;
    let room = limits.project_bytes.saturating_sub(used) + old;
    let cap = limits.file_bytes.min(room);
    let staged = match app
        .blobs
        .stage_stream(&prefix, &rel, capped(data, cap))
        .await
    {
        Ok(s) => s,
        Err(e) if is_over(&e) => {
            let (code, message) = if cap == limits.file_bytes {
                (
                    "file-too-large",
                    format!("a file may be at most {} bytes", limits.file_bytes),
                )
            } else {
                (
                    "quota-exceeded",
                    format!(
                        "project `{project}` holds {used} bytes of uploads of its {} byte quota; \
                         this file does not fit",
                        limits.project_bytes
                    ),
                )
            };
            return Err(too_large(code, message));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(hold) = app.store.hold_unsealed_upload(id).await? else {
        staged.abort().await;
        return Err(sealed(id));
    };
    let written = staged.commit().await;
    hold.release().await?;
    let written = written?;
    app.store
        .add_upload_bytes(id, &project, written as i64 - old as i64)
        .await?;
    Ok(())
}

/// The files of upload `id`.
pub async fn list_upload(app: &Service, p: &Principal, id: &str) -> ServiceResult<FileList> {
    validate_upload_id("id", id)?;
    access::upload(app, p, id, Action::UploadRead).await?;
    let files = app.blobs.list(&upload_prefix(id)).await?;
    Ok(FileList {
        files,
        attempt: None,
    })
}

/// The upload a job reads its inputs from, if the caller may read them.
async fn job_upload(app: &Service, p: &Principal, job: i64) -> ServiceResult<Option<String>> {
    let view = access::job(app, p, job, Action::JobInputsRead).await?;
    Ok(view.spec.inputs)
}

/// Reads file `path` under `prefix`.
async fn read_file(app: &Service, prefix: &str, path: &str) -> ServiceResult<FileStream> {
    let rel = normalize_relative("path", path)?;
    let (size, stream) = app
        .blobs
        .get_stream(prefix, &rel)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ServiceError::not_found(format!("file `{rel}`")),
            other => other.into(),
        })?;
    Ok(FileStream { size, stream })
}

/// The input files of job `job` (none without inputs).
pub async fn list_inputs(app: &Service, p: &Principal, job: i64) -> ServiceResult<FileList> {
    let files = match job_upload(app, p, job).await? {
        Some(u) => app.blobs.list(&upload_prefix(&u)).await?,
        None => Vec::new(),
    };
    Ok(FileList {
        files,
        attempt: None,
    })
}

/// One input file of job `job`.
pub async fn input_file(
    app: &Service,
    p: &Principal,
    job: i64,
    path: &str,
) -> ServiceResult<FileStream> {
    let upload = job_upload(app, p, job)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("inputs of job {job}")))?;
    read_file(app, &upload_prefix(&upload), path).await
}

/// Writes output file `path` of attempt `attempt` of job `job` (both as
/// given in the request, read after the check) from `data`, for the
/// holder of that attempt's lease (`lease_token`) only, presented by the
/// credential that registered the worker holding it.
pub async fn put_output<S, E>(
    app: &Service,
    p: &Principal,
    job: &str,
    attempt: &str,
    path: &str,
    lease_token: Option<&str>,
    data: S,
) -> ServiceResult<()>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    access::check(p, Action::OutputUpload, Resource::None, "")?;
    let job = parse_id("id", job)?;
    let attempt = parse_attempt(attempt)?;
    let rel = normalize_relative("path", path)?;
    let token = lease_token.ok_or_else(|| {
        ServiceError::bad(
            "missing-token",
            LEASE_TOKEN_HEADER,
            "output uploads must carry the lease token",
        )
    })?;
    // The lease must be held by a worker this credential registered; a
    // token of another credential's worker is answered as a stale one.
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
    let cap = app.uploads.file_bytes;
    match app
        .blobs
        .put_stream(&output_prefix(job, attempt), &rel, capped(data, cap))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_over(&e) => Err(too_large(
            "file-too-large",
            format!("an output file may be at most {cap} bytes"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// One output file of job `job`: of attempt `attempt`, or of the latest
/// one that has any.
pub async fn output_file(
    app: &Service,
    p: &Principal,
    job: i64,
    attempt: Option<&str>,
    path: &str,
) -> ServiceResult<FileStream> {
    let attempt = outputs_attempt(app, p, job, attempt).await?;
    read_file(app, &output_prefix(job, attempt), path).await
}

/// The latest attempt of a succeeded job, with its output files.
async fn outputs_of(app: &Service, job: &JobView) -> ServiceResult<Option<UpstreamJob>> {
    if job.state != JobState::Succeeded {
        return Ok(None);
    }
    let Some(attempt) = job.attempts.last().map(|a| a.attempt) else {
        return Ok(None);
    };
    let files = app.blobs.list(&output_prefix(job.id, attempt)).await?;
    Ok(Some(UpstreamJob {
        job_id: job.id,
        attempt,
        files,
    }))
}

/// For the worker running job `job` (or a user who may read it), the
/// output files of every succeeded job it depends on; for an array, of
/// each succeeded child.
pub async fn upstream(app: &Service, p: &Principal, job: i64) -> ServiceResult<UpstreamList> {
    let view = access::job(app, p, job, Action::JobInputsRead).await?;
    let mut jobs = Vec::new();
    for d in &view.spec.flow.after {
        let Some(dep) = app.store.job(d.job).await? else {
            continue;
        };
        if dep.flow.kind.is_group() {
            for (child, state) in app.store.children(dep.id).await? {
                if state != JobState::Succeeded {
                    continue;
                }
                if let Some(c) = app.store.job(child).await?
                    && let Some(u) = outputs_of(app, &c).await?
                {
                    jobs.push(u);
                }
            }
        } else if let Some(u) = outputs_of(app, &dep).await? {
            jobs.push(u);
        }
    }
    jobs.retain(|j| !j.files.is_empty());
    Ok(UpstreamList { jobs })
}

/// One upstream file of job `job`: `path` of attempt `attempt` of `dep`,
/// which (or whose parent) must be a dependency of the job.
pub async fn upstream_file(
    app: &Service,
    p: &Principal,
    job: i64,
    dep: i64,
    attempt: u32,
    path: &str,
) -> ServiceResult<FileStream> {
    let view = access::job(app, p, job, Action::JobInputsRead).await?;
    let what = format!("upstream job {dep} of job {job}");
    let direct = view.spec.flow.after.iter().any(|d| d.job == dep);
    let via_parent = if direct {
        false
    } else {
        let parent = app.store.job(dep).await?.and_then(|d| d.flow.parent);
        parent.is_some_and(|pa| view.spec.flow.after.iter().any(|d| d.job == pa))
    };
    if !direct && !via_parent {
        return Err(ServiceError::not_found(what));
    }
    read_file(app, &output_prefix(dep, attempt), path).await
}
