//! The Trestle server: the REST API under `/api/v1`, health and metrics,
//! the background loops (lease reaper, dependency resolver, autoscaler,
//! ...; with several servers each runs on the holder of its leader lease)
//! and the compute environments' providers. The binary composes it; tests
//! start it for real.

pub mod access;
pub mod audit;
pub mod auth;
pub mod autoscaler;
pub mod compute;
pub mod config;
pub mod drop;
pub mod error;
pub mod leader;
pub mod loops;
pub mod metrics;
pub mod openapi;
pub mod openapi_compute;
pub mod openapi_identity;
pub mod openapi_workflows;
pub mod routes;
pub mod security;
pub mod state;
pub mod ui;
pub mod workflows;

use crate::auth::{hash_token, new_token, token_id};
use crate::config::ServerConfig;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use trestle_store::{Blobs, SqlStore, Store};

pub use config::LocalEnvConfig;

pub use trestle_core::clock::now_ms;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage could not be opened.
    #[error(transparent)]
    Store(#[from] trestle_store::StoreError),
    /// The settings contradict what is stored.
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Builds the router over a state.
pub fn router(app: AppState) -> Router {
    use axum::routing::delete;
    use routes::{audit, files, jobs, login, projects, system, tokens, users, workers};
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
        .merge(workflows::user_routes())
        .merge(routes::compute::routes())
        .route_layer(axum::middleware::from_fn(auth::require_user));
    let worker = Router::new()
        .route("/whoami", get(login::whoami))
        .route("/workers", post(workers::register))
        .route("/workers/{id}", axum::routing::delete(workers::deregister))
        .route("/workers/{id}/lease", post(workers::lease))
        .route("/workers/{id}/updates", post(workers::updates))
        .route("/jobs/{id}/inputs", get(files::list_inputs))
        .route("/jobs/{id}/inputs/{*path}", get(files::get_input))
        .route(
            "/jobs/{id}/attempts/{attempt}/outputs/{*path}",
            put(files::put_output),
        )
        .merge(workflows::worker_routes());
    let api = user
        .merge(worker)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::authenticate,
        ))
        .route("/login", post(login::login))
        .route("/openapi.json", get(system::openapi))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::audit::record,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .merge(ui::routes(app.clone()))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(app)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a request handler panicked");
    error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the request was not applied",
    )
    .into_response()
}

/// A running server.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (for embedding and tests).
    pub app: AppState,
    shutdown: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    leader_task: tokio::task::JoinHandle<()>,
    audit_task: tokio::task::JoinHandle<()>,
}

/// Opens storage, binds, and starts the API and the background loops.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, ServerError> {
    let store = SqlStore::connect(&cfg.database_url).await?;
    let blobs = Blobs::open_with(&cfg.objects_url, &cfg.objects_options)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let store = Arc::new(store) as Arc<dyn Store>;
    let (audit, audit_task) = audit::AuditWriter::start(store.clone());
    let leadership = Arc::new(leader::Leadership::new(store.clone(), cfg.leader_lease));
    let defaults = compute::LaunchDefaults {
        server_urls: if cfg.advertise_urls.is_empty() {
            vec![compute::own_url(addr)]
        } else {
            cfg.advertise_urls.clone()
        },
        program: cfg
            .worker_program
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| "trestle".into()),
        scratch_dir: cfg.scratch_dir.clone(),
    };
    compute::seed_config(&*store, &cfg).await?;
    let app = AppState {
        store,
        blobs,
        metrics: Arc::default(),
        work: Arc::new(Notify::new()),
        demand: Arc::new(Notify::new()),
        lease: cfg.lease,
        // Launched workers get credentials from the store (valid on every
        // server), minted by the autoscaler.
        internal_worker_hash: None,
        tokens: Arc::default(),
        worker_owners: Arc::default(),
        audit,
        security: Arc::new(cfg.security.clone()),
        flow: Arc::new(workflows::FlowConfig {
            queues: cfg.queues.clone(),
            local: cfg.local.as_ref().map(|l| (l.shape, l.max_vcpus)),
            wake: Arc::new(Notify::new()),
        }),
        compute: Arc::new(compute::Compute::new(defaults, leadership.clone())),
    };
    app.compute.refresh(&*app.store).await?;
    let (shutdown, rx) = watch::channel(false);
    // Loops that run once per cluster, under leader leases.
    let mut led: Vec<Arc<dyn loops::BackgroundLoop>> = vec![
        Arc::new(loops::Reaper {
            app: app.clone(),
            every: cfg.reap_interval,
            worker_timeout: cfg.worker_timeout,
        }),
        Arc::new(audit::Retention { app: app.clone() }),
        Arc::new(workflows::Resolver {
            app: app.clone(),
            every: std::time::Duration::from_secs(1),
        }),
        Arc::new(autoscaler::Autoscaler::new(
            app.clone(),
            cfg.autoscale_interval,
        )),
    ];
    if let Some(after) = cfg.security.disable_unused_after {
        led.push(Arc::new(audit::UnusedPolicy {
            app: app.clone(),
            after,
        }));
    }
    for l in &led {
        leadership.register(l.name());
    }
    leadership.renew().await;
    let mut loops: Vec<tokio::task::JoinHandle<()>> = led
        .into_iter()
        .map(|l| loops::spawn_led(l, leadership.clone(), rx.clone()))
        .collect();
    // Loops every server runs.
    loops.push(loops::spawn(
        Arc::new(compute::TopologyRefresh { app: app.clone() }),
        rx.clone(),
    ));
    loops.push(loops::spawn(
        ui::dashboard::sampler(app.clone()),
        rx.clone(),
    ));
    for q in &cfg.queues {
        loops.extend(drop::spawn(app.clone(), q.clone(), rx.clone()));
    }
    let leader_task = leadership.clone().spawn(rx.clone());
    let router = router(app.clone());
    let mut http_rx = rx;
    // Small request/response pairs (leases, reports) must not wait for
    // Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let http = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = http_rx.wait_for(|v| *v).await;
        })
        .await
    });
    tracing::info!(%addr, holder = %leadership.holder(), "server listening");
    Ok(RunningServer {
        addr,
        app,
        shutdown,
        http,
        loops,
        leader_task,
        audit_task,
    })
}

impl RunningServer {
    /// On first start (no admin user yet), creates the bootstrap admin user
    /// `admin`, a manager of the `default` project, with an ordinary
    /// admin token, and returns the token.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<String>, ServerError> {
        let token = new_token();
        let rec = trestle_store::NewTokenRecord {
            id: token_id(&token),
            name: "admin (bootstrap)".into(),
            hash: hash_token(&token),
            user: Some("admin".into()),
            kind: trestle_core::identity::TokenKind::User,
            scope: trestle_core::identity::authz::Scope::Full,
            expires_at: None,
        };
        let created = self
            .app
            .store
            .bootstrap_admin("admin", &rec, now_ms())
            .await?;
        Ok(created.then_some(token))
    }

    /// Stops cleanly: local workers hand their jobs back first (while the
    /// API still answers them), then the loops and the API stop.
    pub async fn shutdown(self) {
        self.app
            .compute
            .shutdown_local(std::time::Duration::from_secs(15))
            .await;
        let _ = self.shutdown.send(true);
        for l in self.loops {
            let _ = l.await;
        }
        // Another server takes the loops over at once.
        let _ = self.leader_task.await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.http).await;
        // Every request answered has its audit record stored.
        self.app.audit.flush().await;
        self.audit_task.abort();
    }
}
