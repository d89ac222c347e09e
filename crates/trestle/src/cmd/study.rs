//! `trestle study ...`: research data sets. Create, list, show, browse
//! (`ls`), upload files or folders (hashed first, sent whole or in
//! resumable parts, one new version for the whole upload), download
//! (checked against each file's SHA-256), grant, revoke, remove files or
//! the study, and set a project's quota (admins). Long transfers show a
//! progress bar.

use super::client;
use crate::Conn;
use crate::output::{table, time, usage};
use anyhow::{Context, Result};
use clap::Subcommand;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trestle_client::{Client, Method, hash_file};
use trestle_core::api::study::{
    CommitRequest, CreateStudy, GrantRequest, GrantView, StudyView, VersionView,
};
use trestle_core::study::manifest::Change;
use trestle_core::study::quota::{human, parse as parse_quota};

/// `trestle study ...`.
#[derive(Subcommand, Debug)]
pub enum StudyCmd {
    /// Create a study (admins and researchers); you become its admin.
    Create {
        /// Its name.
        name: String,
        /// `personal` (My Studies), `organization` or `open` (Open Data).
        #[arg(long, default_value = "personal")]
        category: String,
        /// The project charged for its storage (default: yours).
        #[arg(long)]
        project: Option<String>,
        /// A line about it.
        #[arg(long)]
        description: Option<String>,
        /// Its quota (`10G`, `500M`; every version kept counts).
        #[arg(long)]
        quota: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Studies you may see: My Studies, Organization, Open Data.
    List {
        /// Only one category.
        #[arg(long)]
        category: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One study with its versions.
    Show {
        /// The study.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The files of a version (default: the current one).
    Ls {
        /// The study.
        name: String,
        /// Only under this directory.
        prefix: Option<String>,
        /// The version.
        #[arg(long)]
        version: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload files or folders as one new version.
    Upload {
        /// The study.
        name: String,
        /// Local files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The directory in the study to put them under.
        #[arg(long, default_value = "")]
        to: String,
        /// A line about the change.
        #[arg(long)]
        message: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download a version's files (all, or those under PATH).
    Download {
        /// The study.
        name: String,
        /// A file or directory in the study.
        path: Option<String>,
        /// The version (default: the current one).
        #[arg(long)]
        version: Option<u64>,
        /// Where to put them.
        #[arg(long, default_value = ".")]
        to: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Grant a user admin, read-write, read-only or write-only.
    Grant {
        /// The study.
        name: String,
        /// The user.
        user: String,
        /// `admin`, `read-write`, `read-only` or `write-only`.
        permission: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user's permission.
    Revoke {
        /// The study.
        name: String,
        /// The user.
        user: String,
    },
    /// Who holds which permission (the study's admins).
    Grants {
        /// The study.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove files (a new version), or with `--study` the whole study.
    Rm {
        /// The study.
        name: String,
        /// Files or directories to remove.
        paths: Vec<String>,
        /// Delete the study itself, with every version.
        #[arg(long)]
        study: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete versions replaced more than KEEP ago (`30d`) that no
    /// unfinished job reads (the study's admins).
    Prune {
        /// The study.
        name: String,
        /// The retention period.
        #[arg(long)]
        keep: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a project's quota for its studies (admins): `10G`, `none`.
    Quota {
        /// The project.
        project: String,
        /// The quota.
        quota: String,
    },
}

fn bar(total: u64, verb: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} {{msg}} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn study_rows(all: &[StudyView]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.category.title().to_string(),
                s.project.clone(),
                s.permission.map_or("-", |p| p.as_str()).to_string(),
                s.version.to_string(),
                human(s.stored_bytes),
                s.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "CATEGORY",
            "PROJECT",
            "PERMISSION",
            "VERSION",
            "STORED",
            "DESCRIPTION",
        ],
        &rows,
    )
}

fn join(to: &str, rel: &str) -> String {
    let to = to.trim_matches('/');
    if to.is_empty() {
        rel.to_string()
    } else {
        format!("{to}/{rel}")
    }
}

/// Every file to upload: (path in the study, local path, size).
fn gather(paths: &[PathBuf], to: &str) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            for (rel, abs, size) in super::upload::walk(p)? {
                out.push((join(to, &rel), abs, size));
            }
        } else {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push((join(to, &name), p.clone(), meta.len()));
        }
    }
    if out.is_empty() {
        return usage("nothing to upload");
    }
    Ok(out)
}

async fn upload(
    c: &Client,
    name: &str,
    paths: &[PathBuf],
    to: &str,
    message: Option<String>,
) -> Result<VersionView> {
    let base: StudyView = c
        .call::<(), _>(Method::GET, &["studies", name], &[], None)
        .await?;
    let files = gather(paths, to)?;
    let total: u64 = files.iter().map(|f| f.2).sum();
    let pb = bar(total, "uploading");
    pb.set_message(format!("{} files", files.len()));
    let results: Vec<Result<Change>> = futures::stream::iter(files)
        .map(|(rel, path, _)| {
            let pb = pb.clone();
            async move {
                let (sha, size) = hash_file(&path).await?;
                let last = std::sync::atomic::AtomicU64::new(0);
                let progress = move |sent: u64| {
                    let prev = last.swap(sent, std::sync::atomic::Ordering::Relaxed);
                    pb.inc(sent.saturating_sub(prev));
                };
                c.study_upload(name, &path, &sha, size, Some(&progress))
                    .await
                    .with_context(|| format!("uploading {}", path.display()))?;
                Ok(Change::Put {
                    path: rel,
                    size,
                    sha256: sha,
                })
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    pb.finish_and_clear();
    let changes = results.into_iter().collect::<Result<Vec<_>>>()?;
    let req = CommitRequest {
        base_version: Some(base.version),
        changes,
        message,
    };
    Ok(c.study_commit(name, &req).await?)
}

async fn download(
    c: &Client,
    name: &str,
    path: Option<&str>,
    version: Option<u64>,
    to: &Path,
) -> Result<(u64, u64, u64)> {
    let listing = c.study_files(name, version, path).await?;
    if listing.files.is_empty() {
        return usage(format!(
            "version {} of study `{name}` has no files{}",
            listing.version,
            path.map(|p| format!(" under `{p}`")).unwrap_or_default()
        ));
    }
    let total: u64 = listing.files.iter().map(|f| f.size).sum();
    let pb = bar(total, "downloading");
    pb.set_message(format!("{} files", listing.files.len()));
    let v = listing.version;
    let n = listing.files.len() as u64;
    let results: Vec<Result<()>> = futures::stream::iter(listing.files)
        .map(|f| {
            let pb = pb.clone();
            async move {
                let last = std::sync::atomic::AtomicU64::new(0);
                let progress = move |got: u64| {
                    let prev = last.swap(got, std::sync::atomic::Ordering::Relaxed);
                    pb.inc(got.saturating_sub(prev));
                };
                let dest = to.join(&f.path);
                c.study_download(name, &f.path, Some(v), &dest, Some(&progress))
                    .await
                    .with_context(|| format!("downloading {}", f.path))?;
                Ok(())
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    pb.finish_and_clear();
    for r in results {
        r?;
    }
    Ok((v, n, total))
}

fn grant_rows(gs: &[GrantView]) -> String {
    let rows: Vec<Vec<String>> = gs
        .iter()
        .map(|g| {
            vec![
                g.user.clone(),
                g.permission.as_str().to_string(),
                g.granted_by.clone().unwrap_or_default(),
                time(g.granted_at),
            ]
        })
        .collect();
    table(&["USER", "PERMISSION", "GRANTED BY", "AT"], &rows)
}

/// Runs a study command.
pub async fn run(cmd: StudyCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let ok = Ok(ExitCode::SUCCESS);
    match cmd {
        StudyCmd::Create {
            name,
            category,
            project,
            description,
            quota,
            json,
        } => {
            let quota_bytes = match quota {
                Some(q) => parse_quota("--quota", &q)?,
                None => None,
            };
            let req = CreateStudy {
                name,
                category,
                project,
                description,
                quota_bytes,
            };
            let s: StudyView = c.call(Method::POST, &["studies"], &[], Some(&req)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "created study `{}` ({}, project {})",
                    s.name,
                    s.category.title(),
                    s.project
                );
            }
        }
        StudyCmd::List { category, json } => {
            let q: Vec<(&str, &str)> = category
                .as_deref()
                .map(|c| vec![("category", c)])
                .unwrap_or_default();
            let all: Vec<StudyView> = c.call::<(), _>(Method::GET, &["studies"], &q, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", study_rows(&all));
            }
        }
        StudyCmd::Show { name, json } => {
            let s: StudyView = c
                .call::<(), _>(Method::GET, &["studies", &name], &[], None)
                .await?;
            let versions: Vec<VersionView> = if s.files.is_some() {
                c.call::<(), _>(Method::GET, &["studies", &name, "versions"], &[], None)
                    .await?
            } else {
                Vec::new()
            };
            if json {
                let v = serde_json::json!({ "study": s, "versions": versions });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", study_rows(std::slice::from_ref(&s)));
                if let Some(q) = s.quota_bytes {
                    println!("quota: {} of {}", human(s.stored_bytes), human(q));
                }
                let rows: Vec<Vec<String>> = versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version.to_string(),
                            v.files.to_string(),
                            human(v.bytes),
                            v.created_by.clone().unwrap_or_default(),
                            v.job_id.map(|j| j.to_string()).unwrap_or_default(),
                            time(v.created_at),
                            v.message.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                if !rows.is_empty() {
                    println!();
                    print!(
                        "{}",
                        table(
                            &["VERSION", "FILES", "BYTES", "BY", "JOB", "AT", "MESSAGE"],
                            &rows
                        )
                    );
                }
            }
        }
        StudyCmd::Ls {
            name,
            prefix,
            version,
            json,
        } => {
            let l = c.study_files(&name, version, prefix.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&l)?);
            } else {
                let rows: Vec<Vec<String>> = l
                    .files
                    .iter()
                    .map(|f| {
                        vec![
                            f.size.to_string(),
                            f.sha256[..12].to_string(),
                            f.path.clone(),
                        ]
                    })
                    .collect();
                println!("version {}", l.version);
                print!("{}", table(&["SIZE", "SHA256", "PATH"], &rows));
            }
        }
        StudyCmd::Upload {
            name,
            paths,
            to,
            message,
            json,
        } => {
            let v = upload(&c, &name, &paths, &to, message).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "study `{name}` is at version {} ({} files, {})",
                    v.version,
                    v.files,
                    human(v.bytes)
                );
            }
        }
        StudyCmd::Download {
            name,
            path,
            version,
            to,
            json,
        } => {
            let (v, n, bytes) = download(&c, &name, path.as_deref(), version, &to).await?;
            if json {
                let out = serde_json::json!({
                    "study": name, "version": v, "files": n, "bytes": bytes,
                    "to": to.display().to_string(),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "downloaded {n} files ({}) of version {v} of `{name}` to {}, checksums verified",
                    human(bytes),
                    to.display()
                );
            }
        }
        StudyCmd::Grant {
            name,
            user,
            permission,
            json,
        } => {
            let g: GrantView = c
                .call(
                    Method::PUT,
                    &["studies", &name, "grants", &user],
                    &[],
                    Some(&GrantRequest { permission }),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&g)?);
            } else {
                println!("{} has {} on `{name}`", g.user, g.permission.as_str());
            }
        }
        StudyCmd::Revoke { name, user } => {
            c.call_empty(Method::DELETE, &["studies", &name, "grants", &user])
                .await?;
            println!("revoked {user}'s permission on `{name}`");
        }
        StudyCmd::Grants { name, json } => {
            let gs: Vec<GrantView> = c
                .call::<(), _>(Method::GET, &["studies", &name, "grants"], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&gs)?);
            } else {
                print!("{}", grant_rows(&gs));
            }
        }
        StudyCmd::Rm {
            name,
            paths,
            study,
            json,
        } => {
            if study {
                if !paths.is_empty() {
                    return usage("`--study` deletes the whole study: name no paths with it");
                }
                c.call_empty(Method::DELETE, &["studies", &name]).await?;
                println!("deleted study `{name}`");
                return ok;
            }
            if paths.is_empty() {
                return usage("name the files to remove, or `--study` to delete the study");
            }
            let s: StudyView = c
                .call::<(), _>(Method::GET, &["studies", &name], &[], None)
                .await?;
            let req = CommitRequest {
                base_version: Some(s.version),
                changes: paths
                    .into_iter()
                    .map(|path| Change::Delete { path })
                    .collect(),
                message: None,
            };
            let v = c.study_commit(&name, &req).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "study `{name}` is at version {} ({} files)",
                    v.version, v.files
                );
            }
        }
        StudyCmd::Prune { name, keep, json } => {
            let v: trestle_core::api::study::PruneView = c
                .call(
                    Method::POST,
                    &["studies", &name, "prune"],
                    &[],
                    Some(&trestle_core::api::study::PruneRequest { keep }),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "deleted versions {:?} of `{name}` and {} unreferenced files; it stores {}",
                    v.versions,
                    v.objects,
                    human(v.stored_bytes)
                );
            }
        }
        StudyCmd::Quota { project, quota } => {
            let v: serde_json::Value = c
                .call(
                    Method::PUT,
                    &["study-quotas", &project],
                    &[],
                    Some(&serde_json::json!({ "quota": quota })),
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    ok
}
