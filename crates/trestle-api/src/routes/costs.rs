//! `/api/v1/costs`, the cost of a job or a workspace, and budgets (per
//! project and per index), over [`trestle_service::costs`] and
//! [`trestle_service::budgets`].

use super::{parse_body_for, parse_id};
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use std::collections::HashMap;
use trestle_core::api::cost::{BudgetView, CostOf, CostQuery, CostReport};
use trestle_core::cost::budget::ScopeKind;
use trestle_service::{Principal, Service, ServiceError, budgets, costs};

/// The query of `GET /api/v1/costs`, every rejection naming its parameter.
fn cost_query(q: &HashMap<String, String>) -> Result<CostQuery, ServiceError> {
    let mut out = CostQuery::default();
    for (k, v) in q {
        match k.as_str() {
            "by" => out.by = Some(v.clone()),
            "project" => out.project = Some(v.clone()),
            "user" => out.user = Some(v.clone()),
            "index" => out.index = Some(v.clone()),
            "days" => {
                out.days = Some(v.parse().map_err(|_| {
                    ServiceError::bad(
                        "invalid-days",
                        "days",
                        format!("`{v}` is not a number of days"),
                    )
                })?)
            }
            "per_day" => {
                out.per_day = Some(match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ServiceError::bad(
                            "invalid-parameter",
                            "per_day",
                            "per_day is true or false",
                        ));
                    }
                })
            }
            _ => {
                return Err(ServiceError::bad(
                    "unknown-parameter",
                    k,
                    format!("unknown query parameter `{k}`"),
                ));
            }
        }
    }
    Ok(out)
}

/// `GET /api/v1/costs`.
pub async fn report(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<CostReport>> {
    let q = cost_query(&q)?;
    Ok(Json(costs::report(&app, &p, &q).await?))
}

/// `GET /api/v1/jobs/{id}/cost`.
pub async fn job_cost(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<CostOf>> {
    Ok(Json(costs::of_job(&app, &p, parse_id(&id)?).await?))
}

/// `GET /api/v1/workspaces/{id}/cost`.
pub async fn workspace_cost(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<CostOf>> {
    Ok(Json(costs::of_workspace(&app, &p, parse_id(&id)?).await?))
}

/// `GET /api/v1/budgets`.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<BudgetView>>> {
    Ok(Json(budgets::list(&app, &p).await?))
}

/// `GET /api/v1/projects/{name}/budget`.
pub async fn show_project(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<BudgetView>> {
    Ok(Json(
        budgets::show(&app, &p, ScopeKind::Project, &name).await?,
    ))
}

/// `PUT /api/v1/projects/{name}/budget`.
pub async fn put_project(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<BudgetView>> {
    let req = parse_body_for(&body);
    Ok(Json(
        budgets::put(&app, &p, ScopeKind::Project, &name, req).await?,
    ))
}

/// `DELETE /api/v1/projects/{name}/budget`.
pub async fn delete_project(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    budgets::delete(&app, &p, ScopeKind::Project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/indexes/{name}/budget`.
pub async fn show_index(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<BudgetView>> {
    Ok(Json(
        budgets::show(&app, &p, ScopeKind::Index, &name).await?,
    ))
}

/// `PUT /api/v1/indexes/{name}/budget`.
pub async fn put_index(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<BudgetView>> {
    let req = parse_body_for(&body);
    Ok(Json(
        budgets::put(&app, &p, ScopeKind::Index, &name, req).await?,
    ))
}

/// `DELETE /api/v1/indexes/{name}/budget`.
pub async fn delete_index(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    budgets::delete(&app, &p, ScopeKind::Index, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/jobs/{id}/budget-override`.
pub async fn override_job(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = parse_id(&id)?;
    let new = budgets::override_job(&app, &p, id).await?;
    Ok(Json(
        serde_json::json!({"job_id": id, "overridden": true, "new": new}),
    ))
}
