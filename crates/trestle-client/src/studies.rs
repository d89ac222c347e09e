//! Study calls: the JSON ones (create, list, show, files, versions,
//! grants), uploads that hash a file first and send it whole or in
//! resumable parts (each part with its own SHA-256, so a corrupted part
//! is refused by the server), and downloads checked against the SHA-256
//! the server announces.

use crate::client::{Client, Timeout, decode_json};
use crate::error::ClientError;
use crate::files::Progress;
use crate::urls;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use trestle_core::api::study::{
    CommitRequest, CompleteParts, ObjectView, PartsView, SHA256_HEADER, StudyListing,
    VERSION_HEADER, VersionView,
};
use trestle_core::api::{AttemptRef, LEASE_TOKEN_HEADER};

/// Files up to this size go in one request; larger ones in parts.
pub const WHOLE_LIMIT: u64 = 32 << 20;
/// The size of each part of a large upload.
pub const PART_SIZE: u64 = 16 << 20;

fn io(what: &str, path: &Path, e: std::io::Error) -> ClientError {
    ClientError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// The SHA-256 and size of a local file, read in 1 MiB blocks.
pub async fn hash_file(path: &Path) -> Result<(String, u64), ClientError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| io("read", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.map_err(|e| io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

async fn read_part(path: &Path, n: u32, size: u64) -> Result<Vec<u8>, ClientError> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| io("read", path, e))?;
    let start = u64::from(n) * PART_SIZE;
    let len = PART_SIZE.min(size.saturating_sub(start));
    f.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| io("read", path, e))?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.read_exact(&mut buf)
        .await
        .map_err(|e| io("read", path, e))?;
    Ok(buf)
}

impl Client {
    /// `GET /api/v1/studies/{name}/files`.
    pub async fn study_files(
        &self,
        name: &str,
        version: Option<u64>,
        prefix: Option<&str>,
    ) -> Result<StudyListing, ClientError> {
        let v = version.map(|v| v.to_string()).unwrap_or_default();
        let mut q: Vec<(&str, &str)> = Vec::new();
        if version.is_some() {
            q.push(("version", &v));
        }
        if let Some(p) = prefix {
            q.push(("prefix", p));
        }
        self.call::<(), _>(Method::GET, &["studies", name, "files"], &q, None)
            .await
    }

    /// `POST /api/v1/studies/{name}/versions`.
    pub async fn study_commit(
        &self,
        name: &str,
        req: &CommitRequest,
    ) -> Result<VersionView, ClientError> {
        self.call(Method::POST, &["studies", name, "versions"], &[], Some(req))
            .await
    }

