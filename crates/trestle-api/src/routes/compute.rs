//! `/api/v1/compute-environments`, `/api/v1/queues` and `/api/v1/leaders`:
//! everyone may look, admins change. Every change is stored in the
//! database, so every server of a cluster sees it within a second.

use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use axum::{Extension, Json};
use trestle_core::api::compute::{ComputeEnvView, LeaderView, QueueView};
use trestle_core::compute::{
    ComputeEnvRequest, QueueRequest, check_name, check_queue_envs, from_value,
};
use trestle_core::identity::authz::{Action, Resource};
use trestle_service::Principal;
use trestle_service::Service;
use trestle_service::access;
use trestle_store::scale::SOURCE_API;
use trestle_store::{ComputeEnvRecord, QueueRecord};

fn json_body(body: &Bytes) -> ApiResult<serde_json::Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn name_of(v: &serde_json::Value) -> ApiResult<String> {
    match v.get("name") {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::bad("invalid-field", "name", "must be a string")),
        None => Err(ApiError::bad("missing-field", "name", "`name` is required")),
    }
}

async fn env_view(app: &Service, rec: ComputeEnvRecord, events: u32) -> ApiResult<ComputeEnvView> {
    let workers = app.store.list_workers().await?;
    let mine: Vec<_> = workers
        .iter()
        .filter(|w| w.compute_env.as_deref() == Some(rec.spec.name.as_str()))
        .collect();
    let events = if events > 0 {
        app.store.compute_env_events(&rec.spec.name, events).await?
    } else {
        Vec::new()
    };
    Ok(ComputeEnvView {
        workers: mine.len() as u32,
        vcpus: mine.iter().map(|w| u64::from(w.capacity.cpus)).sum(),
        spec: rec.spec,
        source: rec.source,
        status: rec.status,
        status_reason: rec.status_reason,
        status_at: rec.status_at,
        updated_at: rec.updated_at,
        events,
    })
}

fn queue_view(r: QueueRecord) -> QueueView {
    QueueView {
        spec: r.spec,
        source: r.source,
        updated_at: r.updated_at,
    }
}

async fn changed(app: &Service) -> ApiResult<()> {
    app.compute.refresh(&*app.store).await?;
    app.demand.notify_one();
    Ok(())
}

async fn find_env(app: &Service, name: &str) -> ApiResult<ComputeEnvRecord> {
    app.store
        .compute_envs()
        .await?
        .into_iter()
        .find(|e| e.spec.name == name)
        .ok_or_else(|| ApiError::not_found(format!("compute environment `{name}`")))
}

/// `GET /api/v1/compute-environments`.
pub async fn list_envs(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<ComputeEnvView>>> {
    access::check(&p, Action::ComputeRead, Resource::None, "")?;
    let mut out = Vec::new();
    for rec in app.store.compute_envs().await? {
        out.push(env_view(&app, rec, 0).await?);
    }
    Ok(Json(out))
}

/// `GET /api/v1/compute-environments/{name}`: with its recent events.
pub async fn show_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<ComputeEnvView>> {
    access::check(&p, Action::ComputeRead, Resource::None, "")?;
    let rec = find_env(&app, &name).await?;
    Ok(Json(env_view(&app, rec, 50).await?))
}

async fn store_env(
    app: &Service,
    name: &str,
    value: serde_json::Value,
    must_be_new: bool,
) -> ApiResult<(StatusCode, Json<ComputeEnvView>)> {
    let req: ComputeEnvRequest = from_value(value)?;
    let spec = req.validate(name)?;
    if must_be_new && find_env(app, name).await.is_ok() {
        return Err(ApiError {
            field: Some("name".into()),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("compute environment `{name}` already exists (PUT replaces it)"),
            )
        });
    }
    let created = app
        .store
        .put_compute_env(&spec, SOURCE_API, trestle_service::now_ms())
        .await?;
    let what = if created {
        "created"
    } else {
        "settings replaced"
    };
    app.store
        .add_compute_env_event(name, "updated", what, trestle_service::now_ms())
        .await?;
    changed(app).await?;
    let rec = find_env(app, name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(env_view(app, rec, 0).await?)))
}

