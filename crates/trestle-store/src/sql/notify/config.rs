//! Targets (clear config as JSON, secret sealed), rules and subscriptions.

use super::corrupt;
use crate::Result;
use crate::notify::*;
use crate::sql::{SqlStore, conflict_or};
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::notify::route::SubscriptionMode;
use trestle_core::notify::rule::{EventPattern, Rule};
use trestle_core::notify::target::{TargetConfig, TargetKind};

macro_rules! target_columns {
    () => {
        "id, name, kind, owner, config, secret, key_id, last_formed_at, created_at, updated_at"
    };
}

fn target(r: &AnyRow) -> Result<TargetRecord> {
    let kind: String = r.try_get("kind")?;
    let config: String = r.try_get("config")?;
    Ok(TargetRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: TargetKind::parse(&kind).ok_or_else(|| corrupt("target kind", &kind))?,
        owner: r.try_get("owner")?,
        config: serde_json::from_str::<TargetConfig>(&config)
            .map_err(|e| corrupt("target config", e))?,
        key_id: r.try_get("key_id")?,
        secret: r.try_get("secret")?,
        last_formed_at: r.try_get("last_formed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn patterns_json(p: &[EventPattern]) -> Result<String> {
    serde_json::to_string(p).map_err(|e| corrupt("event patterns", e))
}

fn patterns(s: &str) -> Result<Vec<EventPattern>> {
    serde_json::from_str(s).map_err(|e| corrupt("event patterns", e))
}

fn mode_str(m: SubscriptionMode) -> &'static str {
    match m {
        SubscriptionMode::On => "on",
        SubscriptionMode::Muted => "muted",
    }
}

fn subscription(r: &AnyRow) -> Result<SubscriptionRecord> {
    let events: String = r.try_get("events")?;
    let mode: String = r.try_get("mode")?;
    Ok(SubscriptionRecord {
        id: r.try_get("id")?,
        sub: NewSubscription {
            user: r.try_get("user_name")?,
            events: patterns(&events)?,
            target: r.try_get("target")?,
            job: r.try_get("job_id")?,
            mode: match mode.as_str() {
                "on" => SubscriptionMode::On,
                "muted" => SubscriptionMode::Muted,
                m => return Err(corrupt("subscription mode", m)),
            },
        },
        created_at: r.try_get("created_at")?,
    })
}

impl SqlStore {
    pub(super) async fn insert_target(&self, t: &NewTarget, now: i64) -> Result<TargetRecord> {
        let config = serde_json::to_string(&t.config).map_err(|e| corrupt("target config", e))?;
        let row = sqlx::query(concat!(
            "INSERT INTO notify_targets (name, kind, owner, config, secret, key_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
            target_columns!()
        ))
        .bind(&t.name)
        .bind(t.config.kind.as_str())
        .bind(t.owner.clone())
        .bind(config)
        .bind(&t.secret)
        .bind(&t.key_id)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, &format!("target `{}`", t.name), "name"))?;
        target(&row)
    }

    pub(super) async fn replace_target(&self, id: i64, t: &NewTarget, now: i64) -> Result<bool> {
        let config = serde_json::to_string(&t.config).map_err(|e| corrupt("target config", e))?;
        Ok(sqlx::query(
            "UPDATE notify_targets SET name = $2, kind = $3, owner = $4, config = $5, secret = $6, \
             key_id = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(id)
        .bind(&t.name)
        .bind(t.config.kind.as_str())
        .bind(t.owner.clone())
        .bind(config)
        .bind(&t.secret)
        .bind(&t.key_id)
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(|e| conflict_or(e, &format!("target `{}`", t.name), "name"))?
        .rows_affected()
            == 1)
    }

    pub(super) async fn list_targets(&self) -> Result<Vec<TargetRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            target_columns!(),
            " FROM notify_targets ORDER BY name"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(target).collect()
    }

    pub(super) async fn remove_target(&self, id: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n = sqlx::query("DELETE FROM notify_targets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM notify_items WHERE target_id = $1 AND delivery_id IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM notify_items WHERE delivery_id IN (SELECT id FROM notify_deliveries \
             WHERE target_id = $1 AND state = 'pending')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM notify_deliveries WHERE target_id = $1 AND state = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub(super) async fn reseal(
        &self,
        id: i64,
        old_key_id: &str,
        key_id: &str,
        secret: &str,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE notify_targets SET key_id = $3, secret = $4 WHERE id = $1 AND key_id = $2",
        )
        .bind(id)
        .bind(old_key_id)
        .bind(key_id)
        .bind(secret)
        .execute(&self.write)
        .await?
        .rows_affected()
            == 1)
    }

    pub(super) async fn insert_rule(&self, r: &Rule, now: i64) -> Result<RuleRecord> {
        let targets = serde_json::to_string(&r.targets).map_err(|e| corrupt("rule targets", e))?;
        let row = sqlx::query(
            "INSERT INTO notify_rules (name, events, project, targets, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&r.name)
        .bind(patterns_json(&r.events)?)
        .bind(r.project.clone())
        .bind(targets)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, &format!("rule `{}`", r.name), "name"))?;
        Ok(RuleRecord {
            id: row.try_get("id")?,
            rule: r.clone(),
            created_at: now,
        })
    }

    pub(super) async fn list_rules(&self) -> Result<Vec<RuleRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, events, project, targets, created_at FROM notify_rules ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let events: String = r.try_get("events")?;
                let targets: String = r.try_get("targets")?;
                Ok(RuleRecord {
                    id: r.try_get("id")?,
                    rule: Rule {
                        name: r.try_get("name")?,
                        events: patterns(&events)?,
                        project: r.try_get("project")?,
                        targets: serde_json::from_str(&targets)
                            .map_err(|e| corrupt("rule targets", e))?,
                    },
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub(super) async fn remove_rule(&self, name: &str) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM notify_rules WHERE name = $1")
            .bind(name)
            .execute(&self.write)
            .await?
            .rows_affected()
            == 1)
    }

    pub(super) async fn insert_subscription(
        &self,
        s: &NewSubscription,
        now: i64,
    ) -> Result<SubscriptionRecord> {
        let row = sqlx::query(
            "INSERT INTO notify_subscriptions (user_name, events, target, job_id, mode, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&s.user)
        .bind(patterns_json(&s.events)?)
        .bind(s.target.clone())
        .bind(s.job)
        .bind(mode_str(s.mode))
        .bind(now)
        .fetch_one(&self.write)
        .await?;
        Ok(SubscriptionRecord {
            id: row.try_get("id")?,
            sub: s.clone(),
            created_at: now,
        })
    }

    pub(super) async fn list_subscriptions(
        &self,
        user: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>> {
        let rows = sqlx::query(
            "SELECT id, user_name, events, target, job_id, mode, created_at \
             FROM notify_subscriptions WHERE CAST($1 AS TEXT) IS NULL OR user_name = $1 \
             ORDER BY user_name, id",
        )
        .bind(user.map(str::to_string))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(subscription).collect()
    }

    pub(super) async fn remove_subscription(&self, id: i64, user: Option<&str>) -> Result<bool> {
        Ok(sqlx::query(
            "DELETE FROM notify_subscriptions WHERE id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR user_name = $2)",
        )
        .bind(id)
        .bind(user.map(str::to_string))
        .execute(&self.write)
        .await?
        .rows_affected()
            == 1)
    }
}
