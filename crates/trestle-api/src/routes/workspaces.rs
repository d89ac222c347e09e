//! `/api/v1/workspace-types`, `/api/v1/workspace-configs` and
//! `/api/v1/workspaces`: the catalogue, launches and the lifecycle, over
//! [`trestle_service::workspaces`]; and the hosting worker's
//! `/api/v1/workers/{id}/sessions` reports and homes, over
//! [`trestle_service::workspace_sessions`].

use super::{parse_body, parse_id};
use crate::audit::AuditResource;
use crate::error::ApiResult;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::api::workspace::{
    ConfigView, ExtendRequest, LaunchRequest, SessionReport, ShareRequest, TypeView, WorkspaceView,
};
use trestle_core::api::{AttemptRef, LEASE_TOKEN_HEADER};
use trestle_core::workspace::config::WorkspaceConfigRequest;
use trestle_core::workspace::kind::{Approval, WorkspaceTypeRequest};
use trestle_core::workspace::state::Request;
use trestle_service::workspace_sessions as sessions;
use trestle_service::workspaces as svc;
use trestle_service::{Principal, Service, ServiceError};

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | ""))
}

/// `GET /api/v1/workspace-types?all=true`.
pub async fn list_types(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<TypeView>>> {
    Ok(Json(svc::types(&app, &p, flag(&q, "all")).await?))
}

/// `POST /api/v1/workspace-types`: import a version (not approved).
pub async fn import_type(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<TypeView>)> {
    let req: WorkspaceTypeRequest = parse_body(&body)?;
    let t = svc::import_type(&app, &p, req).await?;
    let tag = AuditResource(format!("workspace-type:{}", t.spec.id()));
    Ok((StatusCode::CREATED, Extension(tag), Json(t)))
}

/// `POST /api/v1/workspace-types/{name}/{version}/approve`.
pub async fn approve_type(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<TypeView>> {
    Ok(Json(
        svc::decide_type(&app, &p, &name, &version, Approval::Approved).await?,
    ))
}

/// `POST /api/v1/workspace-types/{name}/{version}/revoke`.
pub async fn revoke_type(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<TypeView>> {
    Ok(Json(
        svc::decide_type(&app, &p, &name, &version, Approval::Revoked).await?,
    ))
}

/// `GET /api/v1/workspace-configs`.
pub async fn list_configs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<ConfigView>>> {
    Ok(Json(svc::configs(&app, &p).await?))
}

/// `PUT /api/v1/workspace-configs/{name}`.
pub async fn put_config(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ConfigView>> {
    let mut req: WorkspaceConfigRequest = parse_body(&body)?;
    if req.name.as_deref().is_some_and(|n| n != name) {
        return Err(ServiceError::bad(
            "name-mismatch",
            "name",
            "the body's name differs from the path's",
        )
        .into());
    }
    req.name = Some(name);
    Ok(Json(svc::put_config(&app, &p, req).await?))
}

/// `DELETE /api/v1/workspace-configs/{name}`.
pub async fn delete_config(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    svc::delete_config(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/workspaces?all=true&terminated=true`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<WorkspaceView>>> {
    Ok(Json(
        svc::list(&app, &p, flag(&q, "all"), flag(&q, "terminated")).await?,
    ))
}

/// `POST /api/v1/workspaces`: launch a configuration.
pub async fn launch(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<WorkspaceView>)> {
    let req: LaunchRequest = parse_body(&body)?;
    let w = svc::launch(&app, &p, req).await?;
    let tag = AuditResource(format!("workspace:{}", w.id));
    Ok((StatusCode::CREATED, Extension(tag), Json(w)))
}

/// `GET /api/v1/workspaces/{id}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(svc::show(&app, &p, parse_id(&id)?).await?))
}

async fn req(app: Service, p: Principal, id: String, r: Request) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(svc::request(&app, &p, parse_id(&id)?, r).await?))
}

/// `POST /api/v1/workspaces/{id}/stop`.
pub async fn stop(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    req(app, p, id, Request::Stop).await
}

/// `POST /api/v1/workspaces/{id}/start`.
pub async fn start(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    req(app, p, id, Request::Start).await
}

/// `POST /api/v1/workspaces/{id}/terminate`.
pub async fn terminate(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    req(app, p, id, Request::Terminate).await
}

/// `POST /api/v1/workspaces/{id}/extend`.
pub async fn extend(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<WorkspaceView>> {
    let r: ExtendRequest = parse_body(&body)?;
    Ok(Json(svc::extend(&app, &p, parse_id(&id)?, &r.by).await?))
}

/// `POST /api/v1/workspaces/{id}/share`.
pub async fn share(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<WorkspaceView>> {
    let r: ShareRequest = parse_body(&body)?;
    Ok(Json(svc::share(&app, &p, parse_id(&id)?, r.shared).await?))
}

/// `POST /api/v1/workspaces/{id}/assist` (admins; audited).
pub async fn assist(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkspaceView>> {
    Ok(Json(svc::assist(&app, &p, parse_id(&id)?).await?))
}

/// `POST /api/v1/workers/{id}/sessions`: a hosting worker's report.
pub async fn report(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let r: SessionReport = parse_body(&body)?;
    sessions::report(&app, &p, &id, r).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn attempt_ref(
    job: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult<AttemptRef> {
    let job_id = parse_id(job)?;
    let attempt =
        trestle_service::jobs::parse_attempt(q.get("attempt").map_or("", String::as_str))?;
    let token = headers
        .get(LEASE_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ServiceError::bad(
                "missing-token",
                LEASE_TOKEN_HEADER,
                "home transfers must carry the lease token",
            )
        })?;
    Ok(AttemptRef {
        job_id,
        attempt,
        token: token.to_string(),
    })
}

/// `PUT /api/v1/workers/{id}/sessions/{job}/home?attempt=N`: save the home.
pub async fn put_home(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, job)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let at = attempt_ref(&job, &q, &headers)?;
    sessions::put_home(&app, &p, &id, at, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/workers/{id}/sessions/{job}/home?attempt=N`: the saved home.
pub async fn get_home(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((id, job)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let at = attempt_ref(&job, &q, &headers)?;
    let (size, stream) = sessions::get_home(&app, &p, &id, at).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
