//! The storage side of notifications: events of the domains beyond jobs,
//! the cursors the delivery loop routes the event logs by, targets (with
//! their secrets sealed), rules, subscriptions, waiting items and
//! deliveries. Other code records an event inside its own transaction
//! with `sql::notify::record`, or with [`NotifyStore::record_event`].

use crate::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use trestle_core::notify::event::{Event, EventType, NewEvent};
use trestle_core::notify::route::SubscriptionMode;
use trestle_core::notify::rule::{EventPattern, Rule};
use trestle_core::notify::target::{TargetConfig, TargetKind};

/// The log of job events (`job_events`), routed by cursor `job`.
pub const JOB_SOURCE: &str = "job";
/// The log of other events (`notify_events`), routed by cursor `event`.
pub const EVENT_SOURCE: &str = "event";

/// A target to store: its clear part and its sealed secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    /// Unique name.
    pub name: String,
    /// The user who owns it (`None`: an admin's shared target).
    pub owner: Option<String>,
    /// Stored in the clear.
    pub config: TargetConfig,
    /// The key the secret is sealed under.
    pub key_id: String,
    /// The sealed secret (see `trestle_notify::secrets`).
    pub secret: String,
}

/// A stored target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    /// Its id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: TargetKind,
    /// Owner (`None`: shared).
    pub owner: Option<String>,
    /// Clear part.
    pub config: TargetConfig,
    /// Key id of the sealed secret.
    pub key_id: String,
    /// Sealed secret.
    pub secret: String,
    /// When messages were last made for it (its rate limit).
    pub last_formed_at: Option<i64>,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    /// Its id.
    pub id: i64,
    /// The rule.
    pub rule: Rule,
    /// Created (ms).
    pub created_at: i64,
}

/// A subscription to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Whose.
    pub user: String,
    /// Patterns.
    pub events: Vec<EventPattern>,
    /// Target name (`None`: the personal email).
    pub target: Option<String>,
    /// Only this job.
    pub job: Option<i64>,
    /// On or muted.
    pub mode: SubscriptionMode,
}

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Its id.
    pub id: i64,
    /// What it is.
    pub sub: NewSubscription,
    /// Created (ms).
    pub created_at: i64,
}

/// An event routed to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The target.
    pub target_id: i64,
    /// The user it is for.
    pub user: Option<String>,
    /// The event.
    pub event: Event,
}

/// A waiting item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    /// Its id.
    pub id: i64,
    /// The target.
    pub target_id: i64,
    /// The user it is for.
    pub user: Option<String>,
    /// Its event type.
    pub kind: EventType,
}

/// A message to make of waiting items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Its stable id (`msg_...`).
    pub id: String,
    /// The user it is for.
    pub user: Option<String>,
    /// Event type of its items.
    pub kind: EventType,
    /// Item ids.
    pub items: Vec<i64>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting to be sent (again).
    Pending,
    /// Sent and accepted.
    Delivered,
    /// Given up on (a dead letter), until retried by hand.
    Dead,
}

