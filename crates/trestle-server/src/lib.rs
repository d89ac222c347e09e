//! The Trestle server: composition only. It reads the typed configuration,
//! opens storage, builds the service state ([`trestle_service::Service`]),
//! mounts the REST API (`trestle-api`) and the portal (`trestle-portal`),
//! and starts the background loops (with several servers, each
//! cluster-wide loop runs on the holder of its leader lease). The binary
//! composes it; tests start it for real.

pub mod config;

use crate::config::ServerConfig;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use trestle_service::principal::{hash_token, new_token, token_id};
use trestle_service::{Service, audit, autoscaler, compute, drop, leader, loops, workflows};
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

/// Builds the router over a state: the REST API, the portal, and what
/// wraps them both (the audit record of portal requests, the JSON
/// fallbacks, the body limit, the panic guard), with the workers' tunnels
/// to this server available to every handler (an `Extension`).
pub fn router(
    app: Service,
    samples: Arc<trestle_portal::dashboard::Samples>,
    tunnels: trestle_proxy::Tunnels,
) -> Router {
    use trestle_api::routes::system;
    let portal = trestle_portal::routes(samples).layer(axum::middleware::from_fn_with_state(
        app.clone(),
        trestle_api::audit::record,
    ));
    tunnels.set_activity(Arc::new(trestle_api::workspace_proxy::Activity(
        app.clone(),
    )));
    trestle_api::router(app.clone())
        .merge(portal)
        .merge(trestle_api::workspace_proxy::routes())
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(trestle_api::ops::MAX_BODY))
        // A request for a workspace's own origin never reaches the API or
        // the portal.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            trestle_api::workspace_proxy::origin_gate,
        ))
        .layer(axum::Extension(tunnels))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(app)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a request handler panicked");
    trestle_api::error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the request was not applied",
    )
    .into_response()
}

/// The warning for a portal served over plain HTTP on an address other
/// machines reach, with no word of HTTPS in front of it (no trusted proxy
/// and no `https://` public URL): passwords and session cookies would
/// cross the network in clear, and the cookies are not `Secure`.
pub fn plain_http_warning(
    addr: SocketAddr,
    security: &trestle_service::security::SecurityConfig,
) -> Option<String> {
    let https_in_front = !security.trusted_proxies.is_empty()
        || security
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
    (!addr.ip().is_loopback() && !https_in_front).then(|| {
        format!(
            "the portal and the API are served over plain HTTP on {addr}, which other machines reach: \
             passwords and session cookies cross the network in clear (the cookies are not Secure). \
             Put a TLS proxy in front and list it in security.trusted_proxies (its \
             X-Forwarded-Proto: https is then believed), or set security.public_url to its https:// address"
        )
    })
}

/// A running server.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Shared state (for embedding and tests).
    pub app: Service,
    /// The workers' workspace tunnels to this server.
    pub tunnels: trestle_proxy::Tunnels,
    shutdown: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    loops: Vec<tokio::task::JoinHandle<()>>,
    leader_task: tokio::task::JoinHandle<()>,
    audit_task: tokio::task::JoinHandle<()>,
}

