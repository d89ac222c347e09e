//! The outbox of messages: waiting items become deliveries (one event or
//! a digest), deliveries are attempted first-in-line per target and user,
//! retried, delivered or dead-lettered, and revived by hand.

use super::{corrupt, event_type};
use crate::Result;
use crate::notify::*;
use crate::sql::SqlStore;
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::notify::event::Event;

macro_rules! delivery_columns {
    () => {
        "d.seq, d.id, d.target_id, COALESCE(t.name, '') AS target_name, d.user_name, d.kind, \
         d.events, d.state, d.attempts, d.next_at, d.last_error, d.created_at, d.sent_at \
         FROM notify_deliveries d LEFT JOIN notify_targets t ON t.id = d.target_id"
    };
}

fn delivery(r: &AnyRow) -> Result<DeliveryRecord> {
    let kind: String = r.try_get("kind")?;
    let state: String = r.try_get("state")?;
    Ok(DeliveryRecord {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        target_id: r.try_get("target_id")?,
        target: r.try_get("target_name")?,
        user: r.try_get("user_name")?,
        kind: event_type(&kind)?,
        events: r.try_get::<i64, _>("events")?.clamp(0, i64::from(u32::MAX)) as u32,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("delivery state", &state))?,
        attempts: r
            .try_get::<i64, _>("attempts")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        next_at: r.try_get("next_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
    })
}

/// Longest error kept.
const MAX_ERROR: usize = 1000;

fn short(e: &str) -> String {
    e.chars().take(MAX_ERROR).collect()
}

impl SqlStore {
    pub(super) async fn waiting_targets(&self) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT DISTINCT target_id FROM notify_items WHERE delivery_id IS NULL ORDER BY target_id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("target_id")?)).collect()
    }

    pub(super) async fn items_waiting(
        &self,
        target_id: i64,
        limit: u32,
    ) -> Result<Vec<ItemRecord>> {
        let rows = sqlx::query(
            "SELECT id, target_id, user_name, kind FROM notify_items i \
             WHERE target_id = $1 AND delivery_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.target_id = $1 \
             AND d.state = 'pending' AND COALESCE(d.user_name, '') = COALESCE(i.user_name, '')) \
             ORDER BY id LIMIT $2",
        )
        .bind(target_id)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(ItemRecord {
                    id: r.try_get("id")?,
                    target_id: r.try_get("target_id")?,
                    user: r.try_get("user_name")?,
                    kind: event_type(&kind)?,
                })
            })
            .collect()
    }

    pub(super) async fn users_pending(&self, target_id: i64) -> Result<Vec<Option<String>>> {
        let rows = sqlx::query(
            "SELECT DISTINCT user_name FROM notify_deliveries \
             WHERE target_id = $1 AND state = 'pending'",
        )
        .bind(target_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("user_name")?)).collect()
    }

    pub(super) async fn form(&self, target_id: i64, list: &[NewDelivery], now: i64) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for d in list {
            sqlx::query(
                "INSERT INTO notify_deliveries (id, target_id, user_name, kind, events, state, \
                 attempts, next_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
            )
            .bind(&d.id)
            .bind(target_id)
            .bind(d.user.clone())
            .bind(d.kind.as_str())
            .bind(d.items.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for item in &d.items {
                sqlx::query(
                    "UPDATE notify_items SET delivery_id = $1 \
                     WHERE id = $2 AND target_id = $3 AND delivery_id IS NULL",
                )
                .bind(&d.id)
                .bind(*item)
                .bind(target_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("UPDATE notify_targets SET last_formed_at = $2 WHERE id = $1")
            .bind(target_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn due(&self, now: i64, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " WHERE d.state = 'pending' AND d.next_at <= $1 AND NOT EXISTS (\
             SELECT 1 FROM notify_deliveries x WHERE x.state = 'pending' \
             AND x.target_id = d.target_id \
             AND COALESCE(x.user_name, '') = COALESCE(d.user_name, '') AND x.seq < d.seq) \
             ORDER BY d.seq LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(delivery).collect()
    }

    pub(super) async fn one_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        sqlx::query(concat!("SELECT ", delivery_columns!(), " WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(delivery)
            .transpose()
    }

    pub(super) async fn events_of(&self, id: &str) -> Result<Vec<Event>> {
        let rows = sqlx::query("SELECT event FROM notify_items WHERE delivery_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                let e: String = r.try_get("event")?;
                serde_json::from_str(&e).map_err(|e| corrupt("event", e))
            })
            .collect()
    }

    pub(super) async fn attempted(
        &self,
        id: &str,
        outcome: &AttemptOutcome,
        now: i64,
    ) -> Result<bool> {
        let q = match outcome {
            AttemptOutcome::Delivered => sqlx::query(
                "UPDATE notify_deliveries SET state = 'delivered', attempts = attempts + 1, \
                 sent_at = $2 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(now),
            AttemptOutcome::Retry { at, error } => sqlx::query(
                "UPDATE notify_deliveries SET attempts = attempts + 1, next_at = $2, \
                 last_error = $3 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(*at)
            .bind(short(error)),
            AttemptOutcome::Dead { error } => sqlx::query(
                "UPDATE notify_deliveries SET state = 'dead', attempts = attempts + 1, \
                 last_error = $2 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(short(error)),
        };
        Ok(q.execute(&self.write).await?.rows_affected() == 1)
    }

    pub(super) async fn list_deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " WHERE (CAST($1 AS TEXT) IS NULL OR d.state = $1) \
             AND (CAST($2 AS BIGINT) IS NULL OR d.target_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR d.user_name = $3 OR t.owner = $3) \
             AND (CAST($4 AS BIGINT) IS NULL OR d.seq < $4) \
             ORDER BY d.seq DESC LIMIT $5"
        ))
        .bind(f.state.map(|s| s.as_str().to_string()))
        .bind(f.target_id)
        .bind(f.user.clone())
        .bind(f.before)
        .bind(i64::from(f.limit.clamp(1, 500)))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(delivery).collect()
    }

    pub(super) async fn revive(&self, id: &str, now: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE notify_deliveries SET state = 'pending', next_at = $2, created_at = $2 \
             WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected()
            == 1)
    }
}
