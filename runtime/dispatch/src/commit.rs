//! A handler's committer: commits the outcomes of the handler's finished deliveries to
//! the broker together, and counts what each commit did.
//!
//! A delivery hands its outcome over and ends. The committer takes every outcome
//! handed over since it last ran and commits them as one call: one writer request, one
//! reply and one wake-up for the lot, instead of one each. It gathers by letting the
//! deliveries that are ready run before it takes the outcomes (they were leased
//! together, so they tend to finish together); it never waits for more.
//!
//! Decision: a batch is sent without waiting for the one before it to be durable. The
//! broker hands out the next event of a key once the commit is applied, not durable, so
//! holding a batch back would hold back every key in it by a sync.
//!
//! The inbox is unbounded but cannot grow past the broker's in-flight limit for the
//! handler (`in_flight_limit` in `lib.rs`): the broker counts a delivery as in flight
//! until its commit is applied, and leases no more than that.
//!
//! An outcome the broker would refuse (`Broker::check_outcome`) is left out of the
//! batch and counted as a failed commit, as it was when each delivery committed alone;
//! every outcome in a batch is the same handler's, so nothing else in a commit can fail
//! one outcome and not the others.

use std::sync::Arc;

use choreo_broker::{Broker, Committed, Outcome};
use choreo_host::TrapKind;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::stats::HandlerCounters;

/// Outcomes committed in one call at most.
const MAX_BATCH: usize = 64;

/// A delivery's outcome, with what the counters need once it is committed.
pub(crate) struct Finished {
    pub(crate) outcome: Outcome,
    /// Time in the guest's `handle` call.
    pub(crate) micros: u64,
    /// Why the call failed, if it did.
    pub(crate) failure: Option<Failure>,
    /// The delivery's span, which what is logged about its commit belongs to.
    pub(crate) span: tracing::Span,
}

pub(crate) struct Failure {
    pub(crate) trap: Option<TrapKind>,
    pub(crate) message: String,
}

/// Starts a handler's committer. It ends once every sender is dropped and every
/// outcome handed over is committed (or has failed to be).
pub(crate) fn start(
    broker: Arc<dyn Broker>,
    counters: Arc<HandlerCounters>,
) -> (mpsc::UnboundedSender<Finished>, JoinHandle<()>) {
    let (finished, inbox) = mpsc::unbounded_channel();
    (finished, tokio::spawn(run(broker, counters, inbox)))
}

async fn run(
    broker: Arc<dyn Broker>,
    counters: Arc<HandlerCounters>,
    mut inbox: mpsc::UnboundedReceiver<Finished>,
) {
    let mut commits = JoinSet::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if inbox.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        // Let the other deliveries that are ready finish and join this batch.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH
            && let Ok(finished) = inbox.try_recv()
        {
            batch.push(finished);
        }
        while commits.try_join_next().is_some() {}
        let mut accepted = Vec::with_capacity(batch.len());
        for finished in batch.drain(..) {
            match broker.check_outcome(&finished.outcome) {
                Ok(()) => accepted.push(finished),
                // Nothing is committed for it; its lease expires and the event is
                // delivered again, as when a commit fails.
                Err(err) => finished.span.in_scope(|| {
                    tracing::error!(error = %err, "the broker refuses a delivery outcome");
                    counters.commit_failed();
                }),
            }
        }
        if !accepted.is_empty() {
            commits.spawn(commit(broker.clone(), counters.clone(), accepted));
        }
    }
    while commits.join_next().await.is_some() {}
}