    /// Uploads the content of a local file whose SHA-256 and size are
    /// known (see [`hash_file`]): in one request up to [`WHOLE_LIMIT`],
    /// otherwise in parts of [`PART_SIZE`], sending only the parts the
    /// server lacks (an interrupted upload resumes). `progress` gets the
    /// bytes of this file sent or found already sent.
    pub async fn study_upload(
        &self,
        name: &str,
        file: &Path,
        sha: &str,
        size: u64,
        progress: Option<Progress<'_>>,
    ) -> Result<ObjectView, ClientError> {
        if size <= WHOLE_LIMIT {
            let resp = self
                .put_file_response(
                    |b| urls::api(b, &["studies", name, "objects", sha]),
                    file,
                    progress,
                )
                .await?;
            return decode_json(resp).await;
        }
        let have: PartsView = self
            .call::<(), _>(Method::GET, &["studies", name, "parts", sha], &[], None)
            .await?;
        let count = u32::try_from(size.div_ceil(PART_SIZE))
            .map_err(|_| ClientError::Io(format!("{} is too large", file.display())))?;
        let mut sent = 0u64;
        for n in 0..count {
            let want = PART_SIZE.min(size - u64::from(n) * PART_SIZE);
            if have.parts.iter().any(|(p, s)| *p == n && *s == want) {
                sent += want;
                if let Some(p) = progress {
                    p(sent);
                }
                continue;
            }
            let data = bytes::Bytes::from(read_part(file, n, size).await?);
            let part_sha = hex::encode(Sha256::digest(&data));
            let ns = n.to_string();
            self.execute(Timeout::Unlimited, |http, b| {
                Ok(http
                    .put(urls::api(b, &["studies", name, "parts", sha, &ns]))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, data.len())
                    .header(SHA256_HEADER, part_sha.as_str())
                    .body(data.clone()))
            })
            .await?;
            sent += want;
            if let Some(p) = progress {
                p(sent);
            }
        }
        self.call(
            Method::POST,
            &["studies", name, "parts", sha, "complete"],
            &[],
            Some(&CompleteParts { count, size }),
        )
        .await
    }

    /// Sends one part of a large object as it is (for tests and tools
    /// that resume by hand): `part_sha` is what the server checks.
    pub async fn study_put_part(
        &self,
        name: &str,
        sha: &str,
        n: u32,
        part_sha: &str,
        data: bytes::Bytes,
    ) -> Result<ObjectView, ClientError> {
        let ns = n.to_string();
        let resp = self
            .execute(Timeout::Unlimited, |http, b| {
                Ok(http
                    .put(urls::api(b, &["studies", name, "parts", sha, &ns]))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(SHA256_HEADER, part_sha)
                    .body(data.clone()))
            })
            .await?;
        decode_json(resp).await
    }

    /// Downloads one file of a study to `dest`, checking its SHA-256
    /// against the one the server announced (a mismatch removes the file
    /// and fails); returns the size and the version read.
    pub async fn study_download(
        &self,
        name: &str,
        path: &str,
        version: Option<u64>,
        dest: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<(u64, u64), ClientError> {
        let mut resp = self
            .execute(Timeout::Unlimited, |http, b| {
                let mut u = urls::api(b, &["studies", name, "files"]);
                urls::push_file_path(&mut u, path);
                if let Some(v) = version {
                    urls::add_query(&mut u, "version", &v.to_string());
                }
                Ok(http.get(u))
            })
            .await?;
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let want = header(SHA256_HEADER)
            .ok_or_else(|| ClientError::Decode("the download carries no SHA-256".into()))?;
        let read_version = header(VERSION_HEADER)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("create the directory for", dest, e))?;
        }
        let mut f = tokio::fs::File::create(dest)
            .await
            .map_err(|e| io("create", dest, e))?;
        let mut h = Sha256::new();
        let mut written = 0u64;
        let result: Result<(), ClientError> = async {
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| crate::client::transfer_error(&e))?
            {
                h.update(&chunk);
                f.write_all(&chunk)
                    .await
                    .map_err(|e| io("write", dest, e))?;
                written += chunk.len() as u64;
                if let Some(p) = progress {
                    p(written);
                }
            }
            f.flush().await.map_err(|e| io("write", dest, e))?;
            Ok(())
        }
        .await;
        let got = hex::encode(h.finalize());
        let result = result.and_then(|()| {
            if got == want {
                Ok(())
            } else {
                Err(ClientError::Io(format!(
                    "{path}: the bytes received have SHA-256 {got}, not {want}: the download was corrupted and is removed"
                )))
            }
        });
        if let Err(e) = result {
            drop(f);
            let _ = tokio::fs::remove_file(dest).await;
            return Err(e);
        }
        Ok((written, read_version))
    }

    /// `GET /api/v1/jobs/{id}/studies/{name}/files`: what a job's attach
    /// reads (the worker holding the job).
    pub async fn job_study_files(&self, job: i64, name: &str) -> Result<StudyListing, ClientError> {
        let id = job.to_string();
        self.call::<(), _>(
            Method::GET,
            &["jobs", &id, "studies", name, "files"],
            &[],
            None,
        )
        .await
    }

    /// `GET /api/v1/jobs/{id}/studies/{name}/objects/{sha}`: writes the
    /// object to `dest`, checking its SHA-256 (a mismatch removes it).
    pub async fn job_study_object(
        &self,
        job: i64,
        name: &str,
        sha: &str,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let id = job.to_string();
        let resp = self
            .execute(Timeout::Unlimited, |http, b| {
                Ok(http.get(urls::api(
                    b,
                    &["jobs", &id, "studies", name, "objects", sha],
                )))
            })
            .await?;
        save_checked(resp, sha, dest).await
    }

    /// `PUT /api/v1/jobs/{id}/attempts/{n}/studies/{name}/objects/{sha}`.
    pub async fn job_study_put_object(
        &self,
        at: &AttemptRef,
        name: &str,
        sha: &str,
        file: &Path,
    ) -> Result<ObjectView, ClientError> {
        let id = at.job_id.to_string();
        let n = at.attempt.to_string();
        let resp = self
            .put_file_token(
                |b| {
                    urls::api(
                        b,
                        &["jobs", &id, "attempts", &n, "studies", name, "objects", sha],
                    )
                },
                &at.token,
                file,
            )
            .await?;
        decode_json(resp).await
    }

    /// `POST /api/v1/jobs/{id}/attempts/{n}/studies/{name}/versions`.
    pub async fn job_study_commit(
        &self,
        at: &AttemptRef,
        name: &str,
        req: &CommitRequest,
    ) -> Result<VersionView, ClientError> {
        let id = at.job_id.to_string();
        let n = at.attempt.to_string();
        let body = serde_json::to_vec(req).map_err(|e| ClientError::Io(e.to_string()))?;
        let resp = self
            .execute(Timeout::Default, |http, b| {
                Ok(http
                    .post(urls::api(
                        b,
                        &["jobs", &id, "attempts", &n, "studies", name, "versions"],
                    ))
                    .header(CONTENT_TYPE, "application/json")
                    .header(LEASE_TOKEN_HEADER, at.token.as_str())
                    .body(body.clone()))
            })
            .await?;
        decode_json(resp).await
    }
}

/// Writes a response body to `dest` through a temporary file, checking
/// its SHA-256; the file appears only when it matches.
async fn save_checked(
    mut resp: reqwest::Response,
    sha: &str,
    dest: &Path,
) -> Result<u64, ClientError> {
    // A name of its own per download: several jobs may fetch one object
    // into a shared cache at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dest.with_extension(format!("part-{}-{n}", std::process::id()));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| io("create", &tmp, e))?;
    let mut h = Sha256::new();
    let mut n = 0u64;
    let result: Result<(), ClientError> = async {
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| crate::client::transfer_error(&e))?
        {
            h.update(&chunk);
            f.write_all(&chunk)
                .await
                .map_err(|e| io("write", &tmp, e))?;
            n += chunk.len() as u64;
        }
        f.flush().await.map_err(|e| io("write", &tmp, e))?;
        Ok(())
    }
    .await;
    drop(f);
    let got = hex::encode(h.finalize());
    let result = result.and_then(|()| {
        if got == sha {
            Ok(())
        } else {
            Err(ClientError::Io(format!(
                "object {sha} arrived with SHA-256 {got}: corrupted in transfer"
            )))
        }
    });
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, dest)
        .await
        .map_err(|e| io("move into place", dest, e))?;
    Ok(n)
}
