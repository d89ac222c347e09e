//! Trestle's REST API under `/api/v1`: one module per resource in
//! [`routes`], each a thin layer that parses the request, calls the service
//! layer (`trestle-service`) and answers JSON; authentication and audit
//! middleware; the OpenAPI document; health, readiness and metrics. HTTP
//! status codes are decided here and nowhere else ([`error`]).

pub mod audit;
pub mod auth;
pub mod error;
pub mod openapi;
pub mod openapi_compute;
pub mod openapi_costs;
pub mod openapi_identity;
pub mod openapi_notify;
pub mod openapi_oidc;
pub mod openapi_samples;
pub mod openapi_schemas;
pub mod openapi_studies;
pub mod openapi_workflows;
pub mod openapi_workspaces;
pub mod ops;
pub mod routes;
pub mod table;
pub mod workspace_proxy;

use axum::Router;
use trestle_service::Service;

/// The API's routes (`/api/v1/...`, from the table of operations
/// [`table::OPS`]) and the health, readiness and metrics endpoints, with
/// authentication and audit applied.
pub fn router(app: Service) -> Router<Service> {
    let [public, any, user, probe] = table::routes();
    let api = user
        .route_layer(axum::middleware::from_fn(auth::require_user))
        .merge(any)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ))
        .merge(public)
        .route_layer(axum::middleware::from_fn(table::tag))
        .layer(axum::middleware::map_response(error::json_too_large))
        .layer(axum::middleware::from_fn_with_state(app, audit::record));
    Router::new().nest("/api/v1", api).merge(probe)
}
