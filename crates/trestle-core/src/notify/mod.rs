//! Notifications, the pure part: which events exist ([`event`]), what a
//! target, rule and subscription are and how they are validated
//! ([`target`], [`rule`]), which events go where ([`route`]), how waiting
//! items become messages and digests ([`batch`]), when a failed delivery
//! is tried again ([`backoff`]), what each kind of target is sent
//! ([`render`]), the Standard Webhooks signature ([`sign`]) and which
//! network addresses a sender may connect to ([`address`]). The senders
//! live in `trestle-notify`, the outbox in `trestle-store`'s
//! `sql/notify/`, the delivery loop in `trestle-service`.

pub mod address;
pub mod backoff;
pub mod batch;
pub mod event;
pub mod render;
pub mod route;
pub mod rule;
pub mod sign;
pub mod target;

pub use event::{Event, EventType, NewEvent};
pub use rule::{EventPattern, RuleSpec, SubscriptionSpec};
pub use target::{TargetKind, TargetSpec};
