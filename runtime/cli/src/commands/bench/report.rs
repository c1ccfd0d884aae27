//! The bench's results: a table on stdout for people, or JSON (`--json`) for tools.
//! Ratios are choreo / JetStream for rates and JetStream / choreo for latencies, so that
//! above 1 always means choreo did better.

use serde::Serialize;

use super::chain::ChainFigures;
use super::deploy::DeployTimes;
use super::nats::JetStreamFigures;
use super::stats::{Percentiles, rate};

/// Durable ingress figures.
#[derive(Debug, Serialize)]
pub(crate) struct Ingress {
    pub(crate) events_per_s: f64,
    /// Request sent → 202 read.
    pub(crate) latency: Option<Percentiles>,
}

/// Durable batch ingress figures.
#[derive(Debug, Serialize)]
pub(crate) struct BatchIngress {
    pub(crate) batch_size: u64,
    pub(crate) events_per_s: f64,
    /// Batch request sent → 202 read.
    pub(crate) latency: Option<Percentiles>,
}

/// Everything one run measured; `None` where a phase did not run.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) date: String,
    /// The durability of the server the bench started, or `as configured` with `--url`.
    pub(crate) durability: String,
    pub(crate) events: u64,
    pub(crate) connections: usize,
    pub(crate) ingress: Option<Ingress>,
    pub(crate) batch: Option<BatchIngress>,
    pub(crate) chain: Option<ChainFigures>,
    /// Publish → first handler running, one event at a time, 10 ms apart.
    pub(crate) start_latency: Option<Percentiles>,
    /// The same, each publish as soon as the last was answered.
    pub(crate) start_latency_back_to_back: Option<Percentiles>,
    pub(crate) deploy: Option<DeployTimes>,
    /// (VmRSS, VmHWM) of the server after the runs, in KiB.
    pub(crate) memory_kib: Option<(u64, u64)>,
    pub(crate) jetstream: Option<JetStreamFigures>,
}

impl Report {
    pub(crate) fn new(durability: &str, remote: bool, events: u64, connections: usize) -> Self {
        Report {
            date: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            durability: if remote {
                "as configured".to_owned()
            } else {
                durability.to_owned()
            },
            events,
            connections,
            ingress: None,
            batch: None,
            chain: None,
            start_latency: None,
            start_latency_back_to_back: None,
            deploy: None,
            memory_kib: None,
            jetstream: None,
        }
    }

    /// Prints the table.
    pub(crate) fn print(&self) {
        let js = self.jetstream.as_ref();
        let mut rows: Vec<[String; 4]> = Vec::new();
        let na = || "—".to_owned();
        let ratio = |choreo: f64, peer: Option<f64>| match peer {
            Some(peer) if peer > 0.0 => format!("{:.2}×", choreo / peer),
            _ => na(),
        };
        if let Some(ingress) = &self.ingress {
            rows.push([
                format!("durable ingress, single events, {} conns", self.connections),
                rate(ingress.events_per_s),
                js.map_or_else(na, |js| {
                    format!("{} (async publish, 256 in flight)", rate(js.publish_per_s))
                }),
                ratio(ingress.events_per_s, js.map(|js| js.publish_per_s)),
            ]);
            rows.push([
                "  request latency".to_owned(),
                ingress.latency.map_or_else(na, |p| p.show()),
                na(),
                na(),
            ]);
        }
        if let Some(batch) = &self.batch {
            rows.push([
                format!(
                    "durable ingress, batches of {}, {} conns",
                    batch.batch_size, self.connections
                ),
                rate(batch.events_per_s),
                js.map_or_else(na, |js| {
                    format!("{} (async publish, 256 in flight)", rate(js.publish_per_s))
                }),
                ratio(batch.events_per_s, js.map(|js| js.publish_per_s)),
            ]);
            rows.push([
                "  batch request latency".to_owned(),
                batch.latency.map_or_else(na, |p| p.show()),
                na(),
                na(),
            ]);
        }
        if let Some(chain) = &self.chain {
            let instances = match chain.deliveries_per_instance {
                1 => String::new(),
                n => format!(", {n} per instance"),
            };
            rows.push([
                format!(
                    "deliveries through 3 relays (concurrency {}{instances})",
                    chain.concurrency
                ),
                rate(chain.deliveries_per_s),
                js.map_or_else(na, |js| {
                    format!("{} (publish + ack'd pull)", rate(js.publish_consume_per_s))
                }),
                ratio(
                    chain.deliveries_per_s,
                    js.map(|js| js.publish_consume_per_s),
                ),
            ]);
            rows.push([
                "  publish → last relay ran".to_owned(),
                chain.to_final_emit.map_or_else(na, |p| p.show()),
                na(),
                na(),
            ]);
            rows.push([
                "  publish → final output readable".to_owned(),
                chain.to_final_visible.map_or_else(na, |p| p.show()),
                na(),
                na(),
            ]);
        }
        let starts = [
            (
                "publish → handler start, 10 ms apart",
                &self.start_latency,
                js.and_then(|js| js.paced_publish),
                "publish + ack, 10 ms apart",
            ),
            (
                "publish → handler start, back to back",
                &self.start_latency_back_to_back,
                js.and_then(|js| js.sequential_publish),
                "sequential publish + ack",
            ),
        ];
        for (measure, start, peer, peer_label) in starts {
            let Some(start) = start else { continue };
            rows.push([
                measure.to_owned(),
                start.show(),
                peer.map_or_else(na, |p| format!("{} ({peer_label})", p.show())),
                match peer {
                    Some(peer) if start.p50_us > 0 => {
                        format!("{:.2}× (p50)", peer.p50_us as f64 / start.p50_us as f64)
                    }
                    _ => na(),
                },
            ]);
        }
        if let Some(deploy) = &self.deploy {
            rows.push([
                "deploy → first delivery".to_owned(),
                format!(
                    "cold {:.1} ms / cached {:.1} ms",
                    deploy.cold_ms, deploy.cached_ms
                ),
                na(),
                na(),
            ]);
        }
        if let Some((rss, hwm)) = self.memory_kib {
            rows.push([
                "server memory after the runs".to_owned(),
                format!(
                    "RSS {:.1} MiB / peak {:.1} MiB",
                    rss as f64 / 1024.0,
                    hwm as f64 / 1024.0
                ),
                na(),
                na(),
            ]);
        }
        println!(
            "choreo bench  {}  durability {}  {} events per phase  {} connections",
            self.date, self.durability, self.events, self.connections
        );
        print_table(["MEASURE", "CHOREO", "NATS JETSTREAM", "RATIO"], &rows);
        if js.is_some() {
            println!(
                "\nratio: choreo / JetStream for rates, JetStream / choreo for latencies (> 1: choreo is better)"
            );
        }
    }
}

fn print_table(header: [&str; 4], rows: &[[String; 4]]) {
    let header = header.map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| {
                let pad = width.saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
