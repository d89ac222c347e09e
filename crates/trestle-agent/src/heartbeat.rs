//! Heartbeat timing. One clock for the whole worker (owned by the
//! reporter, which sends the heartbeats in its batches): every
//! `min(1 s, lease_ms / 3)` the references of every attempt held go out so
//! the server extends their leases.

use std::time::Duration;
use tokio::time::Instant;

/// Longest time between heartbeats.
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest time between heartbeats, whatever the lease duration.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// Time between heartbeats for leases of `lease_ms`.
pub fn interval(lease_ms: u64) -> Duration {
    Duration::from_millis(lease_ms / 3).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// When the next heartbeat is due.
#[derive(Debug, Clone)]
pub struct HeartbeatClock {
    next: Instant,
}

impl HeartbeatClock {
    /// A clock whose first heartbeat is due one interval after `now`.
    pub fn new(now: Instant, lease_ms: u64) -> HeartbeatClock {
        HeartbeatClock {
            next: now + interval(lease_ms),
        }
    }

    /// When the next heartbeat is due.
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// Whether a heartbeat is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Records a heartbeat sent (or found unnecessary) at `now`.
    pub fn sent(&mut self, now: Instant, lease_ms: u64) {
        self.next = now + interval(lease_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_third_of_the_lease_capped_at_a_second() {
        assert_eq!(interval(30_000), Duration::from_secs(1));
        assert_eq!(interval(3_000), Duration::from_secs(1));
        assert_eq!(interval(1_500), Duration::from_millis(500));
        assert_eq!(interval(90), Duration::from_millis(50));
        assert_eq!(interval(0), Duration::from_millis(50));
    }

    #[test]
    fn clock_tracks_the_next_deadline() {
        let t0 = Instant::now();
        let mut c = HeartbeatClock::new(t0, 600);
        assert_eq!(c.deadline(), t0 + Duration::from_millis(200));
        assert!(!c.is_due(t0));
        assert!(c.is_due(t0 + Duration::from_millis(200)));
        c.sent(t0 + Duration::from_millis(250), 30_000);
        assert_eq!(c.deadline(), t0 + Duration::from_millis(1250));
    }
}
