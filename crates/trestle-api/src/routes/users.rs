//! `/api/v1/users`: admins add, list and change users; everyone sees
//! themselves and may change their own password.

use super::parse_body;
use crate::audit::AuditResource;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use trestle_core::identity::authz::{Action, Resource, Role};
use trestle_core::identity::{
    NewUser, UserUpdate, UserView, parse_role, validate_name, validate_password,
};
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access::check;
use trestle_service::security::hash_password;
use trestle_store::{UserChanges, UserRecord};

/// `GET /api/v1/users`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<UserView>>> {
    check(&p, Action::UserList, Resource::None, "")?;
    let users = app.store.list_users().await?;
    Ok(Json(users.iter().map(UserRecord::view).collect()))
}

/// `POST /api/v1/users`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<UserView>)> {
    check(&p, Action::UserCreate, Resource::None, "")?;
    let req: NewUser = parse_body(&body)?;
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
    let now = trestle_service::now_ms();
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
        trestle_store::StoreError::NotFound(what) => ApiError::bad(
            "unknown-project",
            "default_project",
            format!("{what} does not exist"),
        ),
        other => other.into(),
    })?;
    app.tokens.clear();
    let tag = AuditResource(format!("user:{}", rec.name));
    Ok((StatusCode::CREATED, Extension(tag), Json(rec.view())))
}

/// `GET /api/v1/users/{name}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<UserView>> {
    let what = format!("user `{name}`");
    check(&p, Action::UserRead, Resource::User { name: &name }, &what)?;
    let u = app
        .store
        .user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(&what))?;
    Ok(Json(u.view()))
}

/// `PATCH /api/v1/users/{name}`: role, organisation, default project,
/// password, disabled. Users may change their own password and default
/// project; everything else is for admins. The last enabled admin cannot
/// be demoted or disabled.
pub async fn update(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<UserView>> {
    let req: UserUpdate = parse_body(&body)?;
    let what = format!("user `{name}`");
    let own_settings_only = req.role.is_none() && req.disabled.is_none() && req.org.is_none();
    let action = if own_settings_only && p.user_name() == Some(name.as_str()) {
        Action::UserSelfUpdate
    } else {
        Action::UserUpdate
    };
    check(&p, action, Resource::User { name: &name }, &what)?;
    let Some(current) = app.store.user(&name).await? else {
        return Err(ApiError::not_found(&what));
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
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "last-admin",
                format!("`{name}` is the last enabled admin; make someone else an admin first"),
            ));
        }
    }
    app.store
        .update_user(&name, &c, trestle_service::now_ms())
        .await
        .map_err(|e| match e {
            trestle_store::StoreError::NotFound(_) => ApiError::bad(
                "not-a-member",
                "default_project",
                format!(
                    "`{name}` is not a member of project `{}`",
                    c.default_project.as_deref().unwrap_or("")
                ),
            ),
            other => other.into(),
        })?;
    app.tokens.clear();
    let u = app
        .store
        .user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(&what))?;
    Ok(Json(u.view()))
}
