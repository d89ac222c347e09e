//! The worker's table of attempts it holds leases on (waiting, staging or
//! running), their resources, and the signals that stop them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use trestle_core::Capacity;
use trestle_core::Resources;
use trestle_core::api::{AttemptKey, AttemptRef, Lease};

/// Lease duration assumed until the server tells (ms).
pub const DEFAULT_LEASE_MS: u64 = 30_000;

/// Why the worker stops an attempt before its command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The job was cancelled: kill, report `cancelled`.
    Cancel,
    /// The lease is no longer ours: kill, report nothing more.
    Stale,
    /// The worker shuts down: kill, report `released`.
    Release,
}

/// Receives an attempt's stop request (`None` until there is one).
pub type StopRx = watch::Receiver<Option<StopReason>>;

#[derive(Debug)]
struct Slot {
    token: String,
    resources: Resources,
    /// When it was admitted to run (its resources then count against
    /// `running_free`).
    admitted: Option<Instant>,
    stop: watch::Sender<Option<StopReason>>,
    /// Signalled when capacity is given to this attempt.
    admit: Arc<Notify>,
    /// The job's priority: waiting attempts are admitted highest first.
    priority: i32,
    /// Its process ended and its capacity was given back (the attempt
    /// still reports and uploads).
    released: bool,
}

#[derive(Debug)]
struct Inner {
    slots: HashMap<AttemptKey, Slot>,
    /// Capacity not taken by admitted attempts.
    running_free: Capacity,
    /// When the table last became empty.
    idle_since: Instant,
    /// Moving average of how long admitted attempts held their slot.
    mean_run: Option<Duration>,
    /// Attempts waiting for capacity, highest priority first, then oldest
    /// first (may hold keys that were admitted or removed since; they are
    /// skipped).
    queue: VecDeque<AttemptKey>,
}

/// Weight of the newest sample in [`Usage::mean_run`] (1/16).
const MEAN_RUN_SHIFT: u32 = 4;

/// The moving average after one more sample.
fn next_mean(mean: Option<Duration>, sample: Duration) -> Duration {
    match mean {
        None => sample,
        Some(m) => {
            let weight = 1u32 << MEAN_RUN_SHIFT;
            (m * (weight - 1) + sample) / weight
        }
    }
}

/// What the lease loop needs to plan its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resources of every attempt held (running or waiting; not those
    /// whose process ended).
    pub used: Capacity,
    /// Attempts leased but not admitted yet.
    pub waiting: u32,
    /// Attempts held.
    pub count: usize,
    /// When the table last became empty (meaningful when `count == 0`).
    pub idle_since: Instant,
    /// Moving average of how long attempts run (from admission to their
    /// end, including the upload), once one has ended.
    pub mean_run: Option<Duration>,
}

/// Shared by the lease loop, the attempt tasks and the reporter.
#[derive(Debug)]
pub struct Attempts {
    capacity: Capacity,
    inner: Mutex<Inner>,
    /// Signalled (one permit) when an attempt leaves the table.
    pub changed: Notify,
    /// Lease duration last announced by the server (ms).
    lease_ms: AtomicU64,
    /// The running attempts' resource samples.
    pub sampler: crate::sampling::Sampler,
}

