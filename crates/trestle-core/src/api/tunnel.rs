//! Wire types of the workspace tunnel, shared by the worker (which hosts
//! the apps), the server (which proxies to them) and the CLI (`ws connect`,
//! `ws forward`).
//!
//! A worker keeps one multiplexed connection (`Upgrade: trestle-tunnel`)
//! to every server it knows; the server opens one stream per proxied
//! connection. Each stream begins with a [`StreamOpen`] header (one line of
//! JSON ending in `\n`), answered by the worker with one [`StreamAnswer`]
//! line; after that the stream carries raw bytes: an HTTP/1.1 connection to
//! the app for [`Channel::Http`], a TCP connection for [`Channel::Tcp`],
//! and [`Frame`]s for [`Channel::Shell`].
//!
//! Everything here is pure: encoding and decoding only.

use serde::{Deserialize, Serialize};

/// The `Upgrade` protocol of a worker's tunnel
/// (`GET /api/v1/workers/{id}/tunnel`).
pub const TUNNEL_PROTOCOL: &str = "trestle-tunnel";
/// The `Upgrade` protocol of a shell (`ws connect`): [`Frame`]s both ways.
pub const SHELL_PROTOCOL: &str = "trestle-shell";
/// The `Upgrade` protocol of a port forward (`ws forward`): raw bytes.
pub const TCP_PROTOCOL: &str = "trestle-tcp";

/// How often each end of a tunnel pings the other (yamux keepalive), in
/// seconds.
pub const KEEPALIVE_SECS: u64 = 5;
/// A tunnel over which nothing (not even a ping) arrived for this many
/// seconds is dead, on either end: a dead peer is noticed within
/// `DEAD_AFTER_SECS + KEEPALIVE_SECS` (25 s).
pub const DEAD_AFTER_SECS: u64 = 20;
/// Per-stream flow-control window in bytes: large enough that one stream
/// fills a loopback link, while an idle stream buffers nothing.
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;

/// The buffer each direction of a relay copies through: larger than
/// tokio's 8 KiB default, so bulk transfers travel in fewer, larger yamux
/// frames.
pub const COPY_BUF: usize = 64 * 1024;

/// The longest header or answer line accepted, newline included.
pub const MAX_HEADER: usize = 16 * 1024;
/// The largest payload of one [`Frame`].
pub const MAX_FRAME: usize = 1024 * 1024;

/// The first line of every stream the server opens to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOpen {
    /// The workspace (session) the stream is for.
    pub workspace: i64,
    /// What the stream carries.
    pub channel: Channel,
}

/// What a stream carries after its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Channel {
    /// One HTTP/1.1 connection to the app's Unix socket.
    Http,
    /// An interactive shell in a PTY, spoken in [`Frame`]s.
    Shell {
        /// Terminal width.
        cols: u16,
        /// Terminal height.
        rows: u16,
        /// The command to run; empty runs a login shell.
        #[serde(default)]
        command: Vec<String>,
    },
    /// A TCP connection to `127.0.0.1:port` on the workspace's host (or in
    /// its network namespace, when it has one).
    Tcp {
        /// The port.
        port: u16,
    },
}

/// The worker's one-line answer to a [`StreamOpen`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAnswer {
    /// True when the stream is connected; raw bytes follow.
    pub ok: bool,
    /// Why not (`unknown-workspace`, `unavailable`, `bad-header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl StreamAnswer {
    /// The stream is connected.
    pub fn ok() -> StreamAnswer {
        StreamAnswer {
            ok: true,
            code: None,
            message: None,
        }
    }

    /// The stream is refused with `code` and `message`.
    pub fn refused(code: &str, message: impl Into<String>) -> StreamAnswer {
        StreamAnswer {
            ok: false,
            code: Some(code.to_string()),
            message: Some(message.into()),
        }
    }
}

/// The answer code for a workspace this worker does not host.
pub const UNKNOWN_WORKSPACE: &str = "unknown-workspace";
/// The answer code for a workspace whose app (or port, or shell) cannot be
/// reached.
pub const UNAVAILABLE: &str = "unavailable";
/// The answer code for a header that cannot be read.
pub const BAD_HEADER: &str = "bad-header";

