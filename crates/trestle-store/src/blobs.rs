//! Object storage for job inputs and outputs, through the `object_store`
//! crate: a local directory by default, any S3-compatible store by URL.
//! Every key is built from a trusted prefix and a normalised relative path.

use crate::{Result, StoreError};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::sync::Arc;
use trestle_core::api::FileEntry;
use trestle_core::paths::normalize_relative;

/// Objects smaller than this are written in one request; larger ones are
/// streamed as a multipart upload, so memory stays bounded.
const SINGLE_PUT_LIMIT: usize = 8 * 1024 * 1024;

/// An object read but not yet visible ([`Blobs::stage_stream`]): it
/// appears at once, whole, on [`Staged::commit`] (the store's atomic put,
/// or the completion of its multipart upload), and never if it is
/// aborted or dropped.
pub struct Staged {
    store: Arc<dyn ObjectStore>,
    path: ObjPath,
    size: u64,
    body: StagedBody,
}

enum StagedBody {
    Small(PutPayload),
    Parts(Box<WriteMultipart>),
}

impl Staged {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the object visible; returns its size.
    pub async fn commit(self) -> Result<u64> {
        match self.body {
            StagedBody::Small(payload) => {
                self.store.put(&self.path, payload).await.map_err(obj_err)?;
            }
            StagedBody::Parts(w) => {
                w.finish().await.map_err(obj_err)?;
            }
        }
        Ok(self.size)
    }

    /// Drops the object (a multipart upload is aborted).
    pub async fn abort(self) {
        if let StagedBody::Parts(w) = self.body {
            let _ = w.abort().await;
        }
    }
}

/// Object storage, confined to Trestle's key layout.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Where the objects live (for logs and errors).
    pub location: String,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("location", &self.location)
            .finish()
    }
}

fn obj_err(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { path, .. } => StoreError::NotFound(path),
        e => StoreError::Objects(e.to_string()),
    }
}

/// The prefix of an upload's files.
pub fn upload_prefix(upload_id: &str) -> String {
    format!("uploads/{upload_id}")
}

/// The prefix of an attempt's outputs.
pub fn output_prefix(job_id: i64, attempt: u32) -> String {
    format!("jobs/{job_id}/attempts/{attempt}/outputs")
}

impl Blobs {
    /// Opens storage by URL: `s3://bucket[/prefix]` (credentials, region and
    /// endpoint from the usual `AWS_*` environment variables), `file:///dir`,
    /// or a plain directory path (created when missing).
    pub fn open(url: &str) -> Result<Blobs> {
        Blobs::open_with(url, &[])
    }

