//! `/api/v1/users`: admins add, list and change users; everyone sees
//! themselves and may change their own password, over
//! [`trestle_service::users`].

use super::{parse_body, parse_body_for};
use crate::audit::{AuditResource, AuditSlot, ClientIp};
use crate::auth::cookie;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use trestle_core::api::identity::{UserUpdate, UserView};
use trestle_service::principal::SESSION_COOKIE;
use trestle_service::users as svc;
use trestle_service::{Principal, Service};

/// `GET /api/v1/users`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(svc::list(&app, &p).await?))
}

/// `POST /api/v1/users`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<UserView>)> {
    let user = svc::create(&app, &p, parse_body_for(&body)).await?;
    let tag = AuditResource(format!("user:{}", user.name));
    Ok((StatusCode::CREATED, Extension(tag), Json(user)))
}

/// `GET /api/v1/users/{name}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(svc::show(&app, &p, &name).await?))
}

/// `PATCH /api/v1/users/{name}`: role, organisation, default project,
/// password, disabled. Users may change their own password (with
/// `current_password`) and default project; everything else is for
/// admins. The last enabled admin cannot be demoted or disabled. A
/// password change is audited as `user.password-change` (one's own) or
/// `user.password-reset` (an admin's of someone else's).
pub async fn update(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Extension(ip): Extension<ClientIp>,
    Extension(slot): Extension<AuditSlot>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<UserView>> {
    let req: UserUpdate = parse_body(&body)?;
    let caller = svc::Caller {
        ip: ip.0,
        session: cookie(&headers, SESSION_COOKIE).map(str::to_string),
    };
    if req.password.is_some() {
        // Refused attempts are recorded under the action they tried.
        let attempted = if p.user_name() == Some(name.as_str()) {
            svc::PasswordChange::Own
        } else {
            svc::PasswordChange::Reset
        };
        slot.set_operation(
            attempted.audit_action().to_string(),
            Some(format!("user:{name}")),
        );
    }
    let (user, _) = svc::update(&app, &p, &name, req, &caller).await?;
    Ok(Json(user))
}
