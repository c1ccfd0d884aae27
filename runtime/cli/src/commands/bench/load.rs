//! Publishing load: C keep-alive connections, each with one request in flight, posting
//! single 256-byte events until N have been acknowledged (202, so durable).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::api::Conn;
use super::stats::Progress;

/// Size of every event's data, in bytes.
pub(crate) const EVENT_BYTES: usize = 256;

/// The data of event `n`: a JSON object padded to exactly [`EVENT_BYTES`].
pub(crate) fn payload(n: u64) -> Bytes {
    let head = format!("{{\"n\":{n},\"pad\":\"");
    let pad = EVENT_BYTES.saturating_sub(head.len() + 2);
    let mut text = head;
    text.extend(std::iter::repeat_n('x', pad));
    text.push_str("\"}");
    Bytes::from(text)
}

/// One acknowledged publish.
pub(crate) struct Sent {
    /// The event's id (also its correlation id: it starts a choreography).
    pub(crate) id: String,
    /// Wall-clock time just before the request was sent.
    pub(crate) sent_at: SystemTime,
    /// Time from sending the request to reading the 202.
    pub(crate) latency: Duration,
}

/// What to publish.
#[derive(Clone)]
pub(crate) struct Load {
    pub(crate) address: String,
    pub(crate) topic: String,
    /// Events with `n % keys` share an ordering key; `None` publishes without keys.
    pub(crate) keys: Option<u64>,
    pub(crate) events: u64,
    pub(crate) connections: usize,
    pub(crate) deadline: Instant,
}

/// Publishes `load.events` events over `load.connections` connections, every connection
/// sending its next event as soon as the previous one is acknowledged.
pub(crate) async fn publish(load: Load, progress: Progress) -> anyhow::Result<Vec<Sent>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(load.connections);
    for _ in 0..load.connections.max(1) {
        let load = load.clone();
        let next = next.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&load.address).await?;
            let mut sent = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= load.events {
                    return anyhow::Ok(sent);
                }
                anyhow::ensure!(
                    Instant::now() < load.deadline,
                    "publishing {} events to {} did not finish before the deadline",
                    load.events,
                    load.topic
                );
                let key = load.keys.map(|keys| format!("k{}", n % keys));
                let sent_at = SystemTime::now();
                let start = Instant::now();
                let published = conn
                    .publish(&load.topic, key.as_deref(), payload(n))
                    .await?;
                sent.push(Sent {
                    id: published.id,
                    sent_at,
                    latency: start.elapsed(),
                });
                progress.add(1);
            }
        }));
    }
    let mut all = Vec::with_capacity(load.events as usize);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// Publishes `load.events` events as CloudEvents batches of `batch` events over
/// `load.connections` connections, each with one batch in flight. Returns every batch's
/// latency (request sent → 202 read).
pub(crate) async fn publish_batches(
    load: Load,
    batch: u64,
    progress: Progress,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(load.connections);
    for _ in 0..load.connections.max(1) {
        let load = load.clone();
        let next = next.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&load.address).await?;
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= load.events {
                    return anyhow::Ok(latencies);
                }
                anyhow::ensure!(
                    Instant::now() < load.deadline,
                    "publishing {} events in batches did not finish before the deadline",
                    load.events
                );
                let last = (first + batch).min(load.events);
                let datas = (first..last).map(payload).collect();
                let start = Instant::now();
                let sent = conn.publish_batch(&load.topic, first, datas).await?;
                latencies.push(start.elapsed());
                progress.add(sent as u64);
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_of_the_event_size() {
        for n in [0, 7, 123_456_789] {
            let data = payload(n);
            assert_eq!(data.len(), EVENT_BYTES);
            let value: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(value["n"], n);
        }
    }
}