    /// [`Blobs::open`] with S3 options that win over the environment's,
    /// named by `object_store`'s keys (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, ...).
    pub fn open_with(url: &str, options: &[(String, String)]) -> Result<Blobs> {
        let store: Arc<dyn ObjectStore> = if url.starts_with("s3://") {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .with_allow_http(true);
            for (k, v) in options {
                let key: object_store::aws::AmazonS3ConfigKey = k.parse().map_err(|_| {
                    StoreError::Config(format!("`{k}` is not an S3 option (examples: aws_endpoint, aws_region, aws_access_key_id)"))
                })?;
                b = b.with_config(key, v);
            }
            let s3 = b.build().map_err(obj_err)?;
            let prefix = url
                .trim_start_matches("s3://")
                .split_once('/')
                .map(|(_, p)| p.trim_matches('/').to_string())
                .unwrap_or_default();
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            }
        } else {
            if !options.is_empty() {
                return Err(StoreError::Config(
                    "S3 options are for s3:// object storage only".into(),
                ));
            }
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Objects(format!("cannot create `{dir}`: {e}")))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(obj_err)?
                    .with_automatic_cleanup(true),
            )
        };
        Ok(Blobs {
            store,
            location: url.to_string(),
        })
    }

    fn key(prefix: &str, rel: &str) -> Result<ObjPath> {
        let rel = normalize_relative("path", rel).map_err(|e| StoreError::NotFound(e.message))?;
        ObjPath::parse(format!("{prefix}/{rel}")).map_err(|e| StoreError::Objects(e.to_string()))
    }

    /// Writes an object from a stream of chunks; returns its size.
    pub async fn put_stream<S, E>(&self, prefix: &str, rel: &str, body: S) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        self.stage_stream(prefix, rel, body).await?.commit().await
    }

    /// Reads a stream of chunks into an object that is not visible until
    /// [`Staged::commit`]: a small one stays in memory, a large one is
    /// uploaded in parts (all but the last sent, and waited for, here).
    pub async fn stage_stream<S, E>(&self, prefix: &str, rel: &str, body: S) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let path = Self::key(prefix, rel)?;
        let mut body = body;
        let mut buf: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        let read_err = |e: E| StoreError::Objects(format!("reading the upload failed: {e}"));
        while size < SINGLE_PUT_LIMIT {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(read_err)?;
                    size += chunk.len();
                    buf.push(chunk);
                }
                None => {
                    return Ok(Staged {
                        store: self.store.clone(),
                        path,
                        size: size as u64,
                        body: StagedBody::Small(buf.into_iter().collect()),
                    });
                }
            }
        }
        let upload = self.store.put_multipart(&path).await.map_err(obj_err)?;
        let mut w = WriteMultipart::new(upload);
        for b in buf {
            w.put(b);
        }
        loop {
            let next = body.next().await;
            let chunk = match next {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    let _ = w.abort().await;
                    return Err(read_err(e));
                }
                None => break,
            };
            if let Err(e) = w.wait_for_capacity(4).await {
                let _ = w.abort().await;
                return Err(obj_err(e));
            }
            size += chunk.len();
            w.put(chunk);
        }
        // Every full part is sent before the commit; it sends the rest.
        if let Err(e) = w.wait_for_capacity(0).await {
            let _ = w.abort().await;
            return Err(obj_err(e));
        }
        Ok(Staged {
            store: self.store.clone(),
            path,
            size: size as u64,
            body: StagedBody::Parts(Box::new(w)),
        })
    }

    /// Writes a small object from memory.
    pub async fn put_bytes(&self, prefix: &str, rel: &str, data: Bytes) -> Result<()> {
        let path = Self::key(prefix, rel)?;
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(obj_err)?;
        Ok(())
    }

    /// Deletes an object (one that does not exist is not an error).
    pub async fn delete(&self, prefix: &str, rel: &str) -> Result<()> {
        let path = Self::key(prefix, rel)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(obj_err(e)),
        }
    }

    /// Reads an object as a stream, with its size.
    pub async fn get_stream(
        &self,
        prefix: &str,
        rel: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let path = Self::key(prefix, rel)?;
        let got = self.store.get(&path).await.map_err(obj_err)?;
        let size = got.meta.size;
        Ok((size, got.into_stream().map_err(obj_err).boxed()))
    }

    /// The size of an object, `None` when it does not exist.
    pub async fn size_of(&self, prefix: &str, rel: &str) -> Result<Option<u64>> {
        let path = Self::key(prefix, rel)?;
        match self.store.head(&path).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(obj_err(e)),
        }
    }

    /// Deletes every object under `prefix`; returns how many.
    pub async fn delete_all(&self, prefix: &str) -> Result<usize> {
        let files = self.list(prefix).await?;
        for f in &files {
            self.delete(prefix, &f.path).await?;
        }
        Ok(files.len())
    }

    /// Lists every object under `prefix`, with paths relative to it, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<FileEntry>> {
        let p = ObjPath::parse(prefix).map_err(|e| StoreError::Objects(e.to_string()))?;
        let metas: Vec<_> = self
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(obj_err)?;
        let base = format!("{}/", p.as_ref());
        let mut files: Vec<FileEntry> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.as_ref().to_string();
                full.strip_prefix(&base).map(|rel| FileEntry {
                    path: rel.to_string(),
                    size: m.size,
                })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_roundtrip_and_confinement() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().to_str().unwrap()).unwrap();
        let body = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(Bytes::from("hello ")),
            Ok(Bytes::from("world")),
        ]);
        let n = blobs
            .put_stream("uploads/u1", "a/b.txt", body)
            .await
            .unwrap();
        assert_eq!(n, 11);
        blobs
            .put_bytes("uploads/u1", "c.txt", Bytes::from("x"))
            .await
            .unwrap();
        let files = blobs.list("uploads/u1").await.unwrap();
        assert_eq!(
            files,
            vec![
                FileEntry {
                    path: "a/b.txt".into(),
                    size: 11
                },
                FileEntry {
                    path: "c.txt".into(),
                    size: 1
                }
            ]
        );
        let (size, s) = blobs.get_stream("uploads/u1", "a/b.txt").await.unwrap();
        let data: Vec<Bytes> = s.try_collect().await.unwrap();
        assert_eq!(size, 11);
        assert_eq!(data.concat(), b"hello world");
        assert!(blobs.list("uploads/none").await.unwrap().is_empty());
        assert!(
            blobs
                .get_stream("uploads/u1", "../../etc/passwd")
                .await
                .is_err()
        );
        assert!(matches!(
            blobs.get_stream("uploads/u1", "missing").await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn large_objects_stream_as_multipart() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().to_str().unwrap()).unwrap();
        let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
        let body =
            futures::stream::iter((0..10).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        let n = blobs.put_stream("p", "big.bin", body).await.unwrap();
        assert_eq!(n, 10 * 1024 * 1024);
        assert_eq!(blobs.list("p").await.unwrap()[0].size, 10 * 1024 * 1024);
    }

    #[tokio::test]
    async fn staged_objects_appear_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().to_str().unwrap()).unwrap();
        for (name, mib) in [("small.bin", 1u64), ("big.bin", 10)] {
            let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
            let body = futures::stream::iter(
                (0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let staged = blobs.stage_stream("p", name, body).await.unwrap();
            assert_eq!(staged.size(), mib * 1024 * 1024);
            assert!(
                blobs
                    .list("p")
                    .await
                    .unwrap()
                    .iter()
                    .all(|f| f.path != name),
                "{name} is not visible before its commit"
            );
            assert_eq!(staged.commit().await.unwrap(), mib * 1024 * 1024);
            let files = blobs.list("p").await.unwrap();
            let f = files.iter().find(|f| f.path == name).expect("committed");
            assert_eq!(f.size, mib * 1024 * 1024);
        }
        for (name, mib) in [("gone-small.bin", 1u64), ("gone-big.bin", 10)] {
            let chunk = Bytes::from(vec![1u8; 1024 * 1024]);
            let body = futures::stream::iter(
                (0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            blobs
                .stage_stream("p", name, body)
                .await
                .unwrap()
                .abort()
                .await;
        }
        let names: Vec<String> = blobs
            .list("p")
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(
            names,
            vec!["big.bin", "small.bin"],
            "aborted objects never appear"
        );
    }
}
