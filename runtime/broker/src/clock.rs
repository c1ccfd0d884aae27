//! The broker's notion of "now".
//!
//! Stored times (append time, lease expiry, retry not-before) are wall-clock
//! milliseconds, so they keep their meaning across a restart. They are read from tokio's
//! monotonic clock, anchored to the wall clock once when the clock is made: the broker's
//! timers (`sleep_until` in a long poll) and its timestamps then move together, and a test
//! that pauses tokio time (`start_paused`, `tokio::time::advance`) controls both without a
//! second, hand-driven clock. A clock made with [`Clock::starting_at`] lets a test reopen
//! a store "later", e.g. after a lease has expired.
//!
//! Decision: a monotonic source rather than reading `SystemTime` on every call, so a wall
//! clock step (NTP) cannot make a lease expire early or a backoff run backwards while
//! the process runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use choreo_core::Timestamp;
use tokio::time::Instant;

/// Wall-clock time in milliseconds since the Unix epoch, advanced by tokio's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    base: Instant,
}

impl Clock {
    /// Anchored to the system's wall clock now.
    pub fn system() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock::anchored(millis(since_epoch))
    }

    /// Anchored to `at`: the clock reads `at` now and advances with tokio's clock.
    pub fn starting_at(at: Timestamp) -> Self {
        Clock::anchored(u64::try_from(at.as_millisecond()).unwrap_or(0))
    }

    fn anchored(base_ms: u64) -> Self {
        Clock {
            base_ms,
            base: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + millis(self.base.elapsed())
    }

    /// The same instant as a timestamp.
    pub fn now(&self) -> Timestamp {
        timestamp(self.now_ms())
    }

    /// The tokio instant at which this clock will read `ms`.
    pub(crate) fn instant_at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms.saturating_sub(self.base_ms))
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX)
}

pub(crate) fn timestamp_ms(at: Timestamp) -> u64 {
    u64::try_from(at.as_millisecond()).unwrap_or(0)
}
