//! Retry pacing for calls to a server that may be away for a while.

use std::future::Future;
use std::time::Duration;
use trestle_client::ClientError;

/// Exponential backoff: 200 ms doubling up to 5 s by default.
#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    next: Duration,
    max: Duration,
}

/// First delay.
const START: Duration = Duration::from_millis(200);
/// Longest delay.
const MAX: Duration = Duration::from_secs(5);

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(START, MAX)
    }
}

impl Backoff {
    /// Delays from `start` doubling up to `max`.
    pub fn new(start: Duration, max: Duration) -> Backoff {
        Backoff {
            start,
            next: start,
            max,
        }
    }

    /// The delay to wait now; the following one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

/// Calls `f` until it succeeds, fails with a non-transient error, or
/// `tries` calls failed transiently (then the last error is returned),
/// sleeping as `backoff` says between calls.
pub async fn retry<T, F, Fut>(tries: u32, mut backoff: Backoff, mut f: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut left = tries.max(1);
    loop {
        match f().await {
            Err(e) if e.is_transient() && left > 1 => {
                left -= 1;
                tracing::debug!(error = %e, "transient failure, retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), START);
    }

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn retries_only_transient_errors() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(3, quick(), || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(ClientError::Connect("down".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        calls.store(0, Ordering::Relaxed);
        let r: Result<(), _> = retry(3, quick(), || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(ClientError::Api {
                status: 400,
                code: "x".into(),
                message: "bad".into(),
                field: None,
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
