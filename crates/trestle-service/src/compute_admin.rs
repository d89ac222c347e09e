//! Administration of compute environments and queues, and which server
//! leads each cluster-wide loop: everyone may look, admins change. Every
//! change is stored in the database, so every server of a cluster sees it
//! within a second (this one at once: its topology is refreshed and the
//! autoscaler woken). The runtime topology itself is [`crate::compute`].

use crate::access::check;
use crate::error::{ErrorKind, Parsed, ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::state::Service;
use trestle_core::api::compute::{ComputeEnvView, LeaderView, QueueView};
use trestle_core::compute::{
    ComputeEnvRequest, QueueRequest, check_name, check_queue_envs, from_value,
};
use trestle_core::identity::authz::{Action, Resource};
use trestle_store::scale::SOURCE_API;
use trestle_store::{ComputeEnvRecord, QueueRecord};

/// What storing a CE or queue did: created it, or replaced its settings.
#[derive(Debug, Clone)]
pub struct Stored<T> {
    /// True when it did not exist before.
    pub created: bool,
    /// It, as stored.
    pub view: T,
}

/// The `name` of a request body.
fn name_of(v: &serde_json::Value) -> ServiceResult<String> {
    match v.get("name") {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ServiceError::bad(
            "invalid-field",
            "name",
            "must be a string",
        )),
        None => Err(ServiceError::bad(
            "missing-field",
            "name",
            "`name` is required",
        )),
    }
}

/// A `conflict` about `name`, for creating what exists.
fn exists(message: String) -> ServiceError {
    ServiceError {
        field: Some("name".into()),
        ..ServiceError::new(ErrorKind::Conflict, "conflict", message)
    }
}

