//! A workspace's home as a tar archive: written when it stops, unpacked
//! when it starts again (possibly on another worker). Symbolic links are
//! kept as links, never followed; the session's own directory
//! ([`RUN_DIR`], the app's socket) is left out; unpacking never writes
//! outside the home. Under per-user execution both run in a thread of
//! their own whose file-system identity is the task's user (`setfsuid`),
//! so the worker reads and writes only what that user could.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The session's directory inside the home (the app's socket); not saved.
pub const RUN_DIR: &str = ".trestle-ws";

/// Runs `f` in a thread of its own acting on files as `as_user`.
async fn in_thread<T: Send + 'static>(
    as_user: Option<(u32, u32)>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("trestle-home".into())
        .spawn(move || {
            if let Some((uid, gid)) = as_user {
                // SAFETY: setfsgid/setfsuid change only this thread's
                // file-system identity; the thread ends with `f`.
                unsafe {
                    libc::setfsgid(gid);
                    libc::setfsuid(uid);
                }
            }
            let _ = tx.send(f());
        })?;
    rx.await
        .map_err(|_| io::Error::other("the home thread ended early"))?
}

/// Archives `home` into `dest`; fails once it holds more than `limit`
/// bytes of file data. The archive's size.
pub async fn save(
    home: PathBuf,
    dest: PathBuf,
    limit: u64,
    as_user: Option<(u32, u32)>,
) -> io::Result<u64> {
    // The archive is written by the worker, outside the home.
    let out = fs::File::create(&dest)?;
    in_thread(as_user, move || {
        let mut b = tar::Builder::new(io::BufWriter::new(out));
        b.follow_symlinks(false);
        let mut total = 0u64;
        add_dir(&mut b, &home, Path::new(""), &mut total, limit)?;
        b.into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(())
    })
    .await?;
    Ok(fs::metadata(&dest)?.len())
}

fn add_dir<W: io::Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    total: &mut u64,
    limit: u64,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if rel.as_os_str().is_empty() && name == RUN_DIR {
            continue;
        }
        let r = rel.join(&name);
        let meta = fs::symlink_metadata(e.path())?;
        if meta.is_dir() {
            b.append_dir(&r, e.path())?;
            add_dir(b, root, &r, total, limit)?;
        } else if meta.is_file() || meta.file_type().is_symlink() {
            *total = total.saturating_add(meta.len());
            if *total > limit {
                return Err(io::Error::other(format!(
                    "the home holds more than its limit of {} MiB",
                    limit / (1024 * 1024)
                )));
            }
            b.append_path_with_name(e.path(), &r)?;
        }
        // Sockets, pipes and devices are not saved.
    }
    Ok(())
}

/// Unpacks the archive `src` into `home` (which exists).
pub async fn restore(src: PathBuf, home: PathBuf, as_user: Option<(u32, u32)>) -> io::Result<()> {
    let file = fs::File::open(&src)?;
    in_thread(as_user, move || {
        let mut a = tar::Archive::new(io::BufReader::new(file));
        a.set_preserve_permissions(true);
        a.set_overwrite(true);
        // `unpack` refuses entries that would land outside `home`.
        a.unpack(&home)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_home_survives_save_and_restore() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        fs::create_dir_all(home.join("notebooks/deep")).unwrap();
        fs::write(home.join("notebooks/a.ipynb"), b"{}").unwrap();
        fs::write(home.join("notebooks/deep/b.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", home.join("link")).unwrap();
        fs::create_dir_all(home.join(RUN_DIR)).unwrap();
        fs::write(home.join(RUN_DIR).join("app.sock"), b"x").unwrap();
        let tar = d.path().join("home.tar");
        save(home.clone(), tar.clone(), 1 << 20, None)
            .await
            .unwrap();
        let back = d.path().join("back");
        fs::create_dir_all(&back).unwrap();
        restore(tar, back.clone(), None).await.unwrap();
        assert_eq!(
            fs::read(back.join("notebooks/deep/b.txt")).unwrap(),
            b"hello"
        );
        assert_eq!(
            fs::read_link(back.join("link")).unwrap(),
            Path::new("/etc/passwd"),
            "a link, not its target"
        );
        assert!(
            !back.join(RUN_DIR).exists(),
            "the session's directory is not saved"
        );
    }

    #[tokio::test]
    async fn a_home_over_its_limit_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join("big"), vec![0u8; 4096]).unwrap();
        let e = save(home, d.path().join("h.tar"), 1000, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }
}