/// Why a line or frame cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelWireError {
    /// A header line longer than [`MAX_HEADER`].
    #[error("the header is longer than {MAX_HEADER} bytes")]
    HeaderTooLong,
    /// A header that is not the expected JSON.
    #[error("bad header: {0}")]
    BadHeader(String),
    /// A frame of an unknown type.
    #[error("unknown frame type {0}")]
    UnknownFrame(u8),
    /// A frame whose payload is larger than [`MAX_FRAME`] or has the wrong
    /// size for its type.
    #[error("bad frame length {0}")]
    BadLength(usize),
    /// A signal number this protocol does not define.
    #[error("unknown signal {0}")]
    UnknownSignal(u8),
}

/// One header line: `value` as JSON followed by `\n`.
pub fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Decodes one header line (with or without its `\n`).
pub fn decode_line<T: serde::de::DeserializeOwned>(line: &[u8]) -> Result<T, TunnelWireError> {
    if line.len() > MAX_HEADER {
        return Err(TunnelWireError::HeaderTooLong);
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    serde_json::from_slice(line).map_err(|e| TunnelWireError::BadHeader(e.to_string()))
}

/// A signal a shell client may send to the shell's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT.
    Int,
    /// SIGTERM.
    Term,
    /// SIGHUP.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGKILL.
    Kill,
}

impl Signal {
    /// The protocol's number of the signal (not the operating system's).
    pub fn code(self) -> u8 {
        match self {
            Signal::Int => 1,
            Signal::Term => 2,
            Signal::Hup => 3,
            Signal::Quit => 4,
            Signal::Kill => 5,
        }
    }

    /// The signal of a protocol number.
    pub fn from_code(code: u8) -> Result<Signal, TunnelWireError> {
        Ok(match code {
            1 => Signal::Int,
            2 => Signal::Term,
            3 => Signal::Hup,
            4 => Signal::Quit,
            5 => Signal::Kill,
            n => return Err(TunnelWireError::UnknownSignal(n)),
        })
    }
}

/// One frame of a shell stream: a type byte, a 4-byte big-endian payload
/// length, the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Terminal bytes: keystrokes (client to worker) or output (worker to
    /// client).
    Data(Vec<u8>),
    /// The client's terminal changed size.
    Resize {
        /// Width.
        cols: u16,
        /// Height.
        rows: u16,
    },
    /// Send a signal to the shell's foreground process group.
    Signal(Signal),
    /// The shell ended (worker to client, last frame): its exit code, or
    /// 128 + the signal number that killed it.
    Exit(i32),
}

const DATA: u8 = 0;
const RESIZE: u8 = 1;
const SIGNAL: u8 = 2;
const EXIT: u8 = 3;
const FRAME_HEAD: usize = 5;

impl Frame {
    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, payload): (u8, std::borrow::Cow<'_, [u8]>) = match self {
            Frame::Data(d) => (DATA, d.as_slice().into()),
            Frame::Resize { cols, rows } => {
                let mut p = cols.to_be_bytes().to_vec();
                p.extend_from_slice(&rows.to_be_bytes());
                (RESIZE, p.into())
            }
            Frame::Signal(s) => (SIGNAL, vec![s.code()].into()),
            Frame::Exit(code) => (EXIT, code.to_be_bytes().to_vec().into()),
        };
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
    }

    /// The frame's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Data frames for `bytes`, split so that none exceeds [`MAX_FRAME`].
    pub fn data_frames(bytes: &[u8], out: &mut Vec<u8>) {
        for chunk in bytes.chunks(MAX_FRAME) {
            Frame::Data(chunk.to_vec()).encode(out);
        }
    }
}

