//! Notifications in SQL: [`record`] (an event, inside the caller's
//! transaction), the two event logs read by cursor, routing (items and
//! the cursor in one transaction), and in [`config`] the targets, rules
//! and subscriptions, in [`deliveries`] the outbox of messages.

mod config;
mod deliveries;

use super::{SqlStore, Tx};
use crate::notify::*;
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::notify::event::{Event, EventType, NewEvent};
use trestle_core::notify::rule::Rule;

/// Most rows one read of an event log returns.
const MAX_READ: u32 = 1000;

/// Records `e` in the transaction of the change it reports; returns its
/// id. Every domain beyond jobs calls this (job events are the rows of
/// `job_events`, written as before).
pub(crate) async fn record(tx: &mut Tx<'_>, e: &NewEvent) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO notify_events (kind, subject, title, owner, project, link, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(e.kind.as_str())
    .bind(&e.subject)
    .bind(&e.title)
    .bind(e.owner.clone())
    .bind(e.project.clone())
    .bind(e.link.clone())
    .bind(e.detail.clone())
    .bind(e.time)
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?)
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn event_type(s: &str) -> Result<EventType> {
    EventType::parse(s).ok_or_else(|| corrupt("event type", s))
}

fn job_notice(r: &AnyRow) -> Result<(i64, Option<Event>)> {
    let id: i64 = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    let Some(kind) = EventType::of_job_state(&state) else {
        return Ok((id, None));
    };
    let job: i64 = r.try_get("job_id")?;
    let name: Option<String> = r.try_get("name")?;
    let group: Option<String> = r.try_get("kind")?;
    let reason: Option<String> = r.try_get("reason")?;
    let code: Option<i64> = r.try_get("exit_code")?;
    let what = match group.as_deref() {
        Some("array") => "Array job",
        Some("pipeline") => "Pipeline",
        _ => "Job",
    };
    let title = match name.filter(|n| !n.is_empty()) {
        Some(n) => format!("{what} {job} ({n})"),
        None => format!("{what} {job}"),
    };
    let detail = match (reason, code) {
        (Some(r), Some(c)) => Some(format!("{r} (exit code {c})")),
        (Some(r), None) => Some(r),
        (None, Some(c)) if c != 0 => Some(format!("exit code {c}")),
        _ => None,
    };
    Ok((
        id,
        Some(Event {
            key: format!("job:{id}"),
            event: NewEvent {
                kind,
                subject: format!("job:{job}"),
                title,
                owner: r.try_get("owner")?,
                project: r.try_get("project")?,
                link: Some(format!("/ui/jobs/{job}")),
                detail,
                time: r.try_get("at")?,
            },
            parent: r.try_get("parent_id")?,
        }),
    ))
}

fn other_event(r: &AnyRow) -> Result<(i64, Event)> {
    let id: i64 = r.try_get("id")?;
    let kind: String = r.try_get("kind")?;
    Ok((
        id,
        Event {
            key: format!("event:{id}"),
            event: NewEvent {
                kind: event_type(&kind)?,
                subject: r.try_get("subject")?,
                title: r.try_get("title")?,
                owner: r.try_get("owner")?,
                project: r.try_get("project")?,
                link: r.try_get("link")?,
                detail: r.try_get("detail")?,
                time: r.try_get("at")?,
            },
            parent: None,
        },
    ))
}

