//! The notification outbox, a leader-held loop: it routes both event
//! logs by cursor (job events as written on the batch hot path, other
//! events from `notify_events`) into items per target, in one transaction
//! with the cursor; turns each target's waiting items into messages
//! (digests for runs of one type; not before its rate limit allows, and
//! not while an earlier message to the same user waits for a retry, so
//! order holds); and sends the messages that are due, retrying with
//! backoff and jitter until they are delivered or dead. Everything it
//! knows is in the store, so a restart or a new leader carries on where
//! it stopped. Listing and retrying deliveries are here too.

use crate::access;
use crate::error::{ServiceError, ServiceResult};
use crate::events::horizon;
use crate::loops::BackgroundLoop;
use crate::notify::{delivery_id, send_now};
use crate::principal::Principal;
use crate::state::Service;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use trestle_core::api::notify::DeliveryView;
use trestle_core::identity::authz::{Action, Resource};
use trestle_core::notify::backoff::Retry;
use trestle_core::notify::batch::{Item, may_form, plan};
use trestle_core::notify::event::Event;
use trestle_core::notify::route::{RoutedRule, RoutedSubscription, Routing, route};
use trestle_store::notify::{
    AttemptOutcome, DeliveryFilter, DeliveryRecord, DeliveryState, EVENT_SOURCE, JOB_SOURCE,
    NewDelivery, NewItem, TargetRecord,
};

/// Events read from a log per round.
const PAGE: u32 = 1000;
/// How long a missing event id is waited for (PostgreSQL hands out ids
/// before commit; see [`crate::events`]).
const GAP_WAIT: Duration = Duration::from_secs(2);
/// Messages sent at once at most.
const SEND_BATCH: u32 = 64;

/// The loop.
pub struct Outbox {
    /// Shared state.
    pub app: Service,
    holes: Mutex<HashMap<&'static str, (i64, Instant)>>,
    last_sent: Mutex<HashMap<i64, Instant>>,
}

impl Outbox {
    /// The outbox loop over `app`.
    pub fn new(app: Service) -> Outbox {
        Outbox {
            app,
            holes: Mutex::default(),
            last_sent: Mutex::default(),
        }
    }

    /// Everything routing needs, from the stored rules and subscriptions.
    async fn routing(&self, targets: &[TargetRecord]) -> ServiceResult<Routing> {
        let by_name: HashMap<&str, &TargetRecord> =
            targets.iter().map(|t| (t.name.as_str(), t)).collect();
        let rules = self
            .app
            .store
            .rules()
            .await?
            .into_iter()
            .map(|r| RoutedRule {
                events: r.rule.events,
                project: r.rule.project,
                targets: r
                    .rule
                    .targets
                    .iter()
                    .filter_map(|n| by_name.get(n.as_str()).map(|t| t.id))
                    .collect(),
            })
            .collect();
        let subscriptions = self
            .app
            .store
            .subscriptions(None)
            .await?
            .into_iter()
            .filter_map(|s| {
                let target = match &s.sub.target {
                    // A target deleted since: nothing to send to.
                    Some(n) => Some(by_name.get(n.as_str())?.id),
                    None => None,
                };
                Some(RoutedSubscription {
                    user: s.sub.user,
                    events: s.sub.events,
                    target,
                    job: s.sub.job,
                    mode: s.sub.mode,
                })
            })
            .collect();
        let personal_email = by_name
            .get(self.app.notify.settings.personal_email_target.as_str())
            .filter(|t| t.kind == trestle_core::notify::target::TargetKind::Email)
            .map(|t| t.id);
        Ok(Routing {
            rules,
            subscriptions,
            personal_email,
        })
    }

    /// Routes the new events of one log; true when it moved.
    async fn route_log(&self, source: &'static str, routing: &Routing) -> ServiceResult<bool> {
        let store = &self.app.store;
        let cursor = store.notify_cursor(source).await?;
        let rows: Vec<(i64, Option<Event>)> = if source == JOB_SOURCE {
            store.job_notices(cursor, PAGE).await?
        } else {
            store
                .other_events(cursor, PAGE)
                .await?
                .into_iter()
                .map(|(i, e)| (i, Some(e)))
                .collect()
        };
        let ids: Vec<i64> = rows.iter().map(|(i, _)| *i).collect();
        let hole = self
            .holes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .copied();
        let (h, hole) = horizon(cursor, &ids, hole, Instant::now(), GAP_WAIT);
        {
            let mut holes = self.holes.lock().unwrap_or_else(|p| p.into_inner());
            match hole {
                Some(x) => holes.insert(source, x),
                None => holes.remove(source),
            };
        }
        if h <= cursor {
            return Ok(false);
        }
        let mut items = Vec::new();
        for (_, e) in rows.iter().filter(|(i, _)| *i <= h) {
            let Some(e) = e else { continue };
            for d in route(e, routing) {
                items.push(NewItem {
                    target_id: d.target,
                    user: d.user,
                    event: e.clone(),
                });
            }
        }
        let moved = store
            .route_events(source, cursor, h, &items, crate::now_ms())
            .await?;
        Ok(moved)
    }

