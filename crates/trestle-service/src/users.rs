//! Users: admins add, list and change users; everyone sees themselves and
//! may change their own password (giving the current one) and default
//! project. The last enabled admin cannot be demoted or disabled. A
//! password change ends the user's other sessions; an admin's reset of
//! someone else's password ends all of them (and their tokens, by
//! default).

use crate::access::check;
use crate::error::{ErrorKind, Parsed, ServiceError, ServiceResult};
use crate::principal::{Principal, hash_token};
use crate::security::hash_password;
use crate::state::Service;
use std::net::IpAddr;
use trestle_core::api::identity::{NewUser, UserUpdate, UserView};
use trestle_core::identity::authz::{Action, Resource, Role};
use trestle_core::identity::{parse_role, validate_name, validate_password};
use trestle_store::{StoreError, UserChanges, UserRecord};

/// What a change knows of its request besides the principal: the caller's
/// address (the login throttle's key for a current password) and the
/// session secret it came with, if any (kept when the caller changes their
/// own password).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's address.
    pub ip: IpAddr,
    /// The secret of the browser session making the request.
    pub session: Option<String>,
}

/// Which password change an update made, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// No password was set.
    None,
    /// Users changed their own (`user.password-change`).
    Own,
    /// An admin set someone else's (`user.password-reset`).
    Reset,
}

impl PasswordChange {
    /// The audit action of the update.
    pub fn audit_action(self) -> &'static str {
        match self {
            PasswordChange::None => "user.update",
            PasswordChange::Own => "user.password-change",
            PasswordChange::Reset => "user.password-reset",
        }
    }
}

/// Checks the current password given for a change of one's own, through
/// the login throttle (so that the change is no unthrottled password
/// oracle). A user without a password sets a first one without it.
async fn check_current_password(
    app: &Service,
    user: &UserRecord,
    given: Option<String>,
    ip: IpAddr,
) -> ServiceResult<()> {
    let Some(hash) = user.password_hash.clone() else {
        return Ok(());
    };
    let Some(given) = given.filter(|g| !g.is_empty()) else {
        return Err(ServiceError::bad(
            "current-password-required",
            "current_password",
            "changing your own password needs your current one in `current_password`",
        ));
    };
    if crate::sessions::check_password(app, &user.name, ip, given, Some(hash)).await? {
        Ok(())
    } else {
        Err(ServiceError {
            field: Some("current_password".into()),
            ..ServiceError::new(
                ErrorKind::Forbidden,
                "wrong-current-password",
                "the current password is wrong",
            )
        })
    }
}

/// Every user (for those who may list them).
pub async fn list(app: &Service, p: &Principal) -> ServiceResult<Vec<UserView>> {
    check(p, Action::UserList, Resource::None, "")?;
    let users = app.store.list_users().await?;
    Ok(users.iter().map(UserRecord::view).collect())
}

/// Adds a user (default role: researcher); a malformed request is
/// reported only to those who may add users.
pub async fn create(app: &Service, p: &Principal, req: Parsed<NewUser>) -> ServiceResult<UserView> {
    check(p, Action::UserCreate, Resource::None, "")?;
    let req = req?;
    validate_name("name", &req.name)?;
    let role = match req.role.as_deref() {
        Some(r) => parse_role("role", r)?,
        None => Role::Researcher,
    };
    if let Some(o) = &req.org {
        validate_name("org", o)?;
    }
    if let Some(d) = &req.default_project {
        validate_name("default_project", d)?;
    }
    let password_hash = match req.password {
        Some(pw) => {
            validate_password("password", &pw)?;
            Some(hash_password(pw).await?)
        }
        None => None,
    };
    let now = crate::now_ms();
    let rec = UserRecord {
        name: req.name,
        role,
        org: req.org,
        default_project: req.default_project,
        password_hash,
        disabled_at: None,
        created_at: now,
        last_seen_at: None,
    };
    app.store.create_user(&rec).await.map_err(|e| match e {
        StoreError::NotFound(what) => ServiceError::bad(
            "unknown-project",
            "default_project",
            format!("{what} does not exist"),
        ),
        other => other.into(),
    })?;
    app.tokens.clear();
    Ok(rec.view())
}

/// One user, for themselves and those who may read users.
pub async fn show(app: &Service, p: &Principal, name: &str) -> ServiceResult<UserView> {
    let what = format!("user `{name}`");
    check(p, Action::UserRead, Resource::User { name }, &what)?;
    let u = app
        .store
        .user(name)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
    let mut view = u.view();
    view.attributes = app.store.user_attributes(name).await?;
    Ok(view)
}

