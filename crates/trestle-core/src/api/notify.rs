//! Wire types of `/api/v1/notify/...`: targets (secrets only masked),
//! rules, a user's subscriptions with whether anything can reach them,
//! deliveries, tests and key rotation. Requests are the core types
//! [`crate::notify::TargetSpec`], [`crate::notify::RuleSpec`] and
//! [`crate::notify::SubscriptionSpec`].

use crate::notify::target::SmtpTls;
use serde::{Deserialize, Serialize};

/// What a secret looks like in an answer.
pub const MASK: &str = "********";

/// A target as shown: its secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    /// Name.
    pub name: String,
    /// `slack`, `teams`, `webhook`, `email`.
    pub kind: String,
    /// Owner (`None`: an admin's shared target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The URL, masked (`https://hooks.slack.com/ser…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// [`MASK`] when a signing secret is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// SMTP host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// SMTP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// SMTP security.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTls>,
    /// SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    /// [`MASK`] when a password is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<String>,
    /// Sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Whether an extra CA certificate is set for the SMTP server.
    #[serde(default)]
    pub smtp_ca: bool,
    /// Fixed recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Least time between messages (ms).
    pub min_interval_ms: i64,
    /// Text template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Loopback allowed.
    pub allow_loopback: bool,
    /// Private addresses allowed.
    pub allow_private: bool,
    /// Link-local addresses allowed.
    pub allow_link_local: bool,
    /// The key its secrets are sealed under.
    pub key_id: String,
    /// Created (ms).
    pub created_at: i64,
    /// Changed (ms).
    pub updated_at: i64,
}

/// The answer to creating a target: it, and a signing secret Trestle made
/// up for a webhook, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetCreated {
    /// The target.
    pub target: TargetView,
    /// The signing secret made up for it (only when none was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A rule as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    /// Name.
    pub name: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// Only this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Target names.
    pub targets: Vec<String>,
    /// Created (ms).
    pub created_at: i64,
}

/// A subscription as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// Its id (for unsubscribing).
    pub id: i64,
    /// Whose.
    pub user: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// Target (`None`: the personal email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<i64>,
    /// `on` or `muted`.
    pub mode: String,
    /// Created (ms).
    pub created_at: i64,
}

/// A user's notifications: where their email goes, whether anything can
/// reach them, and their subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionsView {
    /// The user.
    pub user: String,
    /// Their notification address, if they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where the address comes from (`admin`, the identity provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_source: Option<String>,
    /// Whether any notification can reach them (an address and an email
    /// target, or a target of their own).
    pub reachable: bool,
    /// Why not, when nothing can reach them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The event types sent to their email unless they mute them.
    pub defaults: Vec<String>,
    /// Their subscriptions and mutes.
    pub subscriptions: Vec<SubscriptionView>,
}

/// `POST /api/v1/notify/unsubscribe`: mute these event types in the
/// personal email (or delete subscription `id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeRequest {
    /// Event patterns to mute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// A subscription to delete instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Whose (admins only; default: the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The answer to `POST /api/v1/notify/unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// The mute made (muting event types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<SubscriptionView>,
    /// The subscription deleted (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<i64>,
}

/// `PUT /api/v1/notify/addresses/{user}` (admins).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    /// The address, or none to fall back to the identity provider's.
    #[serde(default)]
    pub email: Option<String>,
}

/// A delivery as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// Stable id (the `webhook-id`, the email's Message-ID).
    pub id: String,
    /// Target name (empty once deleted).
    pub target: String,
    /// The user it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Event type.
    pub kind: String,
    /// How many events it carries (more than one: a digest).
    pub events: u32,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (pending).
    pub next_at: i64,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Made (ms).
    pub created_at: i64,
    /// Delivered (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
}

/// The answer to `POST /api/v1/notify/targets/{name}/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test message's id.
    pub id: String,
    /// Whether the receiver accepted it.
    pub delivered: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `POST /api/v1/notify/secrets/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateResult {
    /// The key everything is sealed under now.
    pub key_id: String,
    /// Targets re-encrypted.
    pub resealed: u64,
    /// Targets already under it.
    pub current: u64,
}