    /// Makes messages of the items waiting for each target.
    async fn form(&self, targets: &HashMap<i64, TargetRecord>) -> ServiceResult<()> {
        let now = crate::now_ms();
        let max = self.app.notify.settings.max_per_message;
        for tid in self.app.store.targets_with_waiting().await? {
            let Some(t) = targets.get(&tid) else { continue };
            if !may_form(now, t.last_formed_at, t.config.min_interval_ms, false) {
                continue;
            }
            let held: HashSet<Option<String>> = self
                .app
                .store
                .pending_users(tid)
                .await?
                .into_iter()
                .collect();
            let items: Vec<Item> = self
                .app
                .store
                .waiting_items(tid, 10 * max as u32)
                .await?
                .into_iter()
                .filter(|i| !held.contains(&i.user))
                .map(|i| Item {
                    id: i.id,
                    user: i.user,
                    kind: i.kind,
                })
                .collect();
            if items.is_empty() {
                continue;
            }
            let list: Vec<NewDelivery> = plan(&items, max)
                .into_iter()
                .map(|m| NewDelivery {
                    id: delivery_id(),
                    user: m.user,
                    kind: m.kind,
                    items: m.items,
                })
                .collect();
            self.app.store.form_deliveries(tid, &list, now).await?;
        }
        Ok(())
    }

    /// Attempts one delivery and records how it went.
    async fn attempt(&self, d: DeliveryRecord, t: Option<TargetRecord>) -> ServiceResult<bool> {
        let now = crate::now_ms();
        let settings = &self.app.notify.settings;
        let outcome = match t {
            None => AttemptOutcome::Dead {
                error: "the target was deleted".into(),
            },
            Some(t) => {
                let events = self.app.store.delivery_events(&d.id).await?;
                match send_now(&self.app, &t, d.user.as_deref(), &d.id, &events).await {
                    Ok(()) => AttemptOutcome::Delivered,
                    Err(e) if e.is_permanent() => AttemptOutcome::Dead {
                        error: e.to_string(),
                    },
                    Err(e) => {
                        let jitter: f64 = rand::random();
                        match settings
                            .backoff
                            .next(d.attempts + 1, d.created_at, now, jitter)
                        {
                            Retry::At(at) => AttemptOutcome::Retry {
                                at,
                                error: e.to_string(),
                            },
                            Retry::Dead => AttemptOutcome::Dead {
                                error: e.to_string(),
                            },
                        }
                    }
                }
            }
        };
        if let AttemptOutcome::Dead { error } = &outcome {
            tracing::warn!(target: "trestle::notify", id = %d.id, target = %d.target, %error, "delivery dead-lettered");
        }
        let delivered = outcome == AttemptOutcome::Delivered;
        self.app.store.finish_attempt(&d.id, &outcome, now).await?;
        Ok(delivered)
    }

    /// Sends what is due, one message per target at a time within its
    /// rate limit; returns how many were delivered.
    async fn send(&self, targets: &HashMap<i64, TargetRecord>) -> ServiceResult<usize> {
        let due = self
            .app
            .store
            .due_deliveries(crate::now_ms(), SEND_BATCH)
            .await?;
        let mut seen = HashSet::new();
        let mut batch = Vec::new();
        {
            let mut last = self.last_sent.lock().unwrap_or_else(|p| p.into_inner());
            for d in due {
                let t = targets.get(&d.target_id).cloned();
                let interval = t.as_ref().map_or(0, |t| t.config.min_interval_ms.max(0));
                if interval > 0 {
                    if !seen.insert(d.target_id) {
                        continue;
                    }
                    let wait = Duration::from_millis(interval as u64);
                    if last.get(&d.target_id).is_some_and(|at| at.elapsed() < wait) {
                        continue;
                    }
                    last.insert(d.target_id, Instant::now());
                }
                batch.push((d, t));
            }
        }
        let results =
            futures::future::join_all(batch.into_iter().map(|(d, t)| self.attempt(d, t))).await;
        let mut n = 0;
        for r in results {
            if r? {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait]
impl BackgroundLoop for Outbox {
    fn name(&self) -> &'static str {
        "notify-outbox"
    }
    fn interval(&self) -> Duration {
        self.app.notify.settings.tick
    }
    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.app.notify.wake.clone())
    }
    fn min_gap(&self) -> Duration {
        Duration::from_millis(20)
    }
    async fn tick(&self) -> ServiceResult<()> {
        let list = self.app.store.targets().await?;
        let routing = self.routing(&list).await?;
        for source in [JOB_SOURCE, EVENT_SOURCE] {
            // Several pages when there is a backlog, not forever.
            for _ in 0..10 {
                if !self.route_log(source, &routing).await? {
                    break;
                }
            }
        }
        let targets: HashMap<i64, TargetRecord> = list.into_iter().map(|t| (t.id, t)).collect();
        self.form(&targets).await?;
        for _ in 0..10 {
            if self.send(&targets).await? == 0 {
                break;
            }
        }
        Ok(())
    }
}

