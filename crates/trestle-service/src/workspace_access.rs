//! Getting into a workspace: which worker hosts it and how the proxy
//! reaches its app, for a caller the one authorization decision lets in
//! (everyone else gets a 404, exactly as for a workspace that does not
//! exist); and the activity the proxy sees, kept in memory and written
//! to the store every few seconds rather than once per request.

use crate::error::{ServiceError, ServiceResult};
use crate::loops::BackgroundLoop;
use crate::principal::Principal;
use crate::state::Service;
use crate::workspaces::resource;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trestle_core::identity::authz::Decision;
use trestle_core::identity::authz_workspace::{WsAction, decide};
use trestle_core::workspace::WorkspaceState;
use trestle_core::workspace::idle::is_polling;
use trestle_core::workspace::kind::ActivitySource;
use trestle_core::workspace::params::{Bindings, render};
use trestle_store::workspace::WorkspaceRecord;

/// How the proxy reaches a running workspace's app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The workspace.
    pub workspace: i64,
    /// The worker hosting it (its tunnel).
    pub worker: String,
    /// The header that carries the per-launch secret to the app.
    pub secret_header: Option<(String, String)>,
    /// The prefix to strip before the app sees the path (apps not told
    /// their prefix); `None`: the app serves under `/ws/{id}/` itself.
    pub strip_prefix: Option<String>,
    /// Where the app's activity comes from (which requests are polling).
    pub activity: ActivitySource,
}

/// How long the facts about a workspace are reused between requests.
const FACTS_TTL: Duration = Duration::from_secs(2);

/// A workspace and the worker hosting it, as last read.
type Facts = Option<(WorkspaceRecord, Option<String>)>;

/// Recently read workspaces and the requests seen (per server).
#[derive(Default)]
pub struct AccessCache {
    facts: Mutex<HashMap<i64, (Instant, Facts)>>,
    seen: Mutex<HashMap<i64, i64>>,
}

impl AccessCache {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets workspace `id` (its state changed here).
    pub fn forget(&self, id: i64) {
        Self::lock(&self.facts).remove(&id);
    }
}

async fn facts(app: &Service, id: i64) -> ServiceResult<Facts> {
    if let Some((at, f)) = AccessCache::lock(&app.access.facts).get(&id)
        && at.elapsed() < FACTS_TTL
    {
        return Ok(f.clone());
    }
    let w = app.store.workspace(id).await?;
    let f = match w {
        Some(w) => {
            let worker = match (w.state, w.job_id) {
                (WorkspaceState::Running, Some(j)) => {
                    app.store.job(j).await?.and_then(|j| j.worker)
                }
                _ => None,
            };
            Some((w, worker))
        }
        None => None,
    };
    let mut cache = AccessCache::lock(&app.access.facts);
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(id, (Instant::now(), f.clone()));
    Ok(f)
}

/// Where `p` reaches workspace `id`: only a RUNNING workspace that `p`
/// may connect to; anything else is "workspace ID not found".
pub async fn target(app: &Service, p: &Principal, id: i64) -> ServiceResult<ProxyTarget> {
    let missing = || ServiceError::not_found(format!("workspace {id}"));
    let (w, worker) = facts(app, id).await?.ok_or_else(missing)?;
    if w.state == WorkspaceState::Terminated {
        return Err(missing());
    }
    if decide(
        &p.subject,
        WsAction::Connect,
        resource(p, &w, crate::now_ms()),
    ) != Decision::Allow
    {
        return Err(missing());
    }
    let (Some(worker), Some(secret)) = (
        worker,
        w.secret.as_deref().filter(|_| w.ready_job == w.job_id),
    ) else {
        return Err(ServiceError::new(
            crate::ErrorKind::Conflict,
            "not-running",
            format!("workspace {id} is {}; start it first", w.state),
        ));
    };
    let t = &w.launch.kind;
    let b = Bindings {
        secret,
        ..Default::default()
    };
    Ok(ProxyTarget {
        workspace: id,
        worker,
        secret_header: t
            .secret_header
            .as_ref()
            .map(|h| (h.name.clone(), render(&h.value, &b))),
        strip_prefix: (!t.serves_prefix()).then(|| trestle_core::workspace::session::prefix(id)),
        activity: t.activity,
    })
}

/// Where `p` reaches a port of workspace `id`: like [`target`], for its
/// owner only (a port forward reaches whatever listens on the host's
/// loopback, which is the owner's to decide).
pub async fn forward_target(app: &Service, p: &Principal, id: i64) -> ServiceResult<ProxyTarget> {
    let t = target(app, p, id).await?;
    let owner = facts(app, id).await?.map(|(w, _)| w.owner);
    if owner.as_deref() != p.user_name() {
        return Err(ServiceError::not_found(format!("workspace {id}")));
    }
    Ok(t)
}

