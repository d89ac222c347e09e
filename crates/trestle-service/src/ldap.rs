//! Sign-in against an LDAP directory (`[ldap]`) and the directory sync
//! (issue 11). The protocol is `trestle-ldap`'s; this module decides who
//! goes to the directory, throttles the attempts like local ones, and
//! hands what the directory says to [`crate::external`].
//!
//! - A name held by a Trestle account of another source (a local account,
//!   the break-glass admin among them) signs in with its local password
//!   and never reaches the directory; names Trestle does not know, and
//!   users it holds from this directory, sign in against the directory.
//! - Every directory attempt reserves a login attempt first (the throttle
//!   of [`crate::sessions::check_password`]); a wrong password, an unknown
//!   user, an empty password and a disabled account all answer
//!   `invalid-credentials`, exactly as a wrong local password does.
//! - A sync ([`sync_now`], and the `ldap-sync` loop under its leader
//!   lease) looks up each user Trestle holds from the directory and calls
//!   [`crate::external::sync`]: their role and managed memberships are
//!   mapped again from their current groups, and users gone from the
//!   directory are disabled with their tokens revoked.

use crate::audit::AuditSlot;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::external::{self, SyncReport};
use crate::loops::BackgroundLoop;
use crate::sessions::{LoginOutcome, invalid_credentials, reserve_attempt};
use crate::state::Service;
use async_trait::async_trait;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use trestle_core::api::identity::LoginRequest;
use trestle_ldap::{Directory, DirectoryError, Lookup};

/// The directory `user` signs in against, if any: the configured one,
/// unless Trestle holds `user` from another source (a local account).
pub async fn directory_for(app: &Service, user: &str) -> ServiceResult<Option<Arc<Directory>>> {
    let Some(dir) = app.identity.ldap.clone() else {
        return Ok(None);
    };
    match app.store.user_attributes(user).await? {
        Some(a) if a.source != dir.source() => Ok(None),
        _ => Ok(Some(dir)),
    }
}

fn unavailable(e: &DirectoryError) -> ServiceError {
    tracing::warn!(error = %e, "the LDAP directory cannot answer");
    ServiceError::new(
        ErrorKind::Unavailable,
        "directory-unavailable",
        "the directory cannot be reached; try again later",
    )
}

/// A password sign-in of `req.user` against `dir` from `ip` (see the
/// module's doc for who comes here).
pub async fn login(
    app: &Service,
    dir: &Directory,
    req: LoginRequest,
    ip: IpAddr,
    slot: &AuditSlot,
) -> ServiceResult<LoginOutcome> {
    let key = reserve_attempt(app, &req.user, ip).await?;
    let who = dir
        .authenticate(&req.user, &req.password)
        .await
        .map_err(|e| unavailable(&e))?;
    let Some(who) = who else {
        return Err(invalid_credentials());
    };
    app.store.clear_login_attempts(&key).await?;
    match external::sign_in(app, &who, req.token, ip, slot).await {
        Err(e) if e.code == "user-disabled" => Err(invalid_credentials()),
        other => other,
    }
}

/// What a sync did, for the API and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirectorySync {
    /// The directory's users' source (`ldap:campus`).
    pub source: String,
    /// Users looked up and mapped again.
    pub remapped: Vec<String>,
    /// Users whose role or memberships changed.
    pub changed: Vec<String>,
    /// Users disabled because the directory no longer lists them.
    pub deprovisioned: Vec<String>,
}

/// Syncs the users Trestle holds from the directory now. Nobody is
/// deprovisioned when the directory cannot answer, nor when it would
/// remove every one of two or more users at once (a service account that
/// lost its read rights looks like an empty directory): that sync fails
/// and says so.
pub async fn sync_now(app: &Service) -> ServiceResult<DirectorySync> {
    let Some(dir) = app.identity.ldap.clone() else {
        return Err(ServiceError::new(
            ErrorKind::NotFound,
            "no-directory",
            "no LDAP directory is configured ([ldap] in trestle.toml)",
        ));
    };
    let source = dir.source();
    let known = app.store.external_users(&source).await?;
    let found = dir.lookup(&known).await.map_err(|e| unavailable(&e))?;
    let listed: Vec<_> = found
        .into_iter()
        .filter_map(|(_, l)| match l {
            Lookup::Present(who) => Some(who),
            Lookup::Gone => None,
        })
        .collect();
    if known.len() >= 2 && listed.is_empty() {
        tracing::error!(
            source,
            users = known.len(),
            "the directory lists none of its users any more; nobody was deprovisioned (check ldap.bind_dn's read rights)"
        );
        return Err(ServiceError::new(
            ErrorKind::Unavailable,
            "directory-empty",
            format!(
                "the directory lists none of the {} users Trestle holds from it; nobody was deprovisioned (check ldap.bind_dn's read rights and ldap.user_filter)",
                known.len()
            ),
        ));
    }
    let SyncReport {
        remapped,
        changed,
        deprovisioned,
    } = external::sync(app, &source, &listed).await?;
    if !changed.is_empty() || !deprovisioned.is_empty() {
        tracing::info!(source, ?changed, ?deprovisioned, "directory sync");
    }
    Ok(DirectorySync {
        source,
        remapped,
        changed,
        deprovisioned,
    })
}

/// The periodic directory sync (`ldap.sync_interval`), run once per
/// cluster under the `ldap-sync` leader lease.
pub struct LdapSync {
    /// Shared state.
    pub app: Service,
    /// Time between syncs.
    pub every: Duration,
}

#[async_trait]
impl BackgroundLoop for LdapSync {
    fn name(&self) -> &'static str {
        "ldap-sync"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    async fn tick(&self) -> ServiceResult<()> {
        // In a task of its own, so that a panic decoding a malformed
        // directory answer fails this sync, not the loop.
        let app = self.app.clone();
        match tokio::spawn(async move { sync_now(&app).await }).await {
            Ok(r) => r.map(|_| ()),
            Err(e) => Err(ServiceError::internal(format!(
                "the directory sync stopped: {e}"
            ))),
        }
    }
}
