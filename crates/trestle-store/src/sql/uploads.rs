//! Sealing uploads: a job's inputs never change once it is submitted.
//!
//! Every submit seals, in its own transaction and before it inserts a
//! job, the uploads its jobs name as inputs (`sealed_at`). A file written
//! into an upload becomes visible (the object store's final, atomic step:
//! the put or the multipart completion) only while the writer holds the
//! upload's row unsealed in a transaction of its own
//! ([`SqlStore::hold_unsealed_upload`]): on PostgreSQL the row lock makes
//! a racing submit's seal wait for the file, on SQLite the single writer
//! does. So a file lands either before the seal, and the job sees it from
//! its first attempt, or not at all.

use super::{SqlStore, Tx};
use crate::Result;
use crate::identity::UploadHold;
use async_trait::async_trait;
use sqlx::Any;
use std::collections::BTreeSet;
use trestle_core::JobSpec;

/// Seals the uploads `specs` read their inputs from (in id order, so two
/// submits lock them in the same order).
pub(super) async fn seal_inputs<'a>(
    tx: &mut Tx<'_>,
    specs: impl IntoIterator<Item = &'a JobSpec>,
    now: i64,
) -> Result<()> {
    let ids: BTreeSet<&str> = specs
        .into_iter()
        .filter_map(|s| s.inputs.as_deref())
        .collect();
    for id in ids {
        sqlx::query("UPDATE uploads SET sealed_at = $1 WHERE id = $2 AND sealed_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A transaction holding an upload's row unsealed.
struct Held(sqlx::Transaction<'static, Any>);

#[async_trait]
impl UploadHold for Held {
    async fn release(self: Box<Self>) -> Result<()> {
        self.0.commit().await?;
        Ok(())
    }
}

impl SqlStore {
    /// [`crate::identity::IdentityStore::upload_sealed`].
    pub(super) async fn upload_sealed(&self, id: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS sealed FROM uploads WHERE id = $1 AND sealed_at IS NOT NULL")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.is_some())
    }

    /// [`crate::identity::IdentityStore::hold_unsealed_upload`]: a write
    /// that changes nothing but locks the row (and, on SQLite, takes the
    /// writer) for the transaction.
    pub(super) async fn hold_unsealed_upload(
        &self,
        id: &str,
    ) -> Result<Option<Box<dyn UploadHold>>> {
        let mut tx = self.write.begin().await?;
        let n =
            sqlx::query("UPDATE uploads SET sealed_at = NULL WHERE id = $1 AND sealed_at IS NULL")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(Box::new(Held(tx))))
    }
}
