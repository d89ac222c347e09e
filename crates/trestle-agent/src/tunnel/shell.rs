//! A shell stream: a command (or a login shell) in a PTY, spoken in
//! [`Frame`]s: data both ways, resizes and signals from the client, the
//! exit code last.

use super::SessionTarget;
use super::stream::answer;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_yamux::StreamHandle;
use trestle_core::api::tunnel::{Frame, FrameDecoder, Signal, StreamAnswer, UNAVAILABLE};

/// After the shell exits, output still in the PTY is sent for at most
/// this long of silence.
const DRAIN_QUIET: Duration = Duration::from_millis(200);
/// After the client goes away, the shell gets SIGHUP, then SIGKILL after
/// this long.
const HANGUP_GRACE: Duration = Duration::from_secs(3);

/// The program and arguments: `command`, or the login shell (`SHELL` from
/// the target's environment, else `/bin/bash`, else `/bin/sh`) with `-l`.
fn program(target: &SessionTarget, command: &[String]) -> (String, Vec<String>) {
    if let Some((first, rest)) = command.split_first() {
        return (first.clone(), rest.to_vec());
    }
    let shell = target
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "SHELL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| {
            if Path::new("/bin/bash").exists() {
                "/bin/bash".into()
            } else {
                "/bin/sh".into()
            }
        });
    (shell, vec!["-l".into()])
}

/// The shell's environment: the worker's harmless variables (never its
/// credentials), `HOME` (the workspace's home), `TERM`, `SHELL`, then the
/// target's own.
fn environment(target: &SessionTarget, shell: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = crate::isolation::KEPT_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .filter(|(k, _)| k != "TERM")
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push((
            "PATH".into(),
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".into(),
        ));
    }
    env.push(("HOME".into(), target.cwd.display().to_string()));
    env.push(("TERM".into(), "xterm-256color".into()));
    env.push(("SHELL".into(), shell.to_string()));
    env.extend(target.env.iter().cloned());
    env
}