fn delivery_view(d: &DeliveryRecord) -> DeliveryView {
    DeliveryView {
        id: d.id.clone(),
        target: d.target.clone(),
        user: d.user.clone(),
        kind: d.kind.as_str().into(),
        events: d.events,
        state: d.state.as_str().into(),
        attempts: d.attempts,
        next_at: d.next_at,
        last_error: d.last_error.clone(),
        created_at: d.created_at,
        sent_at: d.sent_at,
    }
}

/// `GET /api/v1/notify/deliveries?state=&target=&before=&limit=`: admins
/// see every delivery, others those for them or to their targets.
pub async fn deliveries(
    app: &Service,
    p: &Principal,
    q: &HashMap<String, String>,
) -> ServiceResult<Vec<DeliveryView>> {
    let mut f = DeliveryFilter {
        limit: 100,
        ..Default::default()
    };
    for (k, v) in q {
        match k.as_str() {
            "state" => {
                f.state = Some(DeliveryState::parse(v).ok_or_else(|| {
                    ServiceError::bad(
                        "invalid-state",
                        "state",
                        format!("`{v}` is not pending, delivered or dead"),
                    )
                })?)
            }
            "target" => {
                let t = crate::notify::target(app, p, v, Action::NotifyTargetRead)
                    .await
                    .map_err(|e| e.in_field("target"))?;
                f.target_id = Some(t.id);
            }
            "before" | "limit" => {
                let n: i64 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ServiceError::bad(
                        "invalid-number",
                        k,
                        format!("`{v}` is not a positive number"),
                    )
                })?;
                if k == "before" {
                    f.before = Some(n);
                } else {
                    f.limit = n.min(500) as u32;
                }
            }
            other => {
                return Err(ServiceError::bad(
                    "unknown-parameter",
                    other,
                    format!("unknown query parameter `{other}`"),
                ));
            }
        }
    }
    if !p.is_admin() {
        f.user = Some(p.user_name().unwrap_or("").to_string());
    }
    Ok(app
        .store
        .deliveries(&f)
        .await?
        .iter()
        .map(delivery_view)
        .collect())
}

/// A delivery `p` may see: theirs, to a target of theirs, or (admins) any.
async fn visible(app: &Service, p: &Principal, id: &str) -> ServiceResult<DeliveryRecord> {
    let what = format!("delivery `{id}`");
    let d = app
        .store
        .delivery(id)
        .await?
        .ok_or_else(|| ServiceError::not_found(&what))?;
    let owner = app
        .store
        .targets()
        .await?
        .into_iter()
        .find(|t| t.id == d.target_id)
        .and_then(|t| t.owner);
    let mine = p.user_name().is_some() && d.user.as_deref() == p.user_name();
    let resource_owner = if mine {
        d.user.as_deref()
    } else {
        owner.as_deref()
    };
    access::check(
        p,
        Action::NotifyTargetRead,
        Resource::NotifyTarget {
            owner: resource_owner,
        },
        &what,
    )?;
    Ok(d)
}

/// `GET /api/v1/notify/deliveries/{id}`.
pub async fn delivery(app: &Service, p: &Principal, id: &str) -> ServiceResult<DeliveryView> {
    Ok(delivery_view(&visible(app, p, id).await?))
}

/// `POST /api/v1/notify/deliveries/{id}/retry`: a dead letter is tried
/// again (with a new give-up period).
pub async fn retry(app: &Service, p: &Principal, id: &str) -> ServiceResult<DeliveryView> {
    let d = visible(app, p, id).await?;
    if p.user()
        .is_some_and(|u| u.scope == trestle_core::identity::authz::Scope::ReadOnly)
    {
        return Err(ServiceError::forbidden("this token is read-only"));
    }
    if d.state != DeliveryState::Dead {
        return Err(ServiceError::new(
            crate::error::ErrorKind::Conflict,
            "not-dead",
            format!("delivery `{id}` is {}, not dead", d.state.as_str()),
        ));
    }
    app.store.retry_delivery(id, crate::now_ms()).await?;
    app.notify.wake.notify_one();
    Ok(delivery_view(&app.store.delivery(id).await?.ok_or_else(
        || ServiceError::not_found(format!("delivery `{id}`")),
    )?))
}