impl DeliveryState {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Order of making.
    pub seq: i64,
    /// Stable id (`msg_...`).
    pub id: String,
    /// The target.
    pub target_id: i64,
    /// The target's name (empty once it is deleted).
    pub target: String,
    /// The user it is for.
    pub user: Option<String>,
    /// Event type.
    pub kind: EventType,
    /// How many events it carries.
    pub events: u32,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// Next attempt (ms; pending only).
    pub next_at: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Made (ms).
    pub created_at: i64,
    /// Delivered (ms).
    pub sent_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted by the receiver.
    Delivered,
    /// Failed; try again at this time.
    Retry {
        /// When (ms).
        at: i64,
        /// What went wrong.
        error: String,
    },
    /// Failed for good.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only in this state.
    pub state: Option<DeliveryState>,
    /// Only of this target.
    pub target_id: Option<i64>,
    /// Only for this user, or of targets this user owns.
    pub user: Option<String>,
    /// Only with `seq` below this (paging).
    pub before: Option<i64>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// Notifications' storage.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Records an event of a domain beyond jobs in a transaction of its
    /// own; returns its id.
    async fn record_event(&self, e: &NewEvent) -> Result<i64>;
    /// Where the loop has routed log `source` up to.
    async fn notify_cursor(&self, source: &str) -> Result<i64>;
    /// Job events after `after` (at most `limit`): every row's id, with
    /// the event nobody but watchers is told of left `None`.
    async fn job_notices(&self, after: i64, limit: u32) -> Result<Vec<(i64, Option<Event>)>>;
    /// Other events after `after`, at most `limit`.
    async fn other_events(&self, after: i64, limit: u32) -> Result<Vec<(i64, Event)>>;
    /// Stores routed items and moves cursor `source` from `from` to `to`
    /// in one transaction; false (nothing stored) if the cursor was not at
    /// `from` (another server routed meanwhile).
    async fn route_events(
        &self,
        source: &str,
        from: i64,
        to: i64,
        items: &[NewItem],
        now: i64,
    ) -> Result<bool>;
    /// Creates a target (a conflict on its name).
    async fn create_target(&self, t: &NewTarget, now: i64) -> Result<TargetRecord>;
    /// Replaces a target's clear and sealed parts; false if unknown.
    async fn update_target(&self, id: i64, t: &NewTarget, now: i64) -> Result<bool>;
    /// Every target, by name.
    async fn targets(&self) -> Result<Vec<TargetRecord>>;
    /// Deletes a target with its waiting items and pending deliveries
    /// (delivered and dead ones stay listed); false if unknown.
    async fn delete_target(&self, id: i64) -> Result<bool>;
    /// Replaces a target's sealed secret if it is still sealed under
    /// `old_key_id` (key rotation); false otherwise.
    async fn reseal_target(
        &self,
        id: i64,
        old_key_id: &str,
        key_id: &str,
        secret: &str,
    ) -> Result<bool>;
    /// Creates a rule (a conflict on its name).
    async fn create_rule(&self, r: &Rule, now: i64) -> Result<RuleRecord>;
    /// Every rule, by name.
    async fn rules(&self) -> Result<Vec<RuleRecord>>;
    /// Deletes a rule; false if unknown.
    async fn delete_rule(&self, name: &str) -> Result<bool>;
    /// Stores a subscription.
    async fn add_subscription(&self, s: &NewSubscription, now: i64) -> Result<SubscriptionRecord>;
    /// Subscriptions of one user, or everyone's.
    async fn subscriptions(&self, user: Option<&str>) -> Result<Vec<SubscriptionRecord>>;
    /// Deletes a subscription (only `user`'s when given); false if none.
    async fn delete_subscription(&self, id: i64, user: Option<&str>) -> Result<bool>;
    /// Targets with items waiting.
    async fn targets_with_waiting(&self) -> Result<Vec<i64>>;
    /// The first `limit` items waiting for a target, in order, leaving
    /// out those of users (or of rules, `None`) with a delivery to it
    /// still pending: they wait behind it, and do not hold up the others.
    async fn waiting_items(&self, target_id: i64, limit: u32) -> Result<Vec<ItemRecord>>;
    /// The users (`None`: rule deliveries) with a pending delivery to a
    /// target.
    async fn pending_users(&self, target_id: i64) -> Result<Vec<Option<String>>>;
    /// Makes deliveries of waiting items and marks the target formed at
    /// `now`, in one transaction.
    async fn form_deliveries(&self, target_id: i64, list: &[NewDelivery], now: i64) -> Result<()>;
    /// The pending deliveries due at `now` that are first in line for
    /// their target and user, oldest first, at most `limit`.
    async fn due_deliveries(&self, now: i64, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// One delivery.
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>>;
    /// The events of a delivery, in order.
    async fn delivery_events(&self, id: &str) -> Result<Vec<Event>>;
    /// Records an attempt of a pending delivery; false if it is not
    /// pending.
    async fn finish_attempt(&self, id: &str, outcome: &AttemptOutcome, now: i64) -> Result<bool>;
    /// Deliveries, newest first.
    async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRecord>>;
    /// Makes a dead delivery pending again, due now, with a new give-up
    /// period; false if it is not dead.
    async fn retry_delivery(&self, id: &str, now: i64) -> Result<bool>;
    /// Sets (or with `None` clears) the notification address an admin
    /// gives a user.
    async fn set_notify_address(
        &self,
        user: &str,
        email: Option<&str>,
        by: &str,
        now: i64,
    ) -> Result<()>;
    /// The address an admin set for a user.
    async fn notify_address(&self, user: &str) -> Result<Option<String>>;
}
