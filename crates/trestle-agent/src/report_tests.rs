//! Tests of the reporter against a fake server.

use super::*;
use crate::testutil::lease;
use std::sync::Mutex;
use std::time::Duration;
use trestle_core::api::AttemptRef;
use trestle_core::{AttemptReason, Capacity};

/// A fake server: records batches; can fail, answer slowly, or ask to stop.
#[derive(Default)]
struct Fake {
    batches: Mutex<Vec<UpdatesRequest>>,
    /// Errors to return before answering normally.
    errors: Mutex<Vec<ClientError>>,
    delay: Duration,
    answer: Mutex<UpdatesResponse>,
}

impl UpdatesApi for Fake {
    async fn post(&self, request: &UpdatesRequest) -> Result<UpdatesResponse, ClientError> {
        tokio::time::sleep(self.delay).await;
        if let Some(e) = self.errors.lock().unwrap().pop() {
            return Err(e);
        }
        self.batches.lock().unwrap().push(request.clone());
        Ok(std::mem::take(&mut *self.answer.lock().unwrap()))
    }
}

fn at(job_id: i64) -> AttemptRef {
    AttemptRef {
        job_id,
        attempt: 1,
        token: format!("t{job_id}"),
    }
}

fn log(job_id: i64, seq: u32, data: &str) -> Update {
    Update::Log {
        at: at(job_id),
        seq,
        data: data.into(),
    }
}

fn finished(job_id: i64) -> Update {
    Update::Finished {
        at: at(job_id),
        reason: AttemptReason::Success,
        exit_code: Some(0),
        time: 1,
        message: None,
        cpu_ms: None,
        max_rss_kib: None,
    }
}

fn quick() -> Backoff {
    Backoff::new(Duration::from_millis(1), Duration::from_millis(5))
}

fn setup(fake: Fake, limits: Limits) -> (Arc<Fake>, Arc<Attempts>, ReporterHandle, JoinHandle<()>) {
    let fake = Arc::new(fake);
    let attempts = Arc::new(Attempts::new(Capacity {
        cpus: 8,
        mem_mib: 1000,
        gpus: 0,
    }));
    let (fatal, _) = watch::channel(None);
    let (h, task) = spawn(fake.clone(), attempts.clone(), fatal, limits, quick());
    (fake, attempts, h, task)
}

fn all_updates(fake: &Fake) -> Vec<Update> {
    let batches = fake.batches.lock().unwrap();
    batches.iter().flat_map(|b| b.updates.clone()).collect()
}

#[tokio::test]
async fn delivers_in_order_and_batches_under_load() {
    let fake = Fake {
        delay: Duration::from_millis(20),
        ..Default::default()
    };
    let (fake, _attempts, h, task) = setup(fake, Limits::default());
    let mut sent = Vec::new();
    for i in 0..200 {
        let u = log(1, i + 1, &format!("line {i}\n"));
        sent.push(u.clone());
        h.send(u).await;
    }
    sent.push(finished(1));
    h.send(finished(1)).await;
    drop(h);
    task.await.unwrap();
    assert_eq!(all_updates(&fake), sent);
    let batches = fake.batches.lock().unwrap().len();
    assert!(batches < 20, "{batches} batches");
}

#[tokio::test]
async fn retries_transient_failures_without_losing_updates() {
    let fake = Fake::default();
    fake.errors.lock().unwrap().extend([
        ClientError::Connect("down".into()),
        ClientError::Io("reset".into()),
        ClientError::Api {
            status: 503,
            code: "http-503".into(),
            message: "unavailable".into(),
            field: None,
        },
    ]);
    let (fake, _attempts, h, task) = setup(fake, Limits::default());
    h.send(log(1, 1, "a")).await;
    h.send(finished(1)).await;
    drop(h);
    task.await.unwrap();
    assert_eq!(all_updates(&fake), vec![log(1, 1, "a"), finished(1)]);
}

#[tokio::test]
async fn respects_batch_limits_and_splits_on_413() {
    let fake = Fake {
        delay: Duration::from_millis(5),
        ..Default::default()
    };
    fake.errors.lock().unwrap().push(ClientError::Api {
        status: 413,
        code: "too-large".into(),
        message: "body too large".into(),
        field: None,
    });
    let limits = Limits {
        max_updates: 3,
        max_log_bytes: 10,
    };
    let (fake, _attempts, h, task) = setup(fake, limits);
    let sent: Vec<Update> = (1..=7).map(|i| log(1, i, "abcd")).collect();
    for u in &sent {
        h.send(u.clone()).await;
    }
    drop(h);
    task.await.unwrap();
    assert_eq!(all_updates(&fake), sent);
    for b in fake.batches.lock().unwrap().iter() {
        assert!(b.updates.len() <= 3);
        assert!(b.updates.iter().map(log_bytes).sum::<usize>() <= 10);
    }
}

#[tokio::test]
async fn heartbeats_and_stop_answers() {
    let fake = Fake::default();
    *fake.answer.lock().unwrap() = UpdatesResponse {
        stale: vec![AttemptKey {
            job_id: 1,
            attempt: 1,
        }],
        cancel: vec![AttemptKey {
            job_id: 2,
            attempt: 1,
        }],
    };
    let (fake, attempts, h, task) = setup(fake, Limits::default());
    attempts.set_lease_ms(300); // heartbeat every 100 ms
    let rx1 = attempts.insert(&lease(1, 1)).unwrap();
    let rx2 = attempts.insert(&lease(2, 1)).unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    {
        let batches = fake.batches.lock().unwrap();
        assert!(!batches.is_empty());
        let mut refs = batches[0].heartbeat.clone();
        refs.sort_by_key(|r| r.job_id);
        assert_eq!(refs, vec![at(1), at(2)]);
    }
    assert_eq!(*rx1.borrow(), Some(StopReason::Stale));
    assert_eq!(*rx2.borrow(), Some(StopReason::Cancel));
    // Updates of a stale attempt are dropped; others go through.
    h.send(log(1, 1, "late")).await;
    h.send(finished(2)).await;
    attempts.remove(AttemptKey {
        job_id: 1,
        attempt: 1,
    });
    attempts.remove(AttemptKey {
        job_id: 2,
        attempt: 1,
    });
    drop(h);
    task.await.unwrap();
    assert_eq!(all_updates(&fake), vec![finished(2)]);
}

#[tokio::test]
async fn rejected_credentials_are_fatal() {
    let fake = Arc::new(Fake::default());
    fake.errors.lock().unwrap().push(ClientError::Api {
        status: 401,
        code: "unauthorized".into(),
        message: "bad token".into(),
        field: None,
    });
    let attempts = Arc::new(Attempts::new(Capacity {
        cpus: 1,
        mem_mib: 1,
        gpus: 0,
    }));
    let (fatal, mut fatal_rx) = watch::channel(None);
    let (h, task) = spawn(fake.clone(), attempts, fatal, Limits::default(), quick());
    h.send(finished(1)).await;
    fatal_rx.changed().await.unwrap();
    assert_eq!(
        fatal_rx.borrow().as_ref().and_then(|e| e.status()),
        Some(401)
    );
    drop(h);
    task.await.unwrap();
}
