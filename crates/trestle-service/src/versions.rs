//! What this server decided about each worker's version (see
//! [`trestle_core::compat`]), remembered so that leasing asks the store at
//! most once per worker.

use std::collections::HashMap;
use std::sync::Mutex;

/// Worker id -> `None` (compatible) or why it must drain.
#[derive(Debug, Default)]
pub struct WorkerVersions(Mutex<HashMap<String, Option<String>>>);

impl WorkerVersions {
    /// The decision for `worker`, if made here.
    pub fn get(&self, worker: &str) -> Option<Option<String>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(worker)
            .cloned()
    }

    /// Remembers a decision.
    pub fn put(&self, worker: &str, drain: Option<String>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(worker.to_string(), drain);
    }
}
