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
pub mod openapi_identity;
pub mod openapi_workflows;
pub mod routes;

use axum::Router;
use axum::routing::{delete, get, post, put};
use trestle_service::Service;

/// The API's routes (`/api/v1/...`) and the health, readiness and metrics
/// endpoints, with authentication and audit applied.
pub fn router(app: Service) -> Router<Service> {
    use routes::{
        audit, compute, events, files, jobs, login, pipelines, projects, system, tokens, users,
        workers,
    };
    let user = Router::new()
        .route("/jobs", post(jobs::submit).get(jobs::list))
        .route("/jobs/batch", post(jobs::submit_batch))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/resubmit", post(jobs::resubmit))
        .route("/admin/damaged-jobs", get(system::damaged_jobs))
        .route("/jobs/{id}/log", get(jobs::log))
        .route("/jobs/{id}/outputs", get(files::list_outputs))
        .route("/jobs/{id}/outputs/{*path}", get(files::get_output))
        .route("/uploads", post(files::create_upload))
        .route("/uploads/{id}/files", get(files::list_upload))
        .route("/uploads/{id}/files/{*path}", put(files::put_upload_file))
        .route("/workers", get(workers::list))
        .route("/logout", post(login::logout))
        .route("/users", get(users::list).post(users::create))
        .route("/users/{name}", get(users::show).patch(users::update))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", get(tokens::show).delete(tokens::revoke))
        .route(
            "/indexes",
            get(projects::list_indexes).post(projects::create_index),
        )
        .route("/projects", get(projects::list).post(projects::create))
        .route("/projects/{name}", get(projects::show))
        .route("/projects/{name}/members", post(projects::add_member))
        .route(
            "/projects/{name}/members/{user}",
            delete(projects::remove_member),
        )
        .route("/audit", get(audit::query))
        .route("/audit/queries", get(audit::list_queries))
        .route("/audit/queries/{name}", get(audit::run_query))
        .route(
            "/audit/unused",
            get(audit::list_unused).post(audit::post_unused),
        )
        .route("/events", get(events::stream))
        .route("/pipelines", post(pipelines::submit))
        .merge(compute::routes())
        .route_layer(axum::middleware::from_fn(auth::require_user));
    let worker = Router::new()
        .route("/whoami", get(login::whoami))
        .route("/workers", post(workers::register))
        .route("/workers/{id}", delete(workers::deregister))
        .route("/workers/{id}/lease", post(workers::lease))
        .route("/workers/{id}/updates", post(workers::updates))
        .route("/jobs/{id}/inputs", get(files::list_inputs))
        .route("/jobs/{id}/inputs/{*path}", get(files::get_input))
        .route(
            "/jobs/{id}/attempts/{attempt}/outputs/{*path}",
            put(files::put_output),
        )
        .route("/jobs/{id}/upstream", get(pipelines::upstream))
        .route(
            "/jobs/{id}/upstream/{dep}/{attempt}/{*path}",
            get(pipelines::upstream_file),
        );
    let api = user
        .merge(worker)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ))
        .route("/login", post(login::login))
        .route("/openapi.json", get(system::openapi))
        .layer(axum::middleware::from_fn_with_state(
            app,
            crate::audit::record,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
}
