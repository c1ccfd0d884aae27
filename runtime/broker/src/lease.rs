//! Leasing deliveries, with a long poll.
//!
//! A lease marks entries in the in-memory queue at once and hands the deliveries out;
//! their lease records are sent to the writer without waiting (see
//! [`crate::writer::Request::Leased`]). When nothing is leasable the call sleeps until
//! the handler's [`tokio::sync::Notify`] fires (new entries, a settled commit, a resume)
//! or until the earliest backoff end or lease expiry, and never past `wait`: no polling.

use std::collections::HashMap;
use std::time::Duration;

use choreo_core::HandlerName;
use tokio::time::Instant;

use crate::clock::millis;
use crate::config::MAX_LEASE_BATCH;
use crate::dlq::read_event;
use crate::log;
use crate::writer::Request;
use crate::{Delivery, DeliveryToken, Error, Result, SledBroker};
use choreo_core::RecordedEvent;

/// Fewest leased events read with one range scan instead of point reads.
const MIN_RANGE_READ: usize = 8;

/// A range scan reads every event in the span, matching or not; it is used while the
/// span holds at most this many events per leased one.
const MAX_RANGE_SPREAD: u64 = 4;

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
            let notify = self.shared.registry().get(handler)?.notify.clone();
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake-up between the look and the wait is kept.
            notified.as_mut().enable();
            let now_ms = self.clock.now_ms();
            let scan = {
                let mut registry = self.shared.registry();
                let h = registry.get_mut(handler)?;
                if h.sub.paused {
                    Default::default()
                } else {
                    let concurrency = h.sub.concurrency as usize;
                    h.queue
                        .lease(now_ms, max, concurrency, millis(lease_for), || {
                            self.next_lease_id()
                        })
                }
            };
            if !scan.leased.is_empty() {
                let seqs: Vec<u64> = scan.leased.iter().map(|l| l.seq).collect();
                let events = read_leased(&self.tree, &seqs)?;
                self.send(Request::Leased(handler.clone(), seqs))?;
                return Ok(scan
                    .leased
                    .into_iter()
                    .zip(events)
                    .map(|(leased, event)| {
                        let lease = leased.record.lease.expect("a leased record has a lease");
                        Delivery {
                            token: DeliveryToken {
                                handler: handler.clone(),
                                seq: leased.seq,
                                lease: lease.id,
                            },
                            event,
                            attempt: leased.record.attempt,
                        }
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
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// Reads the events of just-leased entries, in the order of `seqs`.
///
/// Decision: when the seqs are dense (a catch-up, or a busy handler, leases runs of
/// neighbouring seqs), one range scan over their span: sled walks each leaf once, where a
/// point read descends the tree for every event. Sparse seqs are read one by one. Every
/// leased event is in the log: it is durable before it is enqueued, and retention keeps
/// events that a queue holds.
fn read_leased(tree: &sled::Tree, seqs: &[u64]) -> Result<Vec<RecordedEvent>> {
    let (Some(&first), Some(&last)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Ok(Vec::new());
    };
    let count = seqs.len() as u64;
    if seqs.len() < MIN_RANGE_READ || last - first >= count.saturating_mul(MAX_RANGE_SPREAD) {
        return seqs.iter().map(|&seq| read_event(tree, seq)).collect();
    }
    let slots: HashMap<u64, usize> = seqs.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut events: Vec<Option<RecordedEvent>> = (0..seqs.len()).map(|_| None).collect();
    log::scan(tree, first, last, |_, entry| {
        if let Some(&slot) = slots.get(&entry.seq) {
            events[slot] = Some(entry.recorded()?);
        }
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    events
        .into_iter()
        .zip(seqs)
        .map(|(event, &seq)| {
            event.ok_or_else(|| Error::corrupt(format!("event seq {seq}"), "missing from the log"))
        })
        .collect()
}
