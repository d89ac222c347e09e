//! Users: admins add, list and change users; everyone sees themselves and
//! may change their own password and default project. The last enabled
//! admin cannot be demoted or disabled.

use crate::access::check;
use crate::error::{ErrorKind, Parsed, ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::security::hash_password;
use crate::state::Service;
use trestle_core::api::identity::{NewUser, UserUpdate, UserView};
use trestle_core::identity::authz::{Action, Resource, Role};
use trestle_core::identity::{parse_role, validate_name, validate_password};
use trestle_store::{StoreError, UserChanges, UserRecord};

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
    Ok(u.view())
}

/// Changes a user: role, organisation, default project, password,
/// disabled. Users may change their own password and default project;
/// everything else is for admins. The last enabled admin cannot be
/// demoted or disabled.
pub async fn update(
    app: &Service,
    p: &Principal,
    name: &str,
    req: UserUpdate,
) -> ServiceResult<UserView> {
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
    if let Some(pw) = req.password {
        validate_password("password", &pw)?;
        c.password_hash = Some(hash_password(pw).await?);
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
    if req.disabled == Some(true) && current.disabled_at.is_none() {
        revoke_tokens_of(app, name, crate::now_ms()).await?;
    }
    app.tokens.clear();
    let u = app
        .store
        .user(name)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
    Ok(u.view())
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
