//! What the dispatch loop has done per handler, for the API, the CLI and metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use choreo_core::Timestamp;
use choreo_host::TrapKind;

/// Counters of one handler since this process started. Shared by its workers.
#[derive(Debug, Default)]
pub struct HandlerCounters {
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    leases_lost: AtomicU64,
    handle_micros: AtomicU64,
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

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            acked: self.acked.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
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
