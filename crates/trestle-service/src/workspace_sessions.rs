//! The worker's side of workspaces and the loop that follows them: the
//! hosting worker reports readiness (with the per-launch secret),
//! activity and failed saves, and saves and restores the home; the
//! [`WorkspaceLoop`] moves each workspace along as its session task
//! runs and ends ([`trestle_core::workspace::state::observe`]), and stops
//! workspaces that are idle or past their lifetime.

use crate::access;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::files::{capped, is_over, too_large};
use crate::loops::BackgroundLoop;
use crate::principal::Principal;
use crate::state::Service;
use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use std::time::Duration;
use trestle_core::api::AttemptRef;
use trestle_core::api::workspace::{SessionEvent, SessionReport};
use trestle_core::notify::event::{EventType, NewEvent};
use trestle_core::workspace::WorkspaceState;
use trestle_core::workspace::idle::{Activity, Verdict, verdict};
use trestle_core::workspace::state::{Request, Session, StopCause, observe};
use trestle_store::workspace::{WorkspaceFilter, WorkspaceRecord};

/// The notification event of workspace `w`, written with its change.
pub fn event(w: &WorkspaceRecord, kind: EventType, detail: Option<String>) -> NewEvent {
    NewEvent {
        kind,
        subject: format!("workspace:{}", w.id),
        title: format!("{} ({}) of {}", w.name, w.launch.config.name, w.owner),
        owner: Some(w.owner.clone()),
        project: w.project.clone(),
        link: Some("/ui/workspaces".into()),
        detail,
        time: crate::now_ms(),
    }
}

/// Tells the delivery loop that events were written.
pub fn wake_notify(app: &Service) {
    app.notify.wake.notify_one();
}

fn home_prefix(id: i64) -> String {
    format!("workspaces/{id}/home")
}

/// Deletes a workspace's saved home (terminate).
pub async fn delete_home(app: &Service, id: i64) {
    match app.store.ws_clear_home(id).await {
        Ok(Some(key)) => {
            if let Some(rel) = key.strip_prefix(&format!("{}/", home_prefix(id))) {
                let _ = app.blobs.delete(&home_prefix(id), rel).await;
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(workspace = id, error = %e, "could not forget a terminated workspace's home")
        }
    }
}

/// Checks that `p` is the worker holding the attempt's lease.
async fn fenced(app: &Service, p: &Principal, worker: &str, at: &AttemptRef) -> ServiceResult<()> {
    access::check_worker(app, p, worker).await?;
    if !app
        .store
        .lease_holds(at.job_id, at.attempt, &at.token, &p.token_id)
        .await?
    {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "stale-lease",
            format!(
                "attempt {} of job {} no longer holds its lease",
                at.attempt, at.job_id
            ),
        ));
    }
    Ok(())
}

async fn by_job(app: &Service, job: i64) -> ServiceResult<WorkspaceRecord> {
    app.store
        .workspace_by_job(job)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("session {job}")))
}

/// A report from the worker hosting a session.
pub async fn report(
    app: &Service,
    p: &Principal,
    worker: &str,
    r: SessionReport,
) -> ServiceResult<()> {
    fenced(app, p, worker, &r.at).await?;
    let job = r.at.job_id;
    match r.event {
        SessionEvent::Ready { secret } => {
            if secret.len() < 16 || secret.len() > 512 {
                return Err(ServiceError::bad(
                    "invalid-secret",
                    "event.secret",
                    "a per-launch secret has 16 to 512 characters",
                ));
            }
            app.store.ws_session_ready(job, &secret).await?;
            let w = by_job(app, job).await?;
            advance(app, w).await?;
        }
        SessionEvent::Activity {
            last_app,
            busy,
            last_attached,
            attached,
        } => {
            let a = Activity {
                last_app,
                app_busy: busy,
                last_attached,
                attached,
                ..Default::default()
            };
            app.store.ws_app_activity(job, &a).await?;
        }
        SessionEvent::SaveFailed { error } => {
            let error: String = error.chars().take(500).collect();
            app.store.ws_save_failed(job, &error).await?;
        }
    }
    Ok(())
}

