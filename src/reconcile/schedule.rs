//! When the next round starts: the interval spread by jitter after a good round, exponential
//! backoff after failed ones (bounded, reset by the next good round). Pure: the caller draws
//! the random number, so tests pin it.

use std::time::Duration;

/// The first wait after a failed round is at most this (or the interval, when shorter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// Backoff never waits longer than this, or the interval when that is longer.
pub const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// The loop's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Time between the end of one good round and the start of the next.
    pub interval: Duration,
    /// Each wait is spread uniformly over ±`jitter_pct`% of itself, so that many replicas or
    /// many configs started together do not hit a vendor at the same moment.
    pub jitter_pct: u8,
}

impl Schedule {
    /// The wait before the next round after `failures` failed rounds in a row (0 after a good
    /// round): the interval, or `min(base × 2^(failures−1), cap)` with base = min(interval,
    /// 30 s) and cap = max(interval, 10 min); then jittered. `r` is uniform in `[0, 1)`.
    pub fn delay(&self, failures: u32, r: f64) -> Duration {
        let wait = if failures == 0 {
            self.interval
        } else {
            let base = self.interval.min(BACKOFF_BASE);
            let cap = self.interval.max(BACKOFF_CAP);
            base.saturating_mul(1u32 << failures.saturating_sub(1).min(20))
                .min(cap)
        };
        jitter(wait, self.jitter_pct, r)
    }
}

/// `wait` moved by up to ±`pct`% (`r` uniform in `[0, 1)`; 0.5 leaves it as it is).
pub fn jitter(wait: Duration, pct: u8, r: f64) -> Duration {
    let spread = f64::from(pct.min(100)) / 100.0;
    let r = if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 + spread * (2.0 * r - 1.0);
    wait.mul_f64(factor.max(0.0))
}

/// A uniform draw in `[0, 1)` (uuid's random source, as the HTTP layer's backoff uses).
pub fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_good_round_waits_the_interval_within_the_jitter_bounds() {
        let s = Schedule {
            interval: 10 * MIN,
            jitter_pct: 10,
        };
        assert_eq!(s.delay(0, 0.5), 10 * MIN);
        assert_eq!(s.delay(0, 0.0), 9 * MIN);
        assert_eq!(s.delay(0, 1.0), 11 * MIN);
        for i in 0..1000 {
            let d = s.delay(0, random_unit());
            assert!(d >= 9 * MIN && d <= 11 * MIN, "draw {i}: {d:?}");
        }
        let none = Schedule {
            interval: 10 * MIN,
            jitter_pct: 0,
        };
        assert_eq!(none.delay(0, 0.9), 10 * MIN);
    }

    #[test]
    fn jitter_never_goes_negative_or_nan() {
        assert_eq!(jitter(MIN, 100, 0.0), Duration::ZERO);
        assert_eq!(jitter(MIN, 250, 0.0), Duration::ZERO);
        assert_eq!(jitter(MIN, 10, f64::NAN), MIN);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap() {
        let s = Schedule {
            interval: 60 * MIN,
            jitter_pct: 0,
        };
        let secs: Vec<u64> = (1..=9).map(|n| s.delay(n, 0.5).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(s.delay(u32::MAX, 0.5), 60 * MIN);
    }

    #[test]
    fn a_short_interval_still_backs_off_to_ten_minutes() {
        let s = Schedule {
            interval: Duration::from_secs(5),
            jitter_pct: 0,
        };
        let secs: Vec<u64> = (1..=9).map(|n| s.delay(n, 0.5).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        // Reset: a good round waits the interval again.
        assert_eq!(s.delay(0, 0.5), Duration::from_secs(5));
    }
}