/// `POST /api/v1/compute-environments` (admins): a new CE.
pub async fn create_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ComputeEnvView>)> {
    access::check(&p, Action::ComputeManage, Resource::None, "")?;
    let v = json_body(&body)?;
    let name = name_of(&v)?;
    store_env(&app, &name, v, true).await
}

/// `PUT /api/v1/compute-environments/{name}` (admins): creates or replaces.
pub async fn put_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ComputeEnvView>)> {
    access::check(&p, Action::ComputeManage, Resource::None, "")?;
    check_name("name", &name)?;
    store_env(&app, &name, json_body(&body)?, false).await
}

/// `DELETE /api/v1/compute-environments/{name}` (admins): 409 while a
/// queue lists it. Its running workers finish and exit when idle.
pub async fn delete_env(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    access::check(&p, Action::ComputeManage, Resource::None, "")?;
    if !app.store.delete_compute_env(&name).await? {
        return Err(ApiError::not_found(format!("compute environment `{name}`")));
    }
    changed(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/queues`.
pub async fn list_queues(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<QueueView>>> {
    access::check(&p, Action::ComputeRead, Resource::None, "")?;
    Ok(Json(
        app.store
            .queue_records()
            .await?
            .into_iter()
            .map(queue_view)
            .collect(),
    ))
}

async fn find_queue(app: &Service, name: &str) -> ApiResult<QueueRecord> {
    app.store
        .queue_records()
        .await?
        .into_iter()
        .find(|q| q.spec.name == name)
        .ok_or_else(|| ApiError::not_found(format!("queue `{name}`")))
}

/// `GET /api/v1/queues/{name}`.
pub async fn show_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<QueueView>> {
    access::check(&p, Action::ComputeRead, Resource::None, "")?;
    Ok(Json(queue_view(find_queue(&app, &name).await?)))
}

async fn store_queue(
    app: &Service,
    name: &str,
    value: serde_json::Value,
    must_be_new: bool,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    let req: QueueRequest = from_value(value)?;
    let spec = req.validate(name)?;
    let envs = app.store.compute_envs().await?;
    let known: Vec<&str> = envs.iter().map(|e| e.spec.name.as_str()).collect();
    check_queue_envs(&spec, &known)?;
    if must_be_new && find_queue(app, name).await.is_ok() {
        return Err(ApiError {
            field: Some("name".into()),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("queue `{name}` already exists (PUT replaces it)"),
            )
        });
    }
    let created = app
        .store
        .put_queue(&spec, SOURCE_API, trestle_service::now_ms())
        .await?;
    changed(app).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(queue_view(find_queue(app, name).await?))))
}

/// `POST /api/v1/queues` (admins).
pub async fn create_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    access::check(&p, Action::ComputeManage, Resource::None, "")?;
    let v = json_body(&body)?;
    let name = name_of(&v)?;
    store_queue(&app, &name, v, true).await
}

/// `PUT /api/v1/queues/{name}` (admins): creates or replaces; a new
/// priority applies to the queue's waiting jobs at once.
pub async fn put_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    access::check(&p, Action::ComputeManage, Resource::None, "")?;
    check_name("name", &name)?;
    store_queue(&app, &name, json_body(&body)?, false).await
}

/// `DELETE /api/v1/queues/{name}` (admins): its jobs stay, served by every
/// CE at queue priority 0.
pub async fn delete_queue(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    access::check(&p, Action::ComputeManage, Resource::None, "")?;
    if !app.store.delete_queue(&name).await? {
        return Err(ApiError::not_found(format!("queue `{name}`")));
    }
    changed(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/leaders`: which server runs each cluster-wide loop.
pub async fn leaders(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<LeaderView>>> {
    access::check(&p, Action::ComputeRead, Resource::None, "")?;
    let rows = app.store.leaders(trestle_service::now_ms()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| LeaderView {
                live: r.expires_at > r.now,
                name: r.name,
                holder: r.holder,
                acquired_at: r.acquired_at,
                expires_at: r.expires_at,
            })
            .collect(),
    ))
}
