//! `/api/v1/admin/identity/sync`: admins run the LDAP directory sync now
//! (issue 11), over [`trestle_service::ldap`].

use crate::error::ApiResult;
use axum::extract::State;
use axum::{Extension, Json};
use trestle_core::identity::authz::{Action, Resource};
use trestle_service::ldap::{self as svc, DirectorySync};
use trestle_service::{Principal, Service, access};

/// `POST /api/v1/admin/identity/sync`: syncs the users Trestle holds from
/// the directory (admins): their groups are mapped again, users gone from
/// the directory are disabled and their tokens revoked. 404 without
/// `[ldap]`; 503 when the directory cannot answer (nobody is changed).
pub async fn sync(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<DirectorySync>> {
    access::check(&p, Action::UserUpdate, Resource::None, "")?;
    Ok(Json(svc::sync_now(&app).await?))
}
