//! Pending OpenID Connect sign-ins: stored at the start of a login, taken
//! (deleted and returned in one statement, so used once) by its callback.

use super::SqlStore;
use crate::oidc::{LoginFlow, PendingLogin};
use crate::{Result, StoreError};
use sqlx::Row;

impl SqlStore {
    /// [`crate::IdentityStore::put_oidc_login`].
    pub(super) async fn put_pending_login(&self, key: &str, p: &PendingLogin) -> Result<()> {
        sqlx::query("DELETE FROM oidc_logins WHERE expires_at < $1")
            .bind(p.created_at)
            .execute(&self.write)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, provider, flow, nonce, pkce, redirect_uri, \
             next_path, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key)
        .bind(&p.provider)
        .bind(p.flow.as_str())
        .bind(&p.nonce)
        .bind(&p.pkce)
        .bind(&p.redirect_uri)
        .bind(p.next.as_deref())
        .bind(p.created_at)
        .bind(p.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// [`crate::IdentityStore::take_oidc_login`].
    pub(super) async fn take_pending_login(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<PendingLogin>> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING provider, flow, nonce, \
             pkce, redirect_uri, next_path, created_at, expires_at",
        )
        .bind(key)
        .fetch_optional(&self.write)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let flow: String = r.try_get("flow")?;
        let p = PendingLogin {
            provider: r.try_get("provider")?,
            flow: LoginFlow::parse(&flow)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown login flow `{flow}`")))?,
            nonce: r.try_get("nonce")?,
            pkce: r.try_get("pkce")?,
            redirect_uri: r.try_get("redirect_uri")?,
            next: r.try_get("next_path")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
        };
        Ok((p.expires_at > now).then_some(p))
    }
}
