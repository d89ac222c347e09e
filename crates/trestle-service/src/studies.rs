//! Study operations: create, list, show, delete; browse and download;
//! upload content (whole objects, or resumable parts) and commit changes
//! as new versions by the merge rule; grant and revoke. Every decision is
//! `trestle_core::identity::authz_study::decide`; a study the caller may
//! not see is a 404 exactly like one that does not exist.
//!
//! Content is stored once per study under `studies/{id}/objects/`,
//! addressed by its SHA-256, which the server computes while the bytes
//! arrive and compares with the one the client declared: a mismatch is
//! refused and nothing becomes visible. Parts of a large upload are kept
//! under `studies/{id}/parts/{sha256}/` until they are completed, so an
//! interrupted upload resumes with the parts it lacks.

use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::files::FileStream;
use crate::principal::Principal;
use crate::state::Service;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use trestle_core::api::study::{
    CommitRequest, CompleteParts, CreateStudy, GrantRequest, GrantView, ObjectView, PartsView,
    StudyFile, StudyListing, StudyView, VersionView,
};
use trestle_core::identity::authz::{Decision, Denial};
use trestle_core::identity::authz_study::{Caps, StudyAction, StudyResource, caps, decide};
use trestle_core::study::manifest::{Change, Manifest, check_changes, only_adds};
use trestle_core::study::merge::{MergeError, merge};
use trestle_core::study::{
    Category, check_name, check_sha256, object_key, parse_category, parse_permission, prefix,
};
use trestle_store::study::{
    Committed, GrantRecord, NewVersion, StudyFilter, StudyRecord, VersionRecord,
};

/// The largest object sent in one request; larger files go in parts.
pub const MAX_OBJECT_BYTES: u64 = 64 << 20;
/// The largest part of a multipart upload.
pub const MAX_PART_BYTES: u64 = 64 << 20;
/// The most parts one object may have.
pub const MAX_PARTS: u32 = 10_000;
/// The longest description.
const MAX_DESCRIPTION: usize = 1024;

fn what(name: &str) -> String {
    format!("study `{name}`")
}

fn resource<'a>(
    s: &'a StudyRecord,
    grant: Option<trestle_core::study::Permission>,
) -> StudyResource<'a> {
    StudyResource::Study {
        category: s.category,
        project: &s.project,
        org: s.org.as_deref(),
        grant,
    }
}

/// Decides and maps a denial (`what` names the thing in a 404).
pub fn check(
    p: &Principal,
    action: StudyAction,
    r: StudyResource<'_>,
    what: &str,
) -> ServiceResult<()> {
    match decide(&p.subject, action, r) {
        Decision::Allow => Ok(()),
        Decision::Deny(Denial::NotFound) => Err(ServiceError::not_found(what)),
        Decision::Deny(Denial::Forbidden(m)) => Err(ServiceError::forbidden(m)),
    }
}

/// A study the caller may do `action` on, with what they may do to it.
pub async fn load(
    app: &Service,
    p: &Principal,
    name: &str,
    action: StudyAction,
) -> ServiceResult<(StudyRecord, Caps)> {
    let Some(s) = app.store.study(name).await? else {
        return Err(ServiceError::not_found(what(name)));
    };
    let grant = match p.user_name() {
        Some(u) => app.store.study_grant(s.id, u).await?,
        None => None,
    };
    check(p, action, resource(&s, grant), &what(name))?;
    let c = p
        .user()
        .map(|u| caps(u, resource(&s, grant)))
        .unwrap_or_default();
    Ok((s, c))
}

fn view(s: &StudyRecord, c: Caps, last: Option<&VersionRecord>) -> StudyView {
    let (files, bytes) = match (c.read, last) {
        (true, Some(v)) => (Some(v.files), Some(v.bytes)),
        (true, None) => (Some(0), Some(0)),
        (false, _) => (None, None),
    };
    StudyView {
        name: s.name.clone(),
        category: s.category,
        project: s.project.clone(),
        owner: s.owner.clone(),
        description: s.description.clone(),
        version: s.version,
        files,
        bytes,
        stored_bytes: s.stored_bytes,
        quota_bytes: s.quota_bytes,
        permission: c.permission(),
        created_at: s.created_at,
    }
}

