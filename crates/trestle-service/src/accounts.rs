//! The Unix accounts identity providers give users (a claim, the
//! directory's `uid`/`uidNumber`), for per-user execution: looked up when a
//! lease hands a user's task to a worker, and kept a minute per server so
//! that the lease path reads the store once per user per minute at most.

use crate::error::ServiceResult;
use crate::state::Service;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trestle_core::identity::unix::UnixAttribute;

/// How long a looked-up account is used before it is read again.
pub const ACCOUNT_TTL: Duration = Duration::from_secs(60);

/// Users' Unix accounts, as last read.
#[derive(Default)]
pub struct AccountCache {
    entries: Mutex<HashMap<String, (Option<UnixAttribute>, Instant)>>,
}

impl AccountCache {
    fn get(&self, user: &str) -> Option<Option<UnixAttribute>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(user)
            .filter(|(_, at)| at.elapsed() < ACCOUNT_TTL)
            .map(|(a, _)| a.clone())
    }

    fn put(&self, user: &str, a: Option<UnixAttribute>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(user.to_string(), (a, Instant::now()));
    }
}

/// The Unix account `user`'s identity provider gave them, if any.
pub async fn unix_attribute(app: &Service, user: &str) -> ServiceResult<Option<UnixAttribute>> {
    if let Some(hit) = app.accounts.get(user) {
        return Ok(hit);
    }
    let a = app
        .store
        .user_attributes(user)
        .await?
        .filter(|a| a.unix_name.is_some() || a.uid.is_some())
        .map(|a| UnixAttribute {
            name: a.unix_name,
            uid: a.uid,
            gid: None,
        });
    app.accounts.put(user, a.clone());
    Ok(a)
}