/// Opens storage, binds, and starts the API and the background loops.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, ServerError> {
    // Before anything is opened: an unreachable issuer is a bad setting.
    let oidc = trestle_service::oidc::discover(&cfg.oidc)
        .await
        .map_err(ServerError::Config)?;
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
    config::seed_config(&*store, &cfg).await?;
    if let Some(dir) = &cfg.identity.ldap {
        dir.check()
            .await
            .map_err(|e| ServerError::Config(format!("{}: {e}", e.field())))?;
    }
    let app = Service {
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
        versions: Arc::default(),
        audit,
        security: Arc::new(cfg.security.clone()),
        uploads: cfg.uploads,
        accounts: Arc::default(),
        identity: Arc::new(cfg.identity.clone()),
        oidc: Arc::new(oidc),
        flow: Arc::new(workflows::FlowConfig {
            queues: cfg.queues.clone(),
            local: cfg.local.as_ref().map(|l| (l.shape, l.max_vcpus)),
            wake: Arc::new(Notify::new()),
            isolation: cfg.isolation.clone(),
        }),
        compute: Arc::new(compute::Compute::new(defaults, leadership.clone())),
        notify: Arc::new(trestle_service::notify::NotifyState::new(
            config::keyring(&cfg.notify)?,
            trestle_notify::Sender::new(cfg.notify.sender.clone()),
            cfg.notify.settings.clone(),
        )),
        workspaces: Arc::new(cfg.workspaces.clone()),
        access: Arc::default(),
        costs: Arc::new(cfg.costs.clone()),
        costs_gate: Arc::default(),
        alarms: Arc::new(trestle_service::alarms::Alarms::new(cfg.alarms.clone())),
    };
    app.compute.refresh(&*app.store).await?;
    // The shipped workspace types, imported not approved.
    trestle_service::workspaces::import_shipped(&app)
        .await
        .map_err(|e| ServerError::Config(format!("importing the shipped workspace types: {e}")))?;
    app.store.set_log_limits(app.flow.log_limits());
    let (shutdown, rx) = watch::channel(false);
    let samples = Arc::new(trestle_portal::dashboard::Samples::default());
    // Loops that run once per cluster, under leader leases.
    let mut led: Vec<Arc<dyn loops::BackgroundLoop>> = vec![
        Arc::new(loops::Reaper {
            app: app.clone(),
            every: cfg.reap_interval,
            worker_timeout: cfg.worker_timeout,
        }),
        Arc::new(trestle_service::audit_queries::Retention { app: app.clone() }),
        Arc::new(trestle_service::workspace_sessions::WorkspaceLoop {
            app: app.clone(),
            every: std::time::Duration::from_secs(1),
        }),
        Arc::new(workflows::Resolver {
            app: app.clone(),
            every: std::time::Duration::from_secs(1),
        }),
        Arc::new(autoscaler::Autoscaler::new(
            app.clone(),
            cfg.autoscale_interval,
        )),
        Arc::new(trestle_service::notify_outbox::Outbox::new(app.clone())),
        Arc::new(trestle_service::metering::Meter::new(app.clone())),
        Arc::new(trestle_service::budgets::BudgetWatch { app: app.clone() }),
        Arc::new(trestle_service::alarms::AlarmLoop { app: app.clone() }),
    ];
    if let Some(after) = cfg.security.disable_unused_after {
        led.push(Arc::new(trestle_service::audit_queries::UnusedPolicy {
            app: app.clone(),
            after,
        }));
    }
    if let Some(dir) = &cfg.identity.ldap {
        led.push(Arc::new(trestle_service::ldap::LdapSync {
            app: app.clone(),
            every: dir.config().sync_interval,
        }));
    }
    for l in &led {
        leadership.register(l.name());
    }
    // Drop-folder watchers: on every server, submitting under a lease each.
    let drops: Vec<_> = cfg
        .queues
        .iter()
        .filter_map(|q| drop::spawn(app.clone(), q.clone(), leadership.clone(), rx.clone()))
        .collect();
    leadership.renew().await;
    let mut loops: Vec<tokio::task::JoinHandle<()>> = led
        .into_iter()
        .map(|l| loops::spawn_led(l, leadership.clone(), rx.clone()))
        .collect();
    loops.extend(drops);
    // Loops every server runs.
    loops.push(loops::spawn(
        Arc::new(loops::TopologyRefresh { app: app.clone() }),
        rx.clone(),
    ));
    loops.push(loops::spawn(
        Arc::new(trestle_service::budgets::EscrowRefresh { app: app.clone() }),
        rx.clone(),
    ));
    loops.push(loops::spawn(
        Arc::new(trestle_service::workspace_access::ActivityFlush { app: app.clone() }),
        rx.clone(),
    ));
    loops.push(loops::spawn(
        trestle_portal::dashboard::sampler(app.clone(), samples.clone()),
        rx.clone(),
    ));
    let leader_task = leadership.clone().spawn(rx.clone());
    let tunnels = trestle_proxy::Tunnels::new();
    let router = router(app.clone(), samples, tunnels.clone());
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
    if let Some(w) = plain_http_warning(addr, &cfg.security) {
        tracing::warn!("{w}");
    }
    Ok(RunningServer {
        addr,
        app,
        tunnels,
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

    /// Stops cleanly: from the first moment nothing more is launched (see
    /// [`trestle_service::compute::Compute::begin_shutdown`]); local workers
    /// hand their jobs back (while the API still answers them), then the
    /// loops and the API stop.
    pub async fn shutdown(self) {
        self.app.compute.begin_shutdown();
        self.app
            .compute
            .shutdown_local(std::time::Duration::from_secs(15))
            .await;
        let _ = self.shutdown.send(true);
        // Upgraded connections outlive graceful shutdown: end them, and
        // the workers reconnect to another server (or to this one, back).
        self.tunnels.close_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_service::security::SecurityConfig;

    #[test]
    fn plain_http_on_other_machines_is_warned_about() {
        let mut c = SecurityConfig::default();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(plain_http_warning(local, &c), None);
        assert_eq!(plain_http_warning("[::1]:8080".parse().unwrap(), &c), None);
        let w = plain_http_warning(any, &c).expect("a warning");
        assert!(
            w.contains("plain HTTP") && w.contains("0.0.0.0:8080"),
            "{w}"
        );
        c.public_url = Some("http://trestle.example".into());
        assert!(plain_http_warning(any, &c).is_some());
        c.public_url = Some("https://trestle.example".into());
        assert_eq!(plain_http_warning(any, &c), None);
        c.public_url = None;
        c.trusted_proxies = vec![trestle_core::audit::Cidr::parse("p", "10.0.0.5").unwrap()];
        assert_eq!(plain_http_warning(any, &c), None);
    }
}
