//! Indexes (funding sources), the projects under them, and project
//! members: admins create, managers manage their project's members, and
//! everyone sees the projects they may read.

use crate::access::check;
use crate::error::{Parsed, ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::state::Service;
use trestle_core::api::identity::{IndexView, MemberRequest, NewIndex, NewProject, ProjectView};
use trestle_core::identity::authz::{Action, MemberRole, Resource, Role, decide};
use trestle_core::identity::{parse_member_role, validate_name};
use trestle_store::StoreError;

/// Every index (for those who may read them).
pub async fn list_indexes(app: &Service, p: &Principal) -> ServiceResult<Vec<IndexView>> {
    check(p, Action::IndexRead, Resource::None, "")?;
    let all = app.store.list_indexes().await?;
    if p.is_admin() {
        return Ok(all);
    }
    // Others see the indexes their own projects are charged to, with only
    // those projects: another project's index and name are not theirs.
    let mine: Vec<String> = p
        .user()
        .map(|u| u.memberships.iter().map(|m| m.project.clone()).collect())
        .unwrap_or_default();
    Ok(all
        .into_iter()
        .filter_map(|mut i| {
            i.projects.retain(|pr| mine.contains(pr));
            (!i.projects.is_empty()).then_some(i)
        })
        .collect())
}

/// Adds an index; a malformed request is reported only to those who may
/// add one.
pub async fn create_index(
    app: &Service,
    p: &Principal,
    req: Parsed<NewIndex>,
) -> ServiceResult<IndexView> {
    check(p, Action::IndexCreate, Resource::None, "")?;
    let req = req?;
    validate_name("name", &req.name)?;
    let now = crate::now_ms();
    app.store
        .create_index(&req.name, req.description.as_deref(), now)
        .await?;
    Ok(IndexView {
        name: req.name,
        description: req.description,
        created_at: now,
        projects: Vec::new(),
    })
}

/// The projects `p` may read (every project for admins).
pub async fn list(app: &Service, p: &Principal) -> ServiceResult<Vec<ProjectView>> {
    let all = app.store.list_projects().await?;
    Ok(all
        .into_iter()
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
        .collect())
}

/// Adds a project under an existing index; a malformed request is
/// reported only to those who may add one.
pub async fn create(
    app: &Service,
    p: &Principal,
    req: Parsed<NewProject>,
) -> ServiceResult<ProjectView> {
    check(p, Action::ProjectCreate, Resource::None, "")?;
    let req = req?;
    validate_name("name", &req.name)?;
    validate_name("index", &req.index)?;
    if let Some(o) = &req.org {
        validate_name("org", o)?;
    }
    app.store
        .create_project(&req, crate::now_ms())
        .await
        .map_err(|e| match e {
            StoreError::NotFound(what) => {
                ServiceError::bad("unknown-index", "index", format!("{what} does not exist"))
            }
            other => other.into(),
        })?;
    app.store
        .project(&req.name)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("project `{}`", req.name)))
}

/// Project `name`, if `p` may read it (others: a 404).
async fn visible(app: &Service, p: &Principal, name: &str) -> ServiceResult<ProjectView> {
    let what = format!("project `{name}`");
    let pr = app
        .store
        .project(name)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
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

/// One project with its members.
pub async fn show(app: &Service, p: &Principal, name: &str) -> ServiceResult<ProjectView> {
    visible(app, p, name).await
}

/// The project as it is now, read without [`visible`]: a manager may have
/// just removed themselves.
async fn reread(app: &Service, name: &str) -> ServiceResult<ProjectView> {
    app.store
        .project(name)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("project `{name}`")))
}

/// Adds a member to project `name` or changes their role (default:
/// member); admins may, and managers for non-guests.
pub async fn add_member(
    app: &Service,
    p: &Principal,
    name: &str,
    req: MemberRequest,
) -> ServiceResult<ProjectView> {
    validate_name("user", &req.user)?;
    let role = match req.role.as_deref() {
        Some(r) => parse_member_role("role", r)?,
        None => MemberRole::Member,
    };
    let pr = visible(app, p, name).await?;
    let may_add = |role: Role| {
        check(
            p,
            Action::ProjectManageMembers,
            Resource::Membership {
                project: name,
                org: pr.org.as_deref(),
                target_role: role,
            },
            &format!("project `{name}`"),
        )
    };
    // A manager learns nothing of users they cannot add: a name that does
    // not exist, a guest's and a disabled user's all get one answer.
    let target = app
        .store
        .user(&req.user)
        .await?
        .filter(|t| (p.is_admin() || t.disabled_at.is_none()) && may_add(t.role).is_ok());
    if target.is_none() {
        // Someone who may add nobody is told that first, whatever the name.
        may_add(Role::Researcher)?;
        return Err(ServiceError::bad(
            "unknown-user",
            "user",
            format!("there is no user `{}` you can add", req.user),
        ));
    }
    app.store
        .set_member(name, &req.user, role, crate::now_ms())
        .await?;
    app.tokens.clear();
    reread(app, name).await
}

/// Removes `user` from project `name`.
pub async fn remove_member(
    app: &Service,
    p: &Principal,
    name: &str,
    user: &str,
) -> ServiceResult<ProjectView> {
    let pr = visible(app, p, name).await?;
    check(
        p,
        Action::ProjectManageMembers,
        Resource::Project {
            name,
            org: pr.org.as_deref(),
        },
        &format!("project `{name}`"),
    )?;
    if !app.store.remove_member(name, user).await? {
        return Err(ServiceError::not_found(format!(
            "member `{user}` of project `{name}`"
        )));
    }
    app.tokens.clear();
    reread(app, name).await
}
