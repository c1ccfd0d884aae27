//! choreo's dispatch loop: for each deployed handler, workers lease deliveries from the
//! broker, run them on the host in a fresh instance, and commit each outcome through the
//! broker's outbox (ack with the handler's publishes and state writes, retry, or
//! dead-letter) in one atomic step.
//!
//! The [`Dispatcher`] owns one worker per deployed handler. Deploying subscribes the
//! handler in the broker and starts (or updates) its worker; redeploying swaps the
//! version new deliveries use while in-flight ones finish on the old; undeploying pauses
//! the handler in the broker (its queue is kept) and stops its worker once in-flight
//! deliveries are done. A slow or failing handler only occupies its own worker.
//!
//! Layout:
//! - `worker`: one handler's lease / run loop.
//! - `commit`: one handler's committer, which commits finished deliveries together.
//! - `state`: [`BrokerState`], the host's state reader over the broker.
//! - `stats`: per-handler counters for the API and metrics.

mod commit;
mod state;
mod stats;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use choreo_broker::{Broker, HandlerStats, RetryPolicy, StartPosition, Subscription};
use choreo_core::HandlerName;
use choreo_host::LoadedHandler;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

pub use state::BrokerState;
pub use stats::{
    CountersSnapshot, HandlerCounters, Histogram, HistogramSnapshot, LATENCY_BUCKETS, LastError,
};

use crate::worker::WorkerShared;

/// Why the dispatcher could not deploy or undeploy a handler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The broker refused the subscription change.
    #[error("handler `{handler}`: the broker refused to {action}")]
    Broker {
        /// The handler.
        handler: HandlerName,
        /// What was attempted.
        action: &'static str,
        /// The broker's error.
        #[source]
        source: choreo_broker::Error,
    },
}

/// Why [`Dispatcher::delete`] deleted nothing.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The handler is being delivered to: its component must be removed first.
    #[error("handler `{handler}` is being delivered to")]
    Running {
        /// The handler.
        handler: HandlerName,
    },
    /// The broker failed.
    #[error("the broker failed")]
    Broker(#[source] choreo_broker::Error),
}

/// How a handler is to be dispatched: from its manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchPlan {
    /// Deliveries in flight at once (1 = strict order; more = ordered per key).
    pub concurrency: usize,
    /// Where a new subscription starts.
    pub start: StartPosition,
    /// Retries and backoff.
    pub retry: RetryPolicy,
}

impl Default for DispatchPlan {
    fn default() -> Self {
        DispatchPlan {
            concurrency: 1,
            start: StartPosition::Next,
            retry: RetryPolicy::default(),
        }
    }
}

/// Rounds of a handler's calls the broker may have in flight: the one running, and the
/// ones whose commits are on their way. Under load the writer applies a round's commits
/// several groups after its calls end. Measured with `choreo bench` (relays at
/// concurrency 8, interleaved runs; `docs/benchmarks.md`): chain medians of 28.1k
/// deliveries/s with 2 rounds (18 runs), 30.0k with 4 (14 runs), 31.5k with 8 (10 runs).
const ROUNDS_IN_FLIGHT: usize = 8;

/// How many of a handler's deliveries the broker may have in flight (leased, or being
/// committed) when its calls run `concurrency` at a time.
///
/// Decision: [`ROUNDS_IN_FLIGHT`] times the concurrency, above 1. A delivery counts as in
/// flight in the broker until its outcome's commit is applied, which takes a trip through
/// the committer and the broker's writer after its call has ended. Held to `concurrency`,
/// a handler's next calls waited for that trip, and its slots stood idle while the CPU
/// had room: in `choreo bench`, relays at concurrency 8 left a fifth of the two cores
/// idle with their queues full. With room for more rounds, the next calls run while the
/// last ones' commits are on their way; the worker's slots still hold the calls
/// themselves to `concurrency`, and the broker still hands out one delivery per ordering
/// key at a time. Concurrency 1 stays 1: strict order, where each delivery starts only
/// once the one before it is committed and sees the state it wrote.
fn in_flight_limit(concurrency: usize) -> usize {
    if concurrency > 1 {
        concurrency
            .saturating_mul(ROUNDS_IN_FLIGHT)
            .min(choreo_broker::MAX_CONCURRENCY)
    } else {
        1
    }
}

struct Worker {
    shared: Arc<WorkerShared>,
    concurrency: usize,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Runs every deployed handler's deliveries.
pub struct Dispatcher {
    broker: Arc<dyn Broker>,
    workers: Mutex<HashMap<HandlerName, Worker>>,
    counters: RwLock<HashMap<HandlerName, Arc<HandlerCounters>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher with no handlers, over `broker`.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Dispatcher {
            broker,
            workers: Mutex::new(HashMap::new()),
            counters: RwLock::new(HashMap::new()),
        }
    }

