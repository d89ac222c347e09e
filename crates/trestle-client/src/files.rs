//! File endpoints: listings, streaming downloads and streaming uploads.
//! Files are never held in memory whole.

use crate::client::{Client, Timeout, decode_json, transfer_error};
use crate::error::ClientError;
use crate::urls;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Body, Response};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use trestle_core::api::{FileList, LEASE_TOKEN_HEADER};
use url::Url;

/// Size of the reads that feed an upload body.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Called with the number of bytes of the current file sent so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// A download in progress: the body arrives chunk by chunk.
#[derive(Debug)]
pub struct Download {
    pub(crate) response: Response,
}

impl Download {
    /// The size the server announced, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// The next chunk of the body, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        self.response.chunk().await.map_err(|e| transfer_error(&e))
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, ClientError>> + Send {
        futures::stream::unfold(self, |mut d| async move {
            match d.chunk().await {
                Ok(Some(b)) => Some((Ok(b), d)),
                Ok(None) => None,
                Err(e) => Some((Err(e), d)),
            }
        })
    }

    /// Writes the whole body to `dest` (created or truncated, parent
    /// directories created), returning the number of bytes written. A
    /// partly written file is removed when the transfer fails.
    pub async fn save(mut self, dest: &Path) -> Result<u64, ClientError> {
        let io_err = |what: &str, e: std::io::Error| {
            ClientError::Io(format!("cannot {what} {}: {e}", dest.display()))
        };
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_err("create the directory for", e))?;
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| io_err("create", e))?;
        let result = async {
            let mut written = 0u64;
            while let Some(chunk) = self.chunk().await? {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_err("write", e))?;
                written += chunk.len() as u64;
            }
            file.flush().await.map_err(|e| io_err("write", e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }
}

impl Client {
    /// `GET /api/v1/jobs/{id}/outputs`: output files of `attempt` (default:
    /// the latest attempt with outputs).
    pub async fn list_outputs(
        &self,
        job_id: i64,
        attempt: Option<u32>,
    ) -> Result<FileList, ClientError> {
        let id = job_id.to_string();
        let resp = self
            .execute(Timeout::Default, |http, base| {
                let mut u = urls::api(base, &["jobs", &id, "outputs"]);
                if let Some(a) = attempt {
                    urls::add_query(&mut u, "attempt", &a.to_string());
                }
                Ok(http.get(u))
            })
            .await?;
        decode_json(resp).await
    }

    /// `GET /api/v1/jobs/{id}/outputs/{path}`: starts downloading one output
    /// file.
    pub async fn open_output(
        &self,
        job_id: i64,
        attempt: Option<u32>,
        path: &str,
    ) -> Result<Download, ClientError> {
        let id = job_id.to_string();
        self.open(|base| {
            let mut u = urls::api(base, &["jobs", &id, "outputs"]);
            urls::push_file_path(&mut u, path);
            if let Some(a) = attempt {
                urls::add_query(&mut u, "attempt", &a.to_string());
            }
            u
        })
        .await
    }

    /// Downloads one output file to `dest`; returns its size.
    pub async fn download_output(
        &self,
        job_id: i64,
        attempt: Option<u32>,
        path: &str,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        self.open_output(job_id, attempt, path)
            .await?
            .save(dest)
            .await
    }

    /// `GET /api/v1/jobs/{id}/inputs`: the files of the job's upload.
    pub async fn list_inputs(&self, job_id: i64) -> Result<FileList, ClientError> {
        let id = job_id.to_string();
        let resp = self
            .execute(Timeout::Default, |http, base| {
                Ok(http.get(urls::api(base, &["jobs", &id, "inputs"])))
            })
            .await?;
        decode_json(resp).await
    }

    /// `GET /api/v1/jobs/{id}/inputs/{path}`: starts downloading one input.
    pub async fn open_input(&self, job_id: i64, path: &str) -> Result<Download, ClientError> {
        let id = job_id.to_string();
        self.open(|base| {
            let mut u = urls::api(base, &["jobs", &id, "inputs"]);
            urls::push_file_path(&mut u, path);
            u
        })
        .await
    }

    /// Downloads one input file to `dest`; returns its size.
    pub async fn download_input(
        &self,
        job_id: i64,
        path: &str,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        self.open_input(job_id, path).await?.save(dest).await
    }

    /// `GET /api/v1/uploads/{id}/files`: the files of an upload.
    pub async fn list_upload_files(&self, upload_id: &str) -> Result<FileList, ClientError> {
        let resp = self
            .execute(Timeout::Default, |http, base| {
                Ok(http.get(urls::api(base, &["uploads", upload_id, "files"])))
            })
            .await?;
        decode_json(resp).await
    }

