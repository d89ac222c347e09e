//! The conformance suites every Trestle store must pass, kept out of the
//! `trestle-store` library: [`queue`] (jobs, leases, reports, workers),
//! [`identity`] (users, projects, tokens, sessions, audit), [`workflows`]
//! (events, dependencies, arrays, pipelines) and [`scale`] (compute
//! environments, queues, routed leases, leader leases) and [`security`]
//! (leases bound to their workers, sealed uploads) and [`notify`] (event
//! logs by cursor, targets, rules, subscriptions, the delivery outbox).
//! (leases bound to their workers, sealed uploads) and [`workspaces`]
//! (catalogue, lifecycle compare-and-set, worker reports) and [`studies`]
//! (grants, listings, versions as compare-and-set, quotas), [`costs`]
//! (the meter's queue, idempotent usage with daily roll-ups, budgets,
//! their marks and holds) and [`samples`] (efficiency figures, resource
//! samples, alarm states, downsampling).
//!
//! Each suite lists its checks in `CHECKS` and runs one by name with
//! `run`. `tests/conformance.rs` turns every check into two tests, one on a
//! fresh SQLite file and one on a fresh PostgreSQL database ([`db`]), and
//! fails when a check has no test. The crate's other tests cover data
//! integrity, the parity of the two dialects' migrations and upgrades from
//! committed fixtures (`fixtures/`).

pub mod costs;
pub mod db;
pub mod external;
pub mod fixtures;
pub mod identity;
pub mod notify;
pub mod oidc;
pub mod queue;
pub mod samples;
pub mod scale;
pub mod security;
pub mod studies;
mod support;
pub mod workflows;
pub mod workspaces;
