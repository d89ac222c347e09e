//! Sign-in through the university's identity, and directory syncs: the one
//! place where what a provider (OIDC, LDAP) says about a user becomes a
//! Trestle user with a role, memberships and attributes (see
//! [`trestle_core::identity::external`] for the rules). Each provider's
//! protocol lives in its own module and ends here with an
//! [`ExternalIdentity`].

use crate::audit::{AuditSlot, internal_record};
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::sessions::{LoginOutcome, grant};
use crate::state::Service;
use std::net::IpAddr;
use trestle_core::api::identity::NewToken;
use trestle_core::identity::external::{
    ExternalIdentity, MappingRules, SyncAction, may_sign_in_as, plan_sync,
};
use trestle_core::identity::validate_name;
use trestle_store::identity::{Provision, Provisioned, UserChanges, UserRecord};

/// What happens to the running work of a user a sync deprovisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunningWork {
    /// It runs to its end (the default); nothing new can be submitted.
    #[default]
    Finish,
    /// Their unfinished jobs are cancelled.
    Cancel,
}

/// Settings of sign-in through identity providers (`[identity]`).
#[derive(Debug, Clone, Default)]
pub struct IdentitySettings {
    /// Groups to roles and projects.
    pub mapping: MappingRules,
    /// What a deprovisioned user's running work does.
    pub on_deprovision: RunningWork,
    /// `[ldap]`: the directory users sign in against, if configured.
    pub ldap: Option<std::sync::Arc<trestle_ldap::Directory>>,
}

/// Makes the provider's user `who` a Trestle user (creating them at first
/// sign-in) with the role, memberships and attributes the mapping rules
/// give, and records what changed in the audit trail. A name held by a
/// local account or another provider's user is refused: the break-glass
/// admin is never taken over by a provider's user of the same name.
pub async fn provision(
    app: &Service,
    who: &ExternalIdentity,
) -> ServiceResult<(UserRecord, Provisioned)> {
    validate_name("username", &who.username)?;
    if let Some(existing) = app.store.user_attributes(&who.username).await?
        && !may_sign_in_as(&existing, who)
    {
        return Err(ServiceError::new(
            ErrorKind::Forbidden,
            "account-taken",
            format!(
                "the user name `{}` belongs to another account ({}); an admin can rename one of them",
                who.username, existing.source
            ),
        ));
    }
    let now = crate::now_ms();
    let mapped = app.identity.mapping.map(who, now);
    let changes = app
        .store
        .provision_user(
            &Provision {
                name: who.username.clone(),
                role: mapped.role,
                attributes: mapped.attributes,
                memberships: mapped.memberships,
            },
            now,
        )
        .await?;
    audit_changes(app, who, &changes, mapped.role);
    if !changes.missing_projects.is_empty() {
        tracing::warn!(
            user = %who.username,
            projects = ?changes.missing_projects,
            "mapping rules name projects that do not exist"
        );
    }
    app.tokens.clear();
    let user = app
        .store
        .user(&who.username)
        .await?
        .ok_or_else(|| ServiceError::internal("a provisioned user is missing"))?;
    Ok((user, changes))
}

fn audit_changes(
    app: &Service,
    who: &ExternalIdentity,
    c: &Provisioned,
    role: trestle_core::identity::authz::Role,
) {
    let resource = format!("user:{}", who.username);
    let record = |action: &str| {
        let mut r = internal_record(None, action, &resource);
        r.token = Some(who.source.clone());
        app.audit.record(r);
    };
    if c.created {
        record("user.provision");
    }
    if c.role_was.is_some() || !c.added.is_empty() || !c.removed.is_empty() {
        tracing::info!(
            user = %who.username,
            role = role.as_str(),
            added = ?c.added,
            removed = ?c.removed,
            "mapping changed a user"
        );
        record("user.mapping-change");
    }
}

/// Signs in the provider's user `who` (provisioned just in time) from
/// `ip`: a browser session, or the token asked for. Disabled users are
/// refused.
pub async fn sign_in(
    app: &Service,
    who: &ExternalIdentity,
    token: Option<NewToken>,
    ip: IpAddr,
    slot: &AuditSlot,
) -> ServiceResult<LoginOutcome> {
    let (user, _) = provision(app, who).await?;
    if user.disabled_at.is_some() {
        return Err(ServiceError::new(
            ErrorKind::Unauthenticated,
            "user-disabled",
            format!("user `{}` is disabled; ask an admin", user.name),
        ));
    }
    grant(app, user, token, ip, slot, crate::now_ms()).await
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Users mapped again.
    pub remapped: Vec<String>,
    /// Users whose role or memberships changed.
    pub changed: Vec<String>,
    /// Users disabled because the directory no longer lists them.
    pub deprovisioned: Vec<String>,
}

/// Syncs the users of `source` with what its directory lists now: listed
/// users are mapped again (losing what their groups no longer give), users
/// gone from it are disabled and their tokens revoked; their running work
/// finishes or is cancelled per [`IdentitySettings::on_deprovision`].
pub async fn sync(
    app: &Service,
    source: &str,
    listed: &[ExternalIdentity],
) -> ServiceResult<SyncReport> {
    let known = app.store.external_users(source).await?;
    let mut report = SyncReport::default();
    for action in plan_sync(&known, listed) {
        match action {
            SyncAction::Remap(who) => {
                let (_, c) = provision(app, &who).await?;
                if c.role_was.is_some() || !c.added.is_empty() || !c.removed.is_empty() {
                    report.changed.push(who.username.clone());
                }
                report.remapped.push(who.username);
            }
            SyncAction::Deprovision(name) => {
                deprovision(app, source, &name).await?;
                report.deprovisioned.push(name);
            }
        }
    }
    Ok(report)
}

async fn deprovision(app: &Service, source: &str, name: &str) -> ServiceResult<()> {
    let now = crate::now_ms();
    let off = UserChanges {
        disabled: Some(true),
        ..UserChanges::default()
    };
    if !app.store.update_user(name, &off, now).await? {
        return Ok(());
    }
    crate::users::revoke_tokens_of(app, name, now).await?;
    app.store.delete_sessions_of(name, None).await?;
    if app.identity.on_deprovision == RunningWork::Cancel {
        let filter = trestle_store::JobFilter {
            owner: Some(name.to_string()),
            states: trestle_core::JobState::ALL
                .into_iter()
                .filter(|s| !s.is_terminal())
                .collect(),
            limit: 10_000,
            ..Default::default()
        };
        for j in app.store.list_jobs(&filter).await? {
            app.store.cancel(j.id, now).await?;
        }
    }
    let mut r = internal_record(None, "user.deprovision", &format!("user:{name}"));
    r.token = Some(source.to_string());
    app.audit.record(r);
    app.tokens.clear();
    tracing::info!(user = %name, source, "deprovisioned: gone from the directory");
    Ok(())
}
