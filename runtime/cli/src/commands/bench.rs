//! `choreo bench`: whole-system figures of a running choreo, and of NATS JetStream doing
//! the same work in the same run (`--nats`), with their ratios.
//!
//! Without `--url` it starts `choreo serve` itself (this executable, a temp data dir and
//! deploy dir, port 0, the chosen durability) and stops it at the end. Phases, in order:
//! deploy-to-serving (first, while the log is small: the probe replays it from the
//! earliest event), durable single-event ingress over C keep-alive connections, a chain
//! of three relay handlers under load, publish → handler start at low load (one publish
//! at a time, 10 ms apart and back to back), the server's memory, then JetStream. All
//! traffic goes to the given server or to loopback; every phase has a deadline.
//! Benchmarks are reported, never asserted.
//!
//! Layout of `bench/`: `server` (the child `choreo serve`), `api` (one keep-alive
//! connection, the API calls, tailing the log), `load` (C connections publishing),
//! `deploy` (placing components, deploy-to-serving), `chain` (the relay chain),
//! `nats` (JetStream side by side), `stats` (percentiles, progress, units), `report`
//! (the table and the JSON).

mod api;
mod chain;
mod deploy;
mod load;
mod nats;
mod report;
mod server;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;

use self::report::{BatchIngress, Ingress, Report};
use self::stats::{Percentiles, Progress, per_second};

/// Where `cargo build -p choreo-test-guests` puts the relay component.
const DEFAULT_RELAY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../target/guests/wasm32-wasip2/guest/handler_relay.wasm"
);
/// How long `/readyz` may take to answer 200.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The most deliveries a relay instance may serve (`--deliveries-per-instance`).
const MAX_PER_INSTANCE: i64 = choreo_host::MAX_DELIVERIES_PER_INSTANCE as i64;
/// The highest concurrency a relay may have (`--concurrency`).
const MAX_CONCURRENCY: i64 = choreo_broker::MAX_CONCURRENCY as i64;
/// The shortest deadline of a phase; longer for many events (5 ms per event).
const PHASE_DEADLINE: Duration = Duration::from_secs(120);

/// Arguments of `choreo bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Measure this running choreo instead of starting one (e.g. http://127.0.0.1:7070)
    #[arg(long, env = "CHOREO_BENCH_URL")]
    url: Option<String>,
    /// With --url: the server's deploy folder, for the relay chain and deploy timing (skipped without it)
    #[arg(long, env = "CHOREO_BENCH_DEPLOY_DIR", requires = "url")]
    deploy_dir: Option<PathBuf>,
    /// The relay component the chain and the deploy timing use [default: built by `cargo build -p choreo-test-guests`]
    #[arg(long, env = "CHOREO_BENCH_RELAY")]
    relay: Option<PathBuf>,
    /// Durability of the server the bench starts (ignored with --url)
    #[arg(long, env = "CHOREO_BENCH_DURABILITY", default_value = "strict", value_parser = ["strict", "buffered"])]
    durability: String,
    /// Events per phase
    #[arg(long, env = "CHOREO_BENCH_EVENTS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    events: u64,
    /// Concurrent keep-alive connections publishing
    #[arg(long, env = "CHOREO_BENCH_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    connections: u64,
    /// Also measure NATS JetStream doing the same work (needs nats-server on the PATH)
    #[arg(long, env = "CHOREO_BENCH_NATS")]
    nats: bool,
    /// Events per CloudEvents batch in the batch ingress phase
    #[arg(long, env = "CHOREO_BENCH_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1024))]
    batch_size: u64,
    /// Print the results as JSON instead of a table
    #[arg(long, env = "CHOREO_BENCH_JSON")]
    json: bool,
    /// Deliveries each relay instance serves before it is replaced: 1, as for any handler
    /// by default, is a fresh instance per delivery; more keeps instances warm
    #[arg(long, env = "CHOREO_BENCH_DELIVERIES_PER_INSTANCE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_PER_INSTANCE))]
    deliveries_per_instance: u32,
    /// Concurrency of each relay: deliveries of different ordering keys it runs at once
    /// (the chain's events have 64 keys)
    #[arg(long, env = "CHOREO_BENCH_CONCURRENCY", default_value_t = chain::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY))]
    concurrency: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let relay_path = args
        .relay
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RELAY));
    let relay = std::fs::read(&relay_path).with_context(|| {
        format!(
            "cannot read the relay component {} (build it with `cargo build -p choreo-test-guests`, or pass --relay)",
            relay_path.display()
        )
    })?;
    let phase_limit = PHASE_DEADLINE.max(Duration::from_millis(args.events.saturating_mul(5)));
    let connections = args.connections as usize;

    let server = match &args.url {
        Some(_) => None,
        None => {
            eprintln!("starting choreo serve ({} durability)", args.durability);
            Some(server::Server::start(&args.durability)?)
        }
    };
    let (address, deploy_dir) = match (&server, &args.url) {
        (Some(server), _) => (server.address.clone(), Some(server.deploy_dir.clone())),
        (None, Some(url)) => (authority(url)?, args.deploy_dir.clone()),
        (None, None) => unreachable!("a server is started when no --url is given"),
    };
    let mut report = Report::new(
        &args.durability,
        args.url.is_some(),
        args.events,
        connections,
    );
    let outcome = async {
        wait_ready(&address).await?;
        if let Some(dir) = &deploy_dir {
            eprintln!("deploy to serving");
            report.deploy = Some(deploy::deploy_to_serving(&address, dir, &relay).await?);
        }
        report.ingress = Some(ingress(&address, args.events, connections, phase_limit).await?);
        report.batch = Some(
            batch_ingress(
                &address,
                args.events,
                connections,
                args.batch_size,
                phase_limit,
            )
            .await?,
        );
        if let Some(dir) = &deploy_dir {
            let relays = chain::Relays {
                concurrency: args.concurrency,
                deliveries_per_instance: args.deliveries_per_instance,
            };
            chain::deploy_relays(&address, dir, &relay, relays).await?;
            report.chain = Some(
                chain::under_load(
                    &address,
                    args.events,
                    connections,
                    relays,
                    Instant::now() + phase_limit,
                )
                .await?,
            );
            report.start_latency =
                chain::start_latency(&address, chain::PROBE_GAP, Instant::now() + phase_limit)
                    .await?;
            report.start_latency_back_to_back =
                chain::start_latency(&address, Duration::ZERO, Instant::now() + phase_limit)
                    .await?;
        }
        if let Some(server) = &server {
            report.memory_kib = Some(server.memory()?);
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        if let Some(server) = &server {
            return Err(err.context(format!(
                "the bench server's last log lines:\n{}",
                server.recent_log()
            )));
        }
        return Err(err);
    }
    if let Some(server) = server {
        server.stop()?;
    }
    if args.nats {
        eprintln!("NATS JetStream");
        report.jetstream = Some(nats::measure(args.events, Instant::now() + phase_limit).await?);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("the report serialises")?
        );
    } else {
        report.print();
    }
    Ok(())
}

