//! Trestle's notification senders: Slack incoming webhooks, Microsoft
//! Teams Workflows webhooks and Standard Webhooks-signed HTTPS webhooks
//! ([`http`]), email over SMTP with lettre ([`smtp`]), and the secrets
//! keyring that seals their URLs, passwords and signing secrets at rest
//! ([`secrets`]). What each is sent is rendered by
//! `trestle_core::notify::render`; this crate only connects, and checks
//! every address it connects to against the target's address policy at
//! connect time.

pub mod http;
pub mod secrets;
pub mod smtp;

use std::time::Duration;
use trestle_core::notify::render::Message;
use trestle_core::notify::target::{TargetConfig, TargetKind, TargetSecrets};

pub use secrets::{Keyring, SecretError};

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The address connected to is not allowed (never retried with
    /// success until the target or the policy changes).
    #[error("refused: {0}")]
    Refused(String),
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The receiver answered with a failure.
    #[error("HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The receiver did not answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The SMTP server refused or failed.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The target is incomplete (a missing URL or recipient).
    #[error("target: {0}")]
    Config(String),
}

impl SendError {
    /// Whether trying again cannot help (the target must change first).
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Refused(_) | SendError::Config(_))
    }
}

/// How senders behave.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole request.
    pub timeout: Duration,
    /// The `User-Agent` of webhook requests.
    pub user_agent: String,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            user_agent: format!("Trestle/{}", trestle_core::VERSION),
        }
    }
}

/// One message to one target.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The target's clear settings.
    pub config: &'a TargetConfig,
    /// Its opened secrets.
    pub secrets: &'a TargetSecrets,
    /// What to send (its id is the delivery id).
    pub message: Message<'a>,
    /// Email recipients (the target's fixed ones, else the user's).
    pub to: &'a [String],
    /// Now, in seconds (the webhook timestamp).
    pub now_s: i64,
}

/// Sends messages to every kind of target.
#[derive(Debug, Clone)]
pub struct Sender {
    http: http::HttpSender,
    smtp: smtp::SmtpSender,
}

impl Sender {
    /// A sender with the system's name resolution.
    pub fn new(settings: SenderSettings) -> Sender {
        Sender::with_lookup(settings, http::Lookup::System)
    }

    /// A sender that resolves names with `lookup` (a fixed table in
    /// tests of names that resolve to refused addresses); every address
    /// is still checked.
    pub fn with_lookup(settings: SenderSettings, lookup: http::Lookup) -> Sender {
        Sender {
            http: http::HttpSender::new(settings.clone(), lookup.clone()),
            smtp: smtp::SmtpSender::new(settings, lookup),
        }
    }

    /// Sends one message.
    pub async fn send(&self, o: &Outgoing<'_>) -> Result<(), SendError> {
        match o.config.kind {
            TargetKind::Email => self.smtp.send(o).await,
            TargetKind::Slack | TargetKind::Teams | TargetKind::Webhook => self.http.send(o).await,
        }
    }
}
