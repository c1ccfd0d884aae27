//! One keep-alive HTTP/1.1 connection to the API, and the few calls the bench makes on
//! it: publish, read a page of events, list handlers.
//!
//! The bench opens its own connections rather than going through a pooled client so that
//! "C connections" means exactly C sockets, each with one request in flight.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// Most events one `GET /v1/events` page may hold (the API's limit).
const PAGE: usize = 1_000;
/// Pause between polls that found nothing new.
const IDLE_POLL: Duration = Duration::from_millis(1);

/// A connection with at most one request in flight.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    address: String,
}

/// The answer to a publish.
#[derive(Debug, Deserialize)]
pub(crate) struct Published {
    pub(crate) id: String,
    pub(crate) seq: u64,
}

/// An event as `GET /v1/events` returns it, reduced to what the bench reads.
#[derive(Debug, Deserialize)]
pub(crate) struct SeenEvent {
    pub(crate) time: String,
    pub(crate) correlationid: String,
}

#[derive(Deserialize)]
struct Page {
    events: Vec<SeenEvent>,
    next: u64,
}

impl Conn {
    /// Connects to `address` (`host:port`).
    pub(crate) async fn open(address: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to choreo at {address}"))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake failed")?;
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            address: address.to_owned(),
        })
    }

    /// Sends one request and reads the whole answer.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.address);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(authorization) = crate::client::authorization() {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request.body(Full::new(body)).context("invalid request")?;
        self.sender.ready().await.context("the connection closed")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("request to {path} failed"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the answer failed")?
            .to_bytes();
        Ok((status, body))
    }

    /// Publishes `data` (JSON) on `topic`, with an ordering key if given; returns once
    /// choreo has answered 202.
    pub(crate) async fn publish(
        &mut self,
        topic: &str,
        key: Option<&str>,
        data: Bytes,
    ) -> anyhow::Result<Published> {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
        ];
        if let Some(key) = key {
            headers.push(("ce-partitionkey", key));
        }
        let path = format!("/v1/topics/{topic}");
        let (status, body) = self.send(Method::POST, &path, &headers, data).await?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "publishing to {topic} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).context("the publish answer is not {id, seq}")
    }

    /// Publishes `datas` (JSON each) on `topic` as one CloudEvents batch
    /// (`POST /v1/events`); returns once choreo has answered 202 for all of them.
    pub(crate) async fn publish_batch(
        &mut self,
        topic: &str,
        first: u64,
        datas: Vec<Bytes>,
    ) -> anyhow::Result<usize> {
        let mut events = Vec::with_capacity(datas.len());
        for (i, data) in datas.iter().enumerate() {
            let data: serde_json::Value =
                serde_json::from_slice(data).context("bench payloads are JSON")?;
            events.push(serde_json::json!({
                "specversion": "1.0",
                "id": format!("bench-batch-{}-{}", std::process::id(), first + i as u64),
                "source": "choreo://bench",
                "type": "bench.batch",
                "topic": topic,
                "datacontenttype": "application/json",
                "data": data,
            }));
        }
        let body = serde_json::to_vec(&events).context("a batch serialises")?;
        let headers = [("content-type", "application/cloudevents-batch+json")];
        let (status, answer) = self
            .send(Method::POST, "/v1/events", &headers, Bytes::from(body))
            .await?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "publishing a batch to {topic} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        let accepted: Vec<Published> =
            serde_json::from_slice(&answer).context("the batch answer is not [{id, seq}]")?;
        anyhow::ensure!(
            accepted.len() == events.len(),
            "a batch of {} was answered with {} acknowledgements",
            events.len(),
            accepted.len()
        );
        Ok(accepted.len())
    }

    /// One page of events matching `pattern` after `after`, and where to continue.
    async fn events_after(
        &mut self,
        pattern: &str,
        after: u64,
    ) -> anyhow::Result<(Vec<SeenEvent>, u64)> {
        let path = format!("/v1/events?pattern={pattern}&after={after}&limit={PAGE}");
        let (status, body) = self.send(Method::GET, &path, &[], Bytes::new()).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let page: Page = serde_json::from_slice(&body).context("unexpected /v1/events answer")?;
        Ok((page.events, page.next))
    }

    /// The status of every handler by name (`running`, `stopped`, …).
    pub(crate) async fn handler_statuses(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct Listing {
            handlers: Vec<Handler>,
        }
        #[derive(Deserialize)]
        struct Handler {
            name: String,
            status: String,
        }
        let (status, body) = self
            .send(Method::GET, "/v1/handlers", &[], Bytes::new())
            .await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET /v1/handlers answered {status}"
        );
        let listing: Listing =
            serde_json::from_slice(&body).context("unexpected /v1/handlers answer")?;
        Ok(listing
            .handlers
            .into_iter()
            .map(|h| (h.name, h.status))
            .collect())
    }
}

/// An event the tail saw, with the moment it saw it.
pub(crate) struct Observed {
    pub(crate) event: SeenEvent,
    pub(crate) at: SystemTime,
}

/// Follows the log by seq: collects events matching `pattern` after `after` until `want`
/// have arrived or `deadline` passes, counting them in `progress`.
pub(crate) async fn tail(
    address: String,
    pattern: String,
    after: u64,
    want: usize,
    deadline: Instant,
    progress: super::stats::Progress,
) -> anyhow::Result<Vec<Observed>> {
    let mut conn = Conn::open(&address).await?;
    let mut seen = Vec::with_capacity(want);
    let mut after = after;
    while seen.len() < want {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {want} events on {pattern} arrived before the deadline",
            seen.len()
        );
        let (events, next) = conn.events_after(&pattern, after).await?;
        let at = SystemTime::now();
        after = next.max(after);
        if events.is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        progress.add(events.len() as u64);
        seen.extend(events.into_iter().map(|event| Observed { event, at }));
    }
    Ok(seen)
}