fn version_view(v: VersionRecord) -> VersionView {
    VersionView {
        version: v.version,
        files: v.files,
        bytes: v.bytes,
        created_by: v.created_by,
        job_id: v.job_id,
        message: v.message,
        created_at: v.created_at,
        deleted_at: v.deleted_at,
    }
}

/// Creates a study charged to a project (default: the caller's default
/// project); the creator becomes its first admin.
pub async fn create(app: &Service, p: &Principal, req: CreateStudy) -> ServiceResult<StudyView> {
    check_name("name", &req.name)?;
    let category = parse_category("category", &req.category)?;
    if let Some(d) = &req.description
        && (d.len() > MAX_DESCRIPTION || d.chars().any(|c| c.is_control()))
    {
        return Err(ServiceError::bad(
            "invalid-description",
            "description",
            format!("a description is one line of at most {MAX_DESCRIPTION} bytes"),
        ));
    }
    let Some(u) = p.user() else {
        check(p, StudyAction::Create, StudyResource::None, "")?;
        return Err(ServiceError::forbidden("only users create studies"));
    };
    let Some(project) = req.project.clone().or_else(|| p.default_project.clone()) else {
        return Err(ServiceError::bad(
            "no-project",
            "project",
            format!(
                "`{}` has no default project: name the project that pays for the study's storage",
                u.name
            ),
        ));
    };
    let org = match u.memberships.iter().find(|m| m.project == project) {
        Some(m) => m.org.clone(),
        None => match app.store.project(&project).await? {
            Some(pr) => pr.org,
            None if p.is_admin() => {
                return Err(ServiceError::bad(
                    "unknown-project",
                    "project",
                    format!("project `{project}` does not exist"),
                ));
            }
            None => None,
        },
    };
    check(
        p,
        StudyAction::Create,
        StudyResource::Project {
            name: &project,
            org: org.as_deref(),
        },
        "",
    )?;
    let mut rec = StudyRecord {
        id: 0,
        name: req.name.clone(),
        category,
        project,
        org,
        owner: u.name.clone(),
        description: req.description.clone(),
        quota_bytes: req.quota_bytes,
        version: 0,
        stored_bytes: 0,
        created_at: crate::now_ms(),
    };
    rec.id = app.store.insert_study(&rec).await?;
    let c = caps(
        u,
        resource(&rec, Some(trestle_core::study::Permission::Admin)),
    );
    Ok(view(&rec, c, None))
}

/// The studies the caller may see, optionally of one category.
pub async fn list(
    app: &Service,
    p: &Principal,
    category: Option<&str>,
) -> ServiceResult<Vec<StudyView>> {
    check(p, StudyAction::List, StudyResource::None, "")?;
    let category = category
        .filter(|c| !c.is_empty())
        .map(|c| parse_category("category", c))
        .transpose()?;
    let Some(u) = p.user() else {
        return Ok(Vec::new());
    };
    let filter = StudyFilter {
        user: (!p.is_admin()).then(|| u.name.clone()),
        projects: u.readable_projects(),
        category,
    };
    let mut out = Vec::new();
    for s in app.store.studies(&filter).await? {
        let grant = app.store.study_grant(s.id, &u.name).await?;
        let c = caps(u, resource(&s, grant));
        if decide(&p.subject, StudyAction::Show, resource(&s, grant)).is_allowed() {
            out.push(view(&s, c, None));
        }
    }
    Ok(out)
}

/// One study.
pub async fn show(app: &Service, p: &Principal, name: &str) -> ServiceResult<StudyView> {
    let (s, c) = load(app, p, name, StudyAction::Show).await?;
    let versions = if c.read {
        app.store.study_versions(s.id).await?
    } else {
        Vec::new()
    };
    Ok(view(&s, c, versions.last()))
}

/// Deletes a study: its rows, then its objects.
pub async fn delete(app: &Service, p: &Principal, name: &str) -> ServiceResult<()> {
    let (s, _) = load(app, p, name, StudyAction::Delete).await?;
    if !app.store.delete_study(s.id).await? {
        return Err(ServiceError::not_found(what(name)));
    }
    if let Err(e) = app.blobs.delete_all(&prefix(s.id)).await {
        tracing::warn!(study = %s.name, error = %e, "deleting a study's objects failed; they are unreferenced");
    }
    Ok(())
}

