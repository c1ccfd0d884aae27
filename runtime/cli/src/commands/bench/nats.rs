//! NATS JetStream side by side, in the same run and on the same disk: a `nats-server -js`
//! started here on a free loopback port with a fresh store dir, killed at the end.
//!
//! Measures what a JetStream user would compare with choreo's figures, with the same
//! 256-byte messages: async publish with 256 acks in flight (vs. durable ingress), publish
//! with a concurrent pull consumer acking every message explicitly (vs. deliveries through
//! handlers), and one publish-and-ack at a time, back to back and 10 ms apart (vs. publish
//! → handler start at low load, paced the same). JetStream acks a publish once written,
//! syncing every two minutes by default: its durability is that of choreo's `buffered`
//! mode.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;

use super::chain::{PROBE_GAP, PROBES};
use super::load::EVENT_BYTES;
use super::stats::{Percentiles, Progress, per_second};

/// Publishes awaiting their acks at once, in the windowed publish.
const WINDOW: usize = 256;
/// Sequential publish-and-ack round trips sampled.
const SEQUENTIAL: usize = 2_000;
/// How long nats-server may take to listen.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// JetStream's figures.
#[derive(Debug, serde::Serialize)]
pub(crate) struct JetStreamFigures {
    pub(crate) publish_per_s: f64,
    pub(crate) publish_consume_per_s: f64,
    /// One publish-and-ack at a time, back to back.
    pub(crate) sequential_publish: Option<Percentiles>,
    /// One at a time, paced as choreo's low-load probes are.
    pub(crate) paced_publish: Option<Percentiles>,
}

struct NatsServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> anyhow::Result<NatsServer> {
    let dir = tempfile::tempdir().context("cannot create a temp dir for nats-server")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free port")?
        .port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "--nats needs nats-server on the PATH (Debian: apt-get install -y nats-server)"
            )
        }
        Err(e) => return Err(e).context("cannot start nats-server"),
    };
    let server = NatsServer {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + START_DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nats-server did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

async fn stream(js: &jetstream::Context, name: &str, subject: &str) -> anyhow::Result<()> {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create the JetStream stream {name}"))?;
    Ok(())
}

/// Publishes `count` messages with up to [`WINDOW`] acks outstanding.
async fn publish_windowed(
    js: &jetstream::Context,
    subject: &str,
    count: u64,
    progress: Progress,
) -> anyhow::Result<()> {
    let payload = bytes::Bytes::from(vec![b'x'; EVENT_BYTES]);
    let mut acks = VecDeque::with_capacity(WINDOW);
    for _ in 0..count {
        if acks.len() == WINDOW {
            let ack: jetstream::context::PublishAckFuture =
                acks.pop_front().expect("the window is full");
            ack.await.context("JetStream publish ack")?;
            progress.add(1);
        }
        acks.push_back(
            js.publish(subject.to_owned(), payload.clone())
                .await
                .context("JetStream publish")?,
        );
    }
    for ack in acks {
        ack.await.context("JetStream publish ack")?;
        progress.add(1);
    }
    Ok(())
}

/// Runs the three JetStream measurements with `count` messages each.
pub(crate) async fn measure(count: u64, deadline: Instant) -> anyhow::Result<JetStreamFigures> {
    let server = start()?;
    let client = async_nats::connect(&server.url)
        .await
        .with_context(|| format!("cannot connect to {}", server.url))?;
    let js = jetstream::new(client);
    let within = |what: &'static str| {
        move |_| anyhow::anyhow!("JetStream {what} did not finish before the deadline")
    };
    let left = || deadline.saturating_duration_since(Instant::now());

    stream(&js, "PUBLISH", "bench.publish").await?;
    let line = Progress::start("jetstream publish", count);
    let begin = Instant::now();
    tokio::time::timeout(
        left(),
        publish_windowed(&js, "bench.publish", count, line.counter()),
    )
    .await
    .map_err(within("publish"))??;
    let publish_per_s = per_second(count, begin.elapsed());
    drop(line);

    stream(&js, "PUBSUB", "bench.pubsub").await?;
    let consumer = js
        .get_stream("PUBSUB")
        .await
        .context("the PUBSUB stream")?
        .create_consumer(pull::Config {
            durable_name: Some("bench".to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4 * WINDOW as i64,
            ..Default::default()
        })
        .await
        .context("cannot create the JetStream consumer")?;
    let line = Progress::start("jetstream publish + consume", count);
    let begin = Instant::now();
    let consume = {
        let progress = line.counter();
        tokio::spawn(async move {
            let mut messages = consumer.messages().await.context("JetStream pull")?;
            let mut received = 0;
            while received < count {
                let message = messages
                    .next()
                    .await
                    .context("the JetStream pull ended")?
                    .map_err(|e| anyhow::anyhow!("JetStream pull: {e}"))?;
                message
                    .ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("JetStream ack: {e}"))?;
                received += 1;
                progress.add(1);
            }
            anyhow::Ok(())
        })
    };
    tokio::time::timeout(left(), async {
        publish_windowed(&js, "bench.pubsub", count, Progress::silent()).await?;
        consume.await?
    })
    .await
    .map_err(within("publish + consume"))??;
    let publish_consume_per_s = per_second(count, begin.elapsed());
    drop(line);

    let mut sequential = sequential_publishes(&js, SEQUENTIAL, Duration::ZERO, deadline).await?;
    let mut paced = sequential_publishes(&js, PROBES as usize, PROBE_GAP, deadline).await?;
    drop(server);
    Ok(JetStreamFigures {
        publish_per_s,
        publish_consume_per_s,
        sequential_publish: Percentiles::of(&mut sequential),
        paced_publish: Percentiles::of(&mut paced),
    })
}

/// `count` publish-and-ack round trips, one at a time, `gap` after each ack.
async fn sequential_publishes(
    js: &jetstream::Context,
    count: usize,
    gap: Duration,
    deadline: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let payload = bytes::Bytes::from(vec![b'x'; EVENT_BYTES]);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "JetStream sequential publishes ran past the deadline"
        );
        let begin = Instant::now();
        js.publish("bench.publish", payload.clone())
            .await
            .context("JetStream publish")?
            .await
            .context("JetStream publish ack")?;
        samples.push(begin.elapsed());
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    Ok(samples)
}
