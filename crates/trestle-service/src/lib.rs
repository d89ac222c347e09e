//! Trestle's service layer: every domain operation (submitting work through
//! one path, cancelling, resubmitting, identity, audit, compute), each
//! returning [`ServiceError`]; the background loops (lease reaper,
//! dependency resolver, autoscaler, drop folders, audit writer and
//! retention, the unused-credential policy) and the leader-lease runner
//! that places each cluster-wide loop on one server.
//!
//! It knows no HTTP: the REST API (`trestle-api`) and the portal
//! (`trestle-portal`) call it and map its errors to their answers.
//! Authorization is decided in one place (`trestle_core::identity::authz`),
//! asked through [`access`].

pub mod access;
pub mod accounts;
pub mod alarms;
pub mod audit;
pub mod audit_queries;
pub mod authn;
pub mod autoscaler;
pub mod budgets;
pub mod compute;
pub mod compute_admin;
pub mod costs;
pub mod drop;
pub mod error;
pub mod events;
pub mod external;
pub mod files;
pub mod jobs;
pub mod ldap;
pub mod leader;
pub mod loops;
pub mod metering;
pub mod metrics;
// Notifications (issue 16).
pub mod notify;
pub mod notify_outbox;
pub mod notify_subs;
// OpenID Connect sign-in (issue 11).
pub mod oidc;
pub mod oidc_login;
pub mod principal;
pub mod projects;
pub mod queues;
pub mod recovery;
pub mod security;
pub mod sessions;
pub mod state;
pub mod studies;
pub mod study_attach;
pub mod tokens;
pub mod users;
pub mod versions;
pub mod workers;
pub mod workflows;
pub mod workspace_access;
pub mod workspace_sessions;
pub mod workspaces;

pub use error::{ErrorKind, Parsed, ServiceError, ServiceResult};
pub use principal::Principal;
pub use state::Service;
pub use trestle_core::clock::now_ms;