async fn manifest(app: &Service, s: &StudyRecord, version: u64) -> ServiceResult<Manifest> {
    if let Some(m) = app.store.study_manifest(s.id, version).await? {
        return Ok(m);
    }
    let deleted = app
        .store
        .study_versions(s.id)
        .await?
        .into_iter()
        .find(|v| v.version == version)
        .and_then(|v| v.deleted_at);
    Err(match deleted {
        Some(at) => ServiceError::bad(
            "version-deleted",
            "version",
            format!(
                "version {version} of study `{}` was deleted by the retention policy (at {at} ms)",
                s.name
            ),
        ),
        None => ServiceError::bad(
            "unknown-version",
            "version",
            format!("study `{}` has no version {version}", s.name),
        ),
    })
}

/// Deletes the versions of a study replaced more than `keep` ago that no
/// unfinished job reads (`trestle_core::study::retention`), and the
/// objects no kept version refers to.
pub async fn prune(
    app: &Service,
    p: &Principal,
    name: &str,
    keep: &str,
) -> ServiceResult<trestle_core::api::study::PruneView> {
    let (s, _) = load(app, p, name, StudyAction::Delete).await?;
    let keep_ms = trestle_core::audit::parse_period("keep", keep)?.saturating_mul(1000);
    prune_loaded(app, &s, i64::try_from(keep_ms).unwrap_or(i64::MAX)).await
}

/// [`prune`] for a study already loaded (the retention loop's step).
pub async fn prune_loaded(
    app: &Service,
    s: &StudyRecord,
    keep_ms: i64,
) -> ServiceResult<trestle_core::api::study::PruneView> {
    let versions: Vec<(u64, i64)> = app
        .store
        .study_versions(s.id)
        .await?
        .into_iter()
        .filter(|v| v.deleted_at.is_none())
        .map(|v| (v.version, v.created_at))
        .collect();
    let in_use = app.store.study_versions_in_use(&s.name).await?;
    let now = crate::now_ms();
    let drop =
        trestle_core::study::retention::prunable(&versions, s.version, keep_ms, now, &in_use);
    let gone = if drop.is_empty() {
        Vec::new()
    } else {
        app.store.prune_study_versions(s.id, &drop, now).await?
    };
    for sha in &gone {
        if let Err(e) = app.blobs.delete(&prefix(s.id), &object_key(sha)).await {
            tracing::warn!(study = %s.name, error = %e, "deleting a pruned object failed");
        }
    }
    let after = app.store.study(&s.name).await?;
    Ok(trestle_core::api::study::PruneView {
        versions: drop,
        objects: gone.len() as u64,
        stored_bytes: after.map_or(0, |a| a.stored_bytes),
    })
}

/// Prunes every study with one retention period (for a background loop
/// under a leader lease; the period is the admins' `[studies] retention`).
pub async fn prune_all(app: &Service, keep_ms: i64) -> ServiceResult<usize> {
    let mut n = 0;
    for s in app.store.studies(&StudyFilter::default()).await? {
        n += prune_loaded(app, &s, keep_ms).await?.versions.len();
    }
    Ok(n)
}

fn parse_version(v: Option<&str>) -> ServiceResult<Option<u64>> {
    v.filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ServiceError::bad(
                    "invalid-version",
                    "version",
                    format!("`{}` is not a version number", v.escape_debug()),
                )
            })
        })
        .transpose()
}

