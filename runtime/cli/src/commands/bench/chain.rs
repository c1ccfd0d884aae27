//! End to end through Wasm handlers: three relays in a chain (`bench.in` → `bench.a` →
//! `bench.b` → `bench.c`), each a separate handler with its own queue and outbox commits.
//! Measures deliveries per second under load and the latency from publish to the chain's
//! final output, then, at low load, from publish to the first handler running.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::api::{Conn, Observed, tail};
use super::deploy::{Manifest, parse_time, place, wait_for_status};
use super::load::{self, Load, Sent};
use super::stats::{Percentiles, Progress, per_second};

/// The relays: (handler name, consumes, publishes).
const RELAYS: [(&str, &str, &str); 3] = [
    ("relay-a", "bench.in", "bench.a"),
    ("relay-b", "bench.a", "bench.b"),
    ("relay-c", "bench.b", "bench.c"),
];
/// Concurrency of each relay unless `--concurrency` says otherwise: events with
/// different keys run at once up to this.
pub(crate) const DEFAULT_CONCURRENCY: u32 = 8;
/// Distinct ordering keys of the published events.
const KEYS: u64 = 64;
/// Low-load probes per pacing, and the pause between paced probes.
pub(crate) const PROBES: u64 = 200;
pub(crate) const PROBE_GAP: Duration = Duration::from_millis(10);
/// How long the relays may take to start serving.
const DEPLOY_DEADLINE: Duration = Duration::from_secs(60);

/// How the relays are deployed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relays {
    /// Each relay's `concurrency`.
    pub(crate) concurrency: u32,
    /// Each relay's `deliveries_per_instance`: 1 is a fresh instance per delivery.
    pub(crate) deliveries_per_instance: u32,
}

/// Results of the chain under load.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ChainFigures {
    /// Handler deliveries (3 per event) per second, from the first publish to the last
    /// final output.
    pub(crate) deliveries_per_s: f64,
    pub(crate) elapsed_s: f64,
    /// Publish (request sent) → the last relay ran (its output's `time`).
    pub(crate) to_final_emit: Option<Percentiles>,
    /// Publish → the final output readable through `GET /v1/events` (committed).
    pub(crate) to_final_visible: Option<Percentiles>,
    /// The relays' `deliveries_per_instance`: 1 is a fresh instance per delivery.
    pub(crate) deliveries_per_instance: u32,
    /// The relays' `concurrency`.
    pub(crate) concurrency: u32,
}

/// Deploys the three relays as `relays` says, and waits until they run.
pub(crate) async fn deploy_relays(
    address: &str,
    dir: &Path,
    relay: &[u8],
    relays: Relays,
) -> anyhow::Result<()> {
    for (name, subscribe, publish) in RELAYS {
        let manifest = Manifest {
            name,
            subscribe,
            publish,
            concurrency: relays.concurrency,
            start: "next",
            deliveries_per_instance: relays.deliveries_per_instance,
        };
        place(dir, name, relay, &manifest.to_toml())?;
    }
    let names = RELAYS.map(|(name, ..)| name);
    wait_for_status(address, &names, "running", DEPLOY_DEADLINE).await
}

/// Publishes `events` keyed events to `bench.in` over `connections` connections and
/// waits for all their outputs on `bench.c`, through relays deployed as `relays` says.
pub(crate) async fn under_load(
    address: &str,
    events: u64,
    connections: usize,
    relays: Relays,
    deadline: Instant,
) -> anyhow::Result<ChainFigures> {
    let mut conn = Conn::open(address).await?;
    let marker = conn
        .publish("bench.marker", None, Bytes::from_static(b"{}"))
        .await?;
    let final_outputs = Progress::start("chain: final outputs", events);
    let tail = tokio::spawn(tail(
        address.to_owned(),
        "bench.c".to_owned(),
        marker.seq,
        events as usize,
        deadline,
        final_outputs.counter(),
    ));
    let start = Instant::now();
    let sent = load::publish(
        Load {
            address: address.to_owned(),
            topic: "bench.in".to_owned(),
            keys: Some(KEYS),
            events,
            connections,
            deadline,
        },
        Progress::silent(),
    )
    .await?;
    let seen = tail.await??;
    let elapsed = start.elapsed();
    drop(final_outputs);
    let (mut emit, mut visible) = latencies(&sent, &seen)?;
    Ok(ChainFigures {
        deliveries_per_s: per_second(3 * events, elapsed),
        elapsed_s: elapsed.as_secs_f64(),
        to_final_emit: Percentiles::of(&mut emit),
        to_final_visible: Percentiles::of(&mut visible),
        deliveries_per_instance: relays.deliveries_per_instance,
        concurrency: relays.concurrency,
    })
}

/// Publish → first handler running, one event at a time, `gap` after each 202 (zero:
/// the next publish as soon as the last is answered): the `time` of relay-a's output
/// minus the moment the publish request was sent.
///
/// Both pacings are measured because they differ on a VM: with a pause, every thread
/// on the path has gone idle and its wake-up (a halted vCPU) is part of each step;
/// back to back, as JetStream's sequential publish is measured, they are awake.
pub(crate) async fn start_latency(
    address: &str,
    gap: Duration,
    deadline: Instant,
) -> anyhow::Result<Option<Percentiles>> {
    let mut conn = Conn::open(address).await?;
    let marker = conn
        .publish("bench.marker", None, Bytes::from_static(b"{}"))
        .await?;
    let tail = tokio::spawn(tail(
        address.to_owned(),
        "bench.a".to_owned(),
        marker.seq,
        PROBES as usize,
        deadline,
        Progress::silent(),
    ));
    let progress = Progress::start("low-load probes", PROBES);
    let mut sent = Vec::new();
    for n in 0..PROBES {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the low-load probes ran past the deadline"
        );
        let sent_at = SystemTime::now();
        let begin = Instant::now();
        let published = conn
            .publish("bench.in", Some("probe"), load::payload(n))
            .await?;
        sent.push(Sent {
            id: published.id,
            sent_at,
            latency: begin.elapsed(),
        });
        progress.counter().add(1);
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    drop(progress);
    let seen = tail.await??;
    let (mut started, _) = latencies(&sent, &seen)?;
    Ok(Percentiles::of(&mut started))
}

/// For every output whose correlation id is a published event's id: (publish → output
/// `time`, publish → output observed).
fn latencies(sent: &[Sent], seen: &[Observed]) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let sent_at: HashMap<&str, SystemTime> =
        sent.iter().map(|s| (s.id.as_str(), s.sent_at)).collect();
    let mut emit = Vec::with_capacity(seen.len());
    let mut visible = Vec::with_capacity(seen.len());
    for observed in seen {
        let Some(at) = sent_at.get(observed.event.correlationid.as_str()) else {
            continue;
        };
        let ran = parse_time(&observed.event.time)?;
        emit.push(ran.duration_since(*at).unwrap_or_default());
        visible.push(observed.at.duration_since(*at).unwrap_or_default());
    }
    Ok((emit, visible))
}