    /// Subscribes `handler` and delivers to it: starts its worker, or, for a handler
    /// already running with the same concurrency, swaps the version in place.
    pub async fn deploy(&self, handler: LoadedHandler, plan: DispatchPlan) -> Result<(), Error> {
        let info = handler.info();
        let name = info.name.clone();
        let subscription = Subscription {
            handler: name.clone(),
            patterns: info.subscriptions.clone(),
            start: plan.start,
            retry: plan.retry,
            concurrency: in_flight_limit(plan.concurrency),
        };
        let broker_error = |action| {
            let handler = name.clone();
            move |source| Error::Broker {
                handler,
                action,
                source,
            }
        };
        // Taken before subscribing, so that a delete ([`Dispatcher::delete`]) never
        // removes a subscription made between its check and its removal.
        let mut workers = self.workers.lock().await;
        self.broker
            .subscribe(subscription)
            .await
            .map_err(broker_error("subscribe"))?;
        self.broker
            .resume(&name)
            .await
            .map_err(broker_error("resume delivery"))?;

        if let Some(worker) = workers.get(&name)
            && worker.concurrency == plan.concurrency
            && !worker.task.is_finished()
        {
            *worker
                .shared
                .current
                .write()
                .expect("handler lock is never poisoned") = handler;
            return Ok(());
        }
        if let Some(old) = workers.remove(&name) {
            // The old worker finishes its in-flight deliveries on the old version while
            // the new one starts; the broker keeps per-key order across both.
            let _ = old.stop.send(true);
        }
        let counters = self.counters_for(&name);
        let shared = Arc::new(WorkerShared {
            name: name.clone(),
            current: RwLock::new(handler),
            counters,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker::run(
            self.broker.clone(),
            shared.clone(),
            plan.concurrency,
            stopped,
        ));
        workers.insert(
            name,
            Worker {
                shared,
                concurrency: plan.concurrency,
                stop,
                task,
            },
        );
        Ok(())
    }

    /// Stops delivering to `name` and pauses it in the broker; its queue is kept, so a
    /// later deploy resumes where it stopped. Waits for in-flight deliveries.
    pub async fn undeploy(&self, name: &HandlerName) -> Result<(), Error> {
        self.broker
            .pause(name)
            .await
            .map_err(|source| Error::Broker {
                handler: name.clone(),
                action: "pause delivery",
                source,
            })?;
        let worker = self.workers.lock().await.remove(name);
        if let Some(worker) = worker {
            let _ = worker.stop.send(true);
            let _ = worker.task.await;
        }
        Ok(())
    }

    /// Deletes everything the broker keeps for `name` (subscription, queue,
    /// dead-letters, state) and its counters, if it is not being delivered to: a handler
    /// is retired for good once its component is gone. Returns its figures just before,
    /// or `None` for a handler the broker does not know.
    pub async fn delete(&self, name: &HandlerName) -> Result<Option<HandlerStats>, DeleteError> {
        let workers = self.workers.lock().await;
        if workers.contains_key(name) {
            return Err(DeleteError::Running {
                handler: name.clone(),
            });
        }
        let stats = match self.broker.stats(name).await {
            Ok(stats) => stats,
            Err(choreo_broker::Error::UnknownHandler { .. }) => return Ok(None),
            Err(source) => return Err(DeleteError::Broker(source)),
        };
        self.broker
            .remove(name)
            .await
            .map_err(DeleteError::Broker)?;
        self.counters
            .write()
            .expect("counters lock is never poisoned")
            .remove(name);
        drop(workers);
        Ok(Some(stats))
    }

    /// The names of the handlers being delivered to.
    pub async fn running(&self) -> Vec<HandlerName> {
        let mut names: Vec<_> = self.workers.lock().await.keys().cloned().collect();
        names.sort();
        names
    }

    /// The version new deliveries to `name` run on, if it is being delivered to. This,
    /// not the deploy registry, is what to report as "running": the registry learns of a
    /// new version before the dispatcher has swapped it in.
    pub async fn current(&self, name: &HandlerName) -> Option<LoadedHandler> {
        let workers = self.workers.lock().await;
        let worker = workers.get(name)?;
        Some(
            worker
                .shared
                .current
                .read()
                .expect("handler lock is never poisoned")
                .clone(),
        )
    }

    /// Counters of a handler (kept across redeploys), if it was ever deployed.
    pub fn counters(&self, name: &HandlerName) -> Option<CountersSnapshot> {
        self.counters
            .read()
            .expect("counters lock is never poisoned")
            .get(name)
            .map(|c| c.snapshot())
    }

    /// Stops leasing for every handler and waits up to `grace` for in-flight deliveries
    /// to finish and commit. Returns false if some were still running at the deadline
    /// (their leases expire and they are delivered again after a restart).
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let workers: Vec<Worker> = self.workers.lock().await.drain().map(|(_, w)| w).collect();
        for worker in &workers {
            let _ = worker.stop.send(true);
        }
        let all = async {
            for worker in workers {
                let _ = worker.task.await;
            }
        };
        tokio::time::timeout(grace, all).await.is_ok()
    }

    fn counters_for(&self, name: &HandlerName) -> Arc<HandlerCounters> {
        self.counters
            .write()
            .expect("counters lock is never poisoned")
            .entry(name.clone())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_may_hold_more_rounds_in_flight_above_concurrency_one() {
        assert_eq!(in_flight_limit(1), 1);
        assert_eq!(in_flight_limit(2), 16);
        assert_eq!(in_flight_limit(8), 64);
        let max = choreo_broker::MAX_CONCURRENCY;
        assert_eq!(in_flight_limit(max), max);
    }
}