/// Records a proxied request to workspace `id` (`path` relative to its
/// prefix) if it counts as activity.
pub fn request_seen(app: &Service, id: i64, source: ActivitySource, method: &str, path: &str) {
    if is_polling(source, method, path) {
        return;
    }
    AccessCache::lock(&app.access.seen).insert(id, crate::now_ms());
}

/// Records bytes a client sent to workspace `id` through a long-lived
/// connection (a WebSocket, a relay), for apps whose activity is their
/// traffic.
pub fn bytes_seen(app: &Service, id: i64) {
    let traffic = AccessCache::lock(&app.access.facts)
        .get(&id)
        .and_then(|(_, f)| {
            f.as_ref()
                .map(|(w, _)| w.launch.kind.activity == ActivitySource::Traffic)
        })
        .unwrap_or(false);
    if traffic {
        AccessCache::lock(&app.access.seen).insert(id, crate::now_ms());
    }
}

/// Writes the requests seen to the store every few seconds (every server
/// runs it: each sees its own requests).
pub struct ActivityFlush {
    /// Shared state.
    pub app: Service,
}

#[async_trait]
impl BackgroundLoop for ActivityFlush {
    fn name(&self) -> &'static str {
        "workspace-activity"
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(2)
    }
    async fn tick(&self) -> ServiceResult<()> {
        let seen: Vec<(i64, i64)> = AccessCache::lock(&self.app.access.seen).drain().collect();
        for (id, at) in seen {
            self.app.store.ws_request_activity(id, at).await?;
        }
        Ok(())
    }
}

/// How long a ticket from the portal's origin to a workspace's lasts.
const TICKET_MS: i64 = 60_000;
/// How long a workspace origin's cookie lasts.
pub const COOKIE_MS: i64 = 12 * 3_600_000;
/// The cookie of a workspace's own origin.
pub const WS_COOKIE: &str = "trestle_ws";

/// Opens workspace `id` for `p` on its own origin: a one-time ticket (a
/// minute) and the URL that redeems it there.
pub async fn open(app: &Service, p: &Principal, id: i64) -> ServiceResult<String> {
    let origin = app
        .workspaces
        .origin
        .clone()
        .ok_or_else(|| ServiceError::not_found("this page"))?;
    target(app, p, id).await?;
    let user = p
        .user_name()
        .ok_or_else(|| ServiceError::not_found(format!("workspace {id}")))?;
    let ticket = crate::principal::new_token();
    app.store
        .put_ws_grant(&trestle_store::Grant {
            hash: crate::principal::hash_token(&ticket),
            kind: "ticket".into(),
            workspace: id,
            user: user.to_string(),
            expires_at: crate::now_ms() + TICKET_MS,
        })
        .await?;
    Ok(format!("{}/_trestle/ticket?t={ticket}", origin.url(id)))
}

/// Redeems a ticket on workspace `id`'s origin: the cookie secret for it.
pub async fn redeem(app: &Service, id: i64, ticket: &str) -> ServiceResult<String> {
    let gone = || {
        ServiceError::unauthenticated("this link has expired or was used; open the workspace again")
    };
    let g = app
        .store
        .take_ws_ticket(&crate::principal::hash_token(ticket), crate::now_ms())
        .await?
        .filter(|g| g.workspace == id)
        .ok_or_else(gone)?;
    let secret = crate::principal::new_token();
    app.store
        .put_ws_grant(&trestle_store::Grant {
            hash: crate::principal::hash_token(&secret),
            kind: "cookie".into(),
            workspace: id,
            user: g.user,
            expires_at: crate::now_ms() + COOKIE_MS,
        })
        .await?;
    Ok(secret)
}

/// The user behind a workspace origin's cookie, for workspace `id` only.
pub async fn by_cookie(app: &Service, id: i64, secret: &str) -> ServiceResult<Principal> {
    let gone = || {
        ServiceError::unauthenticated(
            "open the workspace from the portal or with `trestle ws open`",
        )
    };
    let hash = crate::principal::hash_token(secret);
    let g = app
        .store
        .ws_cookie(&hash, crate::now_ms())
        .await?
        .filter(|g| g.workspace == id)
        .ok_or_else(gone)?;
    crate::authn::user_principal(
        app,
        &g.user,
        trestle_core::identity::authz::Scope::Full,
        "workspace-cookie".into(),
    )
    .await?
    .ok_or_else(gone)
}