/// Changes a user: role, organisation, default project, password,
/// disabled. Users may change their own password (giving the current one
/// in `current_password`, checked through the login throttle) and default
/// project; everything else is for admins. The last enabled admin cannot
/// be demoted or disabled.
///
/// A password change ends the user's sessions: for a change of one's own,
/// all but the session making it (if it was made through one); for an
/// admin's reset of someone else's, all of them, and also the user's
/// tokens unless `security.revoke_tokens_on_password_reset` is off.
pub async fn update(
    app: &Service,
    p: &Principal,
    name: &str,
    req: UserUpdate,
    caller: &Caller,
) -> ServiceResult<(UserView, PasswordChange)> {
    let what = format!("user `{name}`");
    let own_settings_only = req.role.is_none() && req.disabled.is_none() && req.org.is_none();
    let action = if own_settings_only && p.user_name() == Some(name) {
        Action::UserSelfUpdate
    } else {
        Action::UserUpdate
    };
    check(p, action, Resource::User { name }, &what)?;
    let Some(current) = app.store.user(name).await? else {
        return Err(ServiceError::not_found(&what));
    };
    let mut c = UserChanges::default();
    if let Some(r) = &req.role {
        c.role = Some(parse_role("role", r)?);
    }
    if let Some(o) = &req.org {
        if o.is_empty() {
            c.org = Some(None);
        } else {
            validate_name("org", o)?;
            c.org = Some(Some(o.clone()));
        }
    }
    if let Some(d) = &req.default_project {
        validate_name("default_project", d)?;
        c.default_project = Some(d.clone());
    }
    let own = p.user_name() == Some(name);
    let mut change = PasswordChange::None;
    match req.password {
        Some(pw) => {
            validate_password("password", &pw)?;
            // The provider checks these users' passwords; a local one would
            // outlive their leaving it.
            if let Some(a) = app.store.user_attributes(name).await?
                && a.source != trestle_core::identity::external::LOCAL
            {
                return Err(ServiceError::bad(
                    "external-user",
                    "password",
                    format!(
                        "`{name}` signs in through {}; their password is set there",
                        a.source
                    ),
                ));
            }
            if own {
                check_current_password(app, &current, req.current_password, caller.ip).await?;
                change = PasswordChange::Own;
            } else {
                change = PasswordChange::Reset;
            }
            c.password_hash = Some(hash_password(pw).await?);
        }
        None if req.current_password.is_some() => {
            return Err(ServiceError::bad(
                "unexpected-field",
                "current_password",
                "`current_password` goes with a new `password`",
            ));
        }
        None => {}
    }
    c.disabled = req.disabled;
    let loses_admin = current.role == Role::Admin
        && current.disabled_at.is_none()
        && (c.role.is_some_and(|r| r != Role::Admin) || c.disabled == Some(true));
    if loses_admin {
        let admins = app
            .store
            .list_users()
            .await?
            .iter()
            .filter(|u| u.role == Role::Admin && u.disabled_at.is_none())
            .count();
        if admins <= 1 {
            return Err(ServiceError::new(
                ErrorKind::Conflict,
                "last-admin",
                format!("`{name}` is the last enabled admin; make someone else an admin first"),
            ));
        }
    }
    app.store
        .update_user(name, &c, crate::now_ms())
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ServiceError::bad(
                "not-a-member",
                "default_project",
                format!(
                    "`{name}` is not a member of project `{}`",
                    c.default_project.as_deref().unwrap_or("")
                ),
            ),
            other => other.into(),
        })?;
    let mut revoke = req.disabled == Some(true) && current.disabled_at.is_none();
    match change {
        PasswordChange::None => {}
        PasswordChange::Own => {
            let keep = (p.token_id == "session")
                .then(|| caller.session.as_deref().map(hash_token))
                .flatten();
            app.store.delete_sessions_of(name, keep.as_deref()).await?;
        }
        PasswordChange::Reset => {
            app.store.delete_sessions_of(name, None).await?;
            revoke |= app.security.revoke_tokens_on_password_reset;
        }
    }
    if revoke {
        revoke_tokens_of(app, name, crate::now_ms()).await?;
    }
    app.tokens.clear();
    let u = app
        .store
        .user(name)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
    Ok((u.view(), change))
}

/// Revokes every token of a user being disabled, so that enabling the
/// user again does not bring them back (they get new ones). Returns how
/// many were revoked.
pub async fn revoke_tokens_of(app: &Service, name: &str, now: i64) -> ServiceResult<usize> {
    let mut n = 0;
    for t in app.store.list_tokens(Some(name), false).await? {
        if app.store.revoke_token(&t.id, now).await? {
            n += 1;
        }
    }
    Ok(n)
}
