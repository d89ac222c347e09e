//! `trestle ws connect` (a shell in a workspace, through the server: a PTY
//! on the worker, with window resizes and the shell's exit code) and
//! `trestle ws forward` (a local TCP port carried to a port of the
//! workspace).

use anyhow::{Context, Result};
use std::process::ExitCode;
use tokio::sync::mpsc;
use trestle_client::{Client, ShellInput, run_shell};
use trestle_core::api::tunnel::{SHELL_PROTOCOL, TCP_PROTOCOL};

/// Puts the terminal in raw mode until dropped.
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enter() -> RawMode {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawMode(None);
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return RawMode(None);
            }
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes read in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// The terminal's size (columns, rows), 80x24 without one.
fn term_size() -> (u16, u16) {
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    unsafe {
        let mut w: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut w) == 0 && w.ws_col > 0 && w.ws_row > 0 {
            return (w.ws_col, w.ws_row);
        }
    }
    (80, 24)
}

/// Runs `command` (a login shell when empty) in workspace `id`; its exit
/// code becomes ours.
pub async fn connect(c: &Client, id: i64, command: Vec<String>) -> Result<ExitCode> {
    let (cols, rows) = term_size();
    let (cols_s, rows_s) = (cols.to_string(), rows.to_string());
    let mut query: Vec<(&str, &str)> = vec![("cols", &cols_s), ("rows", &rows_s)];
    query.extend(command.iter().map(|a| ("cmd", a.as_str())));
    let id_s = id.to_string();
    let io = c
        .upgrade_with(
            c.current_base(),
            &["workspaces", &id_s, "shell"],
            &query,
            SHELL_PROTOCOL,
        )
        .await?;
    let (tx, rx) = mpsc::channel(64);
    // Keystrokes: a blocking reader of standard input.
    let keys = tx.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if keys
                        .blocking_send(ShellInput::Data(buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    // Window resizes.
    if let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    {
        let resize = tx.clone();
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                let (cols, rows) = term_size();
                if resize
                    .send(ShellInput::Resize { cols, rows })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    drop(tx);
    let raw = RawMode::enter();
    let code = run_shell(io, rx, tokio::io::stdout()).await;
    drop(raw);
    let code = code.context("the shell's connection ended without an exit code")?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Parses `[LOCAL:]PORT`.
pub fn parse_ports(spec: &str) -> Result<(u16, u16)> {
    let port = |s: &str| -> Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("`{s}` is not a port (1-65535)"))
    };
    match spec.split_once(':') {
        Some((l, r)) => Ok((port(l)?, port(r)?)),
        None => {
            let p = port(spec)?;
            Ok((p, p))
        }
    }
}

/// Listens on 127.0.0.1:`local` and carries each connection to `port` of
/// workspace `id`, until interrupted.
pub async fn forward(c: &Client, id: i64, spec: &str) -> Result<ExitCode> {
    let (local, port) = parse_ports(spec)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", local))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{local}"))?;
    eprintln!("forwarding 127.0.0.1:{local} to port {port} of workspace {id} (Ctrl-C stops)");
    let id_s = id.to_string();
    let port_s = port.to_string();
    loop {
        let (mut sock, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        let c = c.clone();
        let (id_s, port_s) = (id_s.clone(), port_s.clone());
        tokio::spawn(async move {
            match c
                .upgrade(
                    c.current_base(),
                    &["workspaces", &id_s, "forward", &port_s],
                    TCP_PROTOCOL,
                )
                .await
            {
                Ok(mut up) => {
                    let _ = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
                }
                Err(e) => eprintln!("error: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports() {
        assert_eq!(super::parse_ports("8888").unwrap(), (8888, 8888));
        assert_eq!(super::parse_ports("9000:8888").unwrap(), (9000, 8888));
        assert!(super::parse_ports("0").is_err());
        assert!(super::parse_ports("x:1").is_err());
    }
}