/// The files of a version (default: the current one), optionally only
/// those under `under`.
pub async fn files(
    app: &Service,
    p: &Principal,
    name: &str,
    version: Option<&str>,
    under: Option<&str>,
) -> ServiceResult<StudyListing> {
    let (s, _) = load(app, p, name, StudyAction::Read).await?;
    let version = parse_version(version)?.unwrap_or(s.version);
    let m = manifest(app, &s, version).await?;
    let m = match under.filter(|u| !u.is_empty()) {
        Some(u) => m.subset(&trestle_core::paths::normalize_relative("prefix", u)?),
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

/// A download: the file's bytes, its SHA-256 (for the client to check)
/// and the version it was read from.
pub struct Download {
    /// The bytes.
    pub file: FileStream,
    /// Its SHA-256 per the manifest.
    pub sha256: String,
    /// The version read.
    pub version: u64,
}

/// Downloads one file of a version (default: the current one).
pub async fn download(
    app: &Service,
    p: &Principal,
    name: &str,
    path: &str,
    version: Option<&str>,
) -> ServiceResult<Download> {
    let (s, _) = load(app, p, name, StudyAction::Read).await?;
    let version = parse_version(version)?.unwrap_or(s.version);
    let m = manifest(app, &s, version).await?;
    let rel = trestle_core::paths::normalize_relative("path", path)?;
    let Some(e) = m.files.get(&rel) else {
        return Err(ServiceError::not_found(format!(
            "`{}` in version {version} of study `{name}`",
            rel.escape_debug()
        )));
    };
    let (size, stream) = app
        .blobs
        .get_stream(&prefix(s.id), &object_key(&e.sha256))
        .await?;
    Ok(Download {
        file: FileStream { size, stream },
        sha256: e.sha256.clone(),
        version,
    })
}

type Hasher = Arc<Mutex<Sha256>>;

fn hashing<S, E>(
    body: S,
    cap: u64,
    h: Hasher,
) -> impl Stream<Item = Result<Bytes, crate::files::Capped>> + Send + Unpin
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    crate::files::capped(body, cap).map(move |c| {
        if let (Ok(b), Ok(mut g)) = (&c, h.lock()) {
            g.update(b);
        }
        c
    })
}

fn digest(h: &Hasher) -> String {
    match h.lock() {
        Ok(g) => hex::encode(g.clone().finalize()),
        Err(_) => String::new(),
    }
}

fn checksum_mismatch(field: &str, declared: &str, got: &str) -> ServiceError {
    ServiceError::bad(
        "checksum-mismatch",
        field,
        format!(
            "the bytes received have SHA-256 {got}, not the {declared} declared: the transfer was corrupted, nothing was stored; send it again"
        ),
    )
}

/// Stores `body` at `rel` under the study's prefix if its SHA-256 is
/// `sha` (refused, and never visible, otherwise); returns its size.
async fn store_verified<S, E>(
    app: &Service,
    s: &StudyRecord,
    rel: &str,
    sha: &str,
    field: &str,
    cap: u64,
    body: S,
) -> ServiceResult<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let h: Hasher = Arc::new(Mutex::new(Sha256::new()));
    let staged = match app
        .blobs
        .stage_stream(&prefix(s.id), rel, hashing(body, cap, h.clone()))
        .await
    {
        Ok(st) => st,
        Err(e) if crate::files::is_over(&e) => {
            return Err(crate::files::too_large(
                "too-large",
                format!(
                    "one request carries at most {} MiB: send larger files in parts",
                    cap >> 20
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let got = digest(&h);
    if got != sha {
        staged.abort().await;
        return Err(checksum_mismatch(field, sha, &got));
    }
    if let Err(e) = within_quota(app, s, staged.size()).await {
        staged.abort().await;
        return Err(e);
    }
    Ok(staged.commit().await?)
}

/// Refuses content that alone would exceed the study's or its project's
/// quota (what versions keep is checked again when they are committed).
async fn within_quota(app: &Service, s: &StudyRecord, size: u64) -> ServiceResult<()> {
    let too_large = |e: trestle_core::ValidationError| {
        ServiceError::new(ErrorKind::TooLarge, &e.code, e.message)
    };
    trestle_core::study::quota::check(
        &format!("study `{}`", s.name),
        s.stored_bytes,
        size,
        s.quota_bytes,
    )
    .map_err(too_large)?;
    if let Some(limit) = app.store.project_study_quota(&s.project).await? {
        let used = app.store.project_study_bytes(&s.project).await?;
        trestle_core::study::quota::check(
            &format!("project `{}` (all its studies)", s.project),
            used,
            size,
            Some(limit),
        )
        .map_err(too_large)?;
    }
    Ok(())
}

/// Uploads one object whose SHA-256 is `sha` (checked while it arrives).
pub async fn put_object<S, E>(
    app: &Service,
    p: &Principal,
    name: &str,
    sha: &str,
    body: S,
) -> ServiceResult<ObjectView>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let (s, _) = load(app, p, name, StudyAction::Write).await?;
    check_sha256("sha256", sha)?;
    let size = store_verified(
        app,
        &s,
        &object_key(sha),
        sha,
        "sha256",
        MAX_OBJECT_BYTES,
        body,
    )
    .await?;
    Ok(ObjectView {
        sha256: sha.to_string(),
        size,
    })
}

fn parts_dir(sha: &str) -> String {
    format!("parts/{sha}")
}

fn parse_part(n: &str) -> ServiceResult<u32> {
    n.parse::<u32>()
        .ok()
        .filter(|n| *n < MAX_PARTS)
        .ok_or_else(|| {
            ServiceError::bad(
                "invalid-part",
                "part",
                format!("a part number is 0 to {}", MAX_PARTS - 1),
            )
        })
}

/// Uploads part `n` of the object `sha`; `part_sha` is the part's own
/// SHA-256, checked while it arrives (a corrupted part is refused).
pub async fn put_part<S, E>(
    app: &Service,
    p: &Principal,
    name: &str,
    sha: &str,
    n: &str,
    part_sha: Option<&str>,
    body: S,
) -> ServiceResult<ObjectView>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let (s, _) = load(app, p, name, StudyAction::Write).await?;
    check_sha256("sha256", sha)?;
    let n = parse_part(n)?;
    let Some(part_sha) = part_sha else {
        return Err(ServiceError::bad(
            "missing-checksum",
            trestle_core::api::study::SHA256_HEADER,
            "each part carries its SHA-256 in the `x-trestle-sha256` header",
        ));
    };
    check_sha256(trestle_core::api::study::SHA256_HEADER, part_sha)?;
    let rel = format!("{}/{n:05}", parts_dir(sha));
    let size = store_verified(
        app,
        &s,
        &rel,
        part_sha,
        trestle_core::api::study::SHA256_HEADER,
        MAX_PART_BYTES,
        body,
    )
    .await?;
    Ok(ObjectView {
        sha256: part_sha.to_string(),
        size,
    })
}

/// The parts of object `sha` received so far.
pub async fn parts(
    app: &Service,
    p: &Principal,
    name: &str,
    sha: &str,
) -> ServiceResult<PartsView> {
    let (s, _) = load(app, p, name, StudyAction::Write).await?;
    check_sha256("sha256", sha)?;
    let dir = format!("{}/{}", prefix(s.id), parts_dir(sha));
    let parts = app
        .blobs
        .list(&dir)
        .await?
        .into_iter()
        .filter_map(|f| f.path.parse::<u32>().ok().map(|n| (n, f.size)))
        .collect();
    Ok(PartsView {
        sha256: sha.to_string(),
        parts,
    })
}

/// Joins parts `0..count` into the object `sha`, checking its size and
/// SHA-256 (a mismatch stores nothing and keeps the parts).
pub async fn complete_parts(
    app: &Service,
    p: &Principal,
    name: &str,
    sha: &str,
    req: CompleteParts,
) -> ServiceResult<ObjectView> {
    let (s, _) = load(app, p, name, StudyAction::Write).await?;
    check_sha256("sha256", sha)?;
    if req.count == 0 || req.count > MAX_PARTS {
        return Err(ServiceError::bad(
            "invalid-part",
            "count",
            format!("an object has 1 to {MAX_PARTS} parts"),
        ));
    }
    let have = parts(app, p, name, sha).await?.parts;
    let missing: Vec<u32> = (0..req.count)
        .filter(|n| !have.iter().any(|(h, _)| h == n))
        .collect();
    if !missing.is_empty() {
        return Err(ServiceError::bad(
            "missing-parts",
            "count",
            format!("parts {missing:?} have not arrived: upload them, then complete again"),
        ));
    }
    let total: u64 = have
        .iter()
        .filter(|(n, _)| *n < req.count)
        .map(|(_, s)| s)
        .sum();
    if total != req.size {
        return Err(ServiceError::bad(
            "size-mismatch",
            "size",
            format!("the parts hold {total} bytes, not {}", req.size),
        ));
    }
    let pre = prefix(s.id);
    let blobs = app.blobs.clone();
    let dir = parts_dir(sha);
    let joined = futures::stream::iter(0..req.count)
        .then(move |n| {
            let blobs = blobs.clone();
            let pre = pre.clone();
            let rel = format!("{dir}/{n:05}");
            async move { blobs.get_stream(&pre, &rel).await.map(|(_, st)| st) }
        })
        .try_flatten()
        .boxed();
    let size = store_verified(app, &s, &object_key(sha), sha, "sha256", u64::MAX, joined).await?;
    for n in 0..req.count {
        let _ = app
            .blobs
            .delete(&prefix(s.id), &format!("{}/{n:05}", parts_dir(sha)))
            .await;
    }
    Ok(ObjectView {
        sha256: sha.to_string(),
        size,
    })
}

fn conflict(paths: &[String]) -> ServiceError {
    let shown: Vec<&str> = paths.iter().take(20).map(String::as_str).collect();
    ServiceError {
        field: Some("changes".into()),
        ..ServiceError::new(
            ErrorKind::Conflict,
            "study-conflict",
            format!(
                "{} path(s) changed since your base version: {}{}; nothing was applied",
                paths.len(),
                shown.join(", "),
                if paths.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            ),
        )
    }
}

/// Who makes a version, and for which job.
#[derive(Debug, Clone, Copy, Default)]
pub struct Author<'a> {
    /// The job whose attempt made it.
    pub job_id: Option<i64>,
    /// A line about it.
    pub message: Option<&'a str>,
}

/// Applies changes made against a base version as one new version, by
/// the merge rule (`trestle_core::study::merge`), checking that every
/// put's content was uploaded and the quotas.
pub async fn commit(
    app: &Service,
    p: &Principal,
    name: &str,
    req: CommitRequest,
) -> ServiceResult<VersionView> {
    let (s, c) = load(app, p, name, StudyAction::Write).await?;
    let author = Author {
        job_id: None,
        message: req.message.as_deref(),
    };
    commit_loaded(app, p, s, c, req.base_version, &req.changes, author).await
}

/// [`commit`] for a study already loaded (also used when a job's
/// read-write attach ends).
pub async fn commit_loaded(
    app: &Service,
    p: &Principal,
    s: StudyRecord,
    c: Caps,
    base_version: Option<u64>,
    changes: &[Change],
    author: Author<'_>,
) -> ServiceResult<VersionView> {
    if let Some(m) = author.message
        && (m.len() > MAX_DESCRIPTION || m.chars().any(|c| c.is_control()))
    {
        return Err(ServiceError::bad(
            "invalid-message",
            "message",
            format!("a message is one line of at most {MAX_DESCRIPTION} bytes"),
        ));
    }
    let base_no = base_version.unwrap_or(s.version);
    if base_no > s.version {
        return Err(ServiceError::bad(
            "unknown-version",
            "base_version",
            format!("study `{}` has no version {base_no}", s.name),
        ));
    }
    let base = manifest(app, &s, base_no).await?;
    let mut current_no = s.version;
    let mut current = manifest(app, &s, current_no).await?;
    let changes = check_changes(&current, changes)?;
    if !c.modify && !only_adds(&current, &changes) {
        return Err(ServiceError::forbidden(
            "a write-only grant adds files; replacing or deleting them needs read-write",
        ));
    }
    for (i, ch) in changes.iter().enumerate() {
        if let Change::Put { size, sha256, .. } = ch {
            match app
                .blobs
                .size_of(&prefix(s.id), &object_key(sha256))
                .await?
            {
                Some(got) if got == *size => {}
                Some(got) => {
                    return Err(ServiceError::bad(
                        "size-mismatch",
                        &format!("changes[{i}].size"),
                        format!("the uploaded content {sha256} has {got} bytes, not {size}"),
                    ));
                }
                None => {
                    return Err(ServiceError::bad(
                        "not-uploaded",
                        &format!("changes[{i}].sha256"),
                        format!("no content {sha256} was uploaded to study `{}`", s.name),
                    ));
                }
            }
        }
    }
    let who = p.user_name();
    for _ in 0..20 {
        let next = match merge(&base, &current, &changes) {
            Ok(m) => m,
            Err(MergeError::Conflict(paths)) => return Err(conflict(&paths)),
            Err(MergeError::Invalid(e)) => return Err(e.into()),
        };
        let nv = NewVersion {
            study_id: s.id,
            after: current_no,
            manifest: &next,
            created_by: who,
            job_id: author.job_id,
            message: author.message,
            now: crate::now_ms(),
        };
        match app.store.commit_study_version(&nv).await? {
            Committed::Done { version, .. } => {
                return Ok(VersionView {
                    version,
                    files: next.files.len() as u64,
                    bytes: next.bytes(),
                    created_by: who.map(str::to_string),
                    job_id: author.job_id,
                    message: author.message.map(str::to_string),
                    created_at: nv.now,
                    deleted_at: None,
                });
            }
            Committed::Moved { current: now_at } => {
                current_no = now_at;
                current = manifest(app, &s, current_no).await?;
            }
            Committed::Quota(e) => {
                return Err(ServiceError::new(ErrorKind::TooLarge, &e.code, e.message));
            }
            Committed::Gone => return Err(ServiceError::not_found(what(&s.name))),
        }
    }
    Err(ServiceError::new(
        ErrorKind::Conflict,
        "busy",
        "the study changed twenty times while this change was merged; try again",
    ))
}

/// The versions of a study, oldest first.
pub async fn versions(app: &Service, p: &Principal, name: &str) -> ServiceResult<Vec<VersionView>> {
    let (s, _) = load(app, p, name, StudyAction::Read).await?;
    Ok(app
        .store
        .study_versions(s.id)
        .await?
        .into_iter()
        .map(version_view)
        .collect())
}

fn grant_view(g: GrantRecord) -> GrantView {
    GrantView {
        user: g.user,
        permission: g.permission,
        granted_by: g.granted_by,
        granted_at: g.granted_at,
    }
}

/// The grants of a study (its admins).
pub async fn grants(app: &Service, p: &Principal, name: &str) -> ServiceResult<Vec<GrantView>> {
    let (s, _) = load(app, p, name, StudyAction::Grant).await?;
    Ok(app
        .store
        .study_grants(s.id)
        .await?
        .into_iter()
        .map(grant_view)
        .collect())
}

/// Grants (or changes) `user`'s permission (the study's admins).
pub async fn grant(
    app: &Service,
    p: &Principal,
    name: &str,
    user: &str,
    req: GrantRequest,
) -> ServiceResult<GrantView> {
    let (s, _) = load(app, p, name, StudyAction::Grant).await?;
    let permission = parse_permission("permission", &req.permission)?;
    if app.store.user(user).await?.is_none() {
        return Err(ServiceError::bad(
            "unknown-user",
            "user",
            format!("there is no user `{}`", user.escape_debug()),
        ));
    }
    if permission != trestle_core::study::Permission::Admin {
        last_admin_guard(app, &s, user).await?;
    }
    let g = GrantRecord {
        user: user.to_string(),
        permission,
        granted_by: p.user_name().map(str::to_string),
        granted_at: crate::now_ms(),
    };
    app.store.put_study_grant(s.id, &g).await?;
    Ok(grant_view(g))
}

/// A study keeps at least one admin.
async fn last_admin_guard(app: &Service, s: &StudyRecord, user: &str) -> ServiceResult<()> {
    let gs = app.store.study_grants(s.id).await?;
    let admins: Vec<&GrantRecord> = gs
        .iter()
        .filter(|g| g.permission == trestle_core::study::Permission::Admin)
        .collect();
    if admins.len() == 1 && admins[0].user == user {
        return Err(ServiceError {
            field: Some("user".into()),
            ..ServiceError::new(
                ErrorKind::Conflict,
                "last-admin",
                format!(
                    "`{user}` is the last admin of study `{}`: grant admin to someone else first",
                    s.name
                ),
            )
        });
    }
    Ok(())
}

/// Revokes `user`'s grant (the study's admins).
pub async fn revoke(app: &Service, p: &Principal, name: &str, user: &str) -> ServiceResult<()> {
    let (s, _) = load(app, p, name, StudyAction::Grant).await?;
    last_admin_guard(app, &s, user).await?;
    if !app.store.revoke_study_grant(s.id, user).await? {
        return Err(ServiceError::not_found(format!(
            "a grant of study `{name}` to `{}`",
            user.escape_debug()
        )));
    }
    Ok(())
}

/// Sets a project's quota for its studies (admins).
pub async fn set_project_quota(
    app: &Service,
    p: &Principal,
    project: &str,
    quota: &str,
) -> ServiceResult<Option<u64>> {
    check(p, StudyAction::SetQuota, StudyResource::None, "")?;
    let q = trestle_core::study::quota::parse("quota", quota)?;
    if app.store.project(project).await?.is_none() {
        return Err(ServiceError::not_found(format!("project `{project}`")));
    }
    app.store
        .set_project_study_quota(
            project,
            q,
            p.user_name().unwrap_or("admin"),
            crate::now_ms(),
        )
        .await?;
    Ok(q)
}

/// The category of a listing tab, for the portal.
pub fn tabs() -> [Category; 3] {
    Category::ALL
}