impl Attempts {
    /// An empty table for a worker of `capacity`.
    pub fn new(capacity: Capacity) -> Attempts {
        Attempts {
            capacity,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                running_free: capacity,
                idle_since: Instant::now(),
                mean_run: None,
                queue: VecDeque::new(),
            }),
            changed: Notify::new(),
            lease_ms: AtomicU64::new(DEFAULT_LEASE_MS),
            sampler: crate::sampling::Sampler::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the table half
        // updated (every critical section is a few assignments), so a
        // poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The worker's total capacity.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// The lease duration last announced by the server (ms).
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms.load(Ordering::Relaxed)
    }

    /// Records the lease duration the server announced.
    pub fn set_lease_ms(&self, ms: u64) {
        if ms > 0 {
            self.lease_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Adds a leased attempt; `None` if the table holds it already.
    pub fn insert(&self, lease: &Lease) -> Option<StopRx> {
        let key = AttemptKey {
            job_id: lease.job_id,
            attempt: lease.attempt,
        };
        let mut inner = self.lock();
        if inner.slots.contains_key(&key) {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        inner.slots.insert(
            key,
            Slot {
                token: lease.token.clone(),
                resources: lease.spec.resources,
                admitted: None,
                stop: tx,
                admit: Arc::new(Notify::new()),
                priority: lease.spec.priority,
                released: false,
            },
        );
        Some(rx)
    }

    /// Admits `key` to run if its resources fit what admitted attempts
    /// leave free. True when admitted (or already admitted).
    #[cfg(test)]
    pub fn try_admit(&self, key: AttemptKey) -> bool {
        let mut inner = self.lock();
        let free = inner.running_free;
        let Some(slot) = inner.slots.get_mut(&key) else {
            return false;
        };
        if slot.admitted.is_some() {
            return true;
        }
        if !free.fits(&slot.resources) {
            return false;
        }
        slot.admitted = Some(Instant::now());
        let r = slot.resources;
        inner.running_free = free.minus(&r);
        true
    }

    /// Waits until the attempt is admitted (capacity is handed to waiting
    /// attempts by priority, then oldest first, each woken alone) or `stop` asks to stop;
    /// returns the stop reason in the latter case.
    pub async fn admit(&self, key: AttemptKey, stop: &mut StopRx) -> Result<(), StopReason> {
        let signal = {
            let mut inner = self.lock();
            let Some(slot) = inner.slots.get(&key) else {
                return Err(StopReason::Stale);
            };
            let (signal, priority) = (slot.admit.clone(), slot.priority);
            // Behind every waiting attempt of the same or a higher
            // priority: a job submitted while this worker holds prefetched
            // work of a lower priority runs next, not after it.
            let Inner { slots, queue, .. } = &mut *inner;
            let at = queue
                .iter()
                .rposition(|k| slots.get(k).is_some_and(|s| s.priority >= priority))
                .map_or(0, |i| i + 1);
            queue.insert(at, key);
            signal
        };
        self.admit_waiting();
        loop {
            if let Some(reason) = *stop.borrow_and_update() {
                return Err(reason);
            }
            if self
                .lock()
                .slots
                .get(&key)
                .is_some_and(|s| s.admitted.is_some())
            {
                return Ok(());
            }
            tokio::select! {
                _ = signal.notified() => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The table dropped the slot: nothing will ever admit it.
                        return Err(StopReason::Stale);
                    }
                }
            }
        }
    }

    /// Hands free capacity to waiting attempts in queue order (a later,
    /// smaller one may pass an earlier one that does not fit) and wakes
    /// each one admitted.
    fn admit_waiting(&self) {
        let mut woken = Vec::new();
        {
            let mut inner = self.lock();
            let Inner {
                slots,
                running_free,
                queue,
                ..
            } = &mut *inner;
            let mut i = 0;
            while i < queue.len() && !running_free.is_empty() {
                let key = queue[i];
                let Some(slot) = slots.get_mut(&key) else {
                    queue.remove(i);
                    continue;
                };
                if slot.admitted.is_some() {
                    queue.remove(i);
                    continue;
                }
                if !running_free.fits(&slot.resources) {
                    i += 1;
                    continue;
                }
                slot.admitted = Some(Instant::now());
                *running_free = running_free.minus(&slot.resources);
                woken.push(slot.admit.clone());
                queue.remove(i);
            }
        }
        for signal in woken {
            signal.notify_one();
        }
    }

    /// Gives an admitted attempt's capacity back once its process has
    /// ended, so the next waiting attempt starts while this one uploads
    /// and reports.
    pub fn release_capacity(&self, key: AttemptKey) {
        let mut inner = self.lock();
        let Inner {
            slots,
            running_free,
            mean_run,
            ..
        } = &mut *inner;
        let Some(slot) = slots.get_mut(&key) else {
            return;
        };
        let Some(at) = slot.admitted else {
            return;
        };
        if slot.released {
            return;
        }
        slot.released = true;
        *running_free = running_free.plus(&slot.resources);
        *mean_run = Some(next_mean(*mean_run, at.elapsed()));
        drop(inner);
        self.admit_waiting();
        self.changed.notify_one();
    }

    /// Removes an attempt, giving back its capacity if it still holds it.
    pub fn remove(&self, key: AttemptKey) {
        let mut inner = self.lock();
        let Some(slot) = inner.slots.remove(&key) else {
            return;
        };
        let held = slot.admitted.filter(|_| !slot.released);
        if let Some(at) = held {
            inner.running_free = inner.running_free.plus(&slot.resources);
            inner.mean_run = Some(next_mean(inner.mean_run, at.elapsed()));
        }
        if inner.slots.is_empty() {
            inner.idle_since = Instant::now();
            inner.queue.clear();
        }
        drop(inner);
        if held.is_some() {
            self.admit_waiting();
        }
        self.changed.notify_one();
    }

    /// Asks one attempt to stop. A stale lease overrides an earlier reason;
    /// otherwise the first reason stays. False if the attempt is unknown.
    pub fn stop(&self, key: AttemptKey, reason: StopReason) -> bool {
        let inner = self.lock();
        let Some(slot) = inner.slots.get(&key) else {
            return false;
        };
        slot.stop.send_if_modified(|current| match current {
            None => {
                *current = Some(reason);
                true
            }
            Some(r) if *r != StopReason::Stale && reason == StopReason::Stale => {
                *current = Some(reason);
                true
            }
            Some(_) => false,
        });
        true
    }

    /// Asks every attempt to stop.
    pub fn stop_all(&self, reason: StopReason) {
        let keys: Vec<AttemptKey> = self.lock().slots.keys().copied().collect();
        for key in keys {
            self.stop(key, reason);
        }
    }

    /// Whether the table holds `key`.
    pub fn contains(&self, key: AttemptKey) -> bool {
        self.lock().slots.contains_key(&key)
    }

    /// The references of every attempt held, for a heartbeat.
    pub fn heartbeat_refs(&self) -> Vec<AttemptRef> {
        self.lock()
            .slots
            .iter()
            .map(|(k, s)| AttemptRef {
                job_id: k.job_id,
                attempt: k.attempt,
                token: s.token.clone(),
            })
            .collect()
    }

    /// Resources in use and how many attempts wait.
    pub fn usage(&self) -> Usage {
        let inner = self.lock();
        let mut used = Capacity::default();
        let mut waiting = 0;
        for slot in inner.slots.values() {
            if slot.released {
                continue;
            }
            used = used.plus(&slot.resources);
            if slot.admitted.is_none() {
                waiting += 1;
            }
        }
        Usage {
            used,
            waiting,
            count: inner.slots.len(),
            idle_since: inner.idle_since,
            mean_run: inner.mean_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::lease;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn mean_run_moves_towards_new_samples() {
        let ms = Duration::from_millis;
        assert_eq!(next_mean(None, ms(160)), ms(160));
        assert_eq!(next_mean(Some(ms(160)), ms(0)), ms(150));
        assert_eq!(next_mean(Some(ms(160)), ms(320)), ms(170));
        let a = Attempts::new(cap(2));
        assert_eq!(a.usage().mean_run, None);
        a.insert(&lease(1, 1)).unwrap();
        a.insert(&lease(2, 1)).unwrap();
        assert!(a.try_admit(key(1)));
        a.remove(key(1));
        assert!(a.usage().mean_run.is_some());
        a.remove(key(2));
        assert!(a.usage().mean_run.is_some(), "never admitted: no sample");
    }

    fn key(job_id: i64) -> AttemptKey {
        AttemptKey { job_id, attempt: 1 }
    }

    fn cap(cpus: u32) -> Capacity {
        Capacity {
            cpus,
            mem_mib: 100,
            gpus: 0,
        }
    }

    #[test]
    fn tracks_usage_and_admission() {
        let a = Attempts::new(cap(2));
        assert!(a.insert(&lease(1, 2)).is_some());
        assert!(a.insert(&lease(1, 2)).is_none());
        assert!(a.insert(&lease(2, 1)).is_some());
        let u = a.usage();
        assert_eq!((u.used.cpus, u.waiting, u.count), (3, 2, 2));
        assert!(a.try_admit(key(1)));
        assert!(!a.try_admit(key(2)));
        a.remove(key(1));
        assert!(a.try_admit(key(2)));
        assert_eq!(a.usage().waiting, 0);
        assert_eq!(a.heartbeat_refs()[0].token, "t2");
        a.remove(key(2));
        assert_eq!(a.usage().count, 0);
    }

    #[test]
    fn stale_overrides_other_stop_reasons() {
        let a = Attempts::new(cap(2));
        let rx = a.insert(&lease(1, 1)).unwrap();
        assert!(a.stop(key(1), StopReason::Cancel));
        assert!(a.stop(key(1), StopReason::Release));
        assert_eq!(*rx.borrow(), Some(StopReason::Cancel));
        a.stop_all(StopReason::Stale);
        assert_eq!(*rx.borrow(), Some(StopReason::Stale));
        assert!(!a.stop(key(9), StopReason::Cancel));
    }

    #[tokio::test]
    async fn waiting_attempts_are_admitted_when_capacity_frees() {
        let a = Arc::new(Attempts::new(cap(1)));
        a.insert(&lease(1, 1)).unwrap();
        let mut rx2 = a.insert(&lease(2, 1)).unwrap();
        assert!(a.try_admit(key(1)));
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.admit(key(2), &mut rx2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        a.remove(key(1));
        assert_eq!(waiter.await.unwrap(), Ok(()));

        let mut rx3 = a.insert(&lease(3, 1)).unwrap();
        let a3 = a.clone();
        let waiter = tokio::spawn(async move { a3.admit(key(3), &mut rx3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.stop(key(3), StopReason::Release);
        assert_eq!(waiter.await.unwrap(), Err(StopReason::Release));
    }

    #[tokio::test]
    async fn capacity_goes_to_the_oldest_waiter_alone() {
        let a = Arc::new(Attempts::new(cap(1)));
        let mut waiters = Vec::new();
        for job in 1..=4 {
            let mut rx = a.insert(&lease(job, 1)).unwrap();
            let a2 = a.clone();
            waiters.push(tokio::spawn(
                async move { a2.admit(key(job), &mut rx).await },
            ));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let admitted = |w: &[tokio::task::JoinHandle<Result<(), StopReason>>]| {
            w.iter().filter(|h| h.is_finished()).count()
        };
        assert_eq!(admitted(&waiters), 1, "one CPU: one runs");
        assert!(waiters[0].is_finished());
        a.remove(key(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(admitted(&waiters), 2);
        assert!(waiters[1].is_finished(), "the oldest waiter goes next");
        a.remove(key(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiters[2].is_finished() && !waiters[3].is_finished());
        a.remove(key(3));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiters[3].is_finished());
        for w in waiters {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn a_higher_priority_job_passes_prefetched_ones() {
        let a = Arc::new(Attempts::new(cap(1)));
        let mut tasks = Vec::new();
        for (job, priority) in [(1, -1), (2, -1), (3, -1), (4, 5)] {
            let mut l = lease(job, 1);
            l.spec.priority = priority;
            let mut rx = a.insert(&l).unwrap();
            let a2 = a.clone();
            tasks.push(tokio::spawn(
                async move { a2.admit(key(job), &mut rx).await },
            ));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(tasks[0].is_finished());
        a.remove(key(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            tasks[3].is_finished(),
            "priority 5 goes before the older -1s"
        );
        assert!(!tasks[1].is_finished() && !tasks[2].is_finished());
        a.remove(key(4));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(tasks[1].is_finished() && !tasks[2].is_finished());
    }

    #[tokio::test]
    async fn capacity_comes_back_when_the_process_ends() {
        let a = Arc::new(Attempts::new(cap(1)));
        let mut rx1 = a.insert(&lease(1, 1)).unwrap();
        a.admit(key(1), &mut rx1).await.unwrap();
        let mut rx2 = a.insert(&lease(2, 1)).unwrap();
        let a2 = a.clone();
        let second = tokio::spawn(async move { a2.admit(key(2), &mut rx2).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!second.is_finished());
        a.release_capacity(key(1));
        assert_eq!(second.await.unwrap(), Ok(()));
        let u = a.usage();
        assert_eq!((u.used.cpus, u.count), (1, 2), "1 still reports; 2 runs");
        // Removing the released attempt gives nothing back twice.
        a.remove(key(1));
        assert_eq!(a.usage().used.cpus, 1);
        let mut rx3 = a.insert(&lease(3, 1)).unwrap();
        assert!(!a.try_admit(key(3)));
        a.remove(key(2));
        assert_eq!(a.admit(key(3), &mut rx3).await, Ok(()));
    }
}
