//! Uploading an input folder (with a progress bar), shared by `submit DIR`
//! and pipelines.

use crate::output::usage;
use anyhow::{Context, Result};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use trestle_client::Client;

/// Every regular file under `dir`, as (relative path, absolute path, size).
pub(crate) fn walk(dir: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
        for e in entries {
            let e = e?;
            let ty = e.file_type()?;
            let p = e.path();
            if ty.is_dir() {
                stack.push(p);
            } else if ty.is_file() {
                let rel = p
                    .strip_prefix(dir)
                    .context("path outside the folder")?
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, p.clone(), e.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Uploads a folder (with a progress bar) and returns the upload id.
pub async fn upload_folder(c: &Client, dir: &Path) -> Result<String> {
    upload_with(c, Some(dir), None).await
}

/// Uploads a folder (`--input DIR`), a program named by the command
/// (`./simulate.sh`, at its relative path), or both, as one upload.
pub async fn upload_with(c: &Client, dir: Option<&Path>, program: Option<&str>) -> Result<String> {
    let mut files = Vec::new();
    if let Some(dir) = dir {
        if !dir.is_dir() {
            return usage(format!("{} is not a folder", dir.display()));
        }
        files = walk(dir)?;
        if files.is_empty() && program.is_none() {
            return usage(format!("{} has no files to upload", dir.display()));
        }
    }
    if let Some(rel) = program
        && !files.iter().any(|f| f.0 == rel)
    {
        let path = PathBuf::from(rel);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("cannot read {rel}"))?
            .len();
        files.push((rel.to_string(), path, size));
    }
    upload_files(c, files).await
}

/// Uploads (relative path, local path, size) entries with a progress bar.
async fn upload_files(c: &Client, files: Vec<(String, PathBuf, u64)>) -> Result<String> {
    let total: u64 = files.iter().map(|f| f.2).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "uploading {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("{} files", files.len()));
    let upload = c.create_upload().await?.id;
    let results: Vec<Result<()>> = futures::stream::iter(files)
        .map(|(rel, path, _size)| {
            let bar = bar.clone();
            let upload = upload.clone();
            async move {
                let last = std::sync::atomic::AtomicU64::new(0);
                let progress = move |sent: u64| {
                    let prev = last.swap(sent, std::sync::atomic::Ordering::Relaxed);
                    bar.inc(sent.saturating_sub(prev));
                };
                c.upload_file(&upload, &rel, &path, Some(&progress))
                    .await
                    .with_context(|| format!("uploading {rel}"))
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    bar.finish_and_clear();
    for r in results {
        r?;
    }
    Ok(upload)
}