/// Reassembles [`Frame`]s from bytes as they arrive.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one has arrived. An error means the
    /// stream is unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, TunnelWireError> {
        if self.buf.len() < FRAME_HEAD {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        let fixed = match kind {
            DATA => None,
            RESIZE => Some(4),
            SIGNAL => Some(1),
            EXIT => Some(4),
            k => return Err(TunnelWireError::UnknownFrame(k)),
        };
        if len > MAX_FRAME || fixed.is_some_and(|f| f != len) {
            return Err(TunnelWireError::BadLength(len));
        }
        if self.buf.len() < FRAME_HEAD + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self
            .buf
            .drain(..FRAME_HEAD + len)
            .skip(FRAME_HEAD)
            .collect();
        let frame = match kind {
            DATA => Frame::Data(payload),
            RESIZE => Frame::Resize {
                cols: u16::from_be_bytes([payload[0], payload[1]]),
                rows: u16::from_be_bytes([payload[2], payload[3]]),
            },
            SIGNAL => Frame::Signal(Signal::from_code(payload[0])?),
            _ => Frame::Exit(i32::from_be_bytes([
                payload[0], payload[1], payload[2], payload[3],
            ])),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_as_one_line() {
        let open = StreamOpen {
            workspace: 7,
            channel: Channel::Shell {
                cols: 80,
                rows: 24,
                command: vec!["sh".into(), "-c".into(), "exit 7".into()],
            },
        };
        let line = encode_line(&open);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(decode_line::<StreamOpen>(&line).unwrap(), open);
        let http = br#"{"workspace":1,"channel":{"kind":"http"}}"#;
        assert_eq!(
            decode_line::<StreamOpen>(http).unwrap().channel,
            Channel::Http
        );
        let tcp = br#"{"workspace":1,"channel":{"kind":"tcp","port":8888}}"#;
        assert_eq!(
            decode_line::<StreamOpen>(tcp).unwrap().channel,
            Channel::Tcp { port: 8888 }
        );
        let shell = br#"{"workspace":1,"channel":{"kind":"shell","cols":1,"rows":2}}"#;
        assert!(matches!(
            decode_line::<StreamOpen>(shell).unwrap().channel,
            Channel::Shell { command, .. } if command.is_empty()
        ));
        assert!(matches!(
            decode_line::<StreamOpen>(br#"{"workspace":1,"channel":{"kind":"ftp"}}"#),
            Err(TunnelWireError::BadHeader(_))
        ));
        assert_eq!(
            decode_line::<StreamOpen>(&vec![b' '; MAX_HEADER + 1]),
            Err(TunnelWireError::HeaderTooLong)
        );
        let refused = StreamAnswer::refused(UNKNOWN_WORKSPACE, "no such workspace");
        assert_eq!(
            decode_line::<StreamAnswer>(&encode_line(&refused)).unwrap(),
            refused
        );
        assert_eq!(encode_line(&StreamAnswer::ok()), b"{\"ok\":true}\n");
    }

    #[test]
    fn frames_round_trip_in_any_split() {
        let frames = vec![
            Frame::Data(b"echo hi\r".to_vec()),
            Frame::Resize {
                cols: 132,
                rows: 43,
            },
            Frame::Signal(Signal::Int),
            Frame::Data(Vec::new()),
            Frame::Signal(Signal::Kill),
            Frame::Exit(-1),
            Frame::Exit(7),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            f.encode(&mut bytes);
        }
        for step in [1, 2, 3, 7, bytes.len()] {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(step) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split every {step} bytes");
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut d = FrameDecoder::new();
        d.push(&[9, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(TunnelWireError::UnknownFrame(9)));
        let mut d = FrameDecoder::new();
        d.push(&[RESIZE, 0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(d.next_frame(), Err(TunnelWireError::BadLength(3)));
        let mut d = FrameDecoder::new();
        d.push(&[DATA, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_frame(), Err(TunnelWireError::BadLength(_))));
        let mut d = FrameDecoder::new();
        d.push(&[SIGNAL, 0, 0, 0, 1, 42]);
        assert_eq!(d.next_frame(), Err(TunnelWireError::UnknownSignal(42)));
        let mut d = FrameDecoder::new();
        d.push(&[DATA, 0, 0, 0, 4, b'a']);
        assert_eq!(d.next_frame(), Ok(None), "an incomplete frame waits");
    }

    #[test]
    fn large_data_is_split_into_frames() {
        let big = vec![b'x'; MAX_FRAME * 2 + 10];
        let mut bytes = Vec::new();
        Frame::data_frames(&big, &mut bytes);
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        let mut total = 0;
        let mut n = 0;
        while let Some(Frame::Data(p)) = d.next_frame().unwrap() {
            assert!(p.len() <= MAX_FRAME);
            total += p.len();
            n += 1;
        }
        assert_eq!((total, n), (big.len(), 3));
    }

    #[test]
    fn signals_have_stable_numbers() {
        for s in [
            Signal::Int,
            Signal::Term,
            Signal::Hup,
            Signal::Quit,
            Signal::Kill,
        ] {
            assert_eq!(Signal::from_code(s.code()).unwrap(), s);
        }
        assert_eq!(Signal::Int.code(), 1);
        assert!(Signal::from_code(0).is_err());
    }
}
