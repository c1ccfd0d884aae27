//! One handler's worker: lease deliveries while slots are free, run each on the host,
//! hand its outcome to the committer (`commit.rs`).
//!
//! Concurrency is a semaphore of `concurrency` slots: the worker leases only as many
//! deliveries as it has free slots, so the broker's per-key ordering (one in-flight
//! delivery per key) and the handler's concurrency both hold. A lease call is never
//! cancelled (a cancelled lease would strand deliveries until their lease expired):
//! the worker long-polls in short rounds and checks for a stop between them.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use choreo_broker::{Broker, Delivery, Outcome, StateView, StateWrite};
use choreo_core::HandlerName;
use choreo_host::LoadedHandler;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::commit::{self, Failure, Finished};
use crate::state::BrokerState;
use crate::stats::HandlerCounters;

/// How long one lease call waits for a delivery before the worker goes round its loop
/// again (a stop interrupts the wait at once); long enough that an idle handler costs
/// nothing.
pub(crate) const LEASE_WAIT: Duration = Duration::from_millis(250);

/// Extra lease time beyond the handler's deadline, covering the commit after the call.
/// A lease that runs out is redelivered, so it must outlast a call that hits its deadline.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// Pause after the broker fails a lease, so a broken store is not hammered; it doubles
/// with each failure in a row, up to [`LEASE_ERROR_PAUSE_MAX`]. A lease fails only when
/// the broker cannot go on (a storage failure stopped it, or it was closed), so the
/// pauses bound how often each handler logs that, not how soon it recovers.
const LEASE_ERROR_PAUSE: Duration = Duration::from_millis(500);
const LEASE_ERROR_PAUSE_MAX: Duration = Duration::from_secs(30);

/// Shared between a worker and the dispatcher that owns it.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) name: HandlerName,
    /// The version new deliveries run on; swapped on redeploy. A delivery clones it when
    /// it starts, so in-flight deliveries finish on the version they started with.
    pub(crate) current: RwLock<LoadedHandler>,
    pub(crate) counters: Arc<HandlerCounters>,
}

pub(crate) async fn run(
    broker: Arc<dyn Broker>,
    shared: Arc<WorkerShared>,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    let state = Arc::new(BrokerState::new(
        broker.clone(),
        shared.name.clone(),
        StateView::Latest,
    ));
    let (finished, committer) = commit::start(broker.clone(), shared.counters.clone());
    let mut lease_error_pause = LEASE_ERROR_PAUSE;
    loop {
        // Reap finished deliveries so the set does not grow.
        while in_flight.try_join_next().is_some() {}
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
            _ = stop.changed() => break,
        };
        if *stop.borrow() {
            break;
        }
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let lease_for = shared
            .current
            .read()
            .expect("handler lock is never poisoned")
            .limits()
            .deadline
            + LEASE_MARGIN;
        // `lease` is cancel-safe, so a stop ends its long poll at once: an undeploy
        // (and the redeploy waiting behind it) never waits out LEASE_WAIT.
        let leased = tokio::select! {
            leased = broker.lease(&shared.name, permits.len(), lease_for, LEASE_WAIT) => leased,
            _ = stop.changed() => break,
        };
        let deliveries = match leased {
            Ok(deliveries) => {
                lease_error_pause = LEASE_ERROR_PAUSE;
                deliveries
            }
            Err(err) => {
                tracing::error!(
                    handler = %shared.name,
                    error = %err,
                    retry_in = ?lease_error_pause,
                    "leasing deliveries failed"
                );
                // Slots taken for the lease go back before the pause, so that a stop is
                // seen at once.
                drop(permits);
                tokio::select! {
                    () = tokio::time::sleep(lease_error_pause) => {}
                    _ = stop.changed() => break,
                }
                lease_error_pause = (lease_error_pause * 2).min(LEASE_ERROR_PAUSE_MAX);
                continue;
            }
        };
        for delivery in deliveries {
            let permit = permits
                .pop()
                .expect("the broker leases at most `max` deliveries");
            let handler = shared
                .current
                .read()
                .expect("handler lock is never poisoned")
                .clone();
            let span = tracing::debug_span!(
                "dispatch.delivery",
                handler = %shared.name,
                event_id = %delivery.event.event.id,
                seq = delivery.event.seq,
                attempt = delivery.attempt,
            );
            let counters = shared.counters.clone();
            let state = state.clone();
            let finished = finished.clone();
            in_flight.spawn(
                async move {
                    deliver(&handler, delivery, state, &counters, permit, &finished).await;
                }
                .instrument(span),
            );
        }
        // Let the deliveries just spawned start before this loop leases again: they are
        // what a waiting event is waiting for, and the next lease is not.
        tokio::task::yield_now().await;
    }
    // Stopping: no new leases; deliveries in flight finish, and the committer commits
    // their outcomes and ends once the last sender is gone.
    while in_flight.join_next().await.is_some() {}
    drop(finished);
    let _ = committer.await;
}

/// Runs one delivery and hands its outcome to the committer.
///
/// Decision: the worker's slot (`permit`) is given back when the call ends, not when its
/// commit is durable. The broker counts the delivery as in flight until the commit is
/// applied, and hands out the next event of its key only then, so order holds either
/// way, and the slots keep the calls to the handler's concurrency; but a slot held across
/// the sync would cap each handler at `concurrency` deliveries per sync, whatever the CPU
/// could do. (The broker lets more be in flight: `in_flight_limit` in `lib.rs`.)
async fn deliver(
    handler: &LoadedHandler,
    delivery: Delivery,
    state: Arc<BrokerState>,
    counters: &HandlerCounters,
    permit: OwnedSemaphorePermit,
    committer: &mpsc::UnboundedSender<Finished>,
) {
    if delivery.attempt == 1 {
        // A `time` in the future (a publisher's clock ahead of ours) counts as no delay.
        let since = choreo_core::Timestamp::now().duration_since(delivery.event.event.time);
        counters.started(Duration::try_from(since).unwrap_or(Duration::ZERO));
    }
    let mut outcome = handler
        .handle(&delivery.event, delivery.attempt, state)
        .await;
    drop(permit);
    let spent = outcome.spent.take();
    counters.called(outcome.elapsed);
    let micros = u64::try_from(outcome.elapsed.as_micros()).unwrap_or(u64::MAX);
    let token = delivery.token;
    let (outcome, failure) = match outcome.result {
        Ok(()) => {
            let writes = outcome
                .state_writes
                .into_iter()
                .map(|write| StateWrite {
                    key: write.key.into_bytes(),
                    value: write.value,
                })
                .collect();
            (Outcome::ack(token, outcome.publishes, writes), None)
        }
        Err(err) => {
            let failure = Failure {
                trap: err.failure.trap_kind(),
                message: err.to_string(),
            };
            let outcome = if err.failure.is_retryable() {
                Outcome::retry(token, failure.message.clone())
            } else {
                Outcome::dead_letter(token, failure.message.clone())
            };
            (outcome, Some(failure))
        }
    };
    let finished = Finished {
        outcome,
        micros,
        failure,
        span: tracing::Span::current(),
    };
    if committer.send(finished).is_err() {
        // Only once the worker has stopped, and it keeps a sender until its deliveries
        // have ended; the lease expires and the event is delivered again.
        tracing::error!("the committer has stopped; the outcome is not committed");
        counters.commit_failed();
    }
    // The instance goes back to the pool only now: its commit need not wait for that.
    drop(spent);
}