/// `host:port` of an `http://` URL.
fn authority(url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "--url must be an http:// URL, found `{url}`"
    );
    let authority = uri
        .authority()
        .with_context(|| format!("`{url}` has no host"))?;
    Ok(match authority.port_u16() {
        Some(_) => authority.to_string(),
        None => format!("{authority}:80"),
    })
}

async fn wait_ready(address: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(mut conn) = api::Conn::open(address).await
            && let Ok((status, _)) = conn
                .send(http::Method::GET, "/readyz", &[], Bytes::new())
                .await
            && status.is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "choreo at {address} was not ready within {}s",
            READY_DEADLINE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Durable single-event ingress: `events` 256-byte events over `connections` connections.
async fn ingress(
    address: &str,
    events: u64,
    connections: usize,
    limit: Duration,
) -> anyhow::Result<Ingress> {
    let line = Progress::start("ingress", events);
    let begin = Instant::now();
    let sent = load::publish(
        load::Load {
            address: address.to_owned(),
            topic: "bench.ingress".to_owned(),
            keys: None,
            events,
            connections,
            deadline: Instant::now() + limit,
        },
        line.counter(),
    )
    .await?;
    let elapsed = begin.elapsed();
    drop(line);
    let mut latencies: Vec<Duration> = sent.iter().map(|s| s.latency).collect();
    Ok(Ingress {
        events_per_s: per_second(events, elapsed),
        latency: Percentiles::of(&mut latencies),
    })
}

/// Durable batch ingress: `events` 256-byte events as CloudEvents batches of `batch`
/// over `connections` connections.
async fn batch_ingress(
    address: &str,
    events: u64,
    connections: usize,
    batch: u64,
    limit: Duration,
) -> anyhow::Result<BatchIngress> {
    let line = Progress::start("batch ingress", events);
    let begin = Instant::now();
    let mut latencies = load::publish_batches(
        load::Load {
            address: address.to_owned(),
            topic: "bench.batch".to_owned(),
            keys: None,
            events,
            connections,
            deadline: Instant::now() + limit,
        },
        batch,
        line.counter(),
    )
    .await?;
    let elapsed = begin.elapsed();
    drop(line);
    Ok(BatchIngress {
        batch_size: batch,
        events_per_s: per_second(events, elapsed),
        latency: Percentiles::of(&mut latencies),
    })
}