    /// `PUT /api/v1/uploads/{id}/files/{rel_path}`: streams the local `file`
    /// into an upload. `progress`, when given, is called with the bytes of
    /// this file sent so far as the transfer goes on.
    pub async fn upload_file(
        &self,
        upload_id: &str,
        rel_path: &str,
        file: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<(), ClientError> {
        self.put_file(
            |base| {
                let mut u = urls::api(base, &["uploads", upload_id, "files"]);
                urls::push_file_path(&mut u, rel_path);
                u
            },
            None,
            file,
            progress,
        )
        .await
    }

    /// `PUT /api/v1/jobs/{id}/attempts/{n}/outputs/{rel_path}`: streams one
    /// output file of an attempt, proving the lease with `lease_token`.
    /// A stale lease is answered with status 409.
    pub async fn upload_output(
        &self,
        job_id: i64,
        attempt: u32,
        lease_token: &str,
        rel_path: &str,
        file: &Path,
    ) -> Result<(), ClientError> {
        let id = job_id.to_string();
        let attempt = attempt.to_string();
        self.put_file(
            |base| {
                let mut u = urls::api(base, &["jobs", &id, "attempts", &attempt, "outputs"]);
                urls::push_file_path(&mut u, rel_path);
                u
            },
            Some(lease_token),
            file,
            None,
        )
        .await
    }

    /// GETs `url_of(base)` and hands back the body unread.
    async fn open(&self, url_of: impl Fn(&Url) -> Url) -> Result<Download, ClientError> {
        let response = self
            .execute(Timeout::Unlimited, |http, base| Ok(http.get(url_of(base))))
            .await?;
        Ok(Download { response })
    }

    /// PUTs a local file as a streamed body.
    pub(crate) async fn put_file(
        &self,
        url_of: impl Fn(&Url) -> Url,
        lease_token: Option<&str>,
        file: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<(), ClientError> {
        self.put_file_with(url_of, lease_token, file, progress)
            .await
            .map(|_| ())
    }

    /// [`Client::put_file`] without a lease token, handing back the answer.
    pub(crate) async fn put_file_response(
        &self,
        url_of: impl Fn(&Url) -> Url,
        file: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<Response, ClientError> {
        self.put_file_with(url_of, None, file, progress).await
    }

    /// [`Client::put_file`] with a lease token, handing back the answer.
    pub(crate) async fn put_file_token(
        &self,
        url_of: impl Fn(&Url) -> Url,
        lease_token: &str,
        file: &Path,
    ) -> Result<Response, ClientError> {
        self.put_file_with(url_of, Some(lease_token), file, None)
            .await
    }

    async fn put_file_with(
        &self,
        url_of: impl Fn(&Url) -> Url,
        lease_token: Option<&str>,
        file: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<Response, ClientError> {
        let (sent_tx, mut sent_rx) = watch::channel(0u64);
        let request = self.execute(Timeout::Unlimited, |http, base| {
            // Opened per try: a failed-over request needs a fresh stream.
            let (body, size) = file_body(file, sent_tx.clone())?;
            let mut req = http
                .put(url_of(base))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(body);
            if let Some(token) = lease_token {
                req = req.header(LEASE_TOKEN_HEADER, token);
            }
            Ok(req)
        });
        let Some(progress) = progress else {
            return request.await;
        };
        tokio::pin!(request);
        loop {
            tokio::select! {
                result = &mut request => {
                    if result.is_ok() {
                        progress(*sent_rx.borrow());
                    }
                    return result;
                }
                Ok(()) = sent_rx.changed() => progress(*sent_rx.borrow_and_update()),
            }
        }
    }
}

/// A streamed request body reading `path`, and its size. Bytes sent so far
/// are published on `sent`.
fn file_body(path: &Path, sent: watch::Sender<u64>) -> Result<(Body, u64), ClientError> {
    let io_err =
        |e: std::io::Error| ClientError::Io(format!("cannot read {}: {e}", path.display()));
    // Opening is a quick system call; the reads happen on tokio's pool.
    let std_file = std::fs::File::open(path).map_err(io_err)?;
    let meta = std_file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(ClientError::Io(format!(
            "cannot upload {}: not a regular file",
            path.display()
        )));
    }
    let size = meta.len();
    let file = tokio::fs::File::from_std(std_file);
    sent.send_replace(0);
    let stream = futures::stream::unfold((file, 0u64, size), move |(mut file, done, size)| {
        let sent = sent.clone();
        async move {
            if done >= size {
                return None;
            }
            let want =
                usize::try_from(size - done).map_or(UPLOAD_CHUNK, |left| left.min(UPLOAD_CHUNK));
            let mut buf = BytesMut::zeroed(want);
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while being uploaded",
                    )),
                    (file, size, size),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    let done = done + n as u64;
                    sent.send_replace(done);
                    Some((Ok(buf.freeze()), (file, done, size)))
                }
                Err(e) => Some((Err(e), (file, size, size))),
            }
        }
    });
    Ok((Body::wrap_stream(stream), size))
}
