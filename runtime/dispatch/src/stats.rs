//! What the dispatch loop has done per handler, for the API, the CLI and metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use choreo_core::Timestamp;
use choreo_host::TrapKind;

/// Upper bounds, in seconds, of the latency histograms' buckets: from half a
/// millisecond (a warm call takes microseconds) to half a minute (past a handler's
/// default deadline), roughly tripling, so that p50 and p99 can be read at any scale.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// A latency histogram with the [`LATENCY_BUCKETS`] bounds, updated without a lock.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One count per bound, and one for values above the last bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// A copy of a [`Histogram`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations at or below each of [`LATENCY_BUCKETS`], cumulative (as Prometheus
    /// wants them).
    pub cumulative: Vec<u64>,
    /// Every observation.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_micros: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A copy; taken bucket by bucket, so a concurrent observation may be half in it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(LATENCY_BUCKETS.len());
        for bucket in &self.buckets[..LATENCY_BUCKETS.len()] {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            cumulative,
            count,
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one handler since this process started. Shared by its workers.
#[derive(Debug, Default)]
pub struct HandlerCounters {
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    leases_lost: AtomicU64,
    commits_failed: AtomicU64,
    handle_micros: AtomicU64,
    /// Time in the guest's `handle` call, every attempt.
    call_latency: Histogram,
    /// From the event's `time` to the start of its first delivery.
    start_delay: Histogram,
    traps: Mutex<BTreeMap<&'static str, u64>>,
    last_error: Mutex<Option<LastError>>,
}

/// The most recent failed delivery of a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// The error, naming the handler, the event and the reason.
    pub message: String,
    /// When it happened.
    pub at: Timestamp,
}

/// A copy of a handler's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Deliveries acknowledged.
    pub acked: u64,
    /// Deliveries that failed and will be retried.
    pub retried: u64,
    /// Deliveries dead-lettered.
    pub dead_lettered: u64,
    /// Outcomes that arrived after their lease had expired (the event was redelivered).
    pub leases_lost: u64,
    /// Outcomes the broker failed to commit (the event is redelivered).
    pub commits_failed: u64,
    /// Time in the guest's `handle` call, every attempt.
    pub call_latency: HistogramSnapshot,
    /// From the event's `time` attribute to the start of its first delivery. The
    /// publisher sets `time`, so a skewed clock skews this; a `time` in the future
    /// counts as zero.
    pub start_delay: HistogramSnapshot,
    /// Total time spent in `handle`, in microseconds.
    pub handle_micros: u64,
    /// Guest traps by kind label.
    pub traps: BTreeMap<&'static str, u64>,
    /// The last failure.
    pub last_error: Option<LastError>,
}

impl HandlerCounters {
    pub(crate) fn acked(&self, micros: u64) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        self.handle_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, dead_lettered: bool, trap: Option<TrapKind>, message: String) {
        let counter = if dead_lettered {
            &self.dead_lettered
        } else {
            &self.retried
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(kind) = trap {
            *self
                .traps
                .lock()
                .expect("counter lock is never poisoned")
                .entry(kind.label())
                .or_default() += 1;
        }
        *self
            .last_error
            .lock()
            .expect("counter lock is never poisoned") = Some(LastError {
            message,
            at: Timestamp::now(),
        });
    }

    pub(crate) fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn commit_failed(&self) {
        self.commits_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn called(&self, elapsed: Duration) {
        self.call_latency.observe(elapsed);
    }

    pub(crate) fn started(&self, delay: Duration) {
        self.start_delay.observe(delay);
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            acked: self.acked.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
            commits_failed: self.commits_failed.load(Ordering::Relaxed),
            call_latency: self.call_latency.snapshot(),
            start_delay: self.start_delay.snapshot(),
            handle_micros: self.handle_micros.load(Ordering::Relaxed),
            traps: self
                .traps
                .lock()
                .expect("counter lock is never poisoned")
                .clone(),
            last_error: self
                .last_error
                .lock()
                .expect("counter lock is never poisoned")
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_cumulatively_with_an_overflow_bucket() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.sum_micros, 100 + 1_000 + 30_000 + 60_000_000);
        // 0.0005 holds 100 µs; 0.001 adds the 1 ms on its bound; 0.05 adds 30 ms.
        assert_eq!(&snapshot.cumulative[..3], &[1, 2, 2]);
        assert_eq!(snapshot.cumulative[6], 3);
        assert_eq!(
            *snapshot.cumulative.last().unwrap(),
            3,
            "60 s is above every bound"
        );
    }
}