fn spawn(
    target: &SessionTarget,
    cols: u16,
    rows: u16,
    command: &[String],
) -> Result<(pty_process::Pty, tokio::process::Child), String> {
    let (pty, pts) = pty_process::open().map_err(|e| format!("cannot open a PTY: {e}"))?;
    pty.resize(pty_process::Size::new(rows.max(1), cols.max(1)))
        .map_err(|e| format!("cannot size the PTY: {e}"))?;
    let (prog, args) = program(target, command);
    let login = command.is_empty();
    let mut cmd = pty_process::Command::new(&prog)
        .args(&args)
        .env_clear()
        .envs(environment(target, if login { &prog } else { "/bin/sh" }))
        .current_dir(&target.cwd)
        .kill_on_drop(true);
    if let Some((uid, gid)) = target.run_as {
        // The terminal belongs to the account, as sshd's do, so that
        // programs reopening it by name (tmux, script) can.
        // SAFETY: fchown on a descriptor this function owns.
        if unsafe { libc::fchown(pts.as_raw_fd(), uid, gid) } != 0 {
            return Err(format!(
                "cannot give the PTY to uid {uid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // std drops the supplementary groups when root changes uid.
        cmd = cmd.gid(gid).uid(uid);
    }
    let child = cmd
        .spawn(pts)
        .map_err(|e| format!("cannot start `{prog}`: {e}"))?;
    Ok((pty, child))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn os_signal(s: Signal) -> libc::c_int {
    match s {
        Signal::Int => libc::SIGINT,
        Signal::Term => libc::SIGTERM,
        Signal::Hup => libc::SIGHUP,
        Signal::Quit => libc::SIGQUIT,
        Signal::Kill => libc::SIGKILL,
    }
}

/// Sends `sig` to the terminal's foreground process group (what Ctrl-C
/// reaches), or to the shell's own group.
fn signal_group(pty_fd: i32, leader: Option<u32>, sig: libc::c_int) {
    // SAFETY: tcgetpgrp only reads the terminal's state.
    let fg = unsafe { libc::tcgetpgrp(pty_fd) };
    let group = if fg > 0 {
        fg
    } else {
        match leader.and_then(|p| i32::try_from(p).ok()) {
            Some(p) => p,
            None => return,
        }
    };
    // SAFETY: kill with a negative pid signals that process group only.
    unsafe {
        libc::kill(-group, sig);
    }
}

/// Runs the shell for one stream until it exits (sending its exit code)
/// or the client goes away (hanging it up).
pub(super) async fn run(
    mut s: StreamHandle,
    target: &SessionTarget,
    cols: u16,
    rows: u16,
    command: Vec<String>,
) {
    let (pty, mut child) = match spawn(target, cols, rows, &command) {
        Ok(x) => x,
        Err(why) => {
            tracing::debug!(reason = %why, "cannot start a shell");
            let _ = answer(&mut s, &StreamAnswer::refused(UNAVAILABLE, why)).await;
            return;
        }
    };
    if answer(&mut s, &StreamAnswer::ok()).await.is_err() {
        return;
    }
    let _attached = target.activity.attach();
    let leader = child.id();
    let fd = pty.as_raw_fd();
    let (mut pty_r, mut pty_w) = pty.into_split();
    let (mut s_r, mut s_w) = tokio::io::split(s);
    let mut decoder = FrameDecoder::new();
    let mut from_pty = vec![0u8; 16 * 1024];
    let mut from_client = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(from_pty.len() + 16);
    let mut pty_open = true;
    let status = loop {
        tokio::select! {
            st = child.wait() => break st.ok(),
            n = pty_r.read(&mut from_pty), if pty_open => match n {
                Ok(n) if n > 0 => {
                    target.activity.touch();
                    out.clear();
                    Frame::data_frames(&from_pty[..n], &mut out);
                    if s_w.write_all(&out).await.is_err() {
                        break None;
                    }
                }
                // EIO once every holder of the terminal has closed it.
                _ => pty_open = false,
            },
            n = s_r.read(&mut from_client) => match n {
                Ok(n) if n > 0 => {
                    decoder.push(&from_client[..n]);
                    let mut bad = false;
                    loop {
                        match decoder.next_frame() {
                            Ok(Some(Frame::Data(d))) => {
                                target.activity.touch();
                                if pty_w.write_all(&d).await.is_err() {
                                    break;
                                }
                            }
                            Ok(Some(Frame::Resize { cols, rows })) => {
                                let _ = pty_w.resize(pty_process::Size::new(rows.max(1), cols.max(1)));
                            }
                            Ok(Some(Frame::Signal(sig))) => signal_group(fd, leader, os_signal(sig)),
                            Ok(Some(Frame::Exit(_))) => {}
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!(error = %e, "bad shell frame; hanging up");
                                bad = true;
                                break;
                            }
                        }
                    }
                    if bad {
                        break None;
                    }
                }
                // The client went away.
                _ => break None,
            },
        }
    };
    let Some(status) = status else {
        // Hang the shell up, as a terminal that closes does.
        signal_group(fd, leader, libc::SIGHUP);
        if let Some(p) = leader.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: signals the shell's own process group only.
            unsafe {
                libc::kill(-p, libc::SIGHUP);
            }
        }
        if tokio::time::timeout(HANGUP_GRACE, child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        return;
    };
    // What the shell wrote just before it ended.
    while pty_open {
        match tokio::time::timeout(DRAIN_QUIET, pty_r.read(&mut from_pty)).await {
            Ok(Ok(n)) if n > 0 => {
                out.clear();
                Frame::data_frames(&from_pty[..n], &mut out);
                if s_w.write_all(&out).await.is_err() {
                    return;
                }
            }
            _ => pty_open = false,
        }
    }
    let _ = s_w
        .write_all(&Frame::Exit(exit_code(status)).to_bytes())
        .await;
    let _ = s_w.flush().await;
    let _ = s_w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn target(env: Vec<(String, String)>) -> SessionTarget {
        SessionTarget {
            socket: "/nonexistent".into(),
            cwd: "/tmp".into(),
            env,
            activity: Arc::new(super::super::Activity::new()),
            run_as: None,
        }
    }

    #[test]
    fn login_shell_or_command() {
        let t = target(vec![("SHELL".into(), "/bin/zsh".into())]);
        assert_eq!(program(&t, &[]), ("/bin/zsh".into(), vec!["-l".into()]));
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 7".into()];
        assert_eq!(
            program(&t, &cmd),
            ("sh".into(), vec!["-c".into(), "exit 7".into()])
        );
        let env = environment(&target(vec![("X".into(), "1".into())]), "/bin/sh");
        assert!(env.contains(&("HOME".into(), "/tmp".into())));
        assert!(env.contains(&("X".into(), "1".into())));
        assert!(!env.iter().any(|(k, _)| k.starts_with("TRESTLE_TOKEN")));
    }
}