/// Saves the home the worker sends for session `at` (a tar archive),
/// within the configuration's size limit. The new copy replaces the old
/// one only once it is whole; a failed save keeps the previous copy.
pub async fn put_home<S, E>(
    app: &Service,
    p: &Principal,
    worker: &str,
    at: AttemptRef,
    data: S,
) -> ServiceResult<u64>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    fenced(app, p, worker, &at).await?;
    let w = by_job(app, at.job_id).await?;
    if w.state == trestle_core::workspace::WorkspaceState::Terminating {
        return Err(ServiceError::new(
            ErrorKind::Conflict,
            "terminating",
            format!(
                "workspace {} is being terminated; its home is not kept",
                w.id
            ),
        ));
    }
    let cap = w.launch.config.home_limit_mib.saturating_mul(1024 * 1024);
    let rel = format!("{}-{}.tar", at.job_id, at.attempt);
    let staged = match app
        .blobs
        .stage_stream(&home_prefix(w.id), &rel, capped(data, cap))
        .await
    {
        Ok(s) => s,
        Err(e) if is_over(&e) => {
            let msg = format!(
                "the home is larger than its limit of {} MiB",
                w.launch.config.home_limit_mib
            );
            app.store.ws_save_failed(at.job_id, &msg).await?;
            return Err(too_large("home-too-large", msg));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = staged.commit().await?;
    let key = format!("{}/{rel}", home_prefix(w.id));
    if let Some(old) = app
        .store
        .ws_home_saved(at.job_id, &key, bytes, crate::now_ms())
        .await?
        && let Some(old_rel) = old.strip_prefix(&format!("{}/", home_prefix(w.id)))
    {
        let _ = app.blobs.delete(&home_prefix(w.id), old_rel).await;
    }
    Ok(bytes)
}

/// The saved home for session `at` to restore.
pub async fn get_home(
    app: &Service,
    p: &Principal,
    worker: &str,
    at: AttemptRef,
) -> ServiceResult<(u64, BoxStream<'static, trestle_store::Result<Bytes>>)> {
    fenced(app, p, worker, &at).await?;
    let w = by_job(app, at.job_id).await?;
    let key = w
        .home_key
        .ok_or_else(|| ServiceError::not_found(format!("a saved home of workspace {}", w.id)))?;
    let rel = key
        .strip_prefix(&format!("{}/", home_prefix(w.id)))
        .unwrap_or(&key)
        .to_string();
    Ok(app.blobs.get_stream(&home_prefix(w.id), &rel).await?)
}

/// Moves `w` along from what its session task is doing; returns the
/// record as stored.
pub async fn advance(app: &Service, mut w: WorkspaceRecord) -> ServiceResult<WorkspaceRecord> {
    let Some(job_id) = w.job_id else { return Ok(w) };
    let Some(job) = app.store.job(job_id).await? else {
        return Ok(w);
    };
    let last = job.attempts.last();
    let s = Session {
        job: job.state,
        reason: last.and_then(|a| a.reason),
        exit_code: last.and_then(|a| a.exit_code),
        ready: w.ready_job == Some(job_id),
        home_saved: w.home_saved_job == Some(job_id),
        save_error: w
            .save_error
            .clone()
            .filter(|_| w.save_error_job == Some(job_id)),
    };
    let Some((to, reason)) = observe(w.state, &s) else {
        return Ok(w);
    };
    let from = w.state;
    let now = crate::now_ms();
    w.state = to;
    if reason.is_some() || to != WorkspaceState::Stopped {
        w.reason = reason.or(w.reason.take().filter(|_| to == WorkspaceState::Stopped));
    }
    w.updated_at = now;
    if to == WorkspaceState::Running {
        w.reason = None;
        w.running_since = Some(now);
        w.extended_secs = 0;
        w.deadline = Some(now + (w.launch.config.max_lifetime_secs as i64) * 1000);
    }
    let kind = match to {
        WorkspaceState::Running => Some(EventType::WorkspaceReady),
        WorkspaceState::Stopped => Some(EventType::WorkspaceStopped),
        WorkspaceState::Terminated => Some(EventType::WorkspaceTerminated),
        WorkspaceState::Failed => Some(EventType::WorkspaceFailed),
        _ => None,
    };
    let ev = kind.map(|k| event(&w, k, w.reason.clone()));
    if !app.store.set_ws_lifecycle(&w, from, ev.as_ref()).await? {
        // Another server (or a user's request) moved it first.
        return app
            .store
            .workspace(w.id)
            .await?
            .ok_or_else(|| ServiceError::not_found("workspace"));
    }
    app.access.forget(w.id);
    if ev.is_some() {
        wake_notify(app);
    }
    if to == WorkspaceState::Terminated {
        delete_home(app, w.id).await;
    }
    Ok(w)
}

/// Follows every workspace with a session: moves it along as its task
/// runs and ends, and stops it when idle or past its lifetime. Runs under
/// a leader lease, so one server acts on each workspace.
pub struct WorkspaceLoop {
    /// Shared state.
    pub app: Service,
    /// Tick interval.
    pub every: Duration,
}

#[async_trait]
impl BackgroundLoop for WorkspaceLoop {
    fn name(&self) -> &'static str {
        "workspaces"
    }
    fn interval(&self) -> Duration {
        self.every
    }
    async fn tick(&self) -> ServiceResult<()> {
        let app = &self.app;
        let live = app
            .store
            .workspaces(&WorkspaceFilter {
                states: WorkspaceState::ALL
                    .into_iter()
                    .filter(|s| s.has_session())
                    .collect(),
                limit: 5000,
                ..Default::default()
            })
            .await?;
        let now = crate::now_ms();
        for w in live {
            let w = match advance(app, w).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "could not follow a workspace");
                    continue;
                }
            };
            if w.state != WorkspaceState::Running {
                continue;
            }
            let a = Activity {
                running_since: w.running_since.unwrap_or(now),
                ..w.activity
            };
            let cause = match verdict(
                now,
                &a,
                w.launch.config.idle_timeout_secs,
                w.deadline.unwrap_or(i64::MAX),
            ) {
                Verdict::Keep => continue,
                Verdict::Idle => StopCause::Idle,
                Verdict::Lifetime => StopCause::Lifetime,
            };
            if let Err(e) = crate::workspaces::change(app, w, Request::Stop, cause).await {
                tracing::warn!(error = %e, "could not stop an idle workspace");
            }
        }
        Ok(())
    }
}