/// A CE with its registered workers and, with `events` > 0, that many of
/// its latest events.
async fn env_view(
    app: &Service,
    rec: ComputeEnvRecord,
    events: u32,
) -> ServiceResult<ComputeEnvView> {
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

/// After a change: this server's topology is refreshed and the autoscaler
/// woken.
async fn changed(app: &Service) -> ServiceResult<()> {
    app.compute.refresh(&*app.store).await?;
    app.demand.notify_one();
    Ok(())
}

async fn find_env(app: &Service, name: &str) -> ServiceResult<ComputeEnvRecord> {
    app.store
        .compute_envs()
        .await?
        .into_iter()
        .find(|e| e.spec.name == name)
        .ok_or_else(|| ServiceError::not_found(format!("compute environment `{name}`")))
}

/// Every CE with its status and registered workers.
pub async fn list_envs(app: &Service, p: &Principal) -> ServiceResult<Vec<ComputeEnvView>> {
    check(p, Action::ComputeRead, Resource::None, "")?;
    let mut out = Vec::new();
    for rec in app.store.compute_envs().await? {
        out.push(env_view(app, rec, 0).await?);
    }
    Ok(out)
}

/// One CE with its recent events.
pub async fn show_env(app: &Service, p: &Principal, name: &str) -> ServiceResult<ComputeEnvView> {
    check(p, Action::ComputeRead, Resource::None, "")?;
    let rec = find_env(app, name).await?;
    env_view(app, rec, 50).await
}

async fn store_env(
    app: &Service,
    name: &str,
    value: serde_json::Value,
    must_be_new: bool,
) -> ServiceResult<Stored<ComputeEnvView>> {
    let req: ComputeEnvRequest = from_value(value)?;
    let spec = req.validate(name)?;
    if must_be_new && find_env(app, name).await.is_ok() {
        return Err(exists(format!(
            "compute environment `{name}` already exists (PUT replaces it)"
        )));
    }
    let created = app
        .store
        .put_compute_env(&spec, SOURCE_API, crate::now_ms())
        .await?;
    let what = if created {
        "created"
    } else {
        "settings replaced"
    };
    app.store
        .add_compute_env_event(name, "updated", what, crate::now_ms())
        .await?;
    changed(app).await?;
    let rec = find_env(app, name).await?;
    Ok(Stored {
        created,
        view: env_view(app, rec, 0).await?,
    })
}

/// Creates a CE named by the body's `name` (a conflict if it exists); a
/// malformed body is reported only to admins.
pub async fn create_env(
    app: &Service,
    p: &Principal,
    body: Parsed<serde_json::Value>,
) -> ServiceResult<Stored<ComputeEnvView>> {
    check(p, Action::ComputeManage, Resource::None, "")?;
    let v = body?;
    let name = name_of(&v)?;
    store_env(app, &name, v, true).await
}

/// Creates or replaces CE `name`; a malformed body is reported only to
/// admins.
pub async fn put_env(
    app: &Service,
    p: &Principal,
    name: &str,
    body: Parsed<serde_json::Value>,
) -> ServiceResult<Stored<ComputeEnvView>> {
    check(p, Action::ComputeManage, Resource::None, "")?;
    check_name("name", name)?;
    store_env(app, name, body?, false).await
}

/// Deletes CE `name` (a conflict while a queue lists it). Its running
/// workers finish and exit when idle.
pub async fn delete_env(app: &Service, p: &Principal, name: &str) -> ServiceResult<()> {
    check(p, Action::ComputeManage, Resource::None, "")?;
    if !app.store.delete_compute_env(name).await? {
        return Err(ServiceError::not_found(format!(
            "compute environment `{name}`"
        )));
    }
    changed(app).await
}

/// Every queue a job can name: those declared (through the API or in
/// `[queues.NAME]` with scheduling settings), then `default` and the other
/// `trestle.toml` queues, which serve every compute environment at
/// priority 0 until declared (source `built-in`).
pub async fn list_queues(app: &Service, p: &Principal) -> ServiceResult<Vec<QueueView>> {
    check(p, Action::ComputeRead, Resource::None, "")?;
    let mut out: Vec<QueueView> = app
        .store
        .queue_records()
        .await?
        .into_iter()
        .map(queue_view)
        .collect();
    let implicit = std::iter::once(trestle_core::batch::spec::DEFAULT_QUEUE.to_string())
        .chain(app.flow.queues.iter().map(|q| q.name.clone()));
    for name in implicit {
        if !out.iter().any(|q| q.spec.name == name) {
            out.push(QueueView {
                spec: trestle_core::compute::QueueSpec {
                    name,
                    priority: 0,
                    compute_environments: Vec::new(),
                },
                source: "built-in".into(),
                updated_at: 0,
            });
        }
    }
    Ok(out)
}

async fn find_queue(app: &Service, name: &str) -> ServiceResult<QueueRecord> {
    app.store
        .queue_records()
        .await?
        .into_iter()
        .find(|q| q.spec.name == name)
        .ok_or_else(|| ServiceError::not_found(format!("queue `{name}`")))
}

/// One queue.
pub async fn show_queue(app: &Service, p: &Principal, name: &str) -> ServiceResult<QueueView> {
    check(p, Action::ComputeRead, Resource::None, "")?;
    Ok(queue_view(find_queue(app, name).await?))
}

async fn store_queue(
    app: &Service,
    name: &str,
    value: serde_json::Value,
    must_be_new: bool,
) -> ServiceResult<Stored<QueueView>> {
    let req: QueueRequest = from_value(value)?;
    let spec = req.validate(name)?;
    let envs = app.store.compute_envs().await?;
    let known: Vec<&str> = envs.iter().map(|e| e.spec.name.as_str()).collect();
    check_queue_envs(&spec, &known)?;
    if must_be_new && find_queue(app, name).await.is_ok() {
        return Err(exists(format!(
            "queue `{name}` already exists (PUT replaces it)"
        )));
    }
    let created = app
        .store
        .put_queue(&spec, SOURCE_API, crate::now_ms())
        .await?;
    changed(app).await?;
    Ok(Stored {
        created,
        view: queue_view(find_queue(app, name).await?),
    })
}

/// Creates a queue named by the body's `name` (a conflict if it exists);
/// a malformed body is reported only to admins.
pub async fn create_queue(
    app: &Service,
    p: &Principal,
    body: Parsed<serde_json::Value>,
) -> ServiceResult<Stored<QueueView>> {
    check(p, Action::ComputeManage, Resource::None, "")?;
    let v = body?;
    let name = name_of(&v)?;
    store_queue(app, &name, v, true).await
}

/// Creates or replaces queue `name`; a new priority applies to its
/// waiting jobs at once. A malformed body is reported only to admins.
pub async fn put_queue(
    app: &Service,
    p: &Principal,
    name: &str,
    body: Parsed<serde_json::Value>,
) -> ServiceResult<Stored<QueueView>> {
    check(p, Action::ComputeManage, Resource::None, "")?;
    check_name("name", name)?;
    store_queue(app, name, body?, false).await
}

/// Deletes queue `name`: its jobs stay, served by every CE at queue
/// priority 0.
pub async fn delete_queue(app: &Service, p: &Principal, name: &str) -> ServiceResult<()> {
    check(p, Action::ComputeManage, Resource::None, "")?;
    if !app.store.delete_queue(name).await? {
        return Err(ServiceError::not_found(format!("queue `{name}`")));
    }
    changed(app).await
}

/// Which server runs each cluster-wide loop, and whether its lease is live.
pub async fn leaders(app: &Service, p: &Principal) -> ServiceResult<Vec<LeaderView>> {
    check(p, Action::ComputeRead, Resource::None, "")?;
    let rows = app.store.leaders(crate::now_ms()).await?;
    Ok(rows
        .into_iter()
        .map(|r| LeaderView {
            live: r.expires_at > r.now,
            name: r.name,
            holder: r.holder,
            acquired_at: r.acquired_at,
            expires_at: r.expires_at,
        })
        .collect())
}