impl SqlStore {
    async fn cursor_at(&self, source: &str) -> Result<i64> {
        Ok(
            sqlx::query("SELECT position FROM notify_cursors WHERE source = $1")
                .bind(source)
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get("position"))
                .transpose()?
                .unwrap_or(0),
        )
    }

    async fn route(
        &self,
        source: &str,
        from: i64,
        to: i64,
        items: &[NewItem],
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO notify_cursors (source, position) VALUES ($1, 0) \
             ON CONFLICT (source) DO NOTHING",
        )
        .bind(source)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE notify_cursors SET position = $3 WHERE source = $1 AND position = $2",
        )
        .bind(source)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for it in items {
            let event = serde_json::to_string(&it.event).map_err(|e| corrupt("event", e))?;
            sqlx::query(
                "INSERT INTO notify_items (target_id, user_name, kind, event, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(it.target_id)
            .bind(it.user.clone())
            .bind(it.event.event.kind.as_str())
            .bind(event)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl NotifyStore for SqlStore {
    async fn record_event(&self, e: &NewEvent) -> Result<i64> {
        let mut tx = self.write.begin().await?;
        let id = record(&mut tx, e).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn notify_cursor(&self, source: &str) -> Result<i64> {
        self.cursor_at(source).await
    }

    async fn job_notices(&self, after: i64, limit: u32) -> Result<Vec<(i64, Option<Event>)>> {
        let rows = sqlx::query(
            "SELECT e.id, e.job_id, e.parent_id, e.owner, e.project, e.state, e.reason, \
             e.exit_code, e.at, j.name, j.kind FROM job_events e LEFT JOIN jobs j ON j.id = e.job_id \
             WHERE e.id > $1 ORDER BY e.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit.clamp(1, MAX_READ)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(job_notice).collect()
    }

    async fn other_events(&self, after: i64, limit: u32) -> Result<Vec<(i64, Event)>> {
        let rows = sqlx::query(
            "SELECT id, kind, subject, title, owner, project, link, detail, at FROM notify_events \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit.clamp(1, MAX_READ)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(other_event).collect()
    }

    async fn route_events(
        &self,
        source: &str,
        from: i64,
        to: i64,
        items: &[NewItem],
        now: i64,
    ) -> Result<bool> {
        self.route(source, from, to, items, now).await
    }

    async fn create_target(&self, t: &NewTarget, now: i64) -> Result<TargetRecord> {
        self.insert_target(t, now).await
    }

    async fn update_target(&self, id: i64, t: &NewTarget, now: i64) -> Result<bool> {
        self.replace_target(id, t, now).await
    }

    async fn targets(&self) -> Result<Vec<TargetRecord>> {
        self.list_targets().await
    }

    async fn delete_target(&self, id: i64) -> Result<bool> {
        self.remove_target(id).await
    }

    async fn reseal_target(
        &self,
        id: i64,
        old_key_id: &str,
        key_id: &str,
        secret: &str,
    ) -> Result<bool> {
        self.reseal(id, old_key_id, key_id, secret).await
    }

    async fn create_rule(&self, r: &Rule, now: i64) -> Result<RuleRecord> {
        self.insert_rule(r, now).await
    }

    async fn rules(&self) -> Result<Vec<RuleRecord>> {
        self.list_rules().await
    }

    async fn delete_rule(&self, name: &str) -> Result<bool> {
        self.remove_rule(name).await
    }

    async fn add_subscription(&self, s: &NewSubscription, now: i64) -> Result<SubscriptionRecord> {
        self.insert_subscription(s, now).await
    }

    async fn subscriptions(&self, user: Option<&str>) -> Result<Vec<SubscriptionRecord>> {
        self.list_subscriptions(user).await
    }

    async fn delete_subscription(&self, id: i64, user: Option<&str>) -> Result<bool> {
        self.remove_subscription(id, user).await
    }

    async fn targets_with_waiting(&self) -> Result<Vec<i64>> {
        self.waiting_targets().await
    }

    async fn waiting_items(&self, target_id: i64, limit: u32) -> Result<Vec<ItemRecord>> {
        self.items_waiting(target_id, limit).await
    }

    async fn pending_users(&self, target_id: i64) -> Result<Vec<Option<String>>> {
        self.users_pending(target_id).await
    }

    async fn form_deliveries(&self, target_id: i64, list: &[NewDelivery], now: i64) -> Result<()> {
        self.form(target_id, list, now).await
    }

    async fn due_deliveries(&self, now: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.due(now, limit).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        self.one_delivery(id).await
    }

    async fn delivery_events(&self, id: &str) -> Result<Vec<Event>> {
        self.events_of(id).await
    }

    async fn finish_attempt(&self, id: &str, outcome: &AttemptOutcome, now: i64) -> Result<bool> {
        self.attempted(id, outcome, now).await
    }

    async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
        self.list_deliveries(f).await
    }

    async fn retry_delivery(&self, id: &str, now: i64) -> Result<bool> {
        self.revive(id, now).await
    }

    async fn set_notify_address(
        &self,
        user: &str,
        email: Option<&str>,
        by: &str,
        now: i64,
    ) -> Result<()> {
        match email {
            Some(e) => {
                sqlx::query(
                    "INSERT INTO notify_addresses (user_name, email, set_by, set_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO UPDATE SET \
                     email = excluded.email, set_by = excluded.set_by, set_at = excluded.set_at",
                )
                .bind(user)
                .bind(e)
                .bind(by)
                .bind(now)
                .execute(&self.write)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM notify_addresses WHERE user_name = $1")
                    .bind(user)
                    .execute(&self.write)
                    .await?;
            }
        }
        Ok(())
    }

    async fn notify_address(&self, user: &str) -> Result<Option<String>> {
        sqlx::query("SELECT email FROM notify_addresses WHERE user_name = $1")
            .bind(user)
            .fetch_optional(&self.read)
            .await?
            .map(|r| r.try_get("email"))
            .transpose()
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_core::notify::event::EventType;

    fn event(n: i64) -> NewEvent {
        NewEvent {
            kind: EventType::WorkspaceTerminateFailed,
            subject: format!("workspace:{n}"),
            title: String::new(),
            owner: Some("ada".into()),
            project: None,
            link: None,
            detail: Some("provider refused".into()),
            time: n,
        }
    }

    #[tokio::test]
    async fn an_event_is_recorded_with_its_transaction_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let s = SqlStore::connect(&url).await.unwrap();
        let mut tx = s.write.begin().await.unwrap();
        record(&mut tx, &event(1)).await.unwrap();
        tx.rollback().await.unwrap();
        assert!(s.other_events(0, 10).await.unwrap().is_empty());
        let mut tx = s.write.begin().await.unwrap();
        let id = record(&mut tx, &event(2)).await.unwrap();
        tx.commit().await.unwrap();
        let got = s.other_events(0, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0, &got[0].1.event), (id, &event(2)));
    }
}
