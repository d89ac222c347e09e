//! The client's end of a workspace shell (`trestle ws connect`): pumps
//! keystrokes, resizes and signals into [`Frame`]s over an upgraded
//! connection, and the shell's output out, until the exit code arrives.

use crate::error::ClientError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use trestle_core::api::tunnel::{Frame, FrameDecoder, Signal};

/// What the user's side sends to a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellInput {
    /// Keystrokes (in raw mode, Ctrl-C is the byte 3 and the remote
    /// terminal makes the signal).
    Data(Vec<u8>),
    /// The local terminal changed size.
    Resize {
        /// Width.
        cols: u16,
        /// Height.
        rows: u16,
    },
    /// A signal for the shell's foreground process group (scripted use).
    Signal(Signal),
}

/// Runs a shell over `io` (the upgraded connection of
/// `GET /api/v1/workspaces/{id}/shell`): what arrives on `input` goes to
/// the shell, its output to `output`. Returns the shell's exit code (128 +
/// the signal that killed it). When `input` closes, the shell keeps
/// running until it exits by itself. An error means the connection ended
/// without an exit code.
pub async fn run_shell<IO, W>(
    io: IO,
    mut input: mpsc::Receiver<ShellInput>,
    mut output: W,
) -> Result<i32, ClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(io);
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut input_open = true;
    let io_err = |e: std::io::Error| ClientError::Io(format!("the shell's connection: {e}"));
    loop {
        while let Some(frame) = decoder
            .next_frame()
            .map_err(|e| ClientError::Decode(e.to_string()))?
        {
            match frame {
                Frame::Data(d) => {
                    output.write_all(&d).await.map_err(io_err)?;
                    output.flush().await.map_err(io_err)?;
                }
                Frame::Exit(code) => return Ok(code),
                Frame::Resize { .. } | Frame::Signal(_) => {}
            }
        }
        tokio::select! {
            n = r.read(&mut buf) => {
                let n = n.map_err(io_err)?;
                if n == 0 {
                    return Err(ClientError::Io(
                        "the shell's connection ended without an exit code".into(),
                    ));
                }
                decoder.push(&buf[..n]);
            }
            msg = input.recv(), if input_open => {
                let bytes = match msg {
                    Some(ShellInput::Data(d)) => {
                        let mut out = Vec::with_capacity(d.len() + 5);
                        Frame::data_frames(&d, &mut out);
                        out
                    }
                    Some(ShellInput::Resize { cols, rows }) => Frame::Resize { cols, rows }.to_bytes(),
                    Some(ShellInput::Signal(s)) => Frame::Signal(s).to_bytes(),
                    None => {
                        input_open = false;
                        continue;
                    }
                };
                w.write_all(&bytes).await.map_err(io_err)?;
                w.flush().await.map_err(io_err)?;
            }
        }
    }
}
