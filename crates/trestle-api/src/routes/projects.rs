//! `/api/v1/indexes` and `/api/v1/projects`: funding sources, the projects
//! under them, and project members.

use super::parse_body;
use crate::audit::AuditResource;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use trestle_core::identity::authz::{Action, MemberRole, Resource, decide};
use trestle_core::identity::{
    IndexView, MemberRequest, NewIndex, NewProject, ProjectView, parse_member_role, validate_name,
};
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access::check;

/// `GET /api/v1/indexes`.
pub async fn list_indexes(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<IndexView>>> {
    check(&p, Action::IndexRead, Resource::None, "")?;
    Ok(Json(app.store.list_indexes().await?))
}

/// `POST /api/v1/indexes`.
pub async fn create_index(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<IndexView>)> {
    check(&p, Action::IndexCreate, Resource::None, "")?;
    let req: NewIndex = parse_body(&body)?;
    validate_name("name", &req.name)?;
    let now = trestle_service::now_ms();
    app.store
        .create_index(&req.name, req.description.as_deref(), now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IndexView {
            name: req.name,
            description: req.description,
            created_at: now,
            projects: Vec::new(),
        }),
    ))
}

/// `GET /api/v1/projects`: every project for admins, one's own for others.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<ProjectView>>> {
    let all = app.store.list_projects().await?;
    Ok(Json(
        all.into_iter()
            .filter(|pr| {
                decide(
                    &p.subject,
                    Action::ProjectRead,
                    Resource::Project {
                        name: &pr.name,
                        org: pr.org.as_deref(),
                    },
                )
                .is_allowed()
            })
            .collect(),
    ))
}

/// `POST /api/v1/projects`.
pub async fn create(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Extension<AuditResource>, Json<ProjectView>)> {
    check(&p, Action::ProjectCreate, Resource::None, "")?;
    let req: NewProject = parse_body(&body)?;
    validate_name("name", &req.name)?;
    validate_name("index", &req.index)?;
    if let Some(o) = &req.org {
        validate_name("org", o)?;
    }
    app.store
        .create_project(&req, trestle_service::now_ms())
        .await
        .map_err(|e| match e {
            trestle_store::StoreError::NotFound(what) => {
                ApiError::bad("unknown-index", "index", format!("{what} does not exist"))
            }
            other => other.into(),
        })?;
    let view = app
        .store
        .project(&req.name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project `{}`", req.name)))?;
    let tag = AuditResource(format!("project:{}", view.name));
    Ok((StatusCode::CREATED, Extension(tag), Json(view)))
}

async fn visible(app: &Service, p: &Principal, name: &str) -> ApiResult<ProjectView> {
    let what = format!("project `{name}`");
    let pr = app
        .store
        .project(name)
        .await?
        .ok_or_else(|| ApiError::not_found(&what))?;
    check(
        p,
        Action::ProjectRead,
        Resource::Project {
            name,
            org: pr.org.as_deref(),
        },
        &what,
    )?;
    Ok(pr)
}

/// `GET /api/v1/projects/{name}`.
pub async fn show(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    Ok(Json(visible(&app, &p, &name).await?))
}

/// `POST /api/v1/projects/{name}/members`: adds a member or changes their
/// role (admins, and managers for non-guests).
pub async fn add_member(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ProjectView>> {
    let req: MemberRequest = parse_body(&body)?;
    validate_name("user", &req.user)?;
    let role = match req.role.as_deref() {
        Some(r) => parse_member_role("role", r)?,
        None => MemberRole::Member,
    };
    let pr = visible(&app, &p, &name).await?;
    let target = app.store.user(&req.user).await?.ok_or_else(|| {
        ApiError::bad(
            "unknown-user",
            "user",
            format!("user `{}` does not exist", req.user),
        )
    })?;
    check(
        &p,
        Action::ProjectManageMembers,
        Resource::Membership {
            project: &name,
            org: pr.org.as_deref(),
            target_role: target.role,
        },
        &format!("project `{name}`"),
    )?;
    app.store
        .set_member(&name, &req.user, role, trestle_service::now_ms())
        .await?;
    app.tokens.clear();
    // Not `visible`: a manager may have just removed themselves.
    let view = app
        .store
        .project(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project `{name}`")))?;
    Ok(Json(view))
}

/// `DELETE /api/v1/projects/{name}/members/{user}`.
pub async fn remove_member(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path((name, user)): Path<(String, String)>,
) -> ApiResult<Json<ProjectView>> {
    let pr = visible(&app, &p, &name).await?;
    check(
        &p,
        Action::ProjectManageMembers,
        Resource::Project {
            name: &name,
            org: pr.org.as_deref(),
        },
        &format!("project `{name}`"),
    )?;
    if !app.store.remove_member(&name, &user).await? {
        return Err(ApiError::not_found(format!(
            "member `{user}` of project `{name}`"
        )));
    }
    app.tokens.clear();
    // Not `visible`: a manager may have just removed themselves.
    let view = app
        .store
        .project(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project `{name}`")))?;
    Ok(Json(view))
}