/// Commits `batch` in one call and counts each outcome's result.
async fn commit(broker: Arc<dyn Broker>, counters: Arc<HandlerCounters>, batch: Vec<Finished>) {
    let (outcomes, reports): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|finished| {
            let report = (finished.micros, finished.failure, finished.span);
            (finished.outcome, report)
        })
        .unzip();
    let results = match broker.commit(outcomes).await {
        Ok(results) => results,
        Err(err) => {
            // Nothing was committed; the leases expire and the events are delivered
            // again.
            for (_, _, span) in &reports {
                span.in_scope(
                    || tracing::error!(error = %err, "committing a delivery outcome failed"),
                );
                counters.commit_failed();
            }
            return;
        }
    };
    if results.len() != reports.len() {
        tracing::error!(
            outcomes = reports.len(),
            results = results.len(),
            "the broker returned a result count that does not match the outcomes committed"
        );
    }
    for (result, (micros, failure, span)) in results.into_iter().zip(reports) {
        span.in_scope(|| count(&counters, result, micros, failure));
    }
}

fn count(counters: &HandlerCounters, result: Committed, micros: u64, failure: Option<Failure>) {
    let (trap, message) = failure.map_or((None, String::new()), |f| (f.trap, f.message));
    match result {
        Committed::Acked { .. } => counters.acked(micros),
        Committed::Retrying {
            attempt,
            not_before,
        } => {
            tracing::warn!(error = %message, attempt, %not_before, "delivery failed; it will be retried");
            counters.failed(false, trap, message);
        }
        Committed::DeadLettered { dead_letter } => {
            tracing::warn!(error = %message, dead_letter_seq = dead_letter.seq, "delivery dead-lettered");
            counters.failed(true, trap, message);
        }
        Committed::LeaseLost => {
            counters.lease_lost();
            tracing::warn!(
                "the lease expired before the outcome was committed; the event is redelivered"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use choreo_broker::{Config, RetryPolicy, SledBroker, StartPosition, Subscription};
    use choreo_core::{Event, HandlerName, Pattern, Topic};

    use super::*;

    fn event(topic: &str, data: Vec<u8>) -> Event {
        Event::new(Topic::new(topic).unwrap(), "test://commit", data)
    }

    /// Three outcomes handed over together, the middle one with a publish the broker
    /// refuses: the other two commit, and only the refused one fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_outcome_fails_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().join("broker"));
        let max_event_bytes = config.max_event_bytes;
        let broker: Arc<dyn Broker> = Arc::new(SledBroker::open(config).unwrap());
        let handler = HandlerName::new("committer").unwrap();
        broker
            .subscribe(Subscription {
                handler: handler.clone(),
                patterns: vec![Pattern::new("in.>").unwrap()],
                start: StartPosition::Next,
                retry: RetryPolicy::default(),
                concurrency: 8,
            })
            .await
            .unwrap();
        let inputs: Vec<Event> = (0..3).map(|n| event(&format!("in.{n}"), vec![])).collect();
        broker.publish(inputs).await.unwrap();
        let deliveries = broker
            .lease(&handler, 3, Duration::from_secs(60), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 3);

        let counters = Arc::new(HandlerCounters::default());
        let (finished, committer) = start(broker.clone(), counters.clone());
        for (n, delivery) in deliveries.into_iter().enumerate() {
            let output = if n == 1 {
                event("out.refused", vec![0; max_event_bytes + 1])
            } else {
                event(&format!("out.{n}"), b"ok".to_vec())
            };
            let outcome = Outcome::ack(delivery.token, vec![output], Vec::new());
            let finished_one = Finished {
                outcome,
                micros: 1,
                failure: None,
                span: tracing::Span::none(),
            };
            finished.send(finished_one).unwrap();
        }
        drop(finished);
        tokio::time::timeout(Duration::from_secs(30), committer)
            .await
            .unwrap()
            .unwrap();

        let counted = counters.snapshot();
        assert_eq!((counted.acked, counted.commits_failed), (2, 1));
        let query = choreo_broker::EventQuery {
            from_seq: 1,
            pattern: Some(Pattern::new("out.>").unwrap()),
            limit: 10,
        };
        let outputs = broker.read_events(query).await.unwrap().events;
        let topics: Vec<&str> = outputs.iter().map(|e| e.event.topic.as_str()).collect();
        assert_eq!(topics, ["out.0", "out.2"]);
    }
}
