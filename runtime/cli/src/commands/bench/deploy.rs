//! Putting relays into the deploy folder the way an operator would (manifest first, then
//! the component by an atomic rename), and measuring deploy-to-serving time: from that
//! rename to the component's first delivery, with a compile (cold) and from the artifact
//! cache (the same bytes removed and added again).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;

use super::api::{Conn, tail};
use super::stats::Progress;

/// Handler name of the probe whose deploys are timed.
const PROBE: &str = "bench-probe";
/// How long a deploy may take before the bench gives up on it.
const DEPLOY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a removed component may take to stop.
const REMOVE_DEADLINE: Duration = Duration::from_secs(20);

/// The manifest of a relay deployment.
pub(crate) struct Manifest<'a> {
    pub(crate) name: &'a str,
    pub(crate) subscribe: &'a str,
    pub(crate) publish: &'a str,
    pub(crate) concurrency: u32,
    pub(crate) start: &'a str,
    pub(crate) deliveries_per_instance: u32,
}

impl Manifest<'_> {
    pub(crate) fn to_toml(&self) -> String {
        let Manifest {
            name,
            subscribe,
            publish,
            concurrency,
            start,
            deliveries_per_instance,
        } = self;
        format!(
            "concurrency = {concurrency}\nstart = \"{start}\"\n\
             deliveries_per_instance = {deliveries_per_instance}\n\n[config]\nname = \"{name}\"\n\
             subscribe = \"{subscribe}\"\npublish = \"{publish}\"\n"
        )
    }
}

/// Writes `<stem>.toml`, then the component under a hidden temp name, and renames it to
/// `<stem>.wasm`. Returns the wall-clock time just before the rename.
pub(crate) fn place(
    dir: &Path,
    stem: &str,
    wasm: &[u8],
    manifest: &str,
) -> anyhow::Result<SystemTime> {
    let write_atomically = |name: String, bytes: &[u8]| -> anyhow::Result<SystemTime> {
        let temp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(&name);
        std::fs::write(&temp, bytes).with_context(|| format!("cannot write {}", temp.display()))?;
        let at = SystemTime::now();
        std::fs::rename(&temp, &path)
            .with_context(|| format!("cannot rename to {}", path.display()))?;
        Ok(at)
    };
    write_atomically(format!("{stem}.toml"), manifest.as_bytes())?;
    write_atomically(format!("{stem}.wasm"), wasm)
}

/// Waits until every handler in `names` has `status`.
pub(crate) async fn wait_for_status(
    address: &str,
    names: &[&str],
    status: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(address).await?;
    let deadline = Instant::now() + limit;
    loop {
        let statuses = conn.handler_statuses().await?;
        let pending: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !statuses.iter().any(|(n, s)| n == name && s == status))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "handlers {pending:?} were not {status} within {}s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Appends a custom section holding a nonce, so that the component's content hash (and so
/// its artifact-cache key) is new while its behaviour is the same.
pub(crate) fn with_nonce(wasm: &[u8]) -> Vec<u8> {
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        ^ u128::from(std::process::id()) << 64;
    let name = b"choreo-bench-nonce";
    let mut content = vec![name.len() as u8];
    content.extend_from_slice(name);
    content.extend_from_slice(&nonce.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section
    out.push(content.len() as u8); // < 128, so one LEB128 byte
    out.extend_from_slice(&content);
    out
}

/// Deploy-to-serving times, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct DeployTimes {
    pub(crate) cold_ms: f64,
    pub(crate) cached_ms: f64,
}

/// Times a cold deploy of a fresh copy of `relay`, then removes it and times adding the
/// same bytes again. Each time one event is already waiting for the probe (published
/// before the rename: `start = "earliest"` for the new handler, the kept queue for the
/// re-added one), so its first delivery starts as soon as it is serving; the delivery's
/// output carries the time the handler ran.
pub(crate) async fn deploy_to_serving(
    address: &str,
    dir: &Path,
    relay: &[u8],
) -> anyhow::Result<DeployTimes> {
    let wasm = with_nonce(relay);
    let input = format!("bench.probe.{}", std::process::id());
    let output = format!("{input}.out");
    let text = Manifest {
        name: PROBE,
        subscribe: &input,
        publish: &output,
        concurrency: 1,
        start: "earliest",
        deliveries_per_instance: 1,
    }
    .to_toml();
    let mut conn = Conn::open(address).await?;
    let mut times = Vec::new();
    for round in ["cold", "cached"] {
        let marker = conn
            .publish("bench.marker", None, Bytes::from_static(b"{}"))
            .await?;
        conn.publish(&input, None, Bytes::from_static(b"{}"))
            .await?;
        let renamed = place(dir, PROBE, &wasm, &text)?;
        let seen = tail(
            address.to_owned(),
            output.clone(),
            marker.seq,
            1,
            Instant::now() + DEPLOY_DEADLINE,
            Progress::silent(),
        )
        .await
        .with_context(|| format!("the {round} deploy of the probe never delivered"))?;
        let ran = parse_time(&seen[0].event.time)?;
        times.push(ran.duration_since(renamed).unwrap_or_default());
        std::fs::remove_file(dir.join(format!("{PROBE}.wasm")))
            .context("cannot remove the probe")?;
        wait_for_status(address, &[PROBE], "stopped", REMOVE_DEADLINE).await?;
    }
    Ok(DeployTimes {
        cold_ms: times[0].as_secs_f64() * 1000.0,
        cached_ms: times[1].as_secs_f64() * 1000.0,
    })
}

/// An event's RFC 3339 `time` as a wall-clock time.
pub(crate) fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    let timestamp: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("bad event time {text:?}"))?;
    Ok(SystemTime::from(timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_name_the_bridge() {
        let text = Manifest {
            name: "relay-a",
            subscribe: "bench.in",
            publish: "bench.a",
            concurrency: 8,
            start: "next",
            deliveries_per_instance: 1000,
        }
        .to_toml();
        let value: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(value["concurrency"].as_integer(), Some(8));
        assert_eq!(value["deliveries_per_instance"].as_integer(), Some(1000));
        assert_eq!(value["config"]["publish"].as_str(), Some("bench.a"));
    }

    #[test]
    fn a_nonce_section_changes_the_bytes_only_at_the_end() {
        let wasm = b"\0asm\x0d\0\x01\0".to_vec();
        let changed = with_nonce(&wasm);
        assert!(changed.starts_with(&wasm));
        assert_eq!(changed[wasm.len()], 0);
        assert_eq!(
            changed[wasm.len() + 1] as usize,
            changed.len() - wasm.len() - 2
        );
    }
}
