//! Leasing deliveries, with a long poll.
//!
//! A lease marks entries in the in-memory queue at once and hands the deliveries out;
//! their lease records are noted for the writer, which writes them with its next group
//! (see [`crate::writer::Shared::note_leased`]). When nothing is leasable the call sleeps
//! until the handler's [`tokio::sync::Notify`] fires (new entries, a settled commit, a
//! resume) or until the earliest backoff end or lease expiry, and never past `wait`: no
//! polling.
//! The only await is that sleep, before anything is leased: a lease future dropped
//! there leases nothing (the trait promises callers this cancel-safety).
//!
//! A leased entry's event comes from the queue when it held one (`queue.rs`), else from
//! the log.

use std::sync::Arc;
use std::time::Duration;

use choreo_core::{HandlerName, RecordedEvent};
use tokio::time::Instant;

use crate::clock::millis;
use crate::config::MAX_LEASE_BATCH;
use crate::log;
use crate::queue::Leased;
use crate::{Delivery, DeliveryToken, Error, Result, SledBroker};

impl SledBroker {
    pub(crate) async fn lease_deliveries(
        &self,
        handler: &HandlerName,
        max: usize,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        if !(1..=MAX_LEASE_BATCH).contains(&max) {
            return Err(Error::OutOfRange {
                what: "lease batch",
                handler: handler.clone(),
                requested: max,
                max: MAX_LEASE_BATCH,
            });
        }
        let deadline = Instant::now() + wait;
        loop {
            if let Some(reason) = self.shared.failure() {
                return Err(Error::Failed { reason });
            }
            let now_ms = self.clock.now_ms();
            // One lock for both the wake-up registration and the look: the writer takes
            // the registry for every commit, and every lease that waits for it parks a
            // thread.
            let (mut notified, mut scan) = {
                let mut registry = self.shared.registry();
                let h = registry.get_mut(handler)?;
                let mut notified = Box::pin(h.notify.clone().notified_owned());
                // Registered before looking, so a wake-up between the look and the wait
                // is kept.
                notified.as_mut().enable();
                let scan = if h.sub.paused {
                    Default::default()
                } else {
                    let concurrency = h.sub.concurrency as usize;
                    h.queue
                        .lease(now_ms, max, concurrency, millis(lease_for), || {
                            self.next_lease_id()
                        })
                };
                (notified, scan)
            };
            if !scan.leased.is_empty() {
                let events = self.leased_events(&mut scan.leased)?;
                let seqs: Vec<u64> = scan.leased.iter().map(|l| l.seq).collect();
                self.shared.note_leased(handler.clone(), seqs);
                return Ok(scan
                    .leased
                    .into_iter()
                    .zip(events)
                    .map(|(leased, event)| Delivery {
                        token: DeliveryToken {
                            handler: handler.clone(),
                            seq: leased.seq,
                            lease: leased.lease.id,
                        },
                        event,
                        attempt: leased.attempt,
                    })
                    .collect());
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            let wake = scan
                .wake_at_ms
                .map_or(deadline, |ms| self.clock.instant_at(ms).min(deadline));
            tokio::select! {
                () = notified.as_mut() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// The events of `leased`, in its order: those the queue held (taken, and copied only
    /// if another queue still shares them), and the rest read from the log in one pass.
    fn leased_events(&self, leased: &mut [Leased]) -> Result<Vec<RecordedEvent>> {
        let missing: Vec<u64> = leased
            .iter()
            .filter(|l| l.event.is_none())
            .map(|l| l.seq)
            .collect();
        let mut read = log::read_held_many(&self.tree, &missing)?.into_iter();
        leased
            .iter_mut()
            .map(|l| match l.event.take() {
                Some(event) => Ok(RecordedEvent {
                    seq: l.seq,
                    event: Arc::unwrap_or_clone(event),
                }),
                None => read.next().ok_or_else(|| {
                    Error::corrupt(format!("event seq {}", l.seq), "missing from the log")
                }),
            })
            .collect()
    }
}
