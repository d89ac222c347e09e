//! When a failed delivery is tried again: exponential backoff with
//! jitter, for at least [`Backoff::give_up_after_ms`] after the delivery
//! was made, then a dead letter.

use serde::{Deserialize, Serialize};

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The first delay (ms).
    pub base_ms: i64,
    /// No delay is longer (ms).
    pub max_ms: i64,
    /// A delivery still failing this long after it was made is dead (ms).
    pub give_up_after_ms: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_ms: 1_000,
            max_ms: 15 * 60 * 1000,
            give_up_after_ms: 24 * 3600 * 1000,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time (ms).
    At(i64),
    /// Give up: the delivery is dead-lettered.
    Dead,
}

impl Backoff {
    /// The delay before attempt `attempts + 1` after `attempts` failures
    /// (1 or more): `base * 2^(attempts-1)` capped at `max`, with "equal
    /// jitter": half of it fixed, the other half scaled by `jitter` in
    /// `[0, 1)`, so retries of many deliveries spread out.
    pub fn delay_ms(&self, attempts: u32, jitter: f64) -> i64 {
        let exp = attempts.saturating_sub(1).min(40);
        let full = self
            .base_ms
            .max(1)
            .saturating_mul(1i64 << exp.min(40))
            .min(self.max_ms.max(1));
        let half = full / 2;
        half + ((full - half) as f64 * jitter.clamp(0.0, 1.0)) as i64
    }

    /// After failure number `attempts` at `now` of a delivery made at
    /// `created`: when to try again, or dead once the next try would be
    /// past the give-up time.
    pub fn next(&self, attempts: u32, created: i64, now: i64, jitter: f64) -> Retry {
        if now - created >= self.give_up_after_ms {
            return Retry::Dead;
        }
        let at = now + self.delay_ms(attempts, jitter);
        // The last try is made at the give-up time, never skipped.
        Retry::At(at.min(created + self.give_up_after_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap_with_jitter_in_the_upper_half() {
        let b = Backoff::default();
        assert_eq!(b.delay_ms(1, 0.0), 500);
        assert_eq!(b.delay_ms(1, 0.999_999), 999);
        assert_eq!(b.delay_ms(2, 0.0), 1000);
        assert_eq!(b.delay_ms(3, 0.5), 3000);
        assert_eq!(b.delay_ms(30, 1.0), 15 * 60 * 1000);
        assert_eq!(b.delay_ms(u32::MAX, 1.0), 15 * 60 * 1000);
    }

    #[test]
    fn retries_last_at_least_a_day_then_die() {
        let b = Backoff::default();
        let (mut now, mut n) = (0i64, 0u32);
        loop {
            n += 1;
            match b.next(n, 0, now, 0.5) {
                Retry::At(t) => {
                    assert!(t > now);
                    now = t;
                }
                Retry::Dead => break,
            }
        }
        assert!(now >= b.give_up_after_ms, "gave up at {now}");
        assert!(n < 200, "{n} attempts");
    }
}
