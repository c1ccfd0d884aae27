//! Warm instances: a handler that allows it serves several deliveries, one after the
//! other, from one instance instead of a fresh one each.
//!
//! A fresh instance per delivery is the default and the strongest isolation: nothing a
//! guest leaves in memory reaches the next event. For a Rust guest it is also nearly
//! free. For an interpreter packaged as a component (CPython, SpiderMonkey) it is not:
//! instantiating wires thousands of functions between core modules, and the first run
//! of a fresh instance faults in the interpreter's heap page by page, so a delivery
//! costs milliseconds where the handler's own code takes a hundred microseconds. A
//! manifest may therefore set `deliveries_per_instance` above 1 (see
//! [`crate::HandlerSettings::deliveries_per_instance`]).
//!
//! The rules that keep this safe:
//! - An instance only ever serves the handler version it was made for, and only
//!   `handle` calls; `describe` and `query` always get a fresh one.
//! - It serves one delivery at a time, at most `deliveries_per_instance` in all.
//! - Any failure that is not the guest's own answer (a trap, the deadline, a refused
//!   memory grow, a host error) discards it: a guest that broke itself never runs
//!   again. A guest that returns `retry` or `reject` did not break, and stays.
//! - An idle instance keeps its pool slot, so the host can always take it back: when
//!   a call finds every slot taken, idle instances are dropped (oldest first) before it
//!   waits, and the epoch ticker drops any instance idle for longer than [`IDLE_TTL`].

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use crate::bindings::Handler;
use crate::call::CallState;

/// Longest an instance waits, unused, to serve its handler again; then it is dropped
/// and its memory returned.
pub const IDLE_TTL: Duration = Duration::from_secs(30);

/// Most deliveries a manifest may let one instance serve.
pub const MAX_DELIVERIES_PER_INSTANCE: u32 = 100_000;

/// An instance between two calls, with its store and its pool slot.
pub(crate) struct Warm {
    // Field order is drop order: the store (and its pool slot) goes before the permit
    // that lets the next caller take that slot.
    pub(crate) store: Store<CallState>,
    pub(crate) instance: Handler,
    pub(crate) slot: OwnedSemaphorePermit,
    /// Deliveries this instance has served.
    pub(crate) served: u32,
    idle_since: Instant,
}

impl Warm {
    pub(crate) fn new(
        store: Store<CallState>,
        instance: Handler,
        slot: OwnedSemaphorePermit,
        served: u32,
    ) -> Self {
        Warm {
            store,
            instance,
            slot,
            served,
            idle_since: Instant::now(),
        }
    }
}

/// The idle instances of one loaded handler version.
pub(crate) struct WarmInstances {
    per_instance: u32,
    idle: Mutex<Vec<Warm>>,
}

impl WarmInstances {
    /// `per_instance` is how many deliveries one instance may serve (at least 2, or
    /// nothing would ever be kept).
    pub(crate) fn new(per_instance: u32) -> Self {
        WarmInstances {
            per_instance,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Warm>> {
        self.idle
            .lock()
            .expect("the idle list is only pushed and popped")
    }

    /// The most recently used idle instance, if any: its pages are the likeliest to
    /// still be in the CPU's caches.
    pub(crate) fn take(&self) -> Option<Warm> {
        self.idle().pop()
    }

    /// Keeps `warm` for the next delivery, unless it has served its share.
    pub(crate) fn put(&self, mut warm: Warm) {
        if warm.served >= self.per_instance {
            return;
        }
        warm.idle_since = Instant::now();
        self.idle().push(warm);
    }

    fn take_oldest(&self) -> Option<Warm> {
        let mut idle = self.idle();
        (!idle.is_empty()).then(|| idle.remove(0))
    }

    fn take_expired(&self, now: Instant) -> Vec<Warm> {
        let mut idle = self.idle();
        let (expired, kept) = std::mem::take(&mut *idle)
            .into_iter()
            .partition(|warm| now.duration_since(warm.idle_since) >= IDLE_TTL);
        *idle = kept;
        expired
    }
}

/// Every handler's idle instances, so that the host can take their slots back.
#[derive(Default)]
pub(crate) struct WarmRegistry {
    handlers: Mutex<Vec<Weak<WarmInstances>>>,
}

impl WarmRegistry {
    fn handlers(&self) -> MutexGuard<'_, Vec<Weak<WarmInstances>>> {
        self.handlers
            .lock()
            .expect("the registry is only pushed to and scanned")
    }

    pub(crate) fn register(&self, instances: &Arc<WarmInstances>) {
        let mut handlers = self.handlers();
        handlers.retain(|weak| weak.strong_count() > 0);
        handlers.push(Arc::downgrade(instances));
    }

    /// Drops the longest-idle instance of some handler; false if none is idle. The
    /// instance is dropped after every lock is released: returning its memory to the
    /// pool takes a while.
    pub(crate) fn evict_one(&self) -> bool {
        let live: Vec<Arc<WarmInstances>> =
            self.handlers().iter().filter_map(Weak::upgrade).collect();
        let evicted = live.iter().find_map(|instances| instances.take_oldest());
        evicted.is_some()
    }

    /// Drops every instance idle for longer than [`IDLE_TTL`].
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let live: Vec<Arc<WarmInstances>> =
            self.handlers().iter().filter_map(Weak::upgrade).collect();
        let expired: Vec<Warm> = live
            .iter()
            .flat_map(|instances| instances.take_expired(now))
            .collect();
        drop(expired);
    }
}
