//! API tokens: stored as SHA-256 hashes with a kind (user token or worker
//! credential), a scope, an expiry, revocation, and the time and source of
//! their last use.

use super::{SqlStore, Tx, conflict_or};
use crate::identity::{NewTokenRecord, TokenRecord, TokenStore};
use crate::{Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use trestle_core::api::identity::TokenView;
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::Scope;

/// Columns selected for a [`TokenView`], as a literal for `concat!`.
macro_rules! token_columns {
    () => {
        "id, name, user_name, kind, scope, created_at, expires_at, last_used_at, last_used_ip, \
         revoked_at"
    };
}

/// Record a token's use at most this often from one source, so that
/// authentication stays (nearly always) a read.
const USE_RECORD_EVERY_MS: i64 = 60_000;

fn kind(s: &str) -> Result<TokenKind> {
    TokenKind::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown token kind `{s}`")))
}

fn scope(s: &str) -> Result<Scope> {
    Scope::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown token scope `{s}`")))
}

fn view(r: &AnyRow) -> Result<TokenView> {
    let k: String = r.try_get("kind")?;
    let s: String = r.try_get("scope")?;
    Ok(TokenView {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        user: r.try_get("user_name")?,
        kind: kind(&k)?,
        scope: scope(&s)?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        last_used_ip: r.try_get("last_used_ip")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// [`TokenStore::create_token`] inside the caller's transaction (shared
/// with the admin bootstrap).
pub(super) async fn create_token_in(tx: &mut Tx<'_>, t: &NewTokenRecord, now: i64) -> Result<()> {
    if t.kind == TokenKind::User && t.user.is_none() {
        return Err(StoreError::Config("a user token needs a user".into()));
    }
    sqlx::query(
        "INSERT INTO tokens (id, name, role, hash, created_at, expires_at, user_name, kind, scope) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $3, $8)",
    )
    .bind(t.id.as_str())
    .bind(t.name.as_str())
    .bind(t.kind.as_str())
    .bind(t.hash.as_str())
    .bind(now)
    .bind(t.expires_at)
    .bind(t.user.clone())
    .bind(t.scope.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_or(e, "the token", "token"))?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(&self, t: &NewTokenRecord, now: i64) -> Result<()> {
        let mut tx = self.write.begin().await?;
        if let Some(u) = &t.user {
            let found = sqlx::query("SELECT 1 AS one FROM users WHERE name = $1")
                .bind(u.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Err(StoreError::NotFound(format!("user `{u}`")));
            }
        }
        create_token_in(&mut tx, t, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_token(
        &self,
        hash: &str,
        now: i64,
        source_ip: &str,
    ) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT t.id, t.user_name, t.kind, t.scope, t.last_used_at, t.last_used_ip \
             FROM tokens t LEFT JOIN users u ON u.name = t.user_name \
             WHERE t.hash = $1 AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > $2) \
             AND (t.user_name IS NULL OR (u.name IS NOT NULL AND u.disabled_at IS NULL))",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let user: Option<String> = row.try_get("user_name")?;
        let last: Option<i64> = row.try_get("last_used_at")?;
        let last_ip: Option<String> = row.try_get("last_used_ip")?;
        if last.is_none_or(|l| now - l > USE_RECORD_EVERY_MS)
            || last_ip.as_deref() != Some(source_ip)
        {
            sqlx::query("UPDATE tokens SET last_used_at = $1, last_used_ip = $2 WHERE id = $3")
                .bind(now)
                .bind(source_ip)
                .bind(id.as_str())
                .execute(&self.write)
                .await?;
            if let Some(u) = &user {
                sqlx::query("UPDATE users SET last_seen_at = $1 WHERE name = $2")
                    .bind(now)
                    .bind(u.as_str())
                    .execute(&self.write)
                    .await?;
            }
        }
        let k: String = row.try_get("kind")?;
        let s: String = row.try_get("scope")?;
        Ok(Some(TokenRecord {
            id,
            user,
            kind: kind(&k)?,
            scope: scope(&s)?,
        }))
    }

    async fn token(&self, id: &str) -> Result<Option<TokenView>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(view).transpose()
    }

    async fn list_tokens(
        &self,
        user: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<TokenView>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE (CAST($1 AS TEXT) IS NULL OR user_name = $1) \
             AND ($2 = 1 OR revoked_at IS NULL) ORDER BY created_at DESC, id"
        ))
        .bind(user.map(str::to_string))
        .bind(i64::from(include_revoked))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(view).collect()
    }

    async fn revoke_token(&self, id: &str, now: i64) -> Result<bool> {
        let n =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.write)
                .await?
                .rows_affected();
        Ok(n > 0)
    }

    async fn unused_tokens(&self, before: i64, now: i64) -> Result<Vec<TokenView>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2) \
             AND COALESCE(last_used_at, created_at) < $1 ORDER BY created_at, id"
        ))
        .bind(before)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(view).collect()
    }
}
