//! The server's half of the workspace data plane.
//!
//! Workers dial out: each keeps one connection to every server it knows,
//! upgraded from `GET /api/v1/workers/{id}/tunnel` (`Upgrade:
//! trestle-tunnel`) and multiplexed with yamux. [`Tunnels`] holds them by
//! worker id and opens a stream per proxied connection; every stream begins
//! with a [`StreamOpen`](trestle_core::api::tunnel::StreamOpen) header the
//! worker answers. Over them:
//!
//! - [`forward_http`]: the HTTP and WebSocket reverse proxy, which strips
//!   Trestle's credentials from every request;
//! - [`relay`] and [`upgrade_relay`]: raw relays for shells (`ws connect`)
//!   and port forwards (`ws forward`).
//!
//! Who may reach which workspace is decided by the caller (the workspace
//! routes, through the service's access checks) before it calls in here.

mod error;
pub mod headers;
mod http;
mod io;
mod relay;
mod tunnels;

pub use crate::error::ProxyError;
pub use crate::http::{Route, forward_http};
pub use crate::io::Counters;
pub use crate::relay::{relay, relay_stream, upgrade_relay};
pub use crate::tunnels::{
    ACTIVITY_EVERY, DEAD_AFTER, KEEPALIVE, OPEN_TIMEOUT, Stream, Tunnels, yamux_config,
};

use ::http::Method;

/// Told about the traffic of each workspace, for idle tracking. The
/// implementation decides what counts (Jupyter's own polling of
/// `/api/kernels` and `/api/sessions` should not).
pub trait ActivitySink: Send + Sync {
    /// One forwarded HTTP request (WebSocket upgrades included), before it
    /// is sent; `path` is the path the client asked for.
    fn request(&self, workspace: i64, method: &Method, path: &str);

    /// A proxied connection, WebSocket or relay carried `up` bytes to the
    /// workspace and `down` bytes from it: told at most once a second
    /// ([`ACTIVITY_EVERY`]) per connection while bytes flow, and when it
    /// ends, so a long-lived WebSocket counts while it is used.
    fn bytes(&self, workspace: i64, up: u64, down: u64) {
        let _ = (workspace, up, down);
    }
}

/// An [`ActivitySink`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoActivity;

impl ActivitySink for NoActivity {
    fn request(&self, _workspace: i64, _method: &Method, _path: &str) {}
}
